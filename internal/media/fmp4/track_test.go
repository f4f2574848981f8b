package fmp4

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"strconv"
	"testing"

	"github.com/kinema/kinema/internal/media/mkv"
)

// TestTracksFromMedia checks what TracksFromHeader says about real media
// against ffprobe's view of the source.
func TestTracksFromMedia(t *testing.T) {
	for _, tc := range []struct {
		file   string
		codecs []string
	}{
		{"h264.mkv", []string{"avc1.64001e", "mp4a.40.2"}}, // High@3.0, as forced by -level 3.0
		{"baseline.mkv", []string{"avc1.42c00b"}},          // x264 baseline sets constraint_set0 and 1; level 1.1
		{"h265.mkv", nil},
		{"aac.mkv", []string{"mp4a.40.2"}},
		{"h264-alaw.mkv", []string{"", "alaw"}},
	} {
		t.Run(tc.file, func(t *testing.T) {
			src := media.File(t, tc.file)
			s := store(t, src, perKeyframe)
			tracks, err := TracksFromHeader(s.header)
			if err != nil {
				t.Fatal(err)
			}
			streams := probe(t, src)
			for k, tr := range tracks {
				ps := streams[headerIndex(s, tr.Number)]
				if k < len(tc.codecs) && tc.codecs[k] != "" && tr.Codec != tc.codecs[k] {
					t.Errorf("track %d: codec %q, want %q", tr.Number, tr.Codec, tc.codecs[k])
				}
				switch tr.Kind {
				case Video:
					if tr.Width != ps.Width || tr.Height != ps.Height || tr.Timescale != 90000 {
						t.Errorf("track %d: %dx%d at %d, ffprobe %dx%d", tr.Number, tr.Width, tr.Height, tr.Timescale, ps.Width, ps.Height)
					}
					if !(tr.FrameRate == 25 || tr.FrameRate == 15) {
						t.Errorf("track %d: frame rate %v", tr.Number, tr.FrameRate)
					}
					checkVideoCodecString(t, tr, ps, trackOf(s.header, tr.Number).CodecPrivate)
				case Audio:
					if strconv.Itoa(tr.SampleRate) != ps.SampleRate || tr.Channels != ps.Channels || tr.Timescale != uint32(tr.SampleRate) {
						t.Errorf("track %d: %d Hz %d ch, ffprobe %s Hz %d ch", tr.Number, tr.SampleRate, tr.Channels, ps.SampleRate, ps.Channels)
					}
				}
			}
		})
	}
}

// checkVideoCodecString compares the codec string, which is derived from
// the SPS, with ffprobe's profile and level and, for H.265, with the header
// fields of the hvcC that ffmpeg's muxer wrote from its own parse.
func checkVideoCodecString(t *testing.T, tr *Track, ps probeStream, cpd []byte) {
	t.Helper()
	if !tr.hevc {
		profiles := map[string]int{"Constrained Baseline": 66, "Baseline": 66, "Main": 77, "High": 100}
		want := fmt.Sprintf("avc1.%02x", profiles[ps.Profile])
		if got := tr.Codec; got[:7] != want || got[9:] != fmt.Sprintf("%02x", ps.Level) {
			t.Errorf("codec %s for %s level %d", got, ps.Profile, ps.Level)
		}
		return
	}
	ptl := cpd[1:13] // hvcC: general_profile_space ... general_level_idc
	if ps.Profile != "Main" || int(ptl[11]) != ps.Level {
		t.Fatalf("ffprobe says %s level %d", ps.Profile, ps.Level)
	}
	cons := ""
	for i := 10; i >= 5; i-- {
		if ptl[i] != 0 || cons != "" {
			cons = fmt.Sprintf(".%X", ptl[i]) + cons
		}
	}
	want := fmt.Sprintf("hvc1.%d.%X.L%d%s", ptl[0]&0x1F, bits.Reverse32(binary.BigEndian.Uint32(ptl[1:5])), ptl[11], cons)
	if tr.Codec != want {
		t.Errorf("codec %s, hvcC header says %s", tr.Codec, want)
	}
}

// TestHEVCCodecString checks ISO/IEC 14496-15 Annex E on known
// profile_tier_level bytes.
func TestHEVCCodecString(t *testing.T) {
	for _, tc := range []struct {
		ptl  []byte
		want string
	}{
		// Main, Main compatible (flags 1 and 2), level 3.1, progressive, non-packed, frame-only.
		{[]byte{0x01, 0x60, 0, 0, 0, 0xB0, 0, 0, 0, 0, 0, 93}, "hvc1.1.6.L93.B0"},
		// Main 10, high tier, level 4.
		{[]byte{0x22, 0x20, 0, 0, 0, 0x90, 0, 0, 0, 0, 0, 120}, "hvc1.2.4.H120.90"},
		// Profile space 1, a later constraint byte set: the zero bytes between stay.
		{[]byte{0x44, 0x08, 0, 0, 0, 0xB0, 0, 0x23, 0, 0, 0, 153}, "hvc1.A4.10.L153.B0.0.23"},
		// No constraint flags at all.
		{[]byte{0x01, 0x60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 60}, "hvc1.1.6.L60"},
	} {
		if got := hevcCodecString("hvc1", tc.ptl); got != tc.want {
			t.Errorf("%x: %s, want %s", tc.ptl, got, tc.want)
		}
	}
}

// realCPD returns the CodecPrivate of the first track of a media file.
func realCPD(t *testing.T, file string) []byte {
	t.Helper()
	return store(t, media.File(t, file), perKeyframe).header.Tracks[0].CodecPrivate
}

// TestBadCodecPrivate checks that each kind of bad track maps to the error
// KVS would answer with, and that Annex-B parameter sets are accepted.
func TestBadCodecPrivate(t *testing.T) {
	avcC, hvcC := realCPD(t, "h264.mkv"), realCPD(t, "h265.mkv")
	sps, pps := avcParamSets(t, avcC)
	annexB := append(append([]byte{0, 0, 0, 1}, sps...), append([]byte{0, 0, 1}, pps...)...)
	truncated := avcC[:10]
	noPPS := append(append([]byte{}, avcC[:8+len(sps)]...), 0) // zero PPS
	hvcNoArrays := append(append([]byte{}, hvcC[:22]...), 0)
	aacMain := []byte{0x0A, 0x10}                                              // object type 1 (AAC Main)
	aacBadRate := []byte{0x17, 0x90}                                           // LC, sample rate index 14 (reserved)
	pcm := []byte{1, 0, 1, 0, 0x40, 0x1F, 0, 0, 0x80, 0x3E, 0, 0, 2, 0, 16, 0} // WAVE_FORMAT_PCM
	video := func(codec string, cpd []byte) mkv.Track {
		return mkv.Track{Number: 1, Type: mkv.TrackTypeVideo, CodecID: codec, CodecPrivate: cpd}
	}
	audio := func(codec string, cpd []byte) mkv.Track {
		return mkv.Track{Number: 2, Type: mkv.TrackTypeAudio, CodecID: codec, CodecPrivate: cpd, Channels: 2}
	}
	for _, tc := range []struct {
		name   string
		tracks []mkv.Track
		want   error
	}{
		{"h264 without CPD", []mkv.Track{video(CodecIDH264, nil)}, ErrMissingCodecPrivate},
		{"h264 garbage", []mkv.Track{video(CodecIDH264, []byte{0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0})}, ErrInvalidCodecPrivate},
		{"h264 truncated", []mkv.Track{video(CodecIDH264, truncated)}, ErrInvalidCodecPrivate},
		{"h264 without PPS", []mkv.Track{video(CodecIDH264, noPPS)}, ErrInvalidCodecPrivate},
		{"h264 Annex-B without PPS", []mkv.Track{video(CodecIDH264, append([]byte{0, 0, 0, 1}, sps...))}, ErrInvalidCodecPrivate},
		{"h265 without arrays", []mkv.Track{video(CodecIDH265, hvcNoArrays)}, ErrInvalidCodecPrivate},
		{"h265 without CPD", []mkv.Track{video(CodecIDH265, nil)}, ErrMissingCodecPrivate},
		{"aac without CPD", []mkv.Track{audio(CodecIDAAC, nil)}, ErrMissingCodecPrivate},
		{"aac one byte", []mkv.Track{audio(CodecIDAAC, []byte{0x12})}, ErrInvalidCodecPrivate},
		{"aac bad rate", []mkv.Track{audio(CodecIDAAC, aacBadRate)}, ErrInvalidCodecPrivate},
		{"aac main alone", []mkv.Track{audio(CodecIDAAC, aacMain)}, ErrUnsupportedCodec},
		{"pcm alone", []mkv.Track{audio(CodecIDACM, pcm)}, ErrUnsupportedCodec},
		{"acm short", []mkv.Track{audio(CodecIDACM, []byte{6, 0, 1, 0})}, ErrInvalidCodecPrivate},
		{"vp8 alone", []mkv.Track{video("V_VP8", nil)}, ErrUnsupportedCodec},
		{"no tracks", nil, ErrUnsupportedCodec},
		// A bad playable track fails the header even next to a good one.
		{"good video, audio without CPD", []mkv.Track{video(CodecIDH264, avcC), audio(CodecIDAAC, nil)}, ErrMissingCodecPrivate},
		// Unplayable tracks next to a playable one are left out.
		{"h264 and subtitles", []mkv.Track{video(CodecIDH264, avcC), {Number: 3, Type: mkv.TrackTypeSubtitle, CodecID: "S_TEXT/UTF8"}}, nil},
		{"h264 Annex-B", []mkv.Track{video(CodecIDH264, annexB)}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tracks, err := TracksFromHeader(mkv.Header{Tracks: tc.tracks})
			if !isErr(err, tc.want) || (tc.want == nil) != (err == nil) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if err == nil && (len(tracks) != 1 || tracks[0].Codec != "avc1.64001e") {
				t.Fatalf("tracks %+v", tracks)
			}
		})
	}
}

// avcParamSets returns the first SPS and PPS of an avcC.
func avcParamSets(t *testing.T, avcC []byte) (sps, pps []byte) {
	t.Helper()
	var tr Track
	if err := tr.setAVC(avcC); err != nil {
		t.Fatal(err)
	}
	return tr.paramSets[0], tr.paramSets[1]
}

// TestHEAAC: explicit SBR signalling doubles the output rate, and frames
// last 2048 output samples.
func TestHEAAC(t *testing.T) {
	tracks, err := TracksFromHeader(mkv.Header{Tracks: []mkv.Track{
		{Number: 2, Type: mkv.TrackTypeAudio, CodecID: CodecIDAAC, CodecPrivate: []byte{0x2B, 0x11, 0x88, 0x00}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	tr := tracks[0]
	if tr.Codec != "mp4a.40.5" || tr.SampleRate != 48000 || tr.Timescale != 48000 || tr.Channels != 2 || tr.aacFrameDuration() != 2048 {
		t.Errorf("HE-AAC track: %s %d Hz %d ch, frame %d", tr.Codec, tr.SampleRate, tr.Channels, tr.aacFrameDuration())
	}
}
