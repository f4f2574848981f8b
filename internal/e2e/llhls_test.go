package e2e

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia"
	avtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia/types"

	"github.com/kinema/kinema/internal/browsertest"
	"github.com/kinema/kinema/internal/producer"
)

var (
	partLine    = regexp.MustCompile(`#EXT-X-PART:DURATION=([0-9.]+),URI="([^"]+)"`)
	preloadHint = regexp.MustCompile(`#EXT-X-PRELOAD-HINT:TYPE=PART,URI="([^"]+)"`)
	mediaSeq    = regexp.MustCompile(`#EXT-X-MEDIA-SEQUENCE:(\d+)`)
	programDate = regexp.MustCompile(`#EXT-X-PROGRAM-DATE-TIME:(\S+)`)
)

// llPlaylist is what a test needs of a low-latency media playlist.
type llPlaylist struct {
	text       string
	nextMSN    int64  // the open segment's media sequence number
	openParts  int    // parts of the open segment listed
	hint       string // preload hint URI
	newestEnds time.Time
}

func parseLL(t *testing.T, text string) llPlaylist {
	t.Helper()
	m := mediaSeq.FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no media sequence in\n%s", text)
	}
	seq, _ := strconv.ParseInt(m[1], 10, 64)
	pl := llPlaylist{text: text, nextMSN: seq + int64(strings.Count(text, "#EXTINF"))}
	tail := text[strings.LastIndex(text, "#EXTINF"):] // after the last complete segment
	pl.openParts = len(partLine.FindAllString(tail, -1))
	if h := preloadHint.FindStringSubmatch(text); h != nil {
		pl.hint = h[1]
	}
	// The open segment's PROGRAM-DATE-TIME plus its parts: where the
	// newest listed media ends, on the camera's clock.
	if d := programDate.FindAllStringSubmatch(tail, -1); len(d) > 0 {
		start, err := time.Parse(time.RFC3339Nano, d[len(d)-1][1])
		if err != nil {
			t.Fatal(err)
		}
		var sum float64
		for _, p := range partLine.FindAllStringSubmatch(tail, -1) {
			v, _ := strconv.ParseFloat(p[1], 64)
			sum += v
		}
		pl.newestEnds = start.Add(time.Duration(sum * float64(time.Second)))
	}
	return pl
}

// holdClient gives up on a blocking reload well before the server's own
// hold (three target durations) would, so a test does not wait out the
// hold after the camera stops.
var holdClient = &http.Client{Timeout: 2 * time.Second}

func getBytes(t *testing.T, url string) ([]byte, int, time.Duration) {
	t.Helper()
	t0 := time.Now()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b, resp.StatusCode, time.Since(t0)
}

// LL-HLS (Kinema's extension): with LowLatency=1 on a LIVE session URL,
// media playlists list parts of the fragment the camera is still sending,
// blocking reloads return as soon as the asked-for part arrives, the
// preload hint is held until its part is complete, a part served while its
// fragment was open is byte for byte the part of the complete fragment, and
// a fragment's parts decode to the same frames as the fragment. The test
// measures how old the newest listed media is when a playlist comes back
// (camera clock to playlist).
func TestLowLatencyHLS(t *testing.T) {
	s := startServer(t)
	// A camera with 2 s GOPs, and audio (its own rendition, with parts too).
	file := makeMedia(t, "ll.mkv", args(srcVideo, srcAudio, []string{"-t", "12"}, encX264, []string{"-g", "50", "-c:a", "aac"})...)
	media, err := producer.OpenFile(context.Background(), file)
	if err != nil {
		t.Fatal(err)
	}
	createStream(t, s, "ll-cam", 1)
	cfg := producer.Config{Endpoint: s.URL, Region: testRegion, AccessKeyID: testKey, SecretAccessKey: testSecret,
		StreamName: "ll-cam", Realtime: true}
	done := make(chan error, 1)
	go func() {
		_, err := producer.Put(context.Background(), cfg, media.Fragments(0), media.Header)
		done <- err
	}()
	var master string
	for deadline := time.Now().Add(10 * time.Second); master == "" && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		out, err := s.archived().GetHLSStreamingSessionURL(ctxT(t), &kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{
			StreamName: aws.String("ll-cam"), PlaybackMode: avtypes.HLSPlaybackModeLive,
			HLSFragmentSelector:      &avtypes.HLSFragmentSelector{FragmentSelectorType: avtypes.HLSFragmentSelectorTypeProducerTimestamp},
			DisplayFragmentTimestamp: avtypes.HLSDisplayFragmentTimestampAlways})
		if err == nil {
			master = aws.ToString(out.HLSStreamingSessionURL)
		}
	}
	if master == "" {
		t.Fatal("no LIVE session URL while the camera streams")
	}
	base := master[:strings.LastIndex(master, "/")+1]
	masterText := httpGet(t, master+"&LowLatency=1", 200)
	var videoURL string
	for _, line := range strings.Split(masterText, "\n") {
		if strings.HasPrefix(line, "getHLSMediaPlaylist.m3u8") {
			videoURL = base + line
		}
	}
	if !strings.Contains(videoURL, "LowLatency=1") || strings.Count(masterText, "LowLatency=1") != 2 {
		t.Fatalf("the master playlist does not hand LowLatency on to its media playlists:\n%s", masterText)
	}
	// A plain (non-LL) playlist of the same session has no parts.
	if plain := httpGet(t, strings.Replace(videoURL, "&LowLatency=1", "", 1), 200); strings.Contains(plain, "#EXT-X-PART") {
		t.Fatalf("parts without LowLatency:\n%s", plain)
	}

	pl := parseLL(t, httpGet(t, videoURL, 200))
	// 25 fps: parts of 5 frames, the most that fit in the 0.5 s target and
	// split a second evenly; players hold back three of them.
	for _, tag := range []string{"#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.600", "#EXT-X-PART-INF:PART-TARGET=0.200", "INDEPENDENT=YES"} {
		if !strings.Contains(pl.text, tag) {
			t.Fatalf("no %s in\n%s", tag, pl.text)
		}
	}
	if _, code, _ := getBytes(t, videoURL+"&_HLS_msn="+strconv.FormatInt(pl.nextMSN+3, 10)); code != 400 {
		t.Fatalf("_HLS_msn three segments ahead: %d, want 400", code)
	}
	if _, code, _ := getBytes(t, videoURL+"&_HLS_part=1"); code != 400 {
		t.Fatalf("_HLS_part without _HLS_msn: %d, want 400", code)
	}

	// Follow the live edge part by part with blocking reloads, as a
	// player does, until the camera is done.
	type heldPart struct {
		url  string
		body []byte
	}
	var held []heldPart
	var ages, holds []time.Duration
	for producing := true; producing; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("producer: %v", err)
			}
			producing = false
			continue
		default:
		}
		if pl.hint != "" && len(held) < 6 {
			// The preload hint answers once its part is complete.
			body, code, _ := getBytes(t, base+pl.hint)
			if code == 200 {
				held = append(held, heldPart{pl.hint, body})
			}
		}
		url := videoURL + "&_HLS_msn=" + strconv.FormatInt(pl.nextMSN, 10) + "&_HLS_part=" + strconv.Itoa(pl.openParts)
		t0 := time.Now()
		resp, err := holdClient.Get(url)
		if err != nil {
			continue // held past the client's patience: the camera has stopped
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		code, took := resp.StatusCode, time.Since(t0)
		if code == 503 {
			continue // the camera paused longer than the hold
		}
		if code != 200 {
			t.Fatalf("blocking reload: %d %s", code, body)
		}
		next := parseLL(t, string(body))
		if next.nextMSN == pl.nextMSN && next.openParts <= pl.openParts {
			t.Fatalf("a blocking reload for part %d of segment %d came back without it:\n%s", pl.openParts, pl.nextMSN, body)
		}
		holds = append(holds, took)
		if !next.newestEnds.IsZero() {
			ages = append(ages, time.Since(next.newestEnds))
		}
		pl = next
	}
	if len(ages) < 10 || len(held) < 3 {
		t.Fatalf("%d low-latency playlists with open parts and %d held parts while the camera streamed", len(ages), len(held))
	}
	sort.Slice(ages, func(i, j int) bool { return ages[i] < ages[j] })
	sort.Slice(holds, func(i, j int) bool { return holds[i] < holds[j] })
	t.Logf("camera clock -> LL playlist (age of the newest listed media when the playlist returns), %d playlists: median %v, p90 %v, max %v; blocking reload held median %v",
		len(ages), ages[len(ages)/2].Round(time.Millisecond), ages[len(ages)*9/10].Round(time.Millisecond), ages[len(ages)-1].Round(time.Millisecond), holds[len(holds)/2].Round(time.Millisecond))
	// A part is listed once the frames after it that fix its times arrived:
	// a frame or three (B-frames) old, plus scheduling on a loaded machine.
	if med := ages[len(ages)/2]; med > time.Second {
		t.Fatalf("the newest listed media was a median %v old", med)
	}

	// Parts held while their fragment was open are the parts of the
	// complete fragment.
	for _, h := range held {
		body, code, _ := getBytes(t, base+h.url)
		if code != 200 || !bytes.Equal(body, h.body) {
			t.Fatalf("part %s: %d, %d bytes now, %d while open", h.url, code, len(body), len(h.body))
		}
	}
	// A complete fragment's parts decode to the fragment's frames.
	final := httpGet(t, strings.Replace(videoURL, "&LowLatency=1", "", 1), 200)
	plLL := httpGet(t, videoURL, 200)
	segs := fragmentRef.FindAllStringSubmatch(final, -1)
	if len(segs) < 2 {
		t.Fatalf("final playlist:\n%s", final)
	}
	num := segs[len(segs)-1][1]
	init := regexp.MustCompile(`#EXT-X-MAP:URI="([^"]+)"`).FindStringSubmatch(final)
	initBytes, _, _ := getBytes(t, base+init[1])
	whole, _, _ := getBytes(t, base+"getMP4MediaFragment.mp4?FragmentNumber="+num+"&"+strings.SplitN(init[1], "?", 2)[1])
	var fromParts []byte
	for _, p := range partLine.FindAllStringSubmatch(plLL, -1) {
		if strings.Contains(p[2], "FragmentNumber="+num+"&") {
			b, code, _ := getBytes(t, base+p[2])
			if code != 200 {
				t.Fatalf("part %s: %d", p[2], code)
			}
			fromParts = append(fromParts, b...)
		}
	}
	if len(fromParts) == 0 {
		t.Fatalf("fragment %s lists no parts:\n%s", num, plLL)
	}
	dir := t.TempDir()
	a, b := filepath.Join(dir, "whole.mp4"), filepath.Join(dir, "parts.mp4")
	os.WriteFile(a, append(append([]byte{}, initBytes...), whole...), 0o644)
	os.WriteFile(b, append(append([]byte{}, initBytes...), fromParts...), 0o644)
	wf, _ := ffprobeURL(t, a)
	pf, _ := ffprobeURL(t, b)
	if wf == 0 || wf != pf {
		t.Fatalf("fragment %s: %d frames whole, %d from its parts", num, wf, pf)
	}
}

// BenchmarkLiveLatency plays a camera's LIVE session in hls.js (headless
// Chromium) while the camera streams in real time with 2 s GOPs, once as
// LL-HLS and once as plain HLS, and reports how far behind the camera each
// viewer sat: the capture time of the frame under the playhead (the media
// timestamp, on the producer's clock) against the wall clock, the median
// over the run.
//
//	go test -run '^$' -bench LiveLatency -benchtime 1x ./internal/e2e/
func BenchmarkLiveLatency(b *testing.B) {
	for b.Loop() {
		s := startServer(b)
		file := makeMedia(b, "cam.mkv", args(srcVideo, []string{"-t", "12"}, encX264, []string{"-g", "50"})...)
		media, err := producer.OpenFile(context.Background(), file)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.kv().CreateStream(context.Background(), &kinesisvideo.CreateStreamInput{StreamName: aws.String("latency"), DataRetentionInHours: aws.Int32(1)}); err != nil {
			b.Fatal(err)
		}
		cfg := producer.Config{Endpoint: s.URL, Region: testRegion, AccessKeyID: testKey, SecretAccessKey: testSecret,
			StreamName: "latency", Realtime: true, Loop: 5}
		ctx, cancel := context.WithCancel(context.Background())
		go producer.Put(ctx, cfg, media.Fragments(0), media.Header)
		var url string
		for deadline := time.Now().Add(10 * time.Second); url == "" && time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			out, err := s.archived().GetHLSStreamingSessionURL(context.Background(), &kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{
				StreamName: aws.String("latency"), PlaybackMode: avtypes.HLSPlaybackModeLive,
				HLSFragmentSelector: &avtypes.HLSFragmentSelector{FragmentSelectorType: avtypes.HLSFragmentSelectorTypeProducerTimestamp},
				// Without PROGRAM-DATE-TIME: hls.js misaligns LL-HLS playlists
				// that carry it (docs/benchmarks.md); the harness then reads
				// the capture time from the media timestamps.
				DisplayFragmentTimestamp: avtypes.HLSDisplayFragmentTimestampNever, Expires: aws.Int32(3600)})
			if err == nil {
				url = aws.ToString(out.HLSStreamingSessionURL)
			}
		}
		if url == "" {
			b.Fatal("no LIVE session URL while the camera streams")
		}
		time.Sleep(3 * time.Second)
		ll := browsertest.Play(b, url+"&LowLatency=1", browsertest.HLS, 5, 30*time.Second, true)
		plain := browsertest.Play(b, url, browsertest.HLS, 5, 30*time.Second, true)
		cancel()
		b.Logf("LL-HLS: %s, %d parts loaded; plain: %s", ll.Summary(), ll.PartsLoaded, plain.Summary())
		b.ReportMetric(float64(ll.Behind.Milliseconds()), "ll-behind-ms")
		b.ReportMetric(float64(plain.Behind.Milliseconds()), "plain-behind-ms")
		b.ReportMetric(float64(ll.PartsLoaded), "ll-parts")
	}
}
