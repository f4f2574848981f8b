// Package mkv reads and writes the Matroska (EBML) streams that KVS
// producers send to PutMedia and that GetMedia and the archive hand back.
//
// It owns three things:
//
//   - Reader: a streaming, event-by-event reader that tolerates what real
//     producers send: unknown-size Segments and Clusters, non-minimal vint
//     sizes, Tags between Clusters, bodies that resume at a Cluster or Tags
//     after an ERROR ack (Options.Header), bodies that start mid-block
//     (Options.MaxResync), and concatenated EBML documents. It bounds memory
//     (sizes are checked against limits and large payloads are read as they
//     arrive, so a lying size never allocates up front) and never panics.
//   - Append* functions: an append-style writer for headers, Tags and
//     Clusters, which re-wraps blocks byte for byte.
//   - EncodeHeaderTracks / DecodeHeaderTracks: a compact, byte-stable
//     serialization of a Header for the archive's database.
//
// Why hand-written: no maintained Go library reads Matroska as a stream of
// events while tolerating unknown sizes and a missing header, bounds memory
// against hostile sizes, and writes the exact layout we need. The
// at-wat/ebml-go module is used only in tests, as an independent oracle.
//
// The package does no I/O of its own beyond the io.Reader it is given: no
// files, no sockets.
package mkv
