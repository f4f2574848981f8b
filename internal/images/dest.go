package images

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
)

// Destination is where generated images go: an S3 bucket (any
// S3-compatible store Kinema is configured for) under a key prefix, or a
// local directory.
type Destination struct {
	Bucket string // s3://Bucket/Prefix
	Prefix string // key prefix without a trailing slash; may be empty
	Dir    string // file:///Dir, an absolute path
}

// reDestinationURI is the KVS pattern for DestinationConfig.Uri.
var reDestinationURI = regexp.MustCompile(`^[a-zA-Z_0-9]+:(//)?([^/]+)/?([^*]*)$`)

// ParseDestination reads a DestinationConfig Uri: s3://bucket[/prefix] as
// KVS takes it, or Kinema's file:///absolute/dir for the embedded default
// (a form KVS's pattern, which wants a host, does not allow).
func ParseDestination(uri string) (Destination, error) {
	if dir, ok := strings.CutPrefix(uri, "file://"); ok {
		if !strings.HasPrefix(dir, "/") || strings.Contains(dir, "\x00") {
			return Destination{}, fmt.Errorf("a file destination is file:///absolute/directory; got %q", uri)
		}
		return Destination{Dir: filepath.Clean(dir)}, nil
	}
	if !reDestinationURI.MatchString(uri) {
		return Destination{}, fmt.Errorf("the Uri %q does not match %s", uri, reDestinationURI)
	}
	rest, ok := strings.CutPrefix(uri, "s3://")
	if !ok {
		return Destination{}, fmt.Errorf("the Uri %q: Kinema writes images to s3://bucket/prefix or file:///directory", uri)
	}
	bucket, prefix, _ := strings.Cut(rest, "/")
	if bucket == "" {
		return Destination{}, fmt.Errorf("the Uri %q names no bucket", uri)
	}
	return Destination{Bucket: bucket, Prefix: strings.Trim(prefix, "/")}, nil
}
