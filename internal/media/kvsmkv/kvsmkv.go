// Package kvsmkv lays archived fragments out as the MKV that KVS readers
// (GetMedia, GetMediaForFragmentList) deliver: per fragment a Tags element
// naming it (fragment number, server and producer timestamps), the Cluster,
// the producer's own tags, then any trailing service tags. Pure byte layout:
// no files, no sockets.
//
// KVS starts every fragment with its own EBML header and Segment. Players
// such as ffmpeg do not follow a chain of Segments (they stop, or complain at
// every new one), so a Kinema response is one EBML document with one Segment
// whose Info and Tracks are written once, and again (in a new document) only
// when the track set changes. KVS parsers read both layouts; see
// docs/compatibility.md.
package kvsmkv

import (
	"strconv"

	"github.com/kinema/kinema/internal/media/mkv"
	"github.com/kinema/kinema/internal/stream"
)

// Tag names KVS writes into the MKV it serves.
const (
	TagFragmentNumber        = "AWS_KINESISVIDEO_FRAGMENT_NUMBER"
	TagServerTimestamp       = "AWS_KINESISVIDEO_SERVER_TIMESTAMP"
	TagProducerTimestamp     = "AWS_KINESISVIDEO_PRODUCER_TIMESTAMP"
	TagServerSideTimestamp   = "AWS_KINESISVIDEO_SERVER_SIDE_TIMESTAMP"
	TagProducerSideTimestamp = "AWS_KINESISVIDEO_PRODUCER_SIDE_TIMESTAMP"
	TagMillisBehindNow       = "AWS_KINESISVIDEO_MILLIS_BEHIND_NOW"
	TagContinuationToken     = "AWS_KINESISVIDEO_CONTINUATION_TOKEN"
	TagErrorCode             = "AWS_KINESISVIDEO_ERROR_CODE"
	TagErrorID               = "AWS_KINESISVIDEO_ERROR_ID"
)

// Flavor picks the timestamp tag names: GetMedia and
// GetMediaForFragmentList spell them differently.
type Flavor int

const (
	GetMedia Flavor = iota
	FragmentList
)

// Writer lays out one response: it opens a document when the first fragment
// comes or the track set changes, and appends fragments to it.
type Writer struct {
	Flavor    Flavor
	headerID  int64
	open      bool // a Segment is open
	hasTracks bool // and carries Info and Tracks
}

func (w *Writer) startDocument(dst []byte) []byte {
	dst = mkv.AppendEBMLHeader(dst)
	w.open, w.hasTracks = true, false
	return mkv.AppendSegmentStart(dst)
}

// AppendFragment appends one fragment. headerID identifies the track set and
// header is its Info and Tracks elements (as the archive stores them,
// mkv.EncodeHeaderTracks), cluster is the stored Cluster, trailer
// holds service tags to add after the producer's (nil for none).
func (w *Writer) AppendFragment(dst []byte, headerID int64, header []byte, f *stream.Fragment, cluster []byte, trailer []mkv.SimpleTag) []byte {
	if !w.open || !w.hasTracks || headerID != w.headerID {
		if !w.open || w.hasTracks {
			dst = w.startDocument(dst)
		}
		dst = append(dst, header...)
		w.headerID, w.hasTracks = headerID, true
	}
	serverTag, producerTag := TagServerTimestamp, TagProducerTimestamp
	if w.Flavor == FragmentList {
		serverTag, producerTag = TagServerSideTimestamp, TagProducerSideTimestamp
	}
	dst = mkv.AppendTags(dst, []mkv.SimpleTag{
		{Name: TagFragmentNumber, Value: f.Number.String()},
		{Name: serverTag, Value: stream.FormatEpochSeconds(f.ServerMs)},
		{Name: producerTag, Value: stream.FormatEpochSeconds(f.ProducerMs)},
	})
	dst = append(dst, cluster...)
	for _, t := range f.Tags {
		dst = mkv.AppendTags(dst, []mkv.SimpleTag{{Name: t.Name, Value: t.Value}})
	}
	if len(trailer) > 0 {
		dst = mkv.AppendTags(dst, trailer)
	}
	return dst
}

// AppendError appends an in-band error in place of a fragment, as KVS does
// when a fragment of a list cannot be served: a Tags element with the error
// and the fragment it concerns.
func (w *Writer) AppendError(dst []byte, code string, id int, fragmentNumber string) []byte {
	if !w.open {
		dst = w.startDocument(dst)
	}
	tags := []mkv.SimpleTag{
		{Name: TagErrorCode, Value: code},
		{Name: TagErrorID, Value: strconv.Itoa(id)},
	}
	if fragmentNumber != "" {
		tags = append(tags, mkv.SimpleTag{Name: TagFragmentNumber, Value: fragmentNumber})
	}
	return mkv.AppendTags(dst, tags)
}

// GetMediaTrailer is the tag set GetMedia puts after each fragment.
func GetMediaTrailer(millisBehindNow int64, continuationToken string) []mkv.SimpleTag {
	return []mkv.SimpleTag{
		{Name: TagMillisBehindNow, Value: strconv.FormatInt(max(0, millisBehindNow), 10)},
		{Name: TagContinuationToken, Value: continuationToken},
	}
}
