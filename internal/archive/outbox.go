package archive

import (
	"github.com/kinema/kinema/internal/stream"
)

// The outbox is how work that a persisted fragment triggers survives a
// crash: CommitFragments writes one outbox row per trigger tag in the same
// transaction that makes the fragment PERSISTED, so a fragment is never
// durable without its pending work, and never the other way round.
// Consumers (internal/notify for notifications, image generation later)
// read the rows of their own Kind, do the work, and record the outcome
// with UpdateOutbox. Fragments without a trigger tag cost nothing extra.

// TriggerKind names the consumer an outbox row is for.
type TriggerKind string

const (
	// TriggerNotification rows are for fragments tagged
	// AWS_KINESISVIDEO_NOTIFICATION.
	TriggerNotification TriggerKind = "notification"
	// TriggerImageGeneration rows are for fragments tagged
	// AWS_KINESISVIDEO_IMAGE_GENERATION.
	TriggerImageGeneration TriggerKind = "image_generation"
)

// triggerTags maps each trigger tag to the kind of row it makes.
var triggerTags = [...]struct {
	tag  string
	kind TriggerKind
}{
	{stream.TagNotification, TriggerNotification},
	{stream.TagImageGeneration, TriggerImageGeneration},
}

// Triggers returns the kinds of outbox row a fragment with these tags
// needs, each once, in a fixed order; nil for a fragment without triggers.
func Triggers(tags []stream.Tag) []TriggerKind {
	var out []TriggerKind
	for _, tt := range triggerTags {
		for _, t := range tags {
			if t.Name == tt.tag {
				out = append(out, tt.kind)
				break
			}
		}
	}
	return out
}

// OutboxState is where an outbox row is in its life.
type OutboxState string

const (
	OutboxPending   OutboxState = "PENDING"   // to be done; the consumer retries it
	OutboxDelivered OutboxState = "DELIVERED" // done
	OutboxDead      OutboxState = "DEAD"      // gave up after the last attempt; can be redriven
	OutboxSkipped   OutboxState = "SKIPPED"   // nothing to do (no configuration, stream deleted)
)

// OutboxEntry is one outbox row: what was triggered, by which fragment
// (copied, so the row outlives the fragment's retention), and how its
// delivery went.
type OutboxEntry struct {
	ID         int64 // grows in commit order, never reused
	Kind       TriggerKind
	StreamID   int64
	Fragment   stream.FragmentNumber
	ProducerMs int64
	ServerMs   int64
	Tags       []stream.Tag
	CreatedMs  int64 // when the fragment was committed PERSISTED

	State         OutboxState
	Attempts      int
	NextMs        int64  // not to be attempted before this time
	LastError     string // of the latest failed attempt
	LastAttemptMs int64
	DoneMs        int64  // when it was delivered, skipped or declared dead
	Destination   string // where the latest attempt went
}

// OutboxUpdate records the outcome of one attempt at an entry.
type OutboxUpdate struct {
	ID            int64
	State         OutboxState
	Attempts      int
	NextMs        int64
	LastError     string
	LastAttemptMs int64
	DoneMs        int64
	Destination   string
}

// OutboxQuery selects entries of one stream (or of every stream when
// StreamID is 0) whose fragment starts, on the server clock, in
// [StartMs, EndMs], optionally of one Kind and one State, ordered by
// (ServerMs, ID) and resuming strictly after (AfterMs, AfterID) when
// AfterID is set.
type OutboxQuery struct {
	StreamID int64
	Kind     TriggerKind
	State    OutboxState
	StartMs  int64
	EndMs    int64
	AfterMs  int64
	AfterID  int64
	Limit    int
}

// NotificationConfig is a stream's notification configuration as
// UpdateNotificationConfiguration sets it.
type NotificationConfig struct {
	Status string // ENABLED or DISABLED
	URI    string
}
