// Package notify delivers KVS notifications: when a fragment the producer
// tagged AWS_KINESISVIDEO_NOTIFICATION is PERSISTED, a message with the KVS
// fields goes to the stream's configured destination, a webhook (http,
// https), an MQTT topic (QoS 1) or a NATS subject (JetStream when a stream
// captures it), or to one of those through an SNS topic ARN mapped in
// Kinema's configuration. The package owns destination parsing and
// validation, the message and its webhook signature, the senders, and the
// delivery loop; docs/notifications.md is its user-facing contract.
//
// # The outbox
//
// The durable trigger is the archive's outbox (archive/outbox.go), not
// this package: the index writes one row per trigger tag of a fragment in
// the transaction that commits the fragment, so a PERSISTED fragment always
// has its row and an unpersisted one never does. The Notifier is an
// outbox.Worker for kind TriggerNotification (that package owns reading
// the rows, the per-stream lanes that keep a stream's messages in fragment
// order, retries with backoff, DEAD and redrive); this package supplies the
// attempt: find the stream's configuration, send the message. A crash
// between sending and recording sends again, so every message carries a
// stable MessageID for receivers to drop duplicates.
//
// Data flows one way: ingest → archive (fragment + outbox row) → this
// package → the destination. Nothing here writes fragments.
package notify
