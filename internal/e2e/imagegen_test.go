package e2e

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	kvtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideo/types"
)

func imageGenConfig() *kvtypes.ImageGenerationConfiguration {
	return &kvtypes.ImageGenerationConfiguration{
		Status: kvtypes.ConfigurationStatusEnabled, ImageSelectorType: kvtypes.ImageSelectorTypeProducerTimestamp,
		DestinationConfig: &kvtypes.ImageGenerationDestinationConfig{Uri: aws.String("s3://thumbs/cam/front"), DestinationRegion: aws.String(testRegion)},
		SamplingInterval:  aws.Int32(3000), Format: kvtypes.FormatJpeg, FormatConfig: map[string]string{"JPEGQuality": "90"},
		WidthPixels: aws.Int32(640), HeightPixels: aws.Int32(360),
	}
}

// UpdateImageGenerationConfiguration and DescribeImageGenerationConfiguration
// through the Go SDK: every field round-trips, an absent configuration
// deletes it, and each constraint gets the KVS error.
func TestImageGenerationConfiguration(t *testing.T) {
	s := startServer(t)
	createStream(t, s, "gen", 24)
	createStream(t, s, "gen-live-only", 0)
	kv := s.kv()
	describe := func() *kvtypes.ImageGenerationConfiguration {
		t.Helper()
		out, err := kv.DescribeImageGenerationConfiguration(ctxT(t), &kinesisvideo.DescribeImageGenerationConfigurationInput{StreamName: aws.String("gen")})
		if err != nil {
			t.Fatal(err)
		}
		return out.ImageGenerationConfiguration
	}
	if got := describe(); got != nil {
		t.Fatalf("a new stream has %+v", got)
	}
	cfg := imageGenConfig()
	if _, err := kv.UpdateImageGenerationConfiguration(ctxT(t), &kinesisvideo.UpdateImageGenerationConfigurationInput{StreamName: aws.String("gen"),
		ImageGenerationConfiguration: cfg}); err != nil {
		t.Fatal(err)
	}
	if got, _ := json.Marshal(describe()); string(got) != string(must(json.Marshal(cfg))) {
		t.Fatalf("described %s\nwant      %s", got, must(json.Marshal(cfg)))
	}
	// The embedded default destination, PNG, no optional fields.
	local := &kvtypes.ImageGenerationConfiguration{Status: kvtypes.ConfigurationStatusDisabled, ImageSelectorType: kvtypes.ImageSelectorTypeServerTimestamp,
		DestinationConfig: &kvtypes.ImageGenerationDestinationConfig{Uri: aws.String("file:///var/lib/kinema/images"), DestinationRegion: aws.String(testRegion)},
		SamplingInterval:  aws.Int32(200), Format: kvtypes.FormatPng}
	if _, err := kv.UpdateImageGenerationConfiguration(ctxT(t), &kinesisvideo.UpdateImageGenerationConfigurationInput{StreamName: aws.String("gen"),
		ImageGenerationConfiguration: local}); err != nil {
		t.Fatal(err)
	}
	if got := describe(); !reflect.DeepEqual(must(json.Marshal(got)), must(json.Marshal(local))) {
		t.Fatalf("described %+v", got)
	}
	if _, err := kv.UpdateImageGenerationConfiguration(ctxT(t), &kinesisvideo.UpdateImageGenerationConfigurationInput{StreamName: aws.String("gen")}); err != nil {
		t.Fatal(err)
	}
	if got := describe(); got != nil {
		t.Fatalf("after deleting: %+v", got)
	}

	for _, c := range []struct {
		name   string
		stream string
		mod    func(*kvtypes.ImageGenerationConfiguration)
		code   string
		status int
	}{
		{"retention 0", "gen-live-only", func(*kvtypes.ImageGenerationConfiguration) {}, "NoDataRetentionException", 400},
		{"unknown stream", "no-such", func(*kvtypes.ImageGenerationConfiguration) {}, "ResourceNotFoundException", 404},
		{"status", "gen", func(c *kvtypes.ImageGenerationConfiguration) { c.Status = "ON" }, "InvalidArgumentException", 400},
		{"selector", "gen", func(c *kvtypes.ImageGenerationConfiguration) { c.ImageSelectorType = "NOW" }, "InvalidArgumentException", 400},
		{"uri pattern", "gen", func(c *kvtypes.ImageGenerationConfiguration) { c.DestinationConfig.Uri = aws.String("no scheme") }, "InvalidArgumentException", 400},
		{"uri scheme", "gen", func(c *kvtypes.ImageGenerationConfiguration) { c.DestinationConfig.Uri = aws.String("gs://bucket/x") }, "InvalidArgumentException", 400},
		{"relative file uri", "gen", func(c *kvtypes.ImageGenerationConfiguration) { c.DestinationConfig.Uri = aws.String("file://images") }, "InvalidArgumentException", 400},
		{"region pattern", "gen", func(c *kvtypes.ImageGenerationConfiguration) {
			c.DestinationConfig.DestinationRegion = aws.String("EU")
		}, "InvalidArgumentException", 400},
		{"another region", "gen", func(c *kvtypes.ImageGenerationConfiguration) {
			c.DestinationConfig.DestinationRegion = aws.String("eu-west-1")
		}, "InvalidArgumentException", 400},
		{"sampling interval 0", "gen", func(c *kvtypes.ImageGenerationConfiguration) { c.SamplingInterval = aws.Int32(0) }, "InvalidArgumentException", 400},
		{"format", "gen", func(c *kvtypes.ImageGenerationConfiguration) { c.Format = "BMP" }, "InvalidArgumentException", 400},
		{"quality 101", "gen", func(c *kvtypes.ImageGenerationConfiguration) {
			c.FormatConfig = map[string]string{"JPEGQuality": "101"}
		}, "InvalidArgumentException", 400},
		{"two format entries", "gen", func(c *kvtypes.ImageGenerationConfiguration) {
			c.FormatConfig = map[string]string{"JPEGQuality": "50", "Other": "1"}
		}, "InvalidArgumentException", 400},
		{"width over 3840", "gen", func(c *kvtypes.ImageGenerationConfiguration) { c.WidthPixels = aws.Int32(3841) }, "InvalidArgumentException", 400},
		{"height over 2160", "gen", func(c *kvtypes.ImageGenerationConfiguration) { c.HeightPixels = aws.Int32(2161) }, "InvalidArgumentException", 400},
		{"height 0", "gen", func(c *kvtypes.ImageGenerationConfiguration) { c.HeightPixels = aws.Int32(0) }, "InvalidArgumentException", 400},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := imageGenConfig()
			c.mod(cfg)
			_, err := kv.UpdateImageGenerationConfiguration(ctxT(t), &kinesisvideo.UpdateImageGenerationConfigurationInput{StreamName: aws.String(c.stream),
				ImageGenerationConfiguration: cfg})
			apiErr(t, err, c.code, c.status)
		})
	}
	// Fields the SDK itself requires, left out by a client that does not check.
	for _, body := range []string{
		`{"StreamName":"gen","ImageGenerationConfiguration":{"Status":"ENABLED","ImageSelectorType":"SERVER_TIMESTAMP",` +
			`"DestinationConfig":{"Uri":"s3://b/p","DestinationRegion":"` + testRegion + `"},"Format":"PNG"}}`,
		`{"StreamName":"gen","ImageGenerationConfiguration":{"Status":"ENABLED","ImageSelectorType":"SERVER_TIMESTAMP",` +
			`"DestinationConfig":{"Uri":"s3://b/p","DestinationRegion":"` + testRegion + `"},"SamplingInterval":1000}}`,
		`{"StreamName":"gen","ImageGenerationConfiguration":{"Status":"ENABLED","SamplingInterval":1000,"Format":"PNG",` +
			`"DestinationConfig":{"Uri":"s3://b/p","DestinationRegion":"` + testRegion + `"}}}`,
	} {
		if code, b := signedJSON(t, s, "updateImageGenerationConfiguration", body); code != 400 || !strings.Contains(string(b), "require") {
			t.Errorf("%s: %d %s", body, code, b)
		}
	}
	if got := describe(); got != nil {
		t.Fatalf("a refused update left %+v", got)
	}
	_, err := kv.DescribeImageGenerationConfiguration(ctxT(t), &kinesisvideo.DescribeImageGenerationConfigurationInput{StreamName: aws.String("no-such")})
	apiErr(t, err, "ResourceNotFoundException", 404)
}

// The AWS CLI sets and reads the configuration too.
func TestImageGenerationConfigurationWithAWSCLI(t *testing.T) {
	s := startServer(t)
	createStream(t, s, "gen-cli", 24)
	_, stderr, err := s.awsCLI(t, "kinesisvideo", "update-image-generation-configuration", "--stream-name", "gen-cli",
		"--image-generation-configuration", `{"Status":"ENABLED","ImageSelectorType":"SERVER_TIMESTAMP",`+
			`"DestinationConfig":{"Uri":"s3://b/p","DestinationRegion":"`+testRegion+`"},"SamplingInterval":2000,"Format":"PNG","HeightPixels":480}`)
	if err != nil {
		t.Fatalf("%v: %s", err, stderr)
	}
	out, stderr, err := s.awsCLI(t, "kinesisvideo", "describe-image-generation-configuration", "--stream-name", "gen-cli")
	if err != nil {
		t.Fatalf("%v: %s", err, stderr)
	}
	var got struct{ ImageGenerationConfiguration map[string]any }
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	c := got.ImageGenerationConfiguration
	if c["Format"] != "PNG" || c["SamplingInterval"] != 2000.0 || c["HeightPixels"] != 480.0 || c["WidthPixels"] != nil ||
		c["DestinationConfig"].(map[string]any)["Uri"] != "s3://b/p" {
		t.Fatalf("%s", out)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
