package kvsapi

import (
	"encoding/base64"
	"errors"
	"regexp"
	"strconv"

	"github.com/kinema/kinema/internal/apierr"
	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/images"
	"github.com/kinema/kinema/internal/stream"
)

// imageSettings are the fields GetImages and the image generation
// configuration share, checked the same way for both.
type imageSettings struct {
	SamplingInterval *int64             `json:"SamplingInterval"`
	Format           *string            `json:"Format"`
	FormatConfig     *map[string]string `json:"FormatConfig"`
	WidthPixels      *int64             `json:"WidthPixels"`
	HeightPixels     *int64             `json:"HeightPixels"`
}

var reFormatConfigValue = regexp.MustCompile(`^[a-zA-Z_0-9]+`)

// output checks the format, FormatConfig and size fields.
func (in *imageSettings) output() (images.Output, error) {
	var o images.Output
	if in.Format == nil {
		return o, apierr.InvalidArg("Format is required")
	}
	f, ok := images.ParseFormat(*in.Format)
	if !ok {
		return o, checkEnum("Format", *in.Format, "JPEG", "PNG")
	}
	o.Format = f
	if in.FormatConfig != nil {
		fc := *in.FormatConfig
		if len(fc) != 1 {
			return o, apierr.InvalidArg("FormatConfig must hold exactly 1 entry; got %d", len(fc))
		}
		for k, v := range fc {
			if k != "JPEGQuality" {
				return o, apierr.InvalidArg("FormatConfig key %q is not one of [JPEGQuality]", k)
			}
			if err := checkPattern("FormatConfig value", v, 0, 256, reFormatConfigValue); err != nil {
				return o, err
			}
			q, err := strconv.Atoi(v)
			if err != nil || q < 1 || q > 100 {
				return o, apierr.InvalidArg("JPEGQuality must be an integer from 1 to 100; got %q", v)
			}
			o.Quality = q
		}
	}
	var err error
	if o.Width, err = pixels("WidthPixels", in.WidthPixels, images.MaxWidth); err != nil {
		return o, err
	}
	if o.Height, err = pixels("HeightPixels", in.HeightPixels, images.MaxHeight); err != nil {
		return o, err
	}
	return o, nil
}

func pixels(field string, v *int64, max int) (int, error) {
	if v == nil {
		return 0, nil
	}
	if *v < 1 || *v > int64(max) {
		return 0, apierr.InvalidArg("%s must be 1 to %d; got %d", field, max, *v)
	}
	return int(*v), nil
}

// samplingMs checks SamplingInterval (ms); absent gives def.
func (in *imageSettings) samplingMs(def int64) (int64, error) {
	if in.SamplingInterval == nil {
		if def == 0 {
			return 0, apierr.InvalidArg("SamplingInterval is required")
		}
		return def, nil
	}
	v, lo, hi := *in.SamplingInterval, images.MinSamplingInterval.Milliseconds(), images.MaxSamplingInterval.Milliseconds()
	if v < lo || v > hi {
		return 0, apierr.InvalidArg("SamplingInterval must be %d to %d ms; got %d", lo, hi, v)
	}
	return v, nil
}

// imageRange is the clock and range GetImages and GetTimelapse sample.
type imageRange struct {
	ImageSelectorType *string              `json:"ImageSelectorType"`
	StartTimestamp    *stream.EpochSeconds `json:"StartTimestamp"`
	EndTimestamp      *stream.EpochSeconds `json:"EndTimestamp"`
}

type getImagesInput struct {
	streamRef
	imageSettings
	imageRange
	MaxResults *int64  `json:"MaxResults"`
	NextToken  *string `json:"NextToken"`
}

type imageOut struct {
	TimeStamp    stream.EpochSeconds `json:"TimeStamp"`
	Error        string              `json:"Error,omitempty"`
	ImageContent string              `json:"ImageContent,omitempty"`
}

// imagesCursor is what a GetImages NextToken carries: the request it
// continues (so that a token is not replayed against another range) and
// the next sample number.
type imagesCursor struct {
	streamID             int64
	kind                 archive.TimestampKind
	start, end, interval int64
	next                 int64
}

func (c imagesCursor) encode() string {
	return encodeCursor("gi1", c.streamID, int64(c.kind), c.start, c.end, c.interval, c.next)
}

func decodeImagesCursor(tok string) (imagesCursor, error) {
	n, err := decodeCursor(tok, "gi1", 6)
	if err != nil {
		return imagesCursor{}, err
	}
	return imagesCursor{streamID: n[0], kind: archive.TimestampKind(n[1]), start: n[2], end: n[3], interval: n[4], next: n[5]}, nil
}

func (s *Server) getImages(c *call) (any, error) {
	var in getImagesInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	if in.ImageSelectorType == nil || in.StartTimestamp == nil || in.EndTimestamp == nil {
		return nil, apierr.InvalidArg("ImageSelectorType, StartTimestamp and EndTimestamp are required")
	}
	kind, err := selectorKind("ImageSelectorType", *in.ImageSelectorType)
	if err != nil {
		return nil, err
	}
	start, end := in.StartTimestamp.Ms(), in.EndTimestamp.Ms()
	if end < start {
		return nil, apierr.InvalidArg("EndTimestamp must not be before StartTimestamp")
	}
	if end-start > images.MaxRange.Milliseconds() {
		return nil, apierr.InvalidArg("EndTimestamp may be at most %v after StartTimestamp", images.MaxRange)
	}
	interval, err := in.samplingMs(images.DefaultSamplingInterval.Milliseconds())
	if err != nil {
		return nil, err
	}
	out, err := in.output()
	if err != nil {
		return nil, err
	}
	page := int64(images.DefaultPageImages)
	if in.MaxResults != nil {
		if *in.MaxResults < 1 || *in.MaxResults > images.MaxPageImages {
			return nil, apierr.InvalidArg("MaxResults must be 1 to %d; got %d", images.MaxPageImages, *in.MaxResults)
		}
		page = *in.MaxResults
	}
	st, err := s.resolve(c.ctx, in.streamRef)
	if err != nil {
		return nil, err
	}
	if st.RetentionHours == 0 {
		return nil, apierr.New("NoDataRetentionException", "stream %s keeps no data to make images from", st.Name)
	}
	cur := imagesCursor{streamID: st.ID, kind: kind, start: start, end: end, interval: interval}
	if in.NextToken != nil {
		tok, err := decodeImagesCursor(*in.NextToken)
		if err != nil {
			return nil, err
		}
		if cur.next = tok.next; tok != cur {
			return nil, apierr.InvalidArg("NextToken belongs to another stream, range or sampling interval")
		}
	}
	// Samples are start + k*interval for every k with the time not after end.
	total := (end-start)/interval + 1
	if cur.next < 0 || cur.next >= total {
		return nil, apierr.InvalidArg("NextToken is past the end of the range")
	}
	times := make([]int64, 0, min(page, total-cur.next))
	for k := cur.next; k < total && int64(len(times)) < page; k++ {
		times = append(times, start+k*interval)
	}
	if s.cfg.Images == nil {
		return nil, images.Unavailable(errors.New("this server has no image service"))
	}
	imgs, err := s.cfg.Images.Render(c.ctx, images.Request{Stream: st, Clock: kind, Times: times, Output: out})
	if err != nil {
		return nil, err
	}
	resp := struct {
		Images    []imageOut `json:"Images"`
		NextToken string     `json:"NextToken,omitempty"`
	}{Images: make([]imageOut, 0, len(imgs))}
	bytes := 0
	for i, img := range imgs {
		bytes += len(img.Data)
		if i > 0 && bytes > images.MaxPageBytes {
			break // the rest is on the next page
		}
		o := imageOut{TimeStamp: stream.EpochSeconds(img.Time)}
		if img.Status == images.OK {
			o.ImageContent = base64.StdEncoding.EncodeToString(img.Data)
		} else {
			o.Error = img.Status.String()
		}
		resp.Images = append(resp.Images, o)
	}
	if next := cur.next + int64(len(resp.Images)); next < total {
		cur.next = next
		resp.NextToken = cur.encode()
	}
	return resp, nil
}

type getTimelapseInput struct {
	streamRef
	imageRange
	SamplingInterval *int64 `json:"SamplingInterval"`
	FramesPerSecond  *int64 `json:"FramesPerSecond"`
	WidthPixels      *int64 `json:"WidthPixels"`
	HeightPixels     *int64 `json:"HeightPixels"`
}

// getTimelapse is Kinema's GetTimelapse: an MP4 of one frame per
// SamplingInterval of the range (default producer clock), streamed as it
// is made (docs/compatibility.md).
func (s *Server) getTimelapse(c *call) error {
	var in getTimelapseInput
	if err := c.decode(&in); err != nil {
		return err
	}
	if in.StartTimestamp == nil || in.EndTimestamp == nil || in.SamplingInterval == nil {
		return apierr.InvalidArg("StartTimestamp, EndTimestamp and SamplingInterval are required")
	}
	kind := archive.ProducerTimestamp
	if in.ImageSelectorType != nil {
		var err error
		if kind, err = selectorKind("ImageSelectorType", *in.ImageSelectorType); err != nil {
			return err
		}
	}
	w, err := pixels("WidthPixels", in.WidthPixels, images.MaxWidth)
	if err != nil {
		return err
	}
	h, err := pixels("HeightPixels", in.HeightPixels, images.MaxHeight)
	if err != nil {
		return err
	}
	fps := int64(images.DefaultTimelapseFPS)
	if in.FramesPerSecond != nil {
		if fps = *in.FramesPerSecond; fps < 1 || fps > images.MaxTimelapseFPS {
			return apierr.InvalidArg("FramesPerSecond must be 1 to %d; got %d", images.MaxTimelapseFPS, fps)
		}
	}
	req := images.TimelapseRequest{Clock: kind, StartMs: in.StartTimestamp.Ms(), EndMs: in.EndTimestamp.Ms(),
		IntervalMs: *in.SamplingInterval, FPS: int(fps), Width: w, Height: h}
	if err := req.Check(); err != nil {
		return err
	}
	if req.Stream, err = s.resolve(c.ctx, in.streamRef); err != nil {
		return err
	}
	if s.cfg.Images == nil {
		return images.Unavailable(errors.New("this server has no image service"))
	}
	return s.cfg.Images.Timelapse(c.ctx, c.w, req)
}
