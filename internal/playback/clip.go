package playback

import (
	"context"
	"net/http"
	"strconv"

	"github.com/kinema/kinema/internal/apierr"
	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/media/fmp4"
	"github.com/kinema/kinema/internal/stream"
)

// ClipRequest is a GetClip call, checked for shape by the API layer.
type ClipRequest struct {
	Stream   *stream.Stream
	Selector archive.TimestampKind
	StartMs  int64
	EndMs    int64
}

// clipPlan is a progressive MP4 laid out before a byte of media is sent.
type clipPlan struct {
	layout *fmp4.ClipLayout
	frags  []stream.Fragment
	ts     *trackSet
	etag   string // strong ETag of the file (clip session URLs)
}

// planClip lists the range's fragments and lays the MP4 out from their
// sample tables: those ingest stored in the index, or, for fragments
// without one, read from the media. Kinema has no 100 MB / 200-fragment wall; the clip ends
// early only where the track set changes (an MP4 has one sample entry per
// track here), which the response reports in x-kinema-clip-end.
func (p *Server) planClip(ctx context.Context, req ClipRequest) (*clipPlan, error) {
	st := req.Stream
	if st.RetentionHours == 0 {
		return nil, apierr.New("NoDataRetentionException", "stream %s keeps no data", st.Name)
	}
	if req.EndMs <= req.StartMs {
		return nil, apierr.InvalidArg("EndTimestamp must be after StartTimestamp")
	}
	if req.EndMs-req.StartMs > maxRange.Milliseconds() {
		return nil, apierr.InvalidArg("the range may span at most %v", maxRange)
	}
	plan := &clipPlan{}
	var index []fmp4.ClipFragment
	q := archive.FragmentQuery{StreamID: st.ID, Kind: req.Selector, StartMs: req.StartMs, EndMs: req.EndMs, Limit: 1000, SampleTables: true}
	for {
		page, err := p.Archive.Index.Fragments(ctx, q)
		if err != nil {
			return nil, apierr.Internal(err)
		}
		for i := range page {
			f := &page[i]
			if plan.ts == nil {
				if plan.ts, err = p.tracksOf(ctx, f.HeaderID); err != nil {
					return nil, err
				}
			} else if f.HeaderID != plan.frags[0].HeaderID {
				return plan.finish(index)
			}
			cf, err := p.clipIndex(ctx, plan.ts, f)
			if err != nil {
				return nil, err
			}
			f.SampleTable = nil // planned; the plan may be cached
			plan.frags = append(plan.frags, *f)
			index = append(index, cf)
		}
		if len(page) < q.Limit {
			break
		}
		last := page[len(page)-1]
		q.AfterNumber, q.AfterMs = last.Number, last.ServerMs
		if req.Selector == archive.ProducerTimestamp {
			q.AfterMs = last.ProducerMs
		}
	}
	if len(plan.frags) == 0 {
		return nil, apierr.NotFound("stream %s has no fragment in the requested range", st.Name)
	}
	return plan.finish(index)
}

// clipIndex is the fragment's sample table, from the index or else from
// its media.
func (p *Server) clipIndex(ctx context.Context, ts *trackSet, f *stream.Fragment) (fmp4.ClipFragment, error) {
	if f.SampleTable != nil {
		if cf, err := fmp4.ParseClipFragment(f.SampleTable); err == nil {
			return cf, nil
		}
		p.Log.Warn("unreadable sample table in the index; reading the fragment", "fragment", f.Number)
	}
	data, err := p.Archive.Read(ctx, f)
	if err != nil {
		return fmp4.ClipFragment{}, apierr.Internal(err)
	}
	cf, err := fmp4.FragmentIndex(ts.header, ts.tracks, data)
	if err != nil {
		return fmp4.ClipFragment{}, apierr.New("InvalidMediaFrameException", "fragment %s: %v", f.Number, err)
	}
	return cf, nil
}

// clipPayload returns the function that renders fragment i's part of the
// clip's mdat, read back from the archive.
func (p *Server) clipPayload(ctx context.Context, plan *clipPlan) func(i int) ([]byte, error) {
	return func(i int) ([]byte, error) {
		data, err := p.Archive.Read(ctx, &plan.frags[i])
		if err != nil {
			return nil, err
		}
		samples, err := fmp4.FragmentSamples(plan.ts.header, plan.ts.tracks, data, 0)
		if err != nil {
			return nil, err
		}
		// Sized up front: growing a 500 kB payload by appends cost more
		// than everything else in a clip (docs/benchmarks.md).
		_, size := plan.layout.FragmentRange(i)
		return plan.layout.AppendFragmentPayload(make([]byte, 0, size), i, samples)
	}
}

func (plan *clipPlan) finish(index []fmp4.ClipFragment) (*clipPlan, error) {
	layout, err := fmp4.PlanClip(plan.ts.tracks, index)
	if err != nil {
		return nil, apierr.New("InvalidMediaFrameException", "%v", err)
	}
	plan.layout = layout
	plan.etag = etagOf(plan)
	return plan, nil
}

// WriteClip answers GetClip: a progressive MP4 (moov first) of the range,
// streamed fragment by fragment with its length known up front.
func (p *Server) WriteClip(ctx context.Context, w http.ResponseWriter, req ClipRequest) error {
	plan, err := p.planClip(ctx, req)
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", mp4Type)
	h.Set("Content-Length", strconv.FormatInt(plan.layout.Size(), 10))
	last := plan.frags[len(plan.frags)-1]
	h.Set("x-kinema-clip-end", stream.FormatEpochSeconds(last.ProducerMs+last.DurationMs))
	w.WriteHeader(http.StatusOK)
	err = plan.layout.WriteRange(w, 0, plan.layout.Size(), p.clipPayload(ctx, plan))
	if err != nil {
		p.Log.Warn("GetClip ended early", "stream", req.Stream.Name, "err", err)
	}
	return nil
}
