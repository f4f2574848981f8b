// Package fmp4 turns stored fragments (one Matroska Cluster each, as the
// archive keeps them) into what players fetch: fragmented-MP4 init and media
// segments (HLS fMP4, DASH), MPEG-TS segments (HLS TS) and progressive MP4
// files (GetClip). It is pure format code: bytes in, bytes out; no files, no
// sockets, no HTTP.
//
// It owns:
//
//   - the track model (TracksFromHeader): which MKV tracks are playable,
//     their RFC 6381 codec strings, sizes, rates, and the KVS error each bad
//     track maps to (ErrUnsupportedCodec, ErrMissingCodecPrivate,
//     ErrInvalidCodecPrivate, ErrInvalidMediaFrame);
//   - the timing model (FragmentSamples): MKV stores presentation times only,
//     so decode times are derived here, with one rule for every output format;
//   - the MP4 writers (AppendInit, AppendMediaSegment, PlanClip), the MPEG-TS
//     writer (AppendTS, TSState).
//
// What comes from github.com/bluenviron/mediacommon: parameter-set and
// AudioSpecificConfig parsing (h264.SPS, h265.SPS, mpeg4audio), and the
// MPEG-TS packetizer (mpegts.Writer: PAT/PMT, PES, PCR, ADTS, AUDs). These are
// bit-level parsers and a muxer with many details that are easy to get wrong
// and gain nothing from being rewritten.
//
// What is hand-written, and why:
//
//   - The MP4 boxes. mediacommon's box writers (fmp4.Init, fmp4.Part,
//     pmp4.Presentation) rebuild avcC/hvcC from a single SPS and PPS (dropping
//     extra parameter sets and the High-profile avcC fields, and refusing an
//     hvcC without VPS), know no G.711 sample entry, marshal through
//     reflection into a seekable buffer (the media payload is copied twice),
//     and write a progressive MP4 only as a whole stream. Here the avcC/hvcC
//     and AudioSpecificConfig are copied verbatim from the CodecPrivate, a
//     media segment is appended into the caller's buffer with one copy of the
//     payload (see BenchmarkAppendMediaSegment), and a progressive MP4 is
//     planned from sample tables alone so that HTTP Range requests can be
//     answered without building the file (ClipLayout).
//   - The Matroska cluster walk. The mkv.Reader is a streaming reader and
//     must copy every block; a stored cluster is already in memory, so it is
//     walked in place and samples alias the caller's bytes.
//   - Decode-time derivation, continuity counters across TS segments, and
//     the clip layout, which no library offers in the shape needed here.
package fmp4
