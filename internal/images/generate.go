package images

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/outbox"
	"github.com/kinema/kinema/internal/stream"
)

// Generator makes the images of fragments the producer tagged with
// AWS_KINESISVIDEO_IMAGE_GENERATION and writes them where the stream's
// image generation configuration says, as KVS does. It keeps no queue of
// its own: its Attempt is the handler of an outbox.Worker for kind
// TriggerImageGeneration, which takes every persisted, tagged fragment from
// the archive's durable outbox (so that none is skipped across restarts)
// and retries a failed attempt with backoff.
type Generator struct {
	Images  *Service
	Store   *Store
	Account string // the account id in object names of streams that carry none
}

// Generated says what one Generate call did.
type Generated struct {
	Written []string // object names written
	Missing int      // samples without a picture (NO_MEDIA or MEDIA_ERROR)
	Skipped string   // why nothing was to be done, when nothing was
	// Destination is the configured destination Uri.
	Destination string
}

// Attempt is the outbox handler of image generation: it makes the images
// of the fragment an outbox row names. Writing them again after a crash
// rewrites the same objects (Generate's names are stable).
func (g *Generator) Attempt(ctx context.Context, e archive.OutboxEntry) outbox.Outcome {
	idx := g.Images.Archive.Index
	st, err := idx.StreamByID(ctx, e.StreamID)
	if errors.Is(err, archive.ErrNotFound) {
		return outbox.Outcome{Skip: "the stream was deleted"}
	}
	if err != nil {
		return outbox.Outcome{Err: err}
	}
	f, err := idx.Fragment(ctx, e.StreamID, e.Fragment)
	if errors.Is(err, archive.ErrNotFound) {
		return outbox.Outcome{Skip: "the fragment expired before its images were made"}
	}
	if err != nil {
		return outbox.Outcome{Err: err}
	}
	res, err := g.Generate(ctx, st, f)
	if err == nil && res.Skipped == "" && len(res.Written) == 0 {
		res.Skipped = "no decodable picture at the sample times"
	}
	return outbox.Outcome{Skip: res.Skipped, Destination: res.Destination, Err: err}
}

// Tagged reports whether the producer asked for images of the fragment.
func Tagged(f *stream.Fragment) bool {
	for _, t := range f.Tags {
		if t.Name == stream.TagImageGeneration {
			return true
		}
	}
	return false
}

// Generate makes and writes the images of one persisted fragment: one per
// SamplingInterval from the fragment's start (on the configured clock) to
// its end. A fragment that is not tagged, or a stream without an ENABLED
// configuration, is nothing to do (nil error). Object names are derived
// from the fragment and the frame, so calling Generate again for the same
// fragment rewrites the same objects instead of adding copies.
func (g *Generator) Generate(ctx context.Context, st *stream.Stream, f *stream.Fragment) (Generated, error) {
	var res Generated
	if !Tagged(f) {
		res.Skipped = "the fragment is not tagged " + stream.TagImageGeneration
		return res, nil
	}
	cfg, err := g.Images.Archive.Index.ImageGenerationConfig(ctx, st.ID)
	if errors.Is(err, archive.ErrNotFound) {
		res.Skipped = "the stream has no image generation configuration"
		return res, nil
	}
	if err != nil {
		return res, err
	}
	if cfg.Status != "ENABLED" {
		res.Skipped = "image generation is " + cfg.Status
		return res, nil
	}
	res.Destination = cfg.DestinationURI
	dest, err := ParseDestination(cfg.DestinationURI)
	if err != nil {
		res.Skipped = err.Error()
		return res, nil
	}
	format, _ := ParseFormat(cfg.Format)
	kind := archive.ServerTimestamp
	if cfg.ImageSelectorType == "PRODUCER_TIMESTAMP" {
		kind = archive.ProducerTimestamp
	}
	interval := max(cfg.SamplingIntervalMs, 1)
	start := startOn(f, kind)
	var times []int64
	for t := start; t == start || t < start+f.DurationMs; t += interval {
		times = append(times, t)
	}
	imgs, err := g.Images.Render(ctx, Request{Stream: st, Clock: kind, Times: times, Fragments: []stream.Fragment{*f},
		Output: Output{Format: format, Quality: cfg.JPEGQuality, Width: cfg.WidthPixels, Height: cfg.HeightPixels}})
	if err != nil {
		return res, err
	}
	prefix := ""
	for _, t := range f.Tags {
		if t.Name == stream.TagImagePrefix && t.Value != "" {
			prefix = t.Value + "_"
		}
	}
	written := map[string]bool{}
	for _, img := range imgs {
		if img.Status != OK {
			res.Missing++
			continue
		}
		at := img.ServerMs
		if kind == archive.ProducerTimestamp {
			at = img.ProducerMs
		}
		// KVS's layout: <prefix>_<account>_<stream>_<image timecode ms>_<random id>.<ext>
		id := uuid.NewSHA1(uuid.NameSpaceURL, []byte(st.ARN()+"/"+f.Number.String()+"/"+strconv.FormatInt(at, 10)+"/"+format.String()))
		account := st.Account // each tenant's images are named with its own account id
		if account == "" {
			account = g.Account
		}
		name := fmt.Sprintf("%s%s_%s_%d_%s.%s", prefix, account, st.Name, at, id, format.Extension())
		if written[name] {
			continue // two samples on one frame
		}
		o := Object{Name: name, Data: img.Data, ContentType: format.ContentType(), Metadata: objectMetadata(f, &img)}
		if err := g.Store.Put(ctx, dest, o); err != nil {
			return res, err
		}
		written[name] = true
		res.Written = append(res.Written, name)
	}
	return res, nil
}

// maxMetadataBytes is S3's limit on an object's user metadata (names and
// values); a larger PutObject is refused, and retrying would not help.
const maxMetadataBytes = 2048

// objectMetadata is what KVS sets on an image object: the fragment number,
// the frame's producer and server times in epoch ms, and the fragment's
// custom tags (those that can be HTTP header names, in order, as long as
// they fit in S3's 2 KB).
func objectMetadata(f *stream.Fragment, img *Image) map[string]string {
	m := map[string]string{
		"aws_kinesisvideo_fragment_number":    f.Number.String(),
		"aws_kinesisvideo_producer_timestamp": strconv.FormatInt(img.ProducerMs, 10),
		"aws_kinesisvideo_server_timestamp":   strconv.FormatInt(img.ServerMs, 10),
	}
	size := 0
	for k, v := range m {
		size += len(k) + len(v)
	}
	for _, t := range f.Tags {
		if strings.HasPrefix(t.Name, stream.SystemTagPrefix) || !validHeaderName(t.Name) {
			continue
		}
		if size += len(t.Name) + len(mime.BEncoding.Encode("utf-8", t.Value)); size > maxMetadataBytes {
			break
		}
		m[t.Name] = t.Value
	}
	return m
}

// validHeaderName reports whether s can follow x-amz-meta- in a header.
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		if c <= ' ' || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?={}", c) >= 0 {
			return false
		}
	}
	return http.CanonicalHeaderKey(s) != ""
}
