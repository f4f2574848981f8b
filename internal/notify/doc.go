// Package notify delivers KVS notifications: when a fragment the producer
// tagged AWS_KINESISVIDEO_NOTIFICATION is PERSISTED, a message with the KVS
// fields goes to the stream's configured destination, a webhook (http,
// https), an MQTT topic (QoS 1) or a NATS subject (JetStream when a stream
// captures it), or to one of those through an SNS topic ARN mapped in
// Kinema's configuration. The package owns destination parsing and
// validation, the message and its webhook signature, the senders, and the
// delivery loop; docs/notifications.md is its user-facing contract.
//
// # The outbox and its consumers
//
// The durable trigger is the archive's outbox (archive/outbox.go), not
// this package: the index writes one row per trigger tag of a fragment in
// the transaction that commits the fragment, so a PERSISTED fragment always
// has its row and an unpersisted one never does. Every consumer of the
// outbox, this package for kind TriggerNotification and image generation
// for kind TriggerImageGeneration, keeps the same contract:
//
//   - Read only rows of its own kind: PendingOutbox(kind, afterID) from id 0
//     at start (rows pending from before a crash), then after the highest id
//     seen each time Archive.WatchTriggers fires. Ids grow in commit order
//     and are never reused, so nothing is skipped.
//   - Record every attempt with UpdateOutbox: PENDING with Attempts and
//     NextMs for a retry, DELIVERED when done, SKIPPED when there is nothing
//     to do (no or disabled configuration, stream deleted), DEAD after the
//     last attempt. A crash between doing the work and recording it repeats
//     the work: delivery is at least once, so the work must be idempotent
//     or carry a stable id (MessageID here).
//   - Never hold a row's data elsewhere: the row carries the fragment's
//     times and tags, so it can be processed after the fragment expired.
//   - DEAD rows come back with RedriveOutbox; the consumer takes the rows it
//     returns into its queue.
//   - Finished rows (DELIVERED, SKIPPED) are pruned by the archive janitor.
//
// Data flows one way: ingest → archive (fragment + outbox row) → this
// package → the destination. Nothing here writes fragments.
//
// # Delivery
//
// The Notifier keeps one in-memory lane per stream: a stream's messages go
// out one at a time, in fragment order, so a receiver sees them in order;
// streams do not wait for each other. A failed attempt is retried after an
// exponential backoff with jitter, at the head of its lane; after
// MaxAttempts the row is DEAD and the lane moves on.
package notify
