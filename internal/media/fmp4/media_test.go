package fmp4

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/kinema/kinema/internal/media/mkv"
	"github.com/kinema/kinema/internal/mediatest"
)

// Real media made by ffmpeg, stored the way Kinema stores it, packaged by
// this package and checked by ffprobe and a full ffmpeg decode. The tools
// are required (Kinema's CI installs them): a missing tool fails the test.

var media = &mediatest.Recipes{Make: mediaRecipes, Deps: mediaDeps}

func TestMain(m *testing.M) { mediatest.Main(m, media) }

const (
	avInputs    = "-f lavfi -i testsrc2=size=320x240:rate=25 -f lavfi -i sine=frequency=440:sample_rate=48000 -t 4"
	x265Closed  = "-c:v libx265 -x265-params log-level=error:bframes=3:keyint=25:min-keyint=25:open-gop=0"
	x265OpenGOP = "-c:v libx265 -x265-params log-level=error:bframes=3:keyint=25:min-keyint=25:open-gop=1"
)

// mediaRecipes make each test file; $OUT is its path, $DIR the directory.
var mediaRecipes = map[string]string{
	"h264.mkv":         "ffmpeg " + avInputs + " -c:v libx264 -g 25 -bf 2 -level 3.0 -pix_fmt yuv420p -c:a aac $OUT",
	"h265.mkv":         "ffmpeg " + avInputs + " " + x265Closed + " -pix_fmt yuv420p -c:a aac $OUT",
	"h265-opengop.mkv": "ffmpeg " + avInputs + " " + x265OpenGOP + " -pix_fmt yuv420p -c:a aac $OUT",
	"aac.mkv":          "ffmpeg -f lavfi -i sine=frequency=440:sample_rate=44100 -t 4 -c:a aac -ac 2 $OUT",
	"h264-alaw.mkv":    "ffmpeg -f lavfi -i testsrc2=size=320x240:rate=25 -f lavfi -i sine=sample_rate=8000 -t 4 -c:v libx264 -g 25 -bf 0 -pix_fmt yuv420p -c:a pcm_alaw $OUT",
	"baseline.mkv":     "ffmpeg -f lavfi -i testsrc2=size=176x144:rate=15 -t 2 -c:v libx264 -profile:v baseline -level 1.1 -g 15 -pix_fmt yuv420p $OUT",
	"laced.mkv":        "mkvmerge -q -o $OUT $DIR/h264.mkv",
	"groups.mkv":       "mkvmerge -q --engage no_simpleblocks -o $OUT $DIR/h264.mkv",
}

var mediaDeps = map[string][]string{"laced.mkv": {"h264.mkv"}, "groups.mkv": {"h264.mkv"}}

// epochMs puts the test media at a realistic producer time, so that the
// epoch-scale arithmetic is exercised.
const epochMs = 1_700_000_000_000

// stored is a source file as Kinema stores it: the header and one stored
// cluster per fragment, plus what the source says about each track.
type stored struct {
	header   mkv.Header
	clusters [][]byte
	startsNs []int64            // cluster start times
	ptsUs    map[uint64][]int64 // every frame's absolute PTS in µs, per track
}

// nextStart is the start of the fragment after i, or 0 after the last.
func (s *stored) nextStart(i int) int64 {
	if i+1 < len(s.startsNs) {
		return s.startsNs[i+1]
	}
	return 0
}

type storeMode int

const (
	// perKeyframe cuts a fragment at each video key frame (every ~1 s of
	// audio when there is no video) and rewrites the blocks, like ingest.
	perKeyframe storeMode = iota
	// annexB is perKeyframe with video frames turned into Annex-B.
	annexB
	// asIs keeps the source's clusters and block bytes (lacing, groups).
	asIs
	// inBand is perKeyframe with the CodecPrivate's parameter sets repeated
	// in front of every video key frame, as cameras send them.
	inBand
)

// store reads a media file with the mkv reader and rebuilds it as stored
// clusters.
func store(t testing.TB, path string, mode storeMode) *stored {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	r := mkv.NewReader(bytes.NewReader(data), mkv.Options{})
	s := &stored{ptsUs: map[uint64][]int64{}}
	var video uint64
	var params []byte // length-prefixed parameter sets, for inBand
	var tc uint64     // source cluster timecode
	var cur []mkv.Block
	var curStart int64 = -1
	flush := func() {
		if len(cur) > 0 {
			s.clusters = append(s.clusters, mkv.AppendCluster(nil, uint64(curStart), cur))
			s.startsNs = append(s.startsNs, curStart*int64(s.header.TimecodeScale))
		}
		cur = nil
	}
	for {
		ev, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch ev.Type {
		case mkv.EventHeader:
			s.header = *ev.Header
			if s.header.TimecodeScale != mkv.DefaultTimecodeScale {
				t.Fatalf("test media with TimecodeScale %d", s.header.TimecodeScale)
			}
			for _, tr := range s.header.Tracks {
				if tr.Type == mkv.TrackTypeVideo {
					video = tr.Number
				}
			}
			if mode == inBand {
				tracks, err := TracksFromHeader(s.header)
				if err != nil {
					t.Fatal(err)
				}
				for _, u := range tracks[0].paramSets {
					params = append(binary.BigEndian.AppendUint32(params, uint32(len(u))), u...)
				}
			}
		case mkv.EventClusterStart:
			tc = ev.ClusterTimecode
			if mode == asIs {
				flush()
				curStart = int64(tc) + epochMs
			}
		case mkv.EventBlock:
			b := ev.Block
			frames, err := b.Frames()
			if err != nil {
				t.Fatal(err)
			}
			pts := int64(tc) + int64(b.Timecode) + epochMs
			for j := range frames {
				// Laced frames follow each other by one frame (AAC here).
				us := pts * 1000
				if j > 0 {
					us += int64(j) * 1024 * 1e6 / int64(trackOf(s.header, b.Track).SamplingFrequency)
				}
				s.ptsUs[b.Track] = append(s.ptsUs[b.Track], us)
			}
			if mode == asIs {
				cur = append(cur, b)
				continue
			}
			newFragment := curStart < 0 || (b.Track == video && b.Keyframe) || (video == 0 && pts-curStart >= 1000)
			if newFragment {
				flush()
				curStart = pts
			}
			for _, f := range frames {
				if mode == annexB && b.Track == video {
					f = toAnnexB(t, f)
				}
				if mode == inBand && b.Track == video && b.Keyframe {
					f = append(append([]byte(nil), params...), f...)
				}
				cur = append(cur, mkv.NewSimpleBlock(b.Track, int16(pts-curStart), b.Keyframe, f))
			}
		}
	}
	flush()
	return s
}

func trackOf(h mkv.Header, num uint64) *mkv.Track {
	for i := range h.Tracks {
		if h.Tracks[i].Number == num {
			return &h.Tracks[i]
		}
	}
	return nil
}

// toAnnexB turns a 4-byte length-prefixed frame into Annex-B.
func toAnnexB(t testing.TB, f []byte) []byte {
	var out []byte
	units := splitNALUs(f, 4, nil)
	if len(units) == 0 {
		t.Fatal("frame without NAL units")
	}
	for _, u := range units {
		out = append(out, 0, 0, 0, 1)
		out = append(out, u...)
	}
	return out
}

func writeTemp(t testing.TB, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// probeStream is what ffprobe says about one stream.
type probeStream struct {
	CodecName    string `json:"codec_name"`
	CodecTag     string `json:"codec_tag_string"`
	Profile      string `json:"profile"`
	Level        int    `json:"level"`
	Width        int    `json:"width"`
	Height       int    `json:"height"`
	SampleRate   string `json:"sample_rate"`
	Channels     int    `json:"channels"`
	NbReadFrames string `json:"nb_read_frames"`
}

func probe(t testing.TB, path string) []probeStream {
	t.Helper()
	mediatest.NeedTool(t, "ffprobe")
	out := run(t, "ffprobe", "-v", "error", "-count_frames", "-show_streams", "-of", "json", path)
	var v struct{ Streams []probeStream }
	if err := json.Unmarshal(out, &v); err != nil {
		t.Fatalf("ffprobe json: %v", err)
	}
	return v.Streams
}

// framePTS returns the presentation times (seconds) of the decoded frames
// of one stream, sorted.
func framePTS(t testing.TB, path, stream string) []float64 {
	t.Helper()
	out := run(t, "ffprobe", "-v", "error", "-select_streams", stream, "-show_entries", "frame=pts_time", "-of", "csv=p=0", path)
	var pts []float64
	for _, f := range strings.Fields(string(out)) {
		v, err := strconv.ParseFloat(strings.Trim(f, ","), 64)
		if err != nil {
			t.Fatalf("ffprobe frame time %q", f)
		}
		pts = append(pts, v)
	}
	sort.Float64s(pts)
	return pts
}

func run(t testing.TB, name string, args ...string) []byte {
	t.Helper()
	cmd := exec.Command(name, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return out
}

// sourceFrames counts the frames of one stream of the source file as
// ffprobe decodes them.
func sourceFrames(t testing.TB, path string, index int) int {
	t.Helper()
	n, err := strconv.Atoi(probe(t, path)[index].NbReadFrames)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
