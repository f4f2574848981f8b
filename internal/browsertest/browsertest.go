// Package browsertest plays HLS and DASH URLs in a real browser from Go tests:
// headless Chromium (Debian's /usr/bin/chromium) driven by playwright-core,
// with hls.js or dash.js doing the playback through Media Source Extensions,
// as a viewer's browser would.
//
// Play runs testdata/browser/play.mjs with Node. That script serves a small
// player page from its own HTTP server on 127.0.0.1, so the page's origin
// differs from the media URL's and the media server's CORS headers are
// exercised, then loads the URL muted and waits until currentTime exceeds
// minTime (for live: until playback has advanced minTime seconds past where
// it started). It reports the player's errors (hls.js ERROR events, dash.js
// error and playbackError events, the video element's MediaError), the
// page's console errors (CORS refusals, HTTP failures) and a timeline of
// player events.
//
// Needs node (>= 20), chromium and testdata/browser/node_modules; a test that
// calls Play fails, never skips, when one is missing, and says which command
// installs it (scripts/setup.sh installs all three). Headless Chromium plays
// H.264 and AAC but not H.265.
//
// A play of 2 s takes about 3.5 s on an idle 2-core machine (0.3-0.5 s
// for Chromium to start, 0.2-0.3 s to the first frame, then real time).
// Give timeouts room: when other tests load both cores the player's clock
// runs slow, and the same play has taken over 10 s.
//
// Plays are serialised, within the test binary and across test binaries on
// the machine (a lock file in the temporary directory), so that parallel
// packages do not start several browsers on a small CI machine. Tests may
// call Play from parallel subtests to overlap their other work.
//
// To see what the browser did, set KINEMA_PLAY_DEBUG=1 and run play.mjs by
// hand: it logs every request, response and console message (with the
// players' debug logging) to standard error, e.g.
//
//	KINEMA_PLAY_DEBUG=1 node testdata/browser/play.mjs '{"url":"...","kind":"dash","live":true}'
//
// From a test, KINEMA_PLAY_DEBUG=1 with KINEMA_PLAY_LOG=FILE appends that
// log of every Play to FILE.
package browsertest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Player kinds accepted by Play.
const (
	HLS  = "hls"
	DASH = "dash"
)

// DefaultChromium is the browser play.mjs launches unless the KINEMA_CHROMIUM
// environment variable names another.
const DefaultChromium = "/usr/bin/chromium"

// Error is one error seen during playback.
type Error struct {
	// Source is "hls" (hls.js ERROR event), "dash" (dash.js error or
	// playbackError event), "video" (the video element's MediaError or a
	// rejected play()), "console" (a console error: CORS refusals and HTTP
	// failures appear here), "page" (an uncaught exception) or "harness"
	// (the harness's own, such as the timeout).
	Source  string `json:"source"`
	Message string `json:"message"`
	// Fatal is true for errors the player does not recover from.
	Fatal bool `json:"fatal"`
	// T is milliseconds since the page started loading.
	T int64 `json:"t"`
	// Startup is true for a player error raised before playback began
	// (the video element's first playing event).
	Startup bool `json:"startup"`
}

func (e Error) String() string {
	f := ""
	if e.Fatal {
		f = " (fatal)"
	}
	return fmt.Sprintf("%6dms %s%s: %s", e.T, e.Source, f, e.Message)
}

// Event is one entry of the playback timeline: video element events
// (loadedmetadata, playing, waiting, ...), "firstframe", player milestones
// ("hls:levelLoaded", "dash:streamInitialized", ...), "error", and from the
// browser side "http" (a response with status >= 400) and "requestfailed".
type Event struct {
	// T is milliseconds since the page started loading.
	T    int64   `json:"t"`
	Type string  `json:"type"`
	CT   float64 `json:"ct"` // currentTime at the event
	// Detail is event-specific JSON (a string or an object), or empty.
	Detail json.RawMessage `json:"detail,omitempty"`
}

func (e Event) String() string {
	s := fmt.Sprintf("%6dms %s ct=%.3f", e.T, e.Type, e.CT)
	if len(e.Detail) > 0 {
		s += " " + string(e.Detail)
	}
	return s
}

// Result is what one play reported.
type Result struct {
	// OK is true when the target time was passed within the timeout with no
	// fatal player error.
	OK bool
	// CurrentTime is the video's currentTime when the harness stopped.
	CurrentTime float64
	// StartTime is currentTime when the first frame was shown (0 for VOD
	// that starts at the beginning; near the live edge for live).
	StartTime float64
	// Played is CurrentTime-StartTime.
	Played float64
	// Duration is the video's duration: +Inf for a live stream the player
	// presents as endless, 0 when not known.
	Duration float64
	// VideoWidth and VideoHeight are the decoded picture size.
	VideoWidth, VideoHeight int
	// DecodedFrames and DroppedFrames come from getVideoPlaybackQuality.
	DecodedFrames, DroppedFrames int
	// TimeToFirstFrame is from the page starting the player to the first
	// video frame presented; 0 if none was.
	TimeToFirstFrame time.Duration
	// Launch is how long Chromium took to start; Wall the whole run of
	// play.mjs.
	Launch, Wall time.Duration
	// Behind is, for HLS, the median of how far the playhead's date (from
	// EXT-X-PROGRAM-DATE-TIME, else the media timestamp, which Kinema's
	// fMP4 carries as producer time since the epoch) was behind the wall
	// clock once playback ran: for a live camera, the viewer's delay
	// behind it. 0 when unknown.
	Behind time.Duration
	// PartsLoaded counts the LL-HLS partial segments the player loaded.
	PartsLoaded int
	Errors      []Error
	Events      []Event
	// JSON is the line play.mjs printed.
	JSON string
}

// FatalErrors returns the errors the player did not recover from.
func (r Result) FatalErrors() []Error {
	var out []Error
	for _, e := range r.Errors {
		if e.Fatal {
			out = append(out, e)
		}
	}
	return out
}

// Unexpected returns the errors other than known-harmless notices. The one
// such notice: hls.js's non-fatal bufferSeekOverHole raised while starting,
// when the first buffered frame is a little after the start position and
// it seeks to it (seen with ffmpeg's MPEG-TS, where audio and video do not
// start together). A hole mid-stream is unexpected.
func (r Result) Unexpected() []Error {
	var out []Error
	for _, e := range r.Errors {
		if e.Source == "hls" && !e.Fatal && e.Startup && strings.HasPrefix(e.Message, "mediaError/bufferSeekOverHole ") {
			continue
		}
		out = append(out, e)
	}
	return out
}

// Summary is a one-line description for test messages.
func (r Result) Summary() string {
	return fmt.Sprintf("ok=%v currentTime=%.3f played=%.3f duration=%v video=%dx%d frames=%d (dropped %d) firstFrame=%v launch=%v wall=%v errors=%d",
		r.OK, r.CurrentTime, r.Played, r.Duration, r.VideoWidth, r.VideoHeight, r.DecodedFrames, r.DroppedFrames,
		r.TimeToFirstFrame, r.Launch, r.Wall, len(r.Errors))
}

// Report is Summary followed by every error and the event timeline, for
// failure messages.
func (r Result) Report() string {
	var b strings.Builder
	b.WriteString(r.Summary())
	if len(r.Errors) > 0 {
		b.WriteString("\nerrors:")
		for _, e := range r.Errors {
			b.WriteString("\n  " + e.String())
		}
	}
	if len(r.Events) > 0 {
		b.WriteString("\nevents:")
		for _, e := range r.Events {
			b.WriteString("\n  " + e.String())
		}
	}
	return b.String()
}

// Play plays url ("hls" or "dash", see HLS and DASH) muted in headless
// Chromium and fails the test unless currentTime passes minTime seconds
// within timeout with no fatal player error. timeout counts from loading
// the player page; Chromium's start-up comes on top. For live streams (live
// true) minTime counts seconds played from where playback started instead,
// and hls.js presents the stream as endless. Non-fatal errors do not fail
// the test: callers that want none check Result.Unexpected (or Errors).
func Play(t testing.TB, url, kind string, minTime float64, timeout time.Duration, live bool) Result {
	t.Helper()
	r, err := run(url, kind, minTime, timeout, live)
	if err != nil {
		t.Fatalf("browsertest: %v", err)
		return r
	}
	if !r.OK {
		t.Fatalf("browsertest: %s playback of %s failed: %s", kind, url, r.Report())
	}
	return r
}

// TryPlay is Play without the verdict: it returns the Result whether or not
// playback succeeded, for tests that expect a failure. It still fails the
// test when the harness itself cannot run (node, chromium or node_modules
// missing, bad arguments).
func TryPlay(t testing.TB, url, kind string, minTime float64, timeout time.Duration, live bool) Result {
	t.Helper()
	r, err := run(url, kind, minTime, timeout, live)
	if err != nil {
		t.Fatalf("browsertest: %v", err)
	}
	return r
}

// Playback runs one after another: in this process by mu, across processes
// by an flock on a file in the temporary directory.
var mu sync.Mutex

func lockMachine() (unlock func()) {
	mu.Lock()
	f, err := os.OpenFile(filepath.Join(os.TempDir(), "kinema-browsertest.lock"), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return mu.Unlock
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return mu.Unlock
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
		mu.Unlock()
	}
}

type config struct {
	URL       string  `json:"url"`
	Kind      string  `json:"kind"`
	MinTime   float64 `json:"minTime"`
	TimeoutMs int64   `json:"timeoutMs"`
	Live      bool    `json:"live"`
}

type output struct {
	OK               bool     `json:"ok"`
	CurrentTime      float64  `json:"currentTime"`
	StartTime        *float64 `json:"startTime"`
	Played           float64  `json:"played"`
	Duration         *float64 `json:"duration"`
	DurationInfinite bool     `json:"durationInfinite"`
	VideoWidth       int      `json:"videoWidth"`
	VideoHeight      int      `json:"videoHeight"`
	DecodedFrames    int      `json:"decodedFrames"`
	DroppedFrames    int      `json:"droppedFrames"`
	FirstFrameMs     *float64 `json:"timeToFirstFrameMs"`
	LaunchMs         float64  `json:"launchMs"`
	WallMs           float64  `json:"wallMs"`
	BehindMs         *float64 `json:"behindMs"`
	PartsLoaded      int      `json:"partsLoaded"`
	Errors           []Error  `json:"errors"`
	Events           []Event  `json:"events"`
	HarnessError     string   `json:"harnessError"`
}

func run(url, kind string, minTime float64, timeout time.Duration, live bool) (Result, error) {
	if kind != HLS && kind != DASH {
		return Result{}, fmt.Errorf("kind must be %q or %q, not %q", HLS, DASH, kind)
	}
	if timeout <= 0 {
		return Result{}, fmt.Errorf("timeout must be positive, not %v", timeout)
	}
	dir, err := harnessDir()
	if err != nil {
		return Result{}, err
	}
	node, err := checkNode()
	if err != nil {
		return Result{}, err
	}
	if err := checkModules(dir); err != nil {
		return Result{}, err
	}
	if err := checkChromium(); err != nil {
		return Result{}, err
	}
	cfg, _ := json.Marshal(config{URL: url, Kind: kind, MinTime: minTime, TimeoutMs: timeout.Milliseconds(), Live: live})

	unlock := lockMachine()
	defer unlock()
	// Browser start-up, page load and shut-down come on top of the playback
	// timeout; play.mjs has its own watchdog at timeout+40s.
	ctx, cancel := context.WithTimeout(context.Background(), timeout+60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, filepath.Join(dir, "play.mjs"))
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(cfg)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if path := os.Getenv("KINEMA_PLAY_LOG"); path != "" {
		if f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err == nil {
			defer f.Close()
			cmd.Stderr = io.MultiWriter(&stderr, f)
		}
	}
	// On a hang: SIGTERM to node's own process group, on which Playwright
	// closes the browser it started; SIGKILL to node if it is still there
	// after WaitDelay.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	runErr := cmd.Run()

	line := lastJSONLine(stdout.Bytes())
	if line == "" {
		return Result{}, fmt.Errorf("play.mjs printed no result (%v)\nstdout: %s\nstderr: %s", runErr, tail(stdout.String()), tail(stderr.String()))
	}
	var o output
	if err := json.Unmarshal([]byte(line), &o); err != nil {
		return Result{}, fmt.Errorf("play.mjs result %q: %v\nstderr: %s", line, err, tail(stderr.String()))
	}
	if o.HarnessError != "" {
		return Result{}, fmt.Errorf("harness could not play %s: %s\nstderr: %s", url, o.HarnessError, tail(stderr.String()))
	}
	r := Result{
		OK:            o.OK,
		CurrentTime:   o.CurrentTime,
		Played:        o.Played,
		VideoWidth:    o.VideoWidth,
		VideoHeight:   o.VideoHeight,
		DecodedFrames: o.DecodedFrames,
		DroppedFrames: o.DroppedFrames,
		Launch:        time.Duration(o.LaunchMs) * time.Millisecond,
		Wall:          time.Duration(o.WallMs) * time.Millisecond,
		PartsLoaded:   o.PartsLoaded,
		Errors:        o.Errors,
		Events:        o.Events,
		JSON:          line,
	}
	if o.StartTime != nil {
		r.StartTime = *o.StartTime
	}
	switch {
	case o.DurationInfinite:
		r.Duration = math.Inf(1)
	case o.Duration != nil:
		r.Duration = *o.Duration
	}
	if o.FirstFrameMs != nil {
		r.TimeToFirstFrame = time.Duration(*o.FirstFrameMs * float64(time.Millisecond))
	}
	if o.BehindMs != nil {
		r.Behind = time.Duration(*o.BehindMs * float64(time.Millisecond))
	}
	return r, nil
}

func lastJSONLine(b []byte) string {
	var last string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); strings.HasPrefix(l, "{") {
			last = l
		}
	}
	return last
}

func tail(s string) string {
	s = strings.TrimSpace(s)
	if len(s) > 4000 {
		s = "..." + s[len(s)-4000:]
	}
	return s
}

const installHint = "run scripts/setup.sh from the repository root"

// harnessDir finds testdata/browser: from this source file's directory
// (which works under `go test` from any directory), else upwards from the
// working directory.
func harnessDir() (string, error) {
	var starts []string
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		starts = append(starts, filepath.Dir(file))
	}
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	for _, s := range starts {
		for d := s; ; d = filepath.Dir(d) {
			if fileExists(filepath.Join(d, "go.mod")) && fileExists(filepath.Join(d, "testdata", "browser", "play.mjs")) {
				return filepath.Join(d, "testdata", "browser"), nil
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	return "", fmt.Errorf("cannot find testdata/browser/play.mjs above %v", starts)
}

var (
	nodeOnce sync.Once
	nodePath string
	nodeErr  error
)

// checkNode finds node and checks it is at least version 20, which the
// pinned playwright-core needs.
func checkNode() (string, error) {
	nodeOnce.Do(func() {
		p, err := exec.LookPath("node")
		if err != nil {
			nodeErr = fmt.Errorf("node is not installed (browser tests need Node.js >= 20): %s, or apt-get install nodejs npm", installHint)
			return
		}
		out, err := exec.Command(p, "--version").Output()
		if err != nil {
			nodeErr = fmt.Errorf("%s --version: %v", p, err)
			return
		}
		v := strings.TrimPrefix(strings.TrimSpace(string(out)), "v")
		major, _ := strconv.Atoi(strings.SplitN(v, ".", 2)[0])
		if major < 20 {
			nodeErr = fmt.Errorf("%s is Node.js %s; the browser tests' playwright-core needs Node.js >= 20", p, v)
			return
		}
		nodePath = p
	})
	return nodePath, nodeErr
}

// checkModules checks that npm ci has run in dir and is not older than the
// lock file.
func checkModules(dir string) error {
	hint := fmt.Sprintf("run: npm ci --prefix %s (or %s)", dir, installHint)
	for _, f := range []string{
		"node_modules/playwright-core/package.json",
		"node_modules/hls.js/dist/hls.min.js",
		"node_modules/dashjs/dist/modern/umd/dash.all.min.js",
	} {
		if !fileExists(filepath.Join(dir, f)) {
			return fmt.Errorf("%s is missing: the browser test's npm packages are not installed; %s", filepath.Join(dir, f), hint)
		}
	}
	lock, err1 := os.Stat(filepath.Join(dir, "package-lock.json"))
	inst, err2 := os.Stat(filepath.Join(dir, "node_modules", ".package-lock.json"))
	if err1 == nil && (errors.Is(err2, os.ErrNotExist) || (err2 == nil && inst.ModTime().Before(lock.ModTime()))) {
		return fmt.Errorf("%s/node_modules is older than package-lock.json; %s", dir, hint)
	}
	return nil
}

func checkChromium() error {
	p := os.Getenv("KINEMA_CHROMIUM")
	if p == "" {
		p = DefaultChromium
	}
	if fi, err := os.Stat(p); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("no Chromium at %s: %s, or apt-get install chromium (set KINEMA_CHROMIUM to use another)", p, installHint)
	}
	return nil
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
