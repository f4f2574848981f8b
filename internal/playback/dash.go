package playback

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/kinema/kinema/internal/apierr"
	"github.com/kinema/kinema/internal/media/fmp4"
	"github.com/kinema/kinema/internal/stream"
)

const mpdType = "application/dash+xml"

// manifest renders the session's MPD: static for ON_DEMAND (and a finished
// LIVE_REPLAY), dynamic otherwise. Segments are addressed by explicit URLs
// (SegmentList) on a SegmentTimeline in milliseconds of the fragments' own
// media time, since fragment numbers do not count up by one.
func (p *Server) manifest(ctx context.Context, token string, s *Session) ([]byte, string, error) {
	w, err := p.window(ctx, s)
	if err != nil {
		return nil, "", apierr.Internal(err)
	}
	if len(w.frags) == 0 && w.ended {
		return nil, "", apierr.NotFound("no fragment in the session's range")
	}
	headerID, err := p.headerFor(ctx, s, w)
	if err != nil {
		return nil, "", err
	}
	if len(w.frags) > 0 {
		headerID = w.frags[0].HeaderID // codec private data may not change within a DASH session
	}
	ts, err := p.tracksOf(ctx, headerID)
	if err != nil {
		return nil, "", err
	}
	return []byte(renderMPD(token, s, w, ts.tracks, headerID, p.now())), mpdType, nil
}

func isoDuration(ms int64) string {
	return fmt.Sprintf("PT%d.%03dS", ms/1000, ms%1000)
}

func renderMPD(token string, s *Session, w *window, tracks []*fmp4.Track, headerID int64, now time.Time) string {
	var b strings.Builder
	static := w.ended
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>` + "\n")
	b.WriteString(`<MPD xmlns="urn:mpeg:dash:schema:mpd:2011" xmlns:kvs="https://kinema.dev/ns/kvs" profiles="urn:mpeg:dash:profile:isoff-live:2011" minBufferTime="PT2S"`)
	var frags []stream.Fragment
	for _, f := range w.frags {
		if f.HeaderID == headerID {
			frags = append(frags, f)
		}
	}
	var first, total int64
	if len(frags) > 0 {
		first = frags[0].ProducerMs
		last := frags[len(frags)-1]
		total = last.ProducerMs + last.DurationMs - first
	}
	if static {
		fmt.Fprintf(&b, ` type="static" mediaPresentationDuration="%s">`+"\n", isoDuration(max(total, 1)))
		fmt.Fprintf(&b, "  <Period id=\"0\" start=\"PT0S\">\n")
	} else {
		// Media time is the producer's epoch time, so the presentation
		// starts at the epoch and the live edge is "now".
		fmt.Fprintf(&b, ` type="dynamic" availabilityStartTime="1970-01-01T00:00:00Z" publishTime="%s" minimumUpdatePeriod="PT1S" timeShiftBufferDepth="%s" suggestedPresentationDelay="PT3S">`+"\n",
			now.UTC().Format("2006-01-02T15:04:05.000Z"), isoDuration(max(total, 10_000)+10_000))
		fmt.Fprintf(&b, "  <Period id=\"0\" start=\"PT0S\">\n")
		first = 0
	}
	for _, t := range tracks {
		mime := "video/mp4"
		if t.Kind != fmp4.Video {
			mime = "audio/mp4"
		}
		fmt.Fprintf(&b, "    <AdaptationSet id=\"%d\" mimeType=\"%s\" segmentAlignment=\"true\" startWithSAP=\"1\">\n", t.Number, mime)
		fmt.Fprintf(&b, "      <Representation id=\"%d\" codecs=\"%s\" bandwidth=\"%d\"", t.Number, t.Codec, max(bandwidthOf(frags), 1))
		if t.Kind == fmp4.Video {
			fmt.Fprintf(&b, " width=\"%d\" height=\"%d\"", t.Width, t.Height)
			if t.FrameRate > 0 {
				fmt.Fprintf(&b, " frameRate=\"%.3f\"", t.FrameRate)
			}
		} else {
			fmt.Fprintf(&b, " audioSamplingRate=\"%d\"", t.SampleRate)
		}
		b.WriteString(">\n")
		fmt.Fprintf(&b, "        <SegmentList timescale=\"1000\" presentationTimeOffset=\"%d\">\n", first)
		fmt.Fprintf(&b, "          <Initialization sourceURL=\"getMP4InitFragment.mp4?SessionToken=%s&amp;TrackNumber=%d&amp;SequenceNumber=%d\"/>\n", token, t.Number, headerID)
		b.WriteString("          <SegmentTimeline>\n")
		for _, f := range frags {
			fmt.Fprintf(&b, "            <S t=\"%d\" d=\"%d\"", f.ProducerMs, max(f.DurationMs, 1))
			if s.ShowTimestamp {
				fmt.Fprintf(&b, " kvs:ts=\"%s\"", stream.FormatEpochSeconds(s.fragmentTime(&f)))
			}
			if s.ShowNumber {
				fmt.Fprintf(&b, " kvs:fn=\"%s\"", f.Number)
			}
			b.WriteString("/>\n")
		}
		b.WriteString("          </SegmentTimeline>\n")
		for _, f := range frags {
			fmt.Fprintf(&b, "          <SegmentURL media=\"getMP4MediaFragment.mp4?FragmentNumber=%s&amp;SessionToken=%s&amp;TrackNumber=%d\"/>\n", f.Number, token, t.Number)
		}
		b.WriteString("        </SegmentList>\n      </Representation>\n    </AdaptationSet>\n")
	}
	b.WriteString("  </Period>\n")
	if !static {
		// Players must agree with the server on "now" to find the live edge;
		// without this dash.js asks a public time server.
		fmt.Fprintf(&b, "  <UTCTiming schemeIdUri=\"urn:mpeg:dash:utc:direct:2014\" value=\"%s\"/>\n", now.UTC().Format("2006-01-02T15:04:05.000Z"))
	}
	b.WriteString("</MPD>\n")
	return b.String()
}
