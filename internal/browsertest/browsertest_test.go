package browsertest

import (
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// These tests prove the harness against media made by ffmpeg and served by
// a plain file server, so that later tests can trust it on Kinema's URLs.
// Subtests run in parallel so that ffmpeg overlaps with the browser; Play
// itself runs one browser at a time.

// playTimeout is generous: a play of 2 s takes about 3.5 s in all on an
// idle 2-core machine, but several times that when other tests load both
// cores, since the player's clock then runs slow.
const playTimeout = 15 * time.Second

// source is the ffmpeg input and encoding arguments every variant shares:
// the given number of seconds of 320x240 25 fps H.264 (a keyframe every
// second) and AAC.
func source(seconds string) []string {
	return []string{
		"-hide_banner", "-loglevel", "error", "-y",
		"-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25",
		"-f", "lavfi", "-i", "sine",
		"-t", seconds,
		"-c:v", "libx264", "-g", "25", "-pix_fmt", "yuv420p", "-c:a", "aac",
	}
}

func ffmpeg(t *testing.T, dir string, args ...string) {
	t.Helper()
	if _, err := exec.LookPath("ffmpeg"); err != nil {
		t.Fatalf("ffmpeg is not installed: run scripts/setup.sh")
	}
	cmd := exec.Command("ffmpeg", args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg %v: %v\n%s", args, err, out)
	}
}

// makeVOD writes a VOD presentation into a new directory and returns it with
// the manifest's name.
func makeVOD(t *testing.T, variant string) (dir, manifest string) {
	t.Helper()
	dir = t.TempDir()
	args := source("6")
	switch variant {
	case "fmp4":
		manifest = "out.m3u8"
		args = append(args, "-f", "hls", "-hls_segment_type", "fmp4", "-hls_time", "1", "-hls_playlist_type", "vod", manifest)
	case "ts":
		// hls.js often reports a non-fatal bufferSeekOverHole at the start
		// of this one (audio and video do not start together in ffmpeg's
		// MPEG-TS); Result.Unexpected leaves it out.
		manifest = "out.m3u8"
		args = append(args, "-f", "hls", "-hls_time", "1", "-hls_playlist_type", "vod", manifest)
	case "dash":
		manifest = "out.mpd"
		args = append(args, "-f", "dash", "-seg_duration", "1", manifest)
	default:
		t.Fatalf("unknown variant %q", variant)
	}
	ffmpeg(t, dir, args...)
	return dir, manifest
}

// serve serves dir over HTTP on loopback, with Access-Control-Allow-Origin: *
// when cors is true.
func serve(t *testing.T, dir string, cors bool) *httptest.Server {
	return serveCORS(t, dir, func(string) bool { return cors })
}

// serveCORS serves dir, sending Access-Control-Allow-Origin: * on the paths
// for which cors returns true.
func serveCORS(t *testing.T, dir string, cors func(path string) bool) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(fileHandler(dir, cors))
	t.Cleanup(srv.Close)
	return srv
}

// fileHandler serves dir with media content types.
func fileHandler(dir string, cors func(path string) bool) http.Handler {
	files := http.FileServer(http.Dir(dir))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		if cors(r.URL.Path) {
			h.Set("Access-Control-Allow-Origin", "*")
		}
		switch filepath.Ext(r.URL.Path) {
		case ".m3u8":
			h.Set("Content-Type", "application/vnd.apple.mpegurl")
			h.Set("Cache-Control", "no-cache")
		case ".mpd":
			h.Set("Content-Type", "application/dash+xml")
			h.Set("Cache-Control", "no-cache")
		case ".m4s", ".mp4":
			h.Set("Content-Type", "video/mp4")
		case ".ts":
			h.Set("Content-Type", "video/mp2t")
		}
		files.ServeHTTP(w, r)
	})
}

// requireClean fails the test if the play reported any error other than
// a known-harmless notice, or showed no 320x240 frame.
func requireClean(t *testing.T, r Result) {
	t.Helper()
	if len(r.Unexpected()) > 0 {
		t.Fatalf("playback reported errors: %s", r.Report())
	}
	if r.VideoWidth != 320 || r.VideoHeight != 240 {
		t.Fatalf("video %dx%d, want 320x240: %s", r.VideoWidth, r.VideoHeight, r.Summary())
	}
	if r.DecodedFrames == 0 || r.TimeToFirstFrame == 0 {
		t.Fatalf("no frame decoded: %s", r.Report())
	}
	t.Logf("%s", r.Summary())
}

func TestPlayVOD(t *testing.T) {
	for _, tc := range []struct{ variant, kind string }{
		{"fmp4", HLS},
		{"ts", HLS},
		{"dash", DASH},
	} {
		t.Run(tc.variant, func(t *testing.T) {
			t.Parallel()
			dir, manifest := makeVOD(t, tc.variant)
			srv := serve(t, dir, true)
			r := Play(t, srv.URL+"/"+manifest, tc.kind, 2, playTimeout, false)
			requireClean(t, r)
			if r.CurrentTime <= 2 {
				t.Fatalf("currentTime %.3f, want > 2", r.CurrentTime)
			}
			if r.Duration < 5.9 || r.Duration > 6.2 {
				t.Errorf("duration %v, want about 6", r.Duration)
			}
		})
	}
}

// Live presentations are simulated from 30 s of VOD made in advance: the
// server lists segments by the wall clock, as a live origin would, so the
// test does not depend on an encoder keeping up in real time on a loaded
// machine. Playback starts with liveHeadStart seconds already available.
const liveHeadStart = 6.0

// serveLiveHLS serves dir's out.m3u8 (fMP4, VOD) as a live media playlist
// at /live.m3u8: the segments whose end has passed, at most six.
func serveLiveHLS(t *testing.T, dir string) string {
	t.Helper()
	vod, err := os.ReadFile(filepath.Join(dir, "out.m3u8"))
	if err != nil {
		t.Fatal(err)
	}
	type seg struct {
		dur float64
		uri string
	}
	var segs []seg
	var header []string
	lines := strings.Split(string(vod), "\n")
	for i := 0; i < len(lines); i++ {
		l := strings.TrimSpace(lines[i])
		switch {
		case strings.HasPrefix(l, "#EXTINF:"):
			d, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimPrefix(l, "#EXTINF:"), ","), 64)
			if err != nil || i+1 >= len(lines) {
				t.Fatalf("bad playlist line %q", l)
			}
			i++
			segs = append(segs, seg{d, strings.TrimSpace(lines[i])})
		case strings.HasPrefix(l, "#EXT-X-MAP:"), strings.HasPrefix(l, "#EXT-X-TARGETDURATION:"), strings.HasPrefix(l, "#EXT-X-VERSION:"):
			header = append(header, l)
		}
	}
	var start time.Time // the first request's: a play may wait its turn
	var once sync.Once
	files := fileHandler(dir, func(string) bool { return true })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/live.m3u8" {
			files.ServeHTTP(w, r)
			return
		}
		once.Do(func() { start = time.Now() })
		now := time.Since(start).Seconds() + liveHeadStart
		n, end := 0, 0.0
		for n < len(segs) && end+segs[n].dur <= now {
			end += segs[n].dur
			n++
		}
		first := max(0, n-6)
		var b strings.Builder
		b.WriteString("#EXTM3U\n")
		for _, h := range header {
			if strings.HasPrefix(h, "#EXT-X-MAP:") {
				fmt.Fprintf(&b, "#EXT-X-MEDIA-SEQUENCE:%d\n", first)
			}
			b.WriteString(h + "\n")
		}
		for _, sg := range segs[first:n] {
			fmt.Fprintf(&b, "#EXTINF:%.6f,\n%s\n", sg.dur, sg.uri)
		}
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Content-Type", "application/vnd.apple.mpegurl")
		h.Set("Cache-Control", "no-cache")
		io.WriteString(w, b.String())
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/live.m3u8"
}

// serveLiveDASH serves dir's out.mpd (static, SegmentTemplate with
// $Number$ and a fixed duration) as a dynamic MPD at /live.mpd whose
// availabilityStartTime makes liveHeadStart seconds available now.
func serveLiveDASH(t *testing.T, dir string) string {
	t.Helper()
	mpd, err := os.ReadFile(filepath.Join(dir, "out.mpd"))
	if err != nil {
		t.Fatal(err)
	}
	static := regexp.MustCompile(`\s+mediaPresentationDuration="[^"]*"`).ReplaceAllString(string(mpd), "")
	if !strings.Contains(static, `type="static"`) || !strings.Contains(static, `duration="`) {
		t.Fatalf("unexpected MPD from ffmpeg:\n%s", mpd)
	}
	var live string
	var once sync.Once // the clock starts at the first request: a play may wait its turn
	files := fileHandler(dir, func(string) bool { return true })
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/live.mpd" {
			files.ServeHTTP(w, r)
			return
		}
		once.Do(func() {
			ast := time.Now().Add(-time.Duration(liveHeadStart * float64(time.Second))).UTC().Format("2006-01-02T15:04:05.000Z")
			live = strings.Replace(static, `type="static"`, fmt.Sprintf(`type="dynamic" availabilityStartTime="%s" publishTime="%s" `+
				`minimumUpdatePeriod="PT30S" timeShiftBufferDepth="PT6S" suggestedPresentationDelay="PT3S"`, ast, ast), 1)
		})
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Content-Type", "application/dash+xml")
		h.Set("Cache-Control", "no-cache")
		io.WriteString(w, live)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/live.mpd"
}

func TestPlayLive(t *testing.T) {
	for _, kind := range []string{HLS, DASH} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			args := source("30")
			var url string
			if kind == HLS {
				ffmpeg(t, dir, append(args, "-f", "hls", "-hls_segment_type", "fmp4", "-hls_time", "1", "-hls_playlist_type", "vod", "out.m3u8")...)
				url = serveLiveHLS(t, dir)
			} else {
				ffmpeg(t, dir, append(args, "-f", "dash", "-seg_duration", "1", "-use_timeline", "0", "out.mpd")...)
				url = serveLiveDASH(t, dir)
			}
			r := Play(t, url, kind, 2, playTimeout, true)
			requireClean(t, r)
			if r.Played <= 2 {
				t.Fatalf("played %.3f s, want > 2", r.Played)
			}
			if !math.IsInf(r.Duration, 1) {
				t.Errorf("duration %v, want +Inf for live", r.Duration)
			}
			if r.StartTime < 2 {
				t.Errorf("started at %.3f s, want near the live edge (about %v s)", r.StartTime, liveHeadStart)
			}
		})
	}
}

func TestNotFound(t *testing.T) {
	srv := serve(t, t.TempDir(), true)
	for _, tc := range []struct{ kind, path string }{{HLS, "/missing.m3u8"}, {DASH, "/missing.mpd"}} {
		t.Run(tc.kind, func(t *testing.T) {
			t.Parallel()
			r := TryPlay(t, srv.URL+tc.path, tc.kind, 2, playTimeout, false)
			if r.OK {
				t.Fatalf("a 404 manifest played: %s", r.Report())
			}
			if len(r.FatalErrors()) == 0 {
				t.Fatalf("no fatal player error for a 404 manifest: %s", r.Report())
			}
			if !anyError(r, func(e Error) bool { return strings.Contains(e.Message, "404") }) {
				t.Fatalf("no error mentions the 404: %s", r.Report())
			}
			if anyError(r, func(e Error) bool { return e.Source == "harness" }) {
				t.Errorf("the harness waited for the timeout instead of stopping at the fatal error: %s", r.Report())
			}
		})
	}
}

// TestCORSMissing checks that the harness notices a media server that
// omits Access-Control-Allow-Origin: a real player on another origin cannot
// read its responses.
func TestCORSMissing(t *testing.T) {
	for _, tc := range []struct{ variant, kind string }{{"fmp4", HLS}, {"dash", DASH}} {
		t.Run(tc.kind, func(t *testing.T) {
			t.Parallel()
			dir, manifest := makeVOD(t, tc.variant)
			srv := serve(t, dir, false)
			r := TryPlay(t, srv.URL+"/"+manifest, tc.kind, 2, playTimeout, false)
			if r.OK {
				t.Fatalf("played without CORS headers: %s", r.Report())
			}
			if len(r.FatalErrors()) == 0 {
				t.Fatalf("no fatal player error without CORS: %s", r.Report())
			}
			if anyError(r, func(e Error) bool { return e.Source == "harness" }) {
				t.Errorf("the harness waited for the timeout instead of stopping at the fatal error: %s", r.Report())
			}
			if !anyError(r, func(e Error) bool {
				return e.Source == "console" && strings.Contains(e.Message, "blocked by CORS policy")
			}) {
				t.Fatalf("no CORS error reported: %s", r.Report())
			}
		})
	}
}

// TestCORSMissingOnSegments: the manifest is readable but the media
// segments are not, so the failure comes later, from the segment loader.
func TestCORSMissingOnSegments(t *testing.T) {
	dir, manifest := makeVOD(t, "fmp4")
	srv := serveCORS(t, dir, func(p string) bool { return p == "/"+manifest })
	// hls.js retries segments for longer than this; the CORS refusal is
	// reported at the first try.
	r := TryPlay(t, srv.URL+"/"+manifest, HLS, 2, 5*time.Second, false)
	if r.OK {
		t.Fatalf("played without CORS headers on segments: %s", r.Report())
	}
	if !anyError(r, func(e Error) bool { return strings.Contains(e.Message, "blocked by CORS policy") }) {
		t.Fatalf("no CORS error reported: %s", r.Report())
	}
}

// TestTimeout: a server that never answers leaves the player waiting; the
// harness gives up at the timeout and says so.
func TestTimeout(t *testing.T) {
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Access-Control-Allow-Origin", "*")
		select {
		case <-r.Context().Done():
		case <-stop:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(stop) })
	r := TryPlay(t, srv.URL+"/hang.m3u8", HLS, 2, 2*time.Second, false)
	if r.OK {
		t.Fatalf("played from a server that never answers: %s", r.Report())
	}
	if !anyError(r, func(e Error) bool { return e.Source == "harness" && strings.HasPrefix(e.Message, "timeout:") }) {
		t.Fatalf("no timeout reported: %s", r.Report())
	}
}

func anyError(r Result, f func(Error) bool) bool {
	for _, e := range r.Errors {
		if f(e) {
			return true
		}
	}
	return false
}

// TestPrerequisiteMessages checks that a missing install is reported with
// the command that fixes it (no browser needed).
func TestPrerequisiteMessages(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "package-lock.json"), []byte("{}"), 0o644)
	err := checkModules(dir)
	if err == nil || !strings.Contains(err.Error(), "npm ci --prefix "+dir) {
		t.Fatalf("missing node_modules: got %v", err)
	}

	t.Setenv("KINEMA_CHROMIUM", filepath.Join(dir, "no-chromium"))
	err = checkChromium()
	if err == nil || !strings.Contains(err.Error(), "apt-get install chromium") {
		t.Fatalf("missing chromium: got %v", err)
	}

	h, err := harnessDir()
	if err != nil {
		t.Fatal(err)
	}
	if err := checkModules(h); err != nil {
		t.Fatalf("the repository's own node_modules: %v", err)
	}
}
