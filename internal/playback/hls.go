package playback

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/kinema/kinema/internal/media/fmp4"
	"github.com/kinema/kinema/internal/stream"
)

// masterPlaylist lists the video rendition (and audio as its own rendition
// for fMP4; MPEG-TS muxes every track into one playlist).
func masterPlaylist(token string, s *Session, tracks []*fmp4.Track, bandwidth int) string {
	var b strings.Builder
	b.WriteString("#EXTM3U\n")
	fmt.Fprintf(&b, "#EXT-X-VERSION:%d\n", version(s))
	b.WriteString("#EXT-X-INDEPENDENT-SEGMENTS\n")
	var video, audio *fmp4.Track
	var codecs []string
	for _, t := range tracks {
		if t.Kind == fmp4.Video && video == nil {
			video = t
		}
		if t.Kind != fmp4.Video && audio == nil {
			audio = t
		}
	}
	main := video
	if main == nil {
		main = audio
	}
	if main == nil {
		return b.String()
	}
	codecs = append(codecs, main.Codec)
	audioGroup := ""
	if audio != nil && video != nil {
		codecs = append(codecs, audio.Codec)
		if s.Container == FragmentedMP4 {
			audioGroup = `,AUDIO="audio"`
			fmt.Fprintf(&b, "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"audio\",DEFAULT=YES,AUTOSELECT=YES,URI=\"getHLSMediaPlaylist.m3u8?SessionToken=%s&TrackNumber=%d\"\n",
				token, audio.Number)
		}
	}
	fmt.Fprintf(&b, "#EXT-X-STREAM-INF:BANDWIDTH=%d,CODECS=\"%s\"", max(bandwidth, 1), strings.Join(codecs, ","))
	if video != nil && video.Width > 0 {
		fmt.Fprintf(&b, ",RESOLUTION=%dx%d", video.Width, video.Height)
	}
	if video != nil && video.FrameRate > 0 {
		fmt.Fprintf(&b, ",FRAME-RATE=%.3f", video.FrameRate)
	}
	b.WriteString(audioGroup)
	fmt.Fprintf(&b, "\ngetHLSMediaPlaylist.m3u8?SessionToken=%s&TrackNumber=%d\n", token, main.Number)
	return b.String()
}

func version(s *Session) int {
	if s.Container == FragmentedMP4 {
		return 7
	}
	return 3
}

// mediaPlaylist lists the window's fragments for one track (fMP4) or for
// all tracks (MPEG-TS). With an edge (LL-HLS) it adds the parts of the
// newest fragments and of the one being received.
func mediaPlaylist(token string, s *Session, w *window, track uint64, edge *liveEdge) string {
	var b strings.Builder
	b.WriteString("#EXTM3U\n")
	fmt.Fprintf(&b, "#EXT-X-VERSION:%d\n", version(s))
	fmt.Fprintf(&b, "#EXT-X-TARGETDURATION:%d\n", targetDuration(w))
	if edge != nil {
		writeLowLatencyHeader(&b, edge.target())
	}
	fmt.Fprintf(&b, "#EXT-X-MEDIA-SEQUENCE:%d\n", w.seq)
	if w.discSeq > 0 || s.Discontinuity == DiscontinuityAlways {
		fmt.Fprintf(&b, "#EXT-X-DISCONTINUITY-SEQUENCE:%d\n", w.discSeq)
	}
	if s.Mode == OnDemand {
		b.WriteString("#EXT-X-PLAYLIST-TYPE:VOD\n")
	}
	b.WriteString("#EXT-X-INDEPENDENT-SEGMENTS\n")
	// The per-entry lines are the hot part of a 5000-entry playlist: build
	// the shared URL tail (the query after the fragment number) once and
	// append numbers without fmt.
	var resource, tail string
	if s.Container == FragmentedMP4 {
		resource, tail = "getMP4MediaFragment.mp4?FragmentNumber=", "&SessionToken="+token+"&TrackNumber="+strconv.FormatUint(track, 10)
	} else {
		resource, tail = "getTSFragment.ts?FragmentNumber=", "&SessionToken="+token
	}
	b.Grow(len(w.frags) * (len(resource) + len(tail) + 96))
	var num []byte
	var header int64 = -1
	for i := range w.frags {
		f := &w.frags[i]
		newHeader := f.HeaderID != header
		if i > 0 && s.discontinuity(&w.frags[i-1], f) {
			b.WriteString("#EXT-X-DISCONTINUITY\n")
		}
		if newHeader && s.Container == FragmentedMP4 {
			fmt.Fprintf(&b, "#EXT-X-MAP:URI=\"getMP4InitFragment.mp4?SessionToken=%s&TrackNumber=%d&SequenceNumber=%d\"\n", token, track, f.HeaderID)
		}
		header = f.HeaderID
		if s.ShowTimestamp {
			writeProgramDateTime(&b, s.fragmentTime(f))
		}
		if edge != nil {
			if k := i - (len(w.frags) - len(edge.parts)); k >= 0 {
				writePartLines(&b, f.Number, edge.track, edge.parts[k], tail)
			}
		}
		d := max(f.DurationMs, 1)
		num = append(num[:0], "#EXTINF:"...)
		num = strconv.AppendInt(num, d/1000, 10)
		num = append(num, '.', byte('0'+d%1000/100), byte('0'+d%100/10), byte('0'+d%10), ',', '\n')
		num = append(num, resource...)
		num = append(num, f.Number.String()...)
		b.Write(num)
		b.WriteString(tail)
		b.WriteByte('\n')
	}
	if edge != nil && edge.open != nil {
		writeOpenFragment(&b, s, &w.frags[len(w.frags)-1], edge, tail)
	}
	if w.ended {
		b.WriteString("#EXT-X-ENDLIST\n")
	}
	return b.String()
}

func writeProgramDateTime(b *strings.Builder, ms int64) {
	b.WriteString("#EXT-X-PROGRAM-DATE-TIME:")
	b.WriteString(time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z"))
	b.WriteByte('\n')
}

// discontinuity reports whether f starts a new timeline after prev: always
// in ALWAYS mode, at a gap or overlap of more than 50 ms in ON_DISCONTINUITY
// mode, and in every mode where the track set changes (a new init segment
// is allowed only across a discontinuity).
func (s *Session) discontinuity(prev, f *stream.Fragment) bool {
	switch {
	case f.HeaderID != prev.HeaderID, s.Discontinuity == DiscontinuityAlways:
		return true
	case s.Discontinuity == DiscontinuityOnGap:
		return abs(f.ProducerMs-(prev.ProducerMs+prev.DurationMs)) > 50
	}
	return false
}

func abs(v int64) int64 {
	if v < 0 {
		return -v
	}
	return v
}

// bandwidthOf estimates peak bits per second from fragment sizes.
func bandwidthOf(frags []stream.Fragment) int {
	peak := 0.0
	for _, f := range frags {
		if f.DurationMs > 0 {
			peak = max(peak, float64(f.SizeBytes)*8/(float64(f.DurationMs)/1000))
		}
	}
	return int(peak * 1.1)
}
