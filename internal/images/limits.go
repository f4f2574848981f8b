package images

import "time"

// Kinema's own limits on image requests (docs/compatibility.md). KVS
// allows at most 5 images a second, 300 s per GetImages range and 25
// images per page; Kinema's bounds only keep one request's work and
// response size finite.
const (
	// MinSamplingInterval and MaxSamplingInterval bound SamplingInterval
	// (KVS: 200 ms minimum). 1 ms asks for every frame.
	MinSamplingInterval = time.Millisecond
	MaxSamplingInterval = 24 * time.Hour
	// DefaultSamplingInterval applies when GetImages leaves SamplingInterval out.
	DefaultSamplingInterval = 3 * time.Second
	// MaxRange bounds EndTimestamp - StartTimestamp (KVS: 300 s). Pages are
	// computed from sample numbers, so a long range costs nothing up front.
	MaxRange = 24 * time.Hour
	// DefaultPageImages and MaxPageImages: images per GetImages page
	// (MaxResults; KVS pages at 25 whatever MaxResults says).
	DefaultPageImages = 25
	MaxPageImages     = 100
	// MaxPageBytes ends a page early when its images add up to more (KVS
	// caps a response at 100 MB; base64 makes these 64 MiB about 90 MB).
	MaxPageBytes = 64 << 20
	// MaxWidth and MaxHeight bound WidthPixels and HeightPixels, as in KVS.
	MaxWidth  = 3840
	MaxHeight = 2160
)
