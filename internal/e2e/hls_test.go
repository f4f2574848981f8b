package e2e

import (
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia"
	avtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia/types"
)

// ffprobeURL counts decoded video frames and audio packets of a URL, failing
// on any error ffprobe reports.
func ffprobeURL(t *testing.T, url string) (videoFrames, audioPackets int) {
	t.Helper()
	cmd := exec.Command("ffprobe", "-v", "error", "-count_frames", "-count_packets", "-show_entries",
		"stream=codec_type,nb_read_frames,nb_read_packets", "-of", "csv=p=0", url)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("ffprobe %s: %v\n%s", url, err, out)
	}
	// HLS inputs list each stream twice (under the program and on its own).
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if line = strings.TrimSpace(line); line == "" {
			continue
		}
		f := strings.Split(line, ",")
		if len(f) < 3 {
			t.Fatalf("ffprobe complained or printed %q", line)
		}
		switch f[0] {
		case "video":
			videoFrames, _ = strconv.Atoi(f[1])
		case "audio":
			audioPackets, _ = strconv.Atoi(f[2])
		}
	}
	return
}

// HLS session URLs from the SDK and the CLI play frame-exact in ffmpeg, for
// the range asked, in fMP4 and MPEG-TS, H.264 and H.265, with and without audio.
func TestHLSOnDemandFrameExact(t *testing.T) {
	s := startServer(t)
	cases := []struct {
		name      string
		args      []string
		container string
		audio     bool
	}{
		{"h264-aac-fmp4", args(srcVideo, srcAudio, []string{"-t", "4"}, encX264, []string{"-c:a", "aac"}), "FRAGMENTED_MP4", true},
		{"h264-ts", args(srcVideo, []string{"-t", "4"}, encX264), "MPEG_TS", false},
		{"h264-aac-ts", args(srcVideo, srcAudio, []string{"-t", "4"}, encX264, []string{"-c:a", "aac"}), "MPEG_TS", true},
		{"h265-fmp4", args(srcVideo, []string{"-t", "4"}, encX265), "FRAGMENTED_MP4", false},
		{"h265-aac-fmp4", args(srcVideo, srcAudio, []string{"-t", "4"}, encX265, []string{"-c:a", "aac"}), "FRAGMENTED_MP4", true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			file := makeMedia(t, c.name+".mkv", append(c.args, "-cluster_time_limit", "1000")...)
			createStream(t, s, c.name, 1)
			start := time.Now().Add(-time.Minute).UnixMilli()
			curlPutMedia(t, s, c.name, file, start)
			ctx := ctxT(t)
			out, err := s.archived().GetHLSStreamingSessionURL(ctx, &kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{
				StreamName: aws.String(c.name), PlaybackMode: avtypes.HLSPlaybackModeOnDemand,
				ContainerFormat: avtypes.ContainerFormat(c.container),
				HLSFragmentSelector: &avtypes.HLSFragmentSelector{FragmentSelectorType: avtypes.HLSFragmentSelectorTypeProducerTimestamp,
					TimestampRange: &avtypes.HLSTimestampRange{StartTimestamp: aws.Time(time.UnixMilli(start)), EndTimestamp: aws.Time(time.UnixMilli(start + 10_000))}},
			})
			if err != nil {
				t.Fatal(err)
			}
			url := aws.ToString(out.HLSStreamingSessionURL)
			if !strings.HasPrefix(url, s.URL+"/hls/v1/getHLSMasterPlaylist.m3u8?SessionToken=") {
				t.Fatalf("URL %s", url)
			}
			vf, ap := ffprobeURL(t, url)
			if vf != 100 {
				t.Fatalf("%d video frames play, 100 were ingested", vf)
			}
			_, wantAudio := ffprobeURL(t, file)
			if c.audio && ap != wantAudio {
				t.Fatalf("%d audio packets play, %d were ingested", ap, wantAudio)
			}
		})
	}
}

// A sub-range plays exactly the fragments that start in it; the AWS CLI's
// URL plays too; a tampered token gets 403 and nothing of the stream.
func TestHLSRangeCLIAndToken(t *testing.T) {
	s := startServer(t)
	file := makeMedia(t, "src.mkv", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-t", "6",
		"-c:v", "libx264", "-g", "25", "-sc_threshold", "0", "-pix_fmt", "yuv420p", "-cluster_time_limit", "1000")
	createStream(t, s, "cam", 1)
	start := time.Now().Add(-time.Minute).UnixMilli()
	curlPutMedia(t, s, "cam", file, start)
	// The range from the 2nd fragment's start to the 4th's holds 3 fragments.
	frags := listByProducerTime(t, s, "cam", start, 5)
	// The CLI sends whole seconds: round the end up (the 5th fragment starts
	// more than a second after the 4th).
	from, to := frags[1].ProducerTimestamp.UnixMilli(), (frags[3].ProducerTimestamp.UnixMilli()/1000+1)*1000
	wantFrames, _ := countMKV(t, getFragmentList(t, s, "cam", frags[1:4]))
	stdout, stderr, err := s.awsCLI(t, "kinesis-video-archived-media", "get-hls-streaming-session-url", "--stream-name", "cam",
		"--playback-mode", "ON_DEMAND", "--hls-fragment-selector",
		fmt.Sprintf("FragmentSelectorType=PRODUCER_TIMESTAMP,TimestampRange={StartTimestamp=%s,EndTimestamp=%s}",
			time.UnixMilli(from).UTC().Format("2006-01-02T15:04:05.000Z"), time.UnixMilli(to).UTC().Format("2006-01-02T15:04:05.000Z")),
		"--display-fragment-timestamp", "ALWAYS", "--query", "HLSStreamingSessionURL", "--output", "text")
	if err != nil {
		t.Fatalf("CLI: %v %s", err, stderr)
	}
	url := strings.TrimSpace(stdout)
	if vf, _ := ffprobeURL(t, url); vf != wantFrames {
		t.Fatalf("%d frames for a 3-fragment range, want %d", vf, wantFrames)
	}
	master := httpGet(t, url, 200)
	media := httpGet(t, strings.Replace(url, "getHLSMasterPlaylist", "getHLSMediaPlaylist", 1)+"&TrackNumber=1", 200)
	if !strings.Contains(master, `CODECS="avc1.`) || !strings.Contains(master, "RESOLUTION=320x240") ||
		!strings.Contains(media, "#EXT-X-PROGRAM-DATE-TIME:") || !strings.Contains(media, "#EXT-X-ENDLIST") ||
		strings.Count(media, "#EXTINF:") != 3 {
		t.Fatalf("playlists:\n%s\n%s", master, media)
	}
	// Tampering with any part of the token is refused.
	i := strings.Index(url, "SessionToken=") + len("SessionToken=") + 5
	bad := url[:i] + string("AB"[int(url[i])%2]) + url[i+1:]
	if body := httpGet(t, bad, 403); strings.Contains(body, "#EXTM3U") {
		t.Fatal("a tampered token got a playlist")
	}
	httpGet(t, strings.Replace(url, "SessionToken=", "SessionToken=x", 1), 403)
	// Bad requests.
	for _, args := range [][]string{
		{"--playback-mode", "ON_DEMAND"}, // no range
		{"--playback-mode", "LIVE", "--expires", "50000"},
		{"--playback-mode", "SOMETIMES"},
		{"--container-format", "AVI"},
	} {
		_, stderr, err := s.awsCLI(t, append([]string{"kinesis-video-archived-media", "get-hls-streaming-session-url", "--stream-name", "cam"}, args...)...)
		if err == nil || !strings.Contains(stderr, "InvalidArgumentException") {
			t.Fatalf("%v: %v %s", args, err, stderr)
		}
	}
	// LIVE needs a fragment received in the last 30 s.
	createStream(t, s, "quiet", 1)
	_, stderr, err = s.awsCLI(t, "kinesis-video-archived-media", "get-hls-streaming-session-url", "--stream-name", "quiet", "--playback-mode", "LIVE")
	if err == nil || !strings.Contains(stderr, "ResourceNotFoundException") {
		t.Fatalf("LIVE on a stream without fragments: %v %s", err, stderr)
	}
}

func httpGet(t *testing.T, url string, want int) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("GET %s: %d, want %d: %s", url, resp.StatusCode, want, b)
	}
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Fatalf("GET %s: no CORS header", url)
	}
	return string(b)
}

// listByProducerTime lists a stream's fragments in the minute after start,
// by producer time, and requires at least n.
func listByProducerTime(t *testing.T, s *server, name string, start int64, n int) []avtypes.Fragment {
	t.Helper()
	lf, err := s.archived().ListFragments(ctxT(t), &kinesisvideoarchivedmedia.ListFragmentsInput{StreamName: aws.String(name),
		FragmentSelector: &avtypes.FragmentSelector{FragmentSelectorType: avtypes.FragmentSelectorTypeProducerTimestamp,
			TimestampRange: &avtypes.TimestampRange{StartTimestamp: aws.Time(time.UnixMilli(start)), EndTimestamp: aws.Time(time.UnixMilli(start + 60_000))}}})
	if err != nil || len(lf.Fragments) < n {
		t.Fatalf("listing %s: %v, %d fragments (want at least %d)", name, err, len(lf.Fragments), n)
	}
	return lf.Fragments
}
