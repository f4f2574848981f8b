package kvsapi

import (
	"github.com/kinema/kinema/internal/apierr"

	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/stream"
)

type timestampRange struct {
	StartTimestamp *stream.EpochSeconds `json:"StartTimestamp"`
	EndTimestamp   *stream.EpochSeconds `json:"EndTimestamp"`
}

type fragmentSelector struct {
	FragmentSelectorType *string         `json:"FragmentSelectorType"`
	TimestampRange       *timestampRange `json:"TimestampRange"`
}

// timeRange reads a selector that must give its type and both ends of its
// range (ListFragments, GetClip); field names it in errors.
func (sel *fragmentSelector) timeRange(field string) (archive.TimestampKind, int64, int64, error) {
	if sel == nil || sel.FragmentSelectorType == nil || sel.TimestampRange == nil ||
		sel.TimestampRange.StartTimestamp == nil || sel.TimestampRange.EndTimestamp == nil {
		return 0, 0, 0, apierr.InvalidArg("%s needs FragmentSelectorType and a TimestampRange with StartTimestamp and EndTimestamp", field)
	}
	kind, err := selectorKind("FragmentSelectorType", *sel.FragmentSelectorType)
	if err != nil {
		return 0, 0, 0, err
	}
	return kind, sel.TimestampRange.StartTimestamp.Ms(), sel.TimestampRange.EndTimestamp.Ms(), nil
}

type listFragmentsInput struct {
	streamRef
	MaxResults       *int64            `json:"MaxResults"`
	NextToken        *string           `json:"NextToken"`
	FragmentSelector *fragmentSelector `json:"FragmentSelector"`
}

type fragmentOut struct {
	FragmentNumber               string              `json:"FragmentNumber"`
	FragmentSizeInBytes          int64               `json:"FragmentSizeInBytes"`
	ProducerTimestamp            stream.EpochSeconds `json:"ProducerTimestamp"`
	ServerTimestamp              stream.EpochSeconds `json:"ServerTimestamp"`
	FragmentLengthInMilliseconds int64               `json:"FragmentLengthInMilliseconds"`
}

func selectorKind(field, v string) (archive.TimestampKind, error) {
	switch v {
	case "SERVER_TIMESTAMP":
		return archive.ServerTimestamp, nil
	case "PRODUCER_TIMESTAMP":
		return archive.ProducerTimestamp, nil
	}
	return 0, apierr.InvalidArg("%s %q is not one of [PRODUCER_TIMESTAMP SERVER_TIMESTAMP]", field, v)
}

// listCursor is what a ListFragments NextToken carries: the query and where
// the last page ended, so a token alone continues it.
type listCursor struct {
	kind        archive.TimestampKind
	start, end  int64
	afterMs     int64
	afterNumber stream.FragmentNumber
	streamID    int64
}

func (lc listCursor) encode() string {
	return encodeCursor("lf1", int64(lc.kind), lc.start, lc.end, lc.afterMs, int64(lc.afterNumber), lc.streamID)
}

func decodeListCursor(tok string) (listCursor, error) {
	n, err := decodeCursor(tok, "lf1", 6)
	if err != nil {
		return listCursor{}, err
	}
	return listCursor{kind: archive.TimestampKind(n[0]), start: n[1], end: n[2], afterMs: n[3],
		afterNumber: stream.FragmentNumber(n[4]), streamID: n[5]}, nil
}

func (s *Server) listFragments(c *call) (any, error) {
	var in listFragmentsInput
	if err := c.decode(&in); err != nil {
		return nil, err
	}
	limit := int64(1000)
	if in.MaxResults != nil {
		if *in.MaxResults < 1 || *in.MaxResults > 1000 {
			return nil, apierr.InvalidArg("MaxResults must be 1 to 1000; got %d", *in.MaxResults)
		}
		limit = *in.MaxResults
	}
	st, err := s.resolve(c.ctx, in.streamRef)
	if err != nil {
		return nil, err
	}
	var cur listCursor
	switch {
	case in.NextToken != nil:
		if cur, err = decodeListCursor(*in.NextToken); err != nil {
			return nil, err
		}
		if cur.streamID != st.ID {
			return nil, apierr.InvalidArg("NextToken belongs to another stream")
		}
	case in.FragmentSelector != nil:
		kind, start, end, err := in.FragmentSelector.timeRange("FragmentSelector")
		if err != nil {
			return nil, err
		}
		if end < start {
			return nil, apierr.InvalidArg("EndTimestamp must not be before StartTimestamp")
		}
		cur = listCursor{kind: kind, start: start, end: end, streamID: st.ID}
	default:
		// Without a selector, KVS lists the stream from its beginning.
		cur = listCursor{kind: archive.ServerTimestamp, start: 0, end: 1 << 62, streamID: st.ID}
	}
	frags, err := s.cfg.Archive.Index.Fragments(c.ctx, archive.FragmentQuery{
		StreamID: st.ID, Kind: cur.kind, StartMs: cur.start, EndMs: cur.end,
		AfterMs: cur.afterMs, AfterNumber: cur.afterNumber, Limit: int(limit) + 1,
	})
	if err != nil {
		return nil, apierr.Internal(err)
	}
	out := struct {
		Fragments []fragmentOut `json:"Fragments"`
		NextToken string        `json:"NextToken,omitempty"`
	}{Fragments: []fragmentOut{}}
	for i, f := range frags {
		if int64(i) == limit {
			last := frags[i-1]
			cur.afterNumber, cur.afterMs = last.Number, last.ServerMs
			if cur.kind == archive.ProducerTimestamp {
				cur.afterMs = last.ProducerMs
			}
			out.NextToken = cur.encode()
			break
		}
		out.Fragments = append(out.Fragments, fragmentOut{
			FragmentNumber: f.Number.String(), FragmentSizeInBytes: f.SizeBytes,
			ProducerTimestamp: stream.EpochSeconds(f.ProducerMs), ServerTimestamp: stream.EpochSeconds(f.ServerMs),
			FragmentLengthInMilliseconds: f.DurationMs,
		})
	}
	return out, nil
}
