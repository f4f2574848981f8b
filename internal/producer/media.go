package producer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/kinema/kinema/internal/media/mkv"
)

// Track numbers as the producer SDK (PIC) assigns them.
const (
	VideoTrack = 1
	AudioTrack = 2
)

// Codec IDs the producer SDK sends and Kinema's readers handle.
const (
	CodecH264 = "V_MPEG4/ISO/AVC"
	CodecH265 = "V_MPEGH/ISO/HEVC"
	CodecAAC  = "A_AAC"
)

// Frame is one coded frame: a video access unit or one audio frame.
type Frame struct {
	Track    uint64 // VideoTrack or AudioTrack
	PTSms    int64  // presentation time in ms, relative to the first frame of the media
	Keyframe bool
	Data     []byte // as the container stored it (length-prefixed NAL units for H.264/H.265)
}

// Media is a file's track header and all of its frames, in memory. Put never
// modifies it, so one Media can feed many concurrent Puts.
type Media struct {
	// Header has TimecodeScale 1 ms, the SDK's track numbers and names, and
	// each track's CodecPrivate as the file had it.
	Header mkv.Header
	// Frames are in decode order, tracks interleaved as the container had them.
	Frames []Frame
	// DurationMs runs from the first frame to the end of the last one.
	DurationMs int64
	// Warnings name tracks that were left out (an audio codec KVS producers
	// do not send, for instance).
	Warnings []string
}

// Track returns the header's track with the given number, or nil.
func (m *Media) Track(number uint64) *mkv.Track {
	for i := range m.Header.Tracks {
		if m.Header.Tracks[i].Number == number {
			return &m.Header.Tracks[i]
		}
	}
	return nil
}

// OpenFile reads a media file through ffmpeg, which remuxes it to Matroska
// without re-encoding (the point is to send exactly the bytes an encoder
// made, as a camera would). The first video stream (attached pictures such
// as cover art excluded) and the first audio stream are kept; a file without
// video keeps its audio. Video must be H.264 or H.265.
func OpenFile(ctx context.Context, path string) (*Media, error) {
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("producer: %w", err)
	}
	// An absolute path keeps ffmpeg from reading "name:rest" as a protocol.
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	bin, err := exec.LookPath("ffmpeg")
	if err != nil {
		return nil, fmt.Errorf("producer: reading %s needs the ffmpeg program, which is not in PATH "+
			"(install ffmpeg, e.g. `apt install ffmpeg` or `brew install ffmpeg`): %w", path, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// 0:V (capital) skips attached pictures, which are MJPEG stills that
	// would otherwise win the video slot in music files.
	cmd := exec.CommandContext(ctx, bin, "-nostdin", "-hide_banner", "-v", "error",
		"-i", path, "-map", "0:V:0?", "-map", "0:a:0?", "-c", "copy", "-f", "matroska", "pipe:1")
	stderr := &tailBuffer{max: 4 << 10}
	cmd.Stderr = stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("producer: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("producer: starting ffmpeg: %w", err)
	}
	m, perr := ReadMatroska(out)
	if perr != nil {
		cancel() // stop ffmpeg if it is still running: nothing more is wanted from it
	}
	werr := cmd.Wait()
	// When ffmpeg fails by itself, our parse fails too (the pipe ends early);
	// ffmpeg's own words are then the useful part.
	msg := strings.TrimSpace(stderr.String())
	switch {
	case perr != nil && msg != "":
		return nil, fmt.Errorf("producer: %s: %w (ffmpeg: %s)", path, perr, msg)
	case perr != nil:
		return nil, fmt.Errorf("producer: %s: %w", path, perr)
	case werr != nil:
		return nil, fmt.Errorf("producer: ffmpeg could not remux %s: %v: %s", path, werr, msg)
	}
	return m, nil
}

// ReadMatroska reads a whole Matroska stream into memory: the same as
// OpenFile without ffmpeg.
func ReadMatroska(r io.Reader) (*Media, error) {
	rd := mkv.NewReader(r, mkv.Options{MaxElementSize: 16 << 20})
	m := &Media{}
	var (
		numbers   map[uint64]uint64 // the file's track number -> ours
		laceMs    map[uint64]int64  // duration of one laced frame, per file track
		scale     uint64
		clusterTC uint64
	)
	for {
		ev, err := rd.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, err
		}
		switch ev.Type {
		case mkv.EventHeader:
			hdr, nums, warns, err := normalizeHeader(ev.Header)
			if err != nil {
				return nil, err
			}
			if numbers != nil && !sameTracks(m.Header, hdr) {
				return nil, errors.New("the track set changes mid-stream, which one PutMedia session cannot carry")
			}
			m.Header, numbers, m.Warnings = hdr, nums, warns
			scale = ev.Header.TimecodeScale
			laceMs = map[uint64]int64{}
			for _, t := range ev.Header.Tracks {
				laceMs[t.Number] = laceDurationMs(t)
			}
		case mkv.EventClusterStart:
			clusterTC = ev.ClusterTimecode
		case mkv.EventBlock:
			n, ok := numbers[ev.Block.Track]
			if !ok {
				continue
			}
			frames, err := ev.Block.Frames()
			if err != nil {
				return nil, err
			}
			pts := ticksToMs(int64(clusterTC)+int64(ev.Block.Timecode), scale)
			key := ev.Block.Keyframe
			for i, data := range frames {
				m.Frames = append(m.Frames, Frame{Track: n, PTSms: pts + int64(i)*laceMs[ev.Block.Track], Keyframe: key, Data: data})
			}
		}
	}
	if numbers == nil {
		return nil, errors.New("no Matroska track header")
	}
	if len(m.Frames) == 0 {
		return nil, errors.New("no frames")
	}
	m.rebase()
	return m, nil
}

// normalizeHeader keeps the first H.264/H.265 video track and the first AAC
// audio track, renumbered and named as the producer SDK does, with a 1 ms
// timecode scale (what the SDK writes, and what Frame.PTSms needs).
func normalizeHeader(in *mkv.Header) (mkv.Header, map[uint64]uint64, []string, error) {
	out := mkv.Header{
		TimecodeScale: mkv.DefaultTimecodeScale,
		Title:         "Kinema producer",
		MuxingApp:     "Kinema producer",
		WritingApp:    "Kinema producer",
	}
	nums := map[uint64]uint64{}
	var warns []string
	var video, audio *mkv.Track
	for i := range in.Tracks {
		t := &in.Tracks[i]
		switch {
		case t.Type == mkv.TrackTypeVideo && video == nil:
			if t.CodecID != CodecH264 && t.CodecID != CodecH265 {
				return out, nil, nil, fmt.Errorf("video codec %s is not H.264 or H.265; KVS producers send only those "+
					"(re-encode first, e.g. ffmpeg -i IN -c:v libx264 -g 50 -c:a aac OUT.mp4)", t.CodecID)
			}
			video = t
		case t.Type == mkv.TrackTypeAudio && audio == nil:
			if !strings.HasPrefix(t.CodecID, CodecAAC) {
				warns = append(warns, fmt.Sprintf("audio track with codec %s left out: only AAC is sent", t.CodecID))
				continue
			}
			audio = t
		}
	}
	add := func(t *mkv.Track, number uint64, name string) {
		nt := mkv.Track{
			Number: number, UID: number, Type: t.Type, Name: name, CodecID: t.CodecID,
			CodecPrivate: t.CodecPrivate, PixelWidth: t.PixelWidth, PixelHeight: t.PixelHeight,
			SamplingFrequency: t.SamplingFrequency, Channels: t.Channels, BitDepth: t.BitDepth,
		}
		if t.Type == mkv.TrackTypeAudio {
			nt.CodecID = CodecAAC // A_AAC/MPEG4/LC and friends: the SDK only says A_AAC
		}
		out.Tracks = append(out.Tracks, nt)
		nums[t.Number] = number
	}
	if video != nil {
		add(video, VideoTrack, "kvs_video_track")
	}
	if audio != nil {
		add(audio, AudioTrack, "kvs_audio_track")
	}
	if len(out.Tracks) == 0 {
		return out, nil, nil, errors.New("no H.264/H.265 video or AAC audio track")
	}
	return out, nums, warns, nil
}

func sameTracks(a, b mkv.Header) bool {
	return slices.EqualFunc(a.Tracks, b.Tracks, func(x, y mkv.Track) bool {
		return x.Number == y.Number && x.CodecID == y.CodecID && bytes.Equal(x.CodecPrivate, y.CodecPrivate)
	})
}

// laceDurationMs is how far apart the frames of one laced block are. ffmpeg
// does not lace, so this only matters for MKV made by other tools.
func laceDurationMs(t mkv.Track) int64 {
	if t.DefaultDuration > 0 {
		return int64(t.DefaultDuration / 1_000_000)
	}
	if t.Type == mkv.TrackTypeAudio && t.SamplingFrequency > 0 {
		return int64(math.Round(1024 * 1000 / t.SamplingFrequency)) // one AAC frame
	}
	return 0
}

// ticksToMs converts Matroska ticks to ms, exactly when the scale is a whole
// number of ms and to the nearest ms otherwise.
func ticksToMs(ticks int64, scale uint64) int64 {
	if scale == 0 {
		scale = mkv.DefaultTimecodeScale
	}
	if scale%1_000_000 == 0 {
		return ticks * int64(scale/1_000_000)
	}
	return int64(math.Round(float64(ticks) * float64(scale) / 1e6))
}

// rebase makes PTSms relative to the earliest frame and sets DurationMs.
// The earliest frame rather than the first in decode order: with B-frames
// or audio priming the first stored frame is not always the earliest.
func (m *Media) rebase() {
	base := m.Frames[0].PTSms
	for _, f := range m.Frames {
		base = min(base, f.PTSms)
	}
	for i := range m.Frames {
		m.Frames[i].PTSms -= base
	}
	// The last frame lasts as long as its track's usual frame interval.
	var end int64
	for _, t := range m.Header.Tracks {
		var pts []int64
		for _, f := range m.Frames {
			if f.Track == t.Number {
				pts = append(pts, f.PTSms)
			}
		}
		if len(pts) == 0 {
			continue
		}
		slices.Sort(pts)
		end = max(end, pts[len(pts)-1]+medianGap(pts))
	}
	m.DurationMs = max(end, 1)
}

// medianGap is the typical distance between sorted timestamps (1 ms for a
// single frame, so that every frame lasts a little).
func medianGap(sorted []int64) int64 {
	if len(sorted) < 2 {
		return 1
	}
	gaps := make([]int64, len(sorted)-1)
	for i := range gaps {
		gaps[i] = sorted[i+1] - sorted[i]
	}
	slices.Sort(gaps)
	return max(gaps[len(gaps)/2], 1)
}

// tailBuffer keeps the last max bytes written: the end of ffmpeg's stderr is
// where the reason for a failure is.
type tailBuffer struct {
	max int
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = t.buf[over:]
	}
	return len(p), nil
}

func (t *tailBuffer) String() string { return string(t.buf) }
