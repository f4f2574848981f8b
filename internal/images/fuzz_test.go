package images

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Stored clusters come from cameras: whatever they hold, reading their
// frames and picking one must not panic, and what is picked must be a
// frame decodable from the key frame returned.
func FuzzFragmentFrames(f *testing.F) {
	var sets []*trackSet
	for _, name := range []string{"h264-aac", "h265-aac"} {
		data, err := os.ReadFile(filepath.Join("testdata", "headers", name+".mkvh"))
		if err != nil {
			f.Fatal(err)
		}
		ts, err := newTrackSet(data)
		if err != nil || ts.video == nil {
			f.Fatalf("%s: %v", name, err)
		}
		sets = append(sets, ts)
	}
	f.Fuzz(func(t *testing.T, header byte, cluster []byte) {
		frames, err := fragmentFrames(sets[int(header)%len(sets)], cluster)
		if err != nil {
			return
		}
		for _, tp := range []int64{-1 << 40, 0, frames[0].ptsMs(), frames[len(frames)-1].ptsMs() + 1, 1 << 40} {
			idx, key := pick(frames, tp)
			if idx < 0 || idx >= len(frames) || key > idx || (key >= 0 && !frames[key].key) {
				t.Fatalf("pick(%d) = %d, %d of %d frames", tp, idx, key, len(frames))
			}
		}
	})
}

// ffmpeg's output is parsed as Matroska: garbage must be an error, not a panic.
func FuzzReadImages(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		images := map[int64][]byte{}
		n, _ := readImages(images)(bytes.NewReader(data))
		if n != len(images) {
			t.Fatalf("counted %d of %d images", n, len(images))
		}
	})
}

// Destination URIs come from API callers.
func FuzzParseDestination(f *testing.F) {
	f.Fuzz(func(t *testing.T, uri string) {
		d, err := ParseDestination(uri)
		if err != nil {
			return
		}
		switch {
		case d.Dir != "":
			if !filepath.IsAbs(d.Dir) || d.Bucket != "" {
				t.Fatalf("%q: %+v", uri, d)
			}
		case d.Bucket == "" || strings.Contains(d.Bucket, "/") || strings.HasPrefix(d.Prefix, "/") || strings.HasSuffix(d.Prefix, "/"):
			t.Fatalf("%q: %+v", uri, d)
		}
	})
}
