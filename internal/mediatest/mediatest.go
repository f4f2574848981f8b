// Package mediatest is test support shared by the packages that test
// against real media: test files made once per test process by ffmpeg (or
// mkvmerge) from named recipes, and the checks that say a tool is present
// and that ffmpeg decodes a file cleanly. Only tests import it. Missing
// tools fail the test: CI installs them, and a skip would hide a broken
// setup.
package mediatest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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
