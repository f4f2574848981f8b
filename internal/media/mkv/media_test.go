package mkv

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/kinema/kinema/internal/mediatest"
)

// Real media made by ffmpeg and mkvmerge, read fully and checked against
// ffprobe; and writer output checked by ffprobe, a full ffmpeg decode and
// mkvinfo. The tools are required (Kinema's CI installs them): a missing
// tool fails the test rather than skipping it.

var media = &mediatest.Recipes{Make: mediaRecipes, Deps: mediaDeps}

func TestMain(m *testing.M) { mediatest.Main(m, media) }

const lavfiInputs = "-f lavfi -i testsrc2=size=320x240:rate=25 -f lavfi -i sine -t 3"

// mediaRecipes make each test file; $OUT is its path, $DIR the directory.
var mediaRecipes = map[string]string{
	"h264.mkv":      "ffmpeg " + lavfiInputs + " -c:v libx264 -g 25 -c:a aac $OUT",
	"h265.mkv":      "ffmpeg " + lavfiInputs + " -c:v libx265 -x265-params log-level=error -g 25 -c:a aac $OUT",
	"h264-pipe.mkv": "ffmpeg " + lavfiInputs + " -c:v libx264 -g 25 -c:a aac -f matroska pipe:1 > $OUT",
	"vp8-opus.webm": "ffmpeg " + lavfiInputs + " -c:v libvpx -deadline realtime -g 25 -c:a libopus $OUT",
	"subs.mkv":      "printf '1\\n00:00:00,500 --> 00:00:01,500\\nhello\\n\\n2\\n00:00:02,000 --> 00:00:02,500\\nworld\\n' > $DIR/s.srt && ffmpeg -i $DIR/h264.mkv -i $DIR/s.srt -map 0 -map 1 -c copy $OUT",
	"laced.mkv":     "mkvmerge -q -o $OUT $DIR/h264.mkv",
	"groups.mkv":    "mkvmerge -q --engage no_simpleblocks -o $OUT $DIR/h264.mkv",
}

// mediaDeps lists the files a recipe reads.
var mediaDeps = map[string][]string{"subs.mkv": {"h264.mkv"}, "laced.mkv": {"h264.mkv"}, "groups.mkv": {"h264.mkv"}}

// probePackets returns ffprobe's packet count per stream, in stream order
// (which is TrackEntry order for Matroska).
func probePackets(t testing.TB, path string) []int {
	t.Helper()
	mediatest.NeedTool(t, "ffprobe")
	cmd := exec.Command("ffprobe", "-v", "error", "-count_packets", "-show_entries", "stream=nb_read_packets", "-of", "csv=p=0", path)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("ffprobe %s: %v\n%s", path, err, stderr.String())
	}
	var counts []int
	for _, line := range strings.Fields(string(out)) {
		n, err := strconv.Atoi(strings.Trim(line, ","))
		if err != nil {
			t.Fatalf("ffprobe output %q", out)
		}
		counts = append(counts, n)
	}
	return counts
}

// framesPerTrack counts frames (laced frames separately) per track, in the
// order of the header's TrackEntries.
func framesPerTrack(t testing.TB, s summary) []int {
	t.Helper()
	if len(s.Headers) == 0 {
		t.Fatal("no header")
	}
	idx := map[uint64]int{}
	for i, tr := range s.Headers[0].Tracks {
		idx[tr.Number] = i
	}
	counts := make([]int, len(s.Headers[0].Tracks))
	for _, c := range s.Clusters {
		for _, b := range c.Blocks {
			fr, err := b.Frames()
			if err != nil {
				t.Fatal(err)
			}
			i, ok := idx[b.Track]
			if !ok {
				t.Fatalf("block of undeclared track %d", b.Track)
			}
			counts[i] += len(fr)
		}
	}
	return counts
}

func TestRealMedia(t *testing.T) {
	for _, tc := range []struct {
		file   string
		codecs []string
		check  func(t *testing.T, s summary)
	}{
		{"h264.mkv", []string{"V_MPEG4/ISO/AVC", "A_AAC"}, nil},
		{"h265.mkv", []string{"V_MPEGH/ISO/HEVC", "A_AAC"}, nil},
		{"h264-pipe.mkv", []string{"V_MPEG4/ISO/AVC", "A_AAC"}, nil},
		{"vp8-opus.webm", []string{"V_VP8", "A_OPUS"}, nil},
		{"subs.mkv", []string{"V_MPEG4/ISO/AVC", "A_AAC", "S_TEXT/UTF8"}, func(t *testing.T, s summary) {
			var groups int
			for _, c := range s.Clusters {
				for _, b := range c.Blocks {
					if b.Group {
						groups++
						if b.Track != 3 || b.Duration == 0 || !b.Keyframe {
							t.Errorf("subtitle group: %+v", b)
						}
					}
				}
			}
			if groups != 2 {
				t.Errorf("%d BlockGroups, want the 2 subtitles", groups)
			}
		}},
		{"laced.mkv", []string{"V_MPEG4/ISO/AVC", "A_AAC"}, func(t *testing.T, s summary) {
			laced := 0
			for _, c := range s.Clusters {
				for _, b := range c.Blocks {
					if b.Flags&flagLacingMask != 0 {
						laced++
					}
				}
			}
			if laced == 0 {
				t.Error("mkvmerge output has no laced blocks")
			}
		}},
		{"groups.mkv", []string{"V_MPEG4/ISO/AVC", "A_AAC"}, func(t *testing.T, s summary) {
			var keys, refs int
			for _, c := range s.Clusters {
				for _, b := range c.Blocks {
					if !b.Group {
						t.Fatalf("SimpleBlock in a no_simpleblocks file")
					}
					if b.Track == 1 && b.Keyframe {
						keys++
					} else if b.Track == 1 {
						refs++
					}
				}
			}
			if keys != 3 || refs != 72 {
				t.Errorf("video: %d key frames and %d with ReferenceBlock, want 3 and 72", keys, refs)
			}
		}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			path := media.File(t, tc.file)
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			s := summarize(mustReadEvents(t, data, Options{}))
			if len(s.Headers) != 1 {
				t.Fatalf("%d headers", len(s.Headers))
			}
			var codecs []string
			for _, tr := range s.Headers[0].Tracks {
				codecs = append(codecs, tr.CodecID)
			}
			if strings.Join(codecs, ",") != strings.Join(tc.codecs, ",") {
				t.Errorf("codecs %v, want %v", codecs, tc.codecs)
			}
			want := probePackets(t, path)
			if got := framesPerTrack(t, s); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("frames per track %v, ffprobe counts %v", got, want)
			}
			if tc.check != nil {
				tc.check(t, s)
			}
			// Re-written by the writer (known-size Clusters, blocks unchanged),
			// the file must probe and decode cleanly with the same counts.
			out := filepath.Join(t.TempDir(), "rewritten"+filepath.Ext(tc.file))
			writeFile(t, out, remux(s))
			if got := probePackets(t, out); fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("rewritten: ffprobe counts %v, want %v", got, want)
			}
			mediatest.DecodeClean(t, out)
			mkvtoolnixClean(t, out, len(want))
			oracleParse(t, remux(s))
		})
	}
}

// remux writes a summary back as one document with known-size Clusters.
func remux(s summary) []byte {
	b := AppendHeader(nil, *s.Headers[0])
	ti := 0
	for i := 0; i <= len(s.Clusters); i++ {
		for ; ti < len(s.Tags) && s.TagsBefore[ti] == i; ti++ {
			b = AppendTags(b, s.Tags[ti])
		}
		if i < len(s.Clusters) {
			b = AppendCluster(b, s.Clusters[i].Timecode, s.Clusters[i].Blocks)
		}
	}
	return b
}

func writeFile(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// mkvtoolnixClean checks a file with MKVToolNix: mkvinfo must walk it
// without errors or warnings, mkvmerge -J must report none, and a remux by
// mkvmerge must exit 0 (it exits 1 on warnings, 2 on errors). mkvinfo
// alone is lenient (it accepts a truncated file), mkvmerge less so.
func mkvtoolnixClean(t testing.TB, path string, tracks int) {
	t.Helper()
	mediatest.NeedTool(t, "mkvinfo")
	mediatest.NeedTool(t, "mkvmerge")
	b, err := exec.Command("mkvinfo", "-v", path).CombinedOutput()
	low := strings.ToLower(string(b))
	if err != nil || strings.Contains(low, "error") || strings.Contains(low, "warning") {
		t.Errorf("mkvinfo %s: %v\n%.2000s", path, err, b)
	}
	b, err = exec.Command("mkvmerge", "-J", path).Output()
	var id struct {
		Container struct{ Recognized, Supported bool }
		Errors    []string
		Warnings  []string
		Tracks    []any
	}
	if err == nil {
		err = json.Unmarshal(b, &id)
	}
	if err != nil || !id.Container.Recognized || !id.Container.Supported || len(id.Errors)+len(id.Warnings) > 0 || len(id.Tracks) != tracks {
		t.Errorf("mkvmerge -J %s: %v %+v", path, err, id)
	}
	out := filepath.Join(t.TempDir(), "mkvmerge-remux.mkv")
	if b, err := exec.Command("mkvmerge", "-q", "-o", out, path).CombinedOutput(); err != nil {
		t.Errorf("mkvmerge remux of %s: %v\n%s", path, err, b)
	}
}

// TestWriterKVSStyle writes the video-only fixture again the way the KVS
// producer does (unknown-size Clusters, SimpleBlocks, Tags between
// Clusters), from decoded frames, and has ffmpeg decode all 243 frames.
func TestWriterKVSStyle(t *testing.T) {
	body := readFixtureBody(t, videoOnly)
	s := summarize(mustReadEvents(t, body, Options{}))
	b := AppendHeader(nil, *s.Headers[0])
	ti := 0
	for i, c := range s.Clusters {
		b = AppendClusterStartUnknown(b, c.Timecode)
		for _, blk := range c.Blocks {
			fr, err := blk.Frames()
			if err != nil {
				t.Fatal(err)
			}
			b = AppendSimpleBlock(b, blk.Track, blk.Timecode, blk.Keyframe, fr[0])
		}
		for ; ti < len(s.Tags) && s.TagsBefore[ti] == i+1; ti++ {
			b = AppendTags(b, s.Tags[ti])
		}
	}
	// Same events as the producer's stream, block for block.
	again := summarize(mustReadEvents(t, b, Options{}))
	if len(again.Clusters) != 6 || again.blockCount() != 243 || len(again.Tags) != len(s.Tags) {
		t.Fatalf("re-read: %d clusters, %d blocks, %d tags", len(again.Clusters), again.blockCount(), len(again.Tags))
	}
	for i, c := range again.Clusters {
		for j, blk := range c.Blocks {
			if !sameBlock(blk, s.Clusters[i].Blocks[j]) {
				t.Fatalf("cluster %d block %d differs", i, j)
			}
		}
	}
	out := filepath.Join(t.TempDir(), "kvs.mkv")
	writeFile(t, out, b)
	if got := probePackets(t, out); fmt.Sprint(got) != "[243]" {
		t.Errorf("ffprobe counts %v, want [243]", got)
	}
	mediatest.DecodeClean(t, out)
	mkvtoolnixClean(t, out, 1)
	oracleParse(t, b)
}
