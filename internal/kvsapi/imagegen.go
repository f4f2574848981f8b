package kvsapi

import (
	"errors"
	"regexp"
	"strconv"

	"github.com/kinema/kinema/internal/apierr"
	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/images"
	"github.com/kinema/kinema/internal/stream"
)

type destinationConfig struct {
	Uri               *string `json:"Uri"`
	DestinationRegion *string `json:"DestinationRegion"`
}

type imageGenerationConfig struct {
	imageSettings
	Status            *string            `json:"Status"`
	ImageSelectorType *string            `json:"ImageSelectorType"`
	DestinationConfig *destinationConfig `json:"DestinationConfig"`
}

var reRegion = regexp.MustCompile(`^[a-z]+(-[a-z]+)?-[a-z]+-[0-9]$`)

// check validates a configuration for a stream and returns it as stored.
func (in *imageGenerationConfig) check(st *stream.Stream) (*stream.ImageGenerationConfig, error) {
	if in.Status == nil || in.ImageSelectorType == nil || in.DestinationConfig == nil ||
		in.DestinationConfig.Uri == nil || in.DestinationConfig.DestinationRegion == nil {
		return nil, apierr.InvalidArg("ImageGenerationConfiguration requires Status, ImageSelectorType, " +
			"DestinationConfig (Uri and DestinationRegion), SamplingInterval and Format")
	}
	if err := checkEnum("Status", *in.Status, "ENABLED", "DISABLED"); err != nil {
		return nil, err
	}
	if _, err := selectorKind("ImageSelectorType", *in.ImageSelectorType); err != nil {
		return nil, err
	}
	uri, region := *in.DestinationConfig.Uri, *in.DestinationConfig.DestinationRegion
	if err := checkLen("Uri", uri, 1, 255); err != nil {
		return nil, err
	}
	if _, err := images.ParseDestination(uri); err != nil {
		return nil, apierr.InvalidArg("DestinationConfig: %v", err)
	}
	if err := checkPattern("DestinationRegion", region, 9, 14, reRegion); err != nil {
		return nil, err
	}
	if region != st.Region {
		return nil, apierr.InvalidArg("DestinationRegion %s is not the stream's region %s", region, st.Region)
	}
	interval, err := in.samplingMs(0)
	if err != nil {
		return nil, err
	}
	out, err := in.output()
	if err != nil {
		return nil, err
	}
	return &stream.ImageGenerationConfig{Status: *in.Status, ImageSelectorType: *in.ImageSelectorType, DestinationURI: uri,
		DestinationRegion: region, SamplingIntervalMs: interval, Format: out.Format.String(), JPEGQuality: out.Quality,
		WidthPixels: out.Width, HeightPixels: out.Height}, nil
}

func (s *Server) updateImageGenerationConfiguration(c *call) (any, error) {
	var in struct {
		streamRef
		ImageGenerationConfiguration *imageGenerationConfig `json:"ImageGenerationConfiguration"`
	}
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	st, err := s.resolve(c.ctx, in.streamRef)
	if err != nil {
		return nil, err
	}
	if st.RetentionHours == 0 {
		return nil, apierr.New("NoDataRetentionException", "stream %s keeps no data to make images from", st.Name)
	}
	// An absent configuration deletes the stream's.
	var cfg *stream.ImageGenerationConfig
	if in.ImageGenerationConfiguration != nil {
		if cfg, err = in.ImageGenerationConfiguration.check(st); err != nil {
			return nil, err
		}
	}
	err = s.cfg.Archive.Index.SetImageGenerationConfig(c.ctx, st.ID, cfg)
	if errors.Is(err, archive.ErrNotFound) {
		return nil, apierr.NotFound("The requested stream %s is not found or not active.", st.Name)
	}
	if err != nil {
		return nil, apierr.Internal(err)
	}
	return nil, nil
}

func (s *Server) describeImageGenerationConfiguration(c *call) (any, error) {
	st, err := s.namedStream(c)
	if err != nil {
		return nil, err
	}
	cfg, err := s.cfg.Archive.Index.ImageGenerationConfig(c.ctx, st.ID)
	if errors.Is(err, archive.ErrNotFound) {
		return struct{}{}, nil
	}
	if err != nil {
		return nil, apierr.Internal(err)
	}
	out := map[string]any{
		"Status":            cfg.Status,
		"ImageSelectorType": cfg.ImageSelectorType,
		"DestinationConfig": map[string]string{"Uri": cfg.DestinationURI, "DestinationRegion": cfg.DestinationRegion},
		"SamplingInterval":  cfg.SamplingIntervalMs,
		"Format":            cfg.Format,
	}
	if cfg.JPEGQuality > 0 {
		out["FormatConfig"] = map[string]string{"JPEGQuality": strconv.Itoa(cfg.JPEGQuality)}
	}
	if cfg.WidthPixels > 0 {
		out["WidthPixels"] = cfg.WidthPixels
	}
	if cfg.HeightPixels > 0 {
		out["HeightPixels"] = cfg.HeightPixels
	}
	return map[string]any{"ImageGenerationConfiguration": out}, nil
}
