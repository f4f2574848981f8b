package images

import (
	"bytes"
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/kinema/kinema/internal/media/mkv"
	"github.com/kinema/kinema/internal/mediatest"
)

var media = &mediatest.Recipes{Make: map[string]string{
	// 4 s at 25 fps, a key frame every 25 frames, B-frames (x264 default).
	"h264.mkv": "ffmpeg -f lavfi -i testsrc2=size=320x240:rate=25 -t 4 -c:v libx264 -g 25 -keyint_min 25 -sc_threshold 0 -pix_fmt yuv420p $OUT",
	"h265.mkv": "ffmpeg -f lavfi -i testsrc2=size=320x240:rate=25 -t 4 -c:v libx265 -x265-params keyint=25:min-keyint=25:scenecut=0:open-gop=0:log-level=error -pix_fmt yuv420p $OUT",
}}

func TestMain(m *testing.M) { mediatest.Main(m, media) }

// readFile returns a test file's video track and frames as the archive
// would hand them over.
func readFile(t testing.TB, name string) (*trackSet, []frame) {
	t.Helper()
	data, err := os.ReadFile(media.File(t, name))
	if err != nil {
		t.Fatal(err)
	}
	r := mkv.NewReader(bytes.NewReader(data), mkv.Options{})
	ev, err := r.Next()
	if err != nil || ev.Type != mkv.EventHeader {
		t.Fatalf("%s: %v", name, err)
	}
	ts, err := newTrackSet(mkv.EncodeHeaderTracks(*ev.Header))
	if err != nil {
		t.Fatal(err)
	}
	frames, err := fragmentFrames(ts, data)
	if err != nil {
		t.Fatal(err)
	}
	return ts, frames
}

// displayIndex is the display-order index of frames[i].
func displayIndex(frames []frame, i int) int {
	n := 0
	for _, f := range frames {
		if f.pts < frames[i].pts {
			n++
		}
	}
	return n
}

// Frames in the middle of a GOP (decoded from its key frame) and key frames
// alone, of H.264 with B-frames and of H.265, come out as the frames ffmpeg
// itself extracts from the file.
func TestSessionDecodesTargetsFromTheirKeyFrame(t *testing.T) {
	for _, name := range []string{"h264.mkv", "h265.mkv"} {
		t.Run(name, func(t *testing.T) {
			ts, frames := readFile(t, name)
			var keys []int
			for i, f := range frames {
				if f.key {
					keys = append(keys, i)
				}
			}
			if len(frames) != 100 || len(keys) != 4 || keys[0] != 0 || keys[1] < 10 {
				t.Fatalf("unexpected test file: %d frames, key frames at %v", len(frames), keys)
			}
			d := &Decoder{}
			defer d.Close()
			images := map[int64][]byte{}
			s, err := d.startSession(context.Background(), Output{Format: PNG}.imageArgs(), ts.decoderTrack(), readImages(images))
			if err != nil {
				t.Fatal(err)
			}
			// GOP 1: frames 0..9, wanting 3 and 9 (decode order); GOP 3: the key frame alone.
			fed1 := s.feed(frames[0:10], func(i int) bool { return i == 3 || i == 9 }, true)
			fed3 := s.feed(frames[keys[2]:keys[2]+1], func(int) bool { return true }, true)
			if err := s.finish(); err != nil {
				t.Fatal(err)
			}
			if len(images) != 3 {
				t.Fatalf("%d images, want 3", len(images))
			}
			for _, c := range []struct {
				fed   int64
				frame int
			}{{fed1[3], 3}, {fed1[9], 9}, {fed3[0], keys[2]}} {
				img := images[c.fed]
				if img == nil {
					t.Fatalf("no image fed as %d (have %v)", c.fed, keysOf(images))
				}
				got := mediatest.DecodeImage(t, img)
				want := mediatest.Frame(t, media.File(t, name), displayIndex(frames, c.frame))
				if p := mediatest.PSNR(got, want); p < 45 {
					t.Errorf("frame %d: PSNR %.1f dB against ffmpeg's own extraction", c.frame, p)
				}
			}
		})
	}
}

// A single sample is decoded on one thread, larger requests with ffmpeg's
// default threads; both command lines decode the same picture.
func TestRenderArgs(t *testing.T) {
	o := Output{Format: PNG}
	one, many := o.renderArgs(1), o.renderArgs(2)
	if !slices.Equal(one[:2], []string{"-threads", "1"}) || slices.Contains(many, "-threads") {
		t.Fatalf("one sample %q, two %q", one, many)
	}
	ts, frames := readFile(t, "h264.mkv")
	d := &Decoder{}
	defer d.Close()
	var got [][]byte
	for _, args := range [][]string{one, many} {
		images := map[int64][]byte{}
		s, err := d.startSession(context.Background(), args, ts.decoderTrack(), readImages(images))
		if err != nil {
			t.Fatal(err)
		}
		fed := s.feed(frames[0:5], func(i int) bool { return i == 4 }, true)
		if err := s.finish(); err != nil {
			t.Fatal(err)
		}
		got = append(got, images[fed[4]])
	}
	if got[0] == nil || !bytes.Equal(got[0], got[1]) {
		t.Fatal("one thread and frame threads decoded different pictures")
	}
}

func keysOf(m map[int64][]byte) []int64 {
	var out []int64
	for k := range m {
		out = append(out, k)
	}
	return out
}

// Sizes and formats: stretch, one side following the aspect ratio, JPEG
// quality changing the size of the file.
func TestOutputSizesAndQuality(t *testing.T) {
	ts, frames := readFile(t, "h264.mkv")
	d := &Decoder{}
	defer d.Close()
	render := func(o Output) []byte {
		images := map[int64][]byte{}
		s, err := d.startSession(context.Background(), o.imageArgs(), ts.decoderTrack(), readImages(images))
		if err != nil {
			t.Fatal(err)
		}
		fed := s.feed(frames[25:26], func(int) bool { return true }, true)
		if err := s.finish(); err != nil {
			t.Fatal(err)
		}
		return images[fed[0]]
	}
	for _, c := range []struct {
		o    Output
		w, h int
	}{
		{Output{Format: JPEG}, 320, 240},
		{Output{Format: JPEG, Width: 640, Height: 100}, 640, 100},
		{Output{Format: PNG, Width: 160}, 160, 120},
		{Output{Format: JPEG, Height: 60}, 80, 60},
		{Output{Format: JPEG, Width: 101}, 101, 76},
	} {
		img := mediatest.DecodeImage(t, render(c.o))
		if b := img.Bounds(); b.Dx() != c.w || b.Dy() != c.h {
			t.Errorf("%+v: %dx%d, want %dx%d", c.o, b.Dx(), b.Dy(), c.w, c.h)
		}
	}
	low, high := render(Output{Format: JPEG, Quality: 10}), render(Output{Format: JPEG, Quality: 100})
	if len(low)*3 > len(high) {
		t.Errorf("JPEG quality 10 gives %d bytes, 100 gives %d", len(low), len(high))
	}
	if p := mediatest.PSNR(mediatest.DecodeImage(t, high), mediatest.Frame(t, media.File(t, "h264.mkv"), 25)); p < 40 {
		t.Errorf("quality 100: PSNR %.1f", p)
	}
}

// The warm pool hands out a started process; a second call with the same
// settings is served by it.
func TestWarmProcesses(t *testing.T) {
	ts, frames := readFile(t, "h264.mkv")
	d := &Decoder{Warm: 1}
	defer d.Close()
	args := Output{Format: JPEG, Width: 160}.imageArgs()
	one := func() {
		images := map[int64][]byte{}
		s, err := d.startSession(context.Background(), args, ts.decoderTrack(), readImages(images))
		if err != nil {
			t.Fatal(err)
		}
		s.feed(frames[0:1], func(int) bool { return true }, true)
		if err := s.finish(); err != nil || len(images) != 1 {
			t.Fatalf("%d images, %v", len(images), err)
		}
	}
	one()
	deadline := time.Now().Add(10 * time.Second)
	for {
		d.mu.Lock()
		n := len(d.idle)
		d.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no warm process after the first call")
		}
		time.Sleep(10 * time.Millisecond)
	}
	one()
}

// A missing program is ErrNoFFmpeg, named as such.
func TestMissingFFmpeg(t *testing.T) {
	d := &Decoder{Program: "/nonexistent/ffmpeg"}
	if err := d.Available(); err == nil {
		t.Fatal("a missing ffmpeg is available")
	}
	_, err := d.startSession(context.Background(), Output{}.imageArgs(), mkv.Track{}, readImages(map[int64][]byte{}))
	if err == nil || !bytes.Contains([]byte(err.Error()), []byte("ffmpeg")) {
		t.Fatalf("%v", err)
	}
}
