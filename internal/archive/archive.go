// Package archive owns durable fragment storage: the contract between the
// ingest path and every reader. Fragment bytes go to a Media store
// (append-only segment files shared by all streams, so one fsync covers many
// cameras and no file is created per fragment); what is where goes to an
// Index (an embedded SQL database). The write path is: append the batch to
// the active segment, fsync it, commit the index rows in one transaction,
// and only then report the fragments durable. See docs/design/storage.md.
package archive

import (
	"context"
	"errors"

	"github.com/kinema/kinema/internal/stream"
)

// Errors every Index reports the same way.
var (
	ErrNotFound    = errors.New("not found")
	ErrExists      = errors.New("already exists")
	ErrTooManyTags = errors.New("too many tags")
)

// Record is one fragment's bytes on their way into a segment.
type Record struct {
	StreamID int64
	Number   stream.FragmentNumber
	Data     []byte
}

// SegmentInfo is the index's view of one segment.
type SegmentInfo struct {
	ID             int64
	CommittedBytes int64 // bytes the index references up to; later bytes are unacknowledged
	LiveFragments  int64
	CreatedMs      int64
	// Node is the node that writes the segment, where several share the
	// index ("" for a node alone).
	Node string
}

// Reclaim is a byte range whose fragment is gone and whose space is to be freed.
type Reclaim struct {
	ID        int64
	SegmentID int64
	Offset    int64
	Length    int64
}

// TimestampKind selects which clock a fragment query ranges over.
type TimestampKind int

const (
	ServerTimestamp TimestampKind = iota
	ProducerTimestamp
)

// FragmentQuery selects fragments of one stream whose start lies in
// [StartMs, EndMs] on the chosen clock, ordered by that clock and then by
// fragment number, resuming strictly after (AfterMs, AfterNumber) when
// AfterNumber is set.
type FragmentQuery struct {
	StreamID    int64
	Kind        TimestampKind
	StartMs     int64
	EndMs       int64
	AfterMs     int64
	AfterNumber stream.FragmentNumber
	Limit       int
	// SampleTables fills each fragment's SampleTable, which other queries
	// leave out (they are most of a row's size and only clips need them).
	SampleTables bool
	// Brief leaves Location and Tags out: what playlists need of thousands
	// of fragments, at about half the cost per row.
	Brief bool
}

// Media stores fragment bytes. Implementations append to segments and read
// byte ranges back; which ranges are live is the Index's business.
type Media interface {
	// Append writes the records to the segment with the given id at its
	// current end, makes them durable, and returns where each landed and the
	// segment's new end. A returned error means none of them may be referenced.
	Append(ctx context.Context, segmentID int64, recs []Record) (locs []stream.Location, end int64, err error)
	// ReadAt returns the bytes at loc.
	ReadAt(ctx context.Context, loc stream.Location) ([]byte, error)
	// Free releases the space of byte ranges no fragment references any more.
	Free(ctx context.Context, segmentID int64, ranges [][2]int64) error
	// Truncate cuts a segment back to size (recovery of an unacknowledged tail).
	Truncate(ctx context.Context, segmentID int64, size int64) error
	// Remove deletes a whole segment.
	Remove(ctx context.Context, segmentID int64) error
	// List returns the ids of every segment present.
	List(ctx context.Context) ([]int64, error)
	// Close releases open handles.
	Close() error
}

// Index is the metadata store. Every implementation passes the same
// conformance tests (indextest). Methods that take a stream id act on
// streams not marked deleted unless they say otherwise.
type Index interface {
	CreateStream(ctx context.Context, s *stream.Stream, tags map[string]string) error
	StreamByName(ctx context.Context, account, name string) (*stream.Stream, error)
	StreamByID(ctx context.Context, id int64) (*stream.Stream, error)
	// ListStreams returns streams of the account, by name, with names that begin
	// with prefix and sort after `after`.
	ListStreams(ctx context.Context, account, prefix, after string, limit int) ([]stream.Stream, error)
	// UpdateStream runs fn on the current stream inside a transaction and stores
	// the result; an error from fn aborts it.
	UpdateStream(ctx context.Context, id int64, fn func(*stream.Stream) error) (*stream.Stream, error)
	// DeleteStream marks the stream deleted: from now on it is not found and its
	// name is free; its fragments are purged in the background.
	DeleteStream(ctx context.Context, id int64) error
	StreamTags(ctx context.Context, id int64) (map[string]string, error)
	// TagStream sets and removes tags; the result may hold at most max tags.
	TagStream(ctx context.Context, id int64, set map[string]string, remove []string, max int) error

	PutHeader(ctx context.Context, streamID int64, data []byte) (int64, error)
	// Header returns a stored track set and the stream it belongs to.
	Header(ctx context.Context, id int64) (streamID int64, data []byte, err error)
	LastHeader(ctx context.Context, streamID int64) (int64, []byte, error)

	NewSegment(ctx context.Context) (int64, error)
	Segments(ctx context.Context) ([]SegmentInfo, error)
	// CommitFragments records fragments stored in segment segmentID and moves the
	// segment's committed end to end, atomically; ErrNotFound (and nothing
	// recorded) if the segment is not registered, or no longer. In the same transaction it
	// writes one pending outbox row per trigger of each fragment (Triggers),
	// due at once; fragments without triggers write nothing more.
	CommitFragments(ctx context.Context, segmentID, end int64, frags []stream.Fragment) error
	// ReserveFragmentNumbers durably reserves n fresh fragment numbers and
	// returns the first; numbers are never handed out twice, even across crashes.
	ReserveFragmentNumbers(ctx context.Context, n int64) (stream.FragmentNumber, error)
	Fragment(ctx context.Context, streamID int64, n stream.FragmentNumber) (*stream.Fragment, error)
	Fragments(ctx context.Context, q FragmentQuery) ([]stream.Fragment, error)
	// FragmentsAfter returns fragments of the stream with numbers above n, in number order.
	FragmentsAfter(ctx context.Context, streamID int64, n stream.FragmentNumber, limit int) ([]stream.Fragment, error)
	// LatestFragments returns the stream's newest n fragments by number, oldest first.
	LatestFragments(ctx context.Context, streamID int64, n int) ([]stream.Fragment, error)
	// CountFragments counts the stream's fragments that start at or after
	// fromMs on the chosen clock and come before the fragment (beforeMs,
	// before) in (time, number) order: that fragment's position in a
	// playlist starting at fromMs.
	CountFragments(ctx context.Context, streamID int64, kind TimestampKind, fromMs, beforeMs int64, before stream.FragmentNumber) (int64, error)
	// LatestFragment returns ErrNotFound for an empty stream.
	LatestFragment(ctx context.Context, streamID int64) (*stream.Fragment, error)
	// FragmentAtOrBefore returns the fragment that starts last at or before
	// ms on the chosen clock (the higher number on a tie): the one a point
	// in time falls in, if any does. ErrNotFound when none starts that early.
	FragmentAtOrBefore(ctx context.Context, streamID int64, kind TimestampKind, ms int64) (*stream.Fragment, error)

	// ImageGenerationConfig returns the stream's image generation
	// configuration; ErrNotFound when it has none.
	ImageGenerationConfig(ctx context.Context, streamID int64) (*stream.ImageGenerationConfig, error)
	// SetImageGenerationConfig stores the stream's configuration, replacing
	// any; nil deletes it. ErrNotFound when the stream is not live.
	SetImageGenerationConfig(ctx context.Context, streamID int64, c *stream.ImageGenerationConfig) error

	// ExpireFragments deletes up to limit fragments of the stream (deleted or not)
	// that started before serverBeforeMs, queueing their bytes for reclaim.
	ExpireFragments(ctx context.Context, streamID int64, serverBeforeMs int64, limit int) (int, error)
	// RetentionStreams lists live streams with their retention in hours.
	RetentionStreams(ctx context.Context) (map[int64]int, error)
	// DeletedStreams lists streams marked deleted whose purge is not finished.
	DeletedStreams(ctx context.Context) ([]int64, error)
	// PurgeStream removes a deleted stream that has no fragments left.
	PurgeStream(ctx context.Context, id int64) error
	Reclaims(ctx context.Context, limit int) ([]Reclaim, error)
	ReclaimsDone(ctx context.Context, ids []int64) error
	// DropSegment forgets a segment without live fragments.
	DropSegment(ctx context.Context, id int64) error

	// The outbox (outbox.go). CommitFragments writes the rows.

	// PendingOutbox returns pending entries of the kind with ids above
	// afterID, by id: what a consumer has not seen yet.
	PendingOutbox(ctx context.Context, kind TriggerKind, afterID int64, limit int) ([]OutboxEntry, error)
	// UpdateOutbox records attempt outcomes, all in one transaction. Only
	// rows still PENDING take an outcome: a late one, from a node whose
	// lease has passed to another, cannot undo what the other recorded.
	UpdateOutbox(ctx context.Context, updates []OutboxUpdate) error
	// OutboxEntries runs an events query.
	OutboxEntries(ctx context.Context, q OutboxQuery) ([]OutboxEntry, error)
	// OutboxEntry returns one entry.
	OutboxEntry(ctx context.Context, id int64) (*OutboxEntry, error)
	// RedriveOutbox makes DEAD entries of the kind pending again with no
	// attempts, due at nowMs, and returns them: those with the given ids,
	// or when ids is empty every dead one of the stream (every stream when
	// streamID is 0).
	RedriveOutbox(ctx context.Context, kind TriggerKind, streamID int64, ids []int64, nowMs int64) ([]OutboxEntry, error)
	// PruneOutbox deletes up to limit DELIVERED and SKIPPED entries that
	// finished before doneBeforeMs; pending and dead ones are kept.
	PruneOutbox(ctx context.Context, doneBeforeMs int64, limit int) (int, error)

	// TryLease takes the lease called name (lease.go) if no one holds it,
	// here or on another node sharing the index, and returns nil without
	// an error when someone does. A lease ends with Release, with Close,
	// or when the index loses the session that holds it.
	TryLease(ctx context.Context, name string) (Lease, error)

	// NotificationConfig returns the stream's notification configuration,
	// ErrNotFound when it has none.
	NotificationConfig(ctx context.Context, streamID int64) (*NotificationConfig, error)
	// SetNotificationConfig stores the configuration; nil deletes it.
	SetNotificationConfig(ctx context.Context, streamID int64, c *NotificationConfig) error

	Close() error
}

// GeneratedFragments describes synthetic fragment rows that an index with
// a GenerateFragments method (pgindex, sqlindex) inserts in one statement
// inside the database instead of row by row: `kinema bench index` fills
// 100 million rows this way. Row r (0 <= r <
// Count) is fragment First+r of stream Streams[(Row0+r) % len(Streams)],
// starting on the server clock at T0Ms + (Row0+r)/len(Streams)*DurationMs
// (ProducerLagMs earlier on the producer's), stored at SegmentOffset +
// r*Stride in SegmentID. The rows look like what CommitFragments writes
// for an untagged fragment without a sample table, and the segment's
// committed end and live count move the same way.
type GeneratedFragments struct {
	First                       stream.FragmentNumber
	Count, Row0                 int64
	Streams                     []int64
	T0Ms, DurationMs            int64
	ProducerLagMs               int64
	HeaderID, SegmentID         int64
	SegmentOffset, Stride, Size int64
}
