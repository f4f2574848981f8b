package fmp4

import (
	"errors"
	"fmt"
	"math"

	"github.com/bluenviron/mediacommon/v2/pkg/codecs/mpeg4audio"

	"github.com/kinema/kinema/internal/media/mkv"
)

// Errors. Each maps to the KVS exception of the same meaning, so that the
// playback layer can answer with one table lookup; returned errors wrap them
// and say which track and what was wrong.
var (
	// ErrUnsupportedCodec: no track is playable, or a track cannot go into
	// the requested container (UnsupportedStreamMediaTypeException).
	ErrUnsupportedCodec = errors.New("fmp4: unsupported codec")
	// ErrMissingCodecPrivate: a playable codec without CodecPrivate
	// (MissingCodecPrivateDataException).
	ErrMissingCodecPrivate = errors.New("fmp4: missing codec private data")
	// ErrInvalidCodecPrivate: CodecPrivate that does not parse
	// (InvalidCodecPrivateDataException).
	ErrInvalidCodecPrivate = errors.New("fmp4: invalid codec private data")
	// ErrInvalidMediaFrame: a frame that cannot be split into NAL units, or a
	// fragment whose timing cannot be represented (InvalidMediaFrameException).
	ErrInvalidMediaFrame = errors.New("fmp4: invalid media frame")
)

// Kind tells video from audio.
type Kind int

// Track kinds.
const (
	Video Kind = iota + 1
	Audio
)

func (k Kind) String() string {
	switch k {
	case Video:
		return "video"
	case Audio:
		return "audio"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Codec IDs Kinema plays. KVS documents H.264 as V_MPEG/ISO/AVC while its
// producer SDK sends V_MPEG4/ISO/AVC, so both are accepted.
const (
	CodecIDH264    = "V_MPEG4/ISO/AVC"
	CodecIDH264Alt = "V_MPEG/ISO/AVC"
	CodecIDH265    = "V_MPEGH/ISO/HEVC"
	CodecIDAAC     = "A_AAC"
	CodecIDACM     = "A_MS/ACM"
)

// Track is one playable track: what a playlist or manifest says about it,
// and what the writers need to package its samples.
type Track struct {
	Number  uint64 // MKV track number, used as the MP4 track ID
	Kind    Kind
	CodecID string // MKV codec ID
	// Codec is the RFC 6381 string for HLS CODECS and DASH @codecs:
	// "avc1.64001f", "hvc1.1.6.L93.B0", "mp4a.40.2", "alaw", "ulaw".
	Codec string
	// SampleEntry is the MP4 sample entry type: avc1, hvc1 (hev1 when the
	// hvcC lacks a VPS, which then must come in-band), mp4a, alaw or ulaw.
	SampleEntry string
	Width       int     // from the SPS; MKV PixelWidth when the SPS has none
	Height      int     // from the SPS; MKV PixelHeight when the SPS has none
	FrameRate   float64 // from SPS VUI timing, else MKV DefaultDuration, else 0
	SampleRate  int     // audio: output sample rate (the SBR rate for HE-AAC)
	Channels    int
	Timescale   uint32 // 90000 for video, SampleRate for audio

	config     []byte   // avcC/hvcC record or AudioSpecificConfig, written verbatim
	lengthSize int      // size of the NAL unit length prefix (video)
	paramSets  [][]byte // VPS, SPS and PPS NAL units, inserted before TS key frames
	hevc       bool
	reorder    int   // frames a picture may be output after a later-decoded one
	frameDur   int64 // nominal frame duration in Timescale units; 0 unknown
	asc        *mpeg4audio.AudioSpecificConfig
	g711Law    byte // 'a' or 'u'
}

// SupportsTS reports whether the track can be carried in MPEG-TS (HLS):
// H.264, H.265 and AAC can; G.711 cannot.
func (t *Track) SupportsTS() bool { return t.g711Law == 0 }

// TracksFromHeader returns the playable tracks of h, in header order. Tracks
// of other types or codecs (subtitles, metadata, MJPEG, ...) are left out.
// A playable codec with missing or unparsable CodecPrivate fails the whole
// header, as KVS does; a header with no playable track is
// ErrUnsupportedCodec.
func TracksFromHeader(h mkv.Header) ([]*Track, error) {
	var out []*Track
	for i := range h.Tracks {
		mt := &h.Tracks[i]
		if mt.Number == 0 || mt.Number > math.MaxUint32 {
			continue // cannot be an MP4 track ID, and no block can name 0
		}
		t, err := newTrack(mt)
		if errors.Is(err, ErrUnsupportedCodec) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("track %d (%s): %w", mt.Number, mt.CodecID, err)
		}
		out = append(out, t)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: no H.264, H.265, AAC or G.711 track", ErrUnsupportedCodec)
	}
	return out, nil
}

func newTrack(mt *mkv.Track) (*Track, error) {
	t := &Track{Number: mt.Number, CodecID: mt.CodecID}
	switch mt.CodecID {
	case CodecIDH264, CodecIDH264Alt, CodecIDH265:
		if mt.Type != mkv.TrackTypeVideo && mt.Type != 0 {
			return nil, ErrUnsupportedCodec
		}
		t.Kind, t.Timescale = Video, videoTimescale
		if len(mt.CodecPrivate) == 0 {
			return nil, ErrMissingCodecPrivate
		}
		var err error
		if mt.CodecID == CodecIDH265 {
			err = t.setHEVC(mt.CodecPrivate)
		} else {
			err = t.setAVC(mt.CodecPrivate)
		}
		if err != nil {
			return nil, err
		}
		if t.Width <= 0 || t.Height <= 0 {
			t.Width, t.Height = int(min(mt.PixelWidth, maxDimension)), int(min(mt.PixelHeight, maxDimension))
		}
		t.setFrameRate(mt.DefaultDuration)
		return t, nil
	case CodecIDAAC:
		if mt.Type != mkv.TrackTypeAudio && mt.Type != 0 {
			return nil, ErrUnsupportedCodec
		}
		t.Kind = Audio
		if len(mt.CodecPrivate) == 0 {
			return nil, ErrMissingCodecPrivate
		}
		return t, t.setAAC(mt.CodecPrivate, mt.Channels)
	case CodecIDACM:
		if mt.Type != mkv.TrackTypeAudio && mt.Type != 0 {
			return nil, ErrUnsupportedCodec
		}
		t.Kind = Audio
		if len(mt.CodecPrivate) == 0 {
			return nil, ErrMissingCodecPrivate
		}
		return t, t.setACM(mt.CodecPrivate)
	}
	return nil, ErrUnsupportedCodec
}

const videoTimescale = 90000

// setFrameRate fills FrameRate and frameDur from the SPS timing (already in
// FrameRate when the SPS had it) or MKV DefaultDuration. Rates outside
// 1-300 fps are camera bugs (VUI time_scale of 180000 with one tick per field
// is common) and are ignored.
func (t *Track) setFrameRate(defaultDurationNs uint64) {
	if !(t.FrameRate >= 1 && t.FrameRate <= 300) {
		t.FrameRate = 0
		if defaultDurationNs >= 1_000_000_000/300 && defaultDurationNs <= 1_000_000_000 {
			t.FrameRate = 1e9 / float64(defaultDurationNs)
		}
	}
	if t.FrameRate > 0 {
		t.frameDur = int64(math.Round(videoTimescale / t.FrameRate))
	}
}

// setAAC parses an AudioSpecificConfig. HLS plays AAC-LC, HE-AAC and
// HE-AACv2 (object types 2, 5, 29); others are unsupported rather than
// invalid.
func (t *Track) setAAC(cpd []byte, mkvChannels uint64) error {
	aot, ok := audioObjectType(cpd)
	if !ok || len(cpd) > maxASC {
		return fmt.Errorf("%w: AudioSpecificConfig of %d bytes", ErrInvalidCodecPrivate, len(cpd))
	}
	if aot != 2 && aot != 5 && aot != 29 {
		return fmt.Errorf("%w: AAC object type %d", ErrUnsupportedCodec, aot)
	}
	var asc mpeg4audio.AudioSpecificConfig
	if err := asc.Unmarshal(cpd); err != nil {
		return fmt.Errorf("%w: AudioSpecificConfig: %v", ErrInvalidCodecPrivate, err)
	}
	if asc.SampleRate <= 0 || asc.SampleRate > 192000 || asc.ExtensionSampleRate > 192000 {
		return fmt.Errorf("%w: AAC sample rate %d", ErrInvalidCodecPrivate, asc.SampleRate)
	}
	t.config, t.asc = cpd, &asc
	t.Codec, t.SampleEntry = fmt.Sprintf("mp4a.40.%d", aot), "mp4a"
	t.SampleRate = asc.SampleRate
	if asc.ExtensionSampleRate > 0 {
		t.SampleRate = asc.ExtensionSampleRate // SBR doubles the output rate
	}
	t.Timescale = uint32(t.SampleRate)
	switch {
	case asc.ChannelConfig >= 1 && asc.ChannelConfig <= 6:
		t.Channels = int(asc.ChannelConfig)
	case asc.ChannelConfig == 7:
		t.Channels = 8
	default: // 0: the layout is in a PCE; trust the container
		t.Channels = int(min(mkvChannels, 8))
	}
	if aot == 29 && t.Channels == 1 {
		t.Channels = 2 // parametric stereo decodes to two channels
	}
	if t.Channels == 0 {
		t.Channels = 2
	}
	return nil
}

// maxASC bounds an AudioSpecificConfig; real ones are 2 to about 30 bytes
// (with a program config element).
const maxASC = 64

// aacFrameDuration is the duration of one AAC frame in the track timescale:
// 1024 (or 960) core samples, twice that at the SBR output rate.
func (t *Track) aacFrameDuration() int64 {
	n := int64(1024)
	if t.asc.FrameLengthFlag {
		n = 960
	}
	return n * int64(t.SampleRate) / int64(t.asc.SampleRate)
}

// audioObjectType reads the first field of an AudioSpecificConfig
// (ISO/IEC 14496-3 1.6.2.1): 5 bits, 31 escaping to 32 + 6 more bits.
func audioObjectType(p []byte) (int, bool) {
	if len(p) < 2 {
		return 0, false
	}
	aot := int(p[0] >> 3)
	if aot == 31 {
		aot = 32 + int((p[0]&7)<<3|p[1]>>5)
	}
	return aot, true
}

// setACM parses the WAVEFORMATEX that Matroska's A_MS/ACM carries (the
// little-endian Windows structure); KVS producers use it for G.711.
func (t *Track) setACM(cpd []byte) error {
	if len(cpd) < 16 {
		return fmt.Errorf("%w: WAVEFORMATEX of %d bytes", ErrInvalidCodecPrivate, len(cpd))
	}
	le16 := func(i int) int { return int(cpd[i]) | int(cpd[i+1])<<8 }
	tag, channels := le16(0), le16(2)
	rate := le16(4) | le16(6)<<16
	switch tag {
	case 6:
		t.g711Law, t.Codec = 'a', "alaw"
	case 7:
		t.g711Law, t.Codec = 'u', "ulaw"
	default:
		return fmt.Errorf("%w: WAVEFORMATEX format tag 0x%04X is not G.711", ErrUnsupportedCodec, tag)
	}
	if channels < 1 || channels > 8 || rate < 1000 || rate > 192000 {
		return fmt.Errorf("%w: G.711 with %d channels at %d Hz", ErrInvalidCodecPrivate, channels, rate)
	}
	t.SampleEntry, t.config = t.Codec, cpd
	t.Channels, t.SampleRate, t.Timescale = channels, rate, uint32(rate)
	return nil
}

// nominalDuration is a sample's duration when timestamps cannot tell: one
// AAC frame, the PCM sample count of a G.711 frame, one video frame.
func (t *Track) nominalDuration(frameSize int) int64 {
	switch {
	case t.asc != nil:
		return t.aacFrameDuration()
	case t.g711Law != 0:
		return int64(frameSize / t.Channels)
	}
	return t.frameDur
}
