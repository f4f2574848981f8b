// Package producer is Kinema's PutMedia client: it plays the part of the
// KVS producer SDK on the wire. It owns
//
//   - reading media: OpenFile remuxes any file ffmpeg reads into Matroska
//     without re-encoding and keeps its frames in memory; ReadMatroska does
//     the same for an MKV stream;
//   - fragment planning: Media.Fragments groups frames into fragments the way
//     the SDK does (a new fragment at each video key frame);
//   - the PutMedia session: Put resolves the stream (DescribeStream, optional
//     CreateStream, GetDataEndpoint), streams one chunked, SigV4-signed
//     PutMedia body laid out byte for byte as the SDK writes it, reads the
//     acks concurrently and measures ack latency; PutRaw sends arbitrary
//     bytes for tests of bad input;
//   - the `kinema put` command (RunPut).
//
// It is used by the CLI, by integration tests that need tagged streams, and
// by the ingest benchmark, which runs hundreds of paced Puts that share one
// Media. Media and plans are never modified by Put, so sharing them between
// goroutines is safe.
//
// Why a client of our own rather than the SDK: the official producer SDK is
// C, needs cgo and a build of its own, and cannot be driven from Go tests or
// paced by hundreds in one process.
package producer
