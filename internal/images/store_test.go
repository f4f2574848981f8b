package images

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kinema/kinema/internal/stream"
)

// An image prefix is a producer's tag: a file destination keeps whatever
// it says inside the directory.
func TestFileDestinationStaysInItsDirectory(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "images")
	for _, name := range []string{"../../escape_0_cam_1_x.jpg", "/etc/x.jpg", ".hidden.jpg", "a\x00b.jpg"} {
		if err := putFile(dir, Object{Name: name, Data: []byte("jpeg"), ContentType: "image/jpeg"}); err != nil {
			t.Fatalf("%q: %v", name, err)
		}
	}
	var found []string
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			found = append(found, p)
		}
		return nil
	})
	if len(found) != 8 {
		t.Fatalf("%d files: %v", len(found), found)
	}
	for _, p := range found {
		if filepath.Dir(p) != dir || strings.HasPrefix(filepath.Base(p), ".") {
			t.Errorf("%s is outside %s or hidden", p, dir)
		}
	}
}

// Custom tags go into the object metadata until S3's 2 KB would be
// exceeded; tags that cannot be header names are left out.
func TestObjectMetadataFitsS3(t *testing.T) {
	f := &stream.Fragment{Number: 7, Tags: []stream.Tag{{Name: stream.TagImageGeneration}, {Name: "bad name", Value: "x"},
		{Name: "CAMERA", Value: "front"}}}
	for i := range 10 {
		f.Tags = append(f.Tags, stream.Tag{Name: "T" + strings.Repeat("x", 120) + string(rune('a'+i)), Value: strings.Repeat("v", 256)})
	}
	m := objectMetadata(f, &Image{ProducerMs: 1, ServerMs: 2})
	size := 0
	for k, v := range m {
		size += len(k) + len(v)
	}
	if size > maxMetadataBytes || m["CAMERA"] != "front" || m["bad name"] != "" || m[stream.TagImageGeneration] != "" ||
		m["aws_kinesisvideo_fragment_number"] != stream.FragmentNumber(7).String() || len(m) < 6 {
		t.Fatalf("%d bytes, %d entries: %v", size, len(m), m)
	}
}
