package stream

// ImageGenerationConfig is a stream's image generation configuration, as
// UpdateImageGenerationConfiguration sets it: which fragments' images go
// where (fragments the producer tags with TagImageGeneration), sampled how
// and encoded how. The string fields hold the KVS enum values.
type ImageGenerationConfig struct {
	Status             string // "ENABLED" or "DISABLED"
	ImageSelectorType  string // "SERVER_TIMESTAMP" or "PRODUCER_TIMESTAMP"
	DestinationURI     string // s3://bucket/prefix or file:///dir
	DestinationRegion  string
	SamplingIntervalMs int64
	Format             string // "JPEG" or "PNG"
	JPEGQuality        int    // 1-100; 0 when FormatConfig did not give it
	WidthPixels        int    // 0 when not given
	HeightPixels       int    // 0 when not given
}
