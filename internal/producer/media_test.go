package producer

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kinema/kinema/internal/media/mkv"
	"github.com/kinema/kinema/internal/mediatest"
)

// Every fixture lasts 3 s at 25 fps with a key frame each second
// (-g 25, scene-cut detection off so that no extra key frames appear).
var media = &mediatest.Recipes{Make: map[string]string{
	"av.mp4": "ffmpeg -f lavfi -i testsrc2=size=320x240:rate=25 -f lavfi -i sine=frequency=1000 " +
		"-t 3 -c:v libx264 -g 25 -sc_threshold 0 -pix_fmt yuv420p -c:a aac $OUT",
	"hevc.mkv": "ffmpeg -f lavfi -i testsrc2=size=320x240:rate=25 -f lavfi -i sine=frequency=440 " +
		"-t 3 -c:v libx265 -x265-params log-level=error:keyint=25:min-keyint=25:scenecut=0 -pix_fmt yuv420p -c:a aac $OUT",
	"audio.m4a": "ffmpeg -f lavfi -i sine=frequency=1000 -t 3 -c:a aac $OUT",
}}

func TestMain(m *testing.M) { mediatest.Main(m, media) }

func openMedia(t testing.TB, name string) *Media {
	t.Helper()
	m, err := OpenFile(context.Background(), media.File(t, name))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// probePackets counts packets per stream type with ffprobe.
func probePackets(t *testing.T, path string) map[string]int {
	t.Helper()
	out, err := exec.Command("ffprobe", "-v", "error", "-count_packets",
		"-show_entries", "stream=codec_type,nb_read_packets", "-of", "csv=p=0", path).Output()
	if err != nil {
		t.Fatalf("ffprobe: %v", err)
	}
	counts := map[string]int{}
	for _, line := range strings.Fields(string(out)) {
		typ, n, _ := strings.Cut(line, ",")
		v, _ := strconv.Atoi(n)
		counts[typ] += v
	}
	return counts
}

func countFrames(m *Media) (video, audio, keys int) {
	for _, f := range m.Frames {
		switch f.Track {
		case VideoTrack:
			video++
			if f.Keyframe {
				keys++
			}
		case AudioTrack:
			audio++
		}
	}
	return
}

func TestOpenFileH264AAC(t *testing.T) {
	path := media.File(t, "av.mp4")
	m := openMedia(t, "av.mp4")
	want := probePackets(t, path)
	video, audio, keys := countFrames(m)
	if video != want["video"] || audio != want["audio"] {
		t.Errorf("frames: %d video, %d audio; ffprobe counts %v", video, audio, want)
	}
	if video != 75 || keys != 3 {
		t.Errorf("%d video frames with %d key frames; want 75 and 3", video, keys)
	}
	if m.Header.TimecodeScale != mkv.DefaultTimecodeScale || len(m.Header.Tracks) != 2 {
		t.Fatalf("header %+v", m.Header)
	}
	v, a := m.Track(VideoTrack), m.Track(AudioTrack)
	if v == nil || v.CodecID != CodecH264 || v.Name != "kvs_video_track" || v.PixelWidth != 320 || v.PixelHeight != 240 ||
		len(v.CodecPrivate) < 8 || v.CodecPrivate[0] != 1 {
		t.Errorf("video track %+v", v)
	}
	if a == nil || a.CodecID != CodecAAC || a.Type != mkv.TrackTypeAudio || a.SamplingFrequency == 0 || len(a.CodecPrivate) < 2 {
		t.Errorf("audio track %+v", a)
	}
	if m.DurationMs < 2950 || m.DurationMs > 3100 {
		t.Errorf("duration %d ms", m.DurationMs)
	}
	// Video key frames at 0, 1000 and 2000 ms of video time.
	var keyPTS []int64
	minPTS := int64(1 << 62)
	for _, f := range m.Frames {
		minPTS = min(minPTS, f.PTSms)
		if f.Track == VideoTrack && f.Keyframe {
			keyPTS = append(keyPTS, f.PTSms)
		}
	}
	if minPTS != 0 {
		t.Errorf("earliest frame at %d ms, want 0", minPTS)
	}
	for i, p := range keyPTS {
		if d := p - keyPTS[0]; d != int64(i)*1000 {
			t.Errorf("key frame %d at +%d ms", i, d)
		}
	}
}

func TestOpenFileH265(t *testing.T) {
	path := media.File(t, "hevc.mkv")
	m := openMedia(t, "hevc.mkv")
	want := probePackets(t, path)
	video, audio, keys := countFrames(m)
	if video != want["video"] || audio != want["audio"] || keys != 3 {
		t.Errorf("frames: %d video (%d key), %d audio; ffprobe counts %v", video, keys, audio, want)
	}
	if v := m.Track(VideoTrack); v == nil || v.CodecID != CodecH265 || len(v.CodecPrivate) == 0 {
		t.Errorf("video track %+v", v)
	}
	if plans := m.Fragments(0); len(plans) != 3 {
		t.Errorf("%d fragments, want 3", len(plans))
	}
}

func TestOpenFileAudioOnly(t *testing.T) {
	path := media.File(t, "audio.m4a")
	m := openMedia(t, "audio.m4a")
	want := probePackets(t, path)
	_, audio, _ := countFrames(m)
	if audio != want["audio"] || len(m.Header.Tracks) != 1 || m.Header.Tracks[0].Number != AudioTrack {
		t.Fatalf("%d audio frames (ffprobe %v), tracks %+v", audio, want, m.Header.Tracks)
	}
	plans := m.Fragments(1000)
	if len(plans) != 3 {
		t.Fatalf("%d fragments of 1 s, want 3", len(plans))
	}
	total := 0
	for i, p := range plans {
		total += len(p.Frames)
		for j, f := range p.Frames {
			if f.Keyframe != (j == 0) {
				t.Errorf("fragment %d frame %d: key %v", i, j, f.Keyframe)
			}
			if f.PTSms < p.StartMs || f.PTSms >= p.StartMs+1000 {
				t.Errorf("fragment %d (start %d) holds a frame at %d", i, p.StartMs, f.PTSms)
			}
		}
	}
	if total != audio {
		t.Errorf("plans hold %d frames of %d", total, audio)
	}
}

func TestOpenFileErrors(t *testing.T) {
	if _, err := OpenFile(context.Background(), filepath.Join(t.TempDir(), "nope.mp4")); err == nil {
		t.Error("missing file: no error")
	}
	junk := filepath.Join(t.TempDir(), "junk.mp4")
	os.WriteFile(junk, []byte("this is not a video"), 0o600)
	if _, err := exec.LookPath("ffmpeg"); err == nil {
		_, err := OpenFile(context.Background(), junk)
		if err == nil || !strings.Contains(err.Error(), "ffmpeg") {
			t.Errorf("junk input: %v", err)
		}
	}
	t.Setenv("PATH", t.TempDir())
	_, err := OpenFile(context.Background(), junk)
	if err == nil || !strings.Contains(err.Error(), "ffmpeg program") {
		t.Errorf("without ffmpeg: %v", err)
	}
}
