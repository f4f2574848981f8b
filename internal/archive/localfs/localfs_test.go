package localfs_test

import (
	"path/filepath"
	"testing"

	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/archive/localfs"
	"github.com/kinema/kinema/internal/archive/segmenttest"
)

func TestConformance(t *testing.T) {
	segmenttest.Run(t, func(t *testing.T) segmenttest.Opener {
		dir := filepath.Join(t.TempDir(), "media")
		return func() archive.Media {
			s, err := localfs.Open(dir)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
	})
}
