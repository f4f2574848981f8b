// Package stream holds Kinema's domain types: streams, fragments, tracks,
// fragment numbers and the time units they are measured in. It does no I/O
// and imports nothing of Kinema's, so every other package can share it.
package stream
