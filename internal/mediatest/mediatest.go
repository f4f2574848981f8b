// Package mediatest is test support shared by the packages that test
// against real media: test files made once per test process by ffmpeg (or
// mkvmerge) from named recipes, and the checks that say a tool is present
// and that ffmpeg decodes a file cleanly. Only tests import it. Missing
// tools fail the test: CI installs them, and a skip would hide a broken
// setup.
package mediatest

import (
	"bytes"
	"fmt"
	"image"
	_ "image/jpeg" // Frame and DecodeImage read what ffmpeg and Kinema write
	_ "image/png"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Recipes makes named test files in Dir, each once per process. A recipe is
// a shell command where $OUT is the file to make and $DIR the directory; a
// recipe starting with "ffmpeg " runs quietly and overwrites.
type Recipes struct {
	Dir  string
	Make map[string]string
	Deps map[string][]string // files a recipe reads, made first
	once sync.Map            // name -> *sync.Once
}

// File returns the path of the named file, making it on first use.
func (r *Recipes) File(t testing.TB, name string) string {
	t.Helper()
	for _, d := range r.Deps[name] {
		r.File(t, d)
	}
	recipe, ok := r.Make[name]
	if !ok {
		t.Fatalf("no recipe for test file %s", name)
	}
	out := filepath.Join(r.Dir, name)
	once, _ := r.once.LoadOrStore(name, new(sync.Once))
	once.(*sync.Once).Do(func() {
		cmd := strings.NewReplacer("$OUT", out, "$DIR", r.Dir).Replace(recipe)
		tool := strings.Fields(cmd)[0]
		NeedTool(t, tool)
		if tool == "ffmpeg" {
			cmd = "ffmpeg -nostdin -v error -y " + cmd[len("ffmpeg "):]
		}
		if b, err := exec.Command("sh", "-c", cmd).CombinedOutput(); err != nil {
			os.Remove(out)
			t.Logf("%s: %v\n%s", cmd, err, b)
		}
	})
	if _, err := os.Stat(out); err != nil {
		t.Fatalf("making test file %s failed", name)
	}
	return out
}

// Main runs a package's tests with a fresh temporary directory for its
// media, removed afterwards: call it from TestMain.
func Main(m *testing.M, r *Recipes) {
	d, err := os.MkdirTemp("", "kinema-media-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	r.Dir = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

// NeedTool fails the test when a program it runs is missing.
func NeedTool(t testing.TB, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s is required by this test (scripts/setup.sh installs it): %v", name, err)
	}
}

// DecodeClean decodes the file with ffmpeg (args go before the output, e.g.
// "-map", "0" for every stream) and reports any message at level error:
// corrupt frames, missing references, bad timestamps.
func DecodeClean(t testing.TB, path string, args ...string) {
	t.Helper()
	NeedTool(t, "ffmpeg")
	full := append(append([]string{"-nostdin", "-v", "error", "-i", path}, args...), "-f", "null", "-")
	b, err := exec.Command("ffmpeg", full...).CombinedOutput()
	if err != nil || len(b) > 0 {
		t.Errorf("ffmpeg decode of %s: %v\n%s", filepath.Base(path), err, b)
	}
}

// Frame extracts frame n (in display order) of a video file with ffmpeg,
// as a lossless image; vf, when given, is a filter applied after the
// selection (a scale, say).
func Frame(t testing.TB, path string, n int, vf ...string) image.Image {
	t.Helper()
	NeedTool(t, "ffmpeg")
	filter := strings.Join(append([]string{"select=eq(n\\," + strconv.Itoa(n) + ")"}, vf...), ",")
	out, err := exec.Command("ffmpeg", "-nostdin", "-v", "error", "-i", path, "-vf", filter, "-frames:v", "1",
		"-c:v", "png", "-f", "image2pipe", "-").Output()
	if err != nil {
		t.Fatalf("extracting frame %d of %s: %v", n, filepath.Base(path), err)
	}
	return DecodeImage(t, out)
}

// DecodeImage decodes a JPEG or PNG.
func DecodeImage(t testing.TB, b []byte) image.Image {
	t.Helper()
	img, _, err := image.Decode(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("not an image (%d bytes): %v", len(b), err)
	}
	return img
}

// PSNR compares two images of the same size over their 8-bit RGB values,
// in dB: +Inf when identical, 0 when the sizes differ.
func PSNR(a, b image.Image) float64 {
	ab, bb := a.Bounds(), b.Bounds()
	if ab.Dx() != bb.Dx() || ab.Dy() != bb.Dy() {
		return 0
	}
	var sum float64
	for y := 0; y < ab.Dy(); y++ {
		for x := 0; x < ab.Dx(); x++ {
			r1, g1, b1, _ := a.At(ab.Min.X+x, ab.Min.Y+y).RGBA()
			r2, g2, b2, _ := b.At(bb.Min.X+x, bb.Min.Y+y).RGBA()
			for _, d := range [3]float64{float64(r1>>8) - float64(r2>>8), float64(g1>>8) - float64(g2>>8), float64(b1>>8) - float64(b2>>8)} {
				sum += d * d
			}
		}
	}
	mse := sum / float64(3*ab.Dx()*ab.Dy())
	if mse == 0 {
		return math.Inf(1)
	}
	return 10 * math.Log10(255*255/mse)
}
