// Package images turns archived video into still images: GetImages
// (Service.Render), tag-triggered image generation into object storage
// (Generator, with file:// and s3:// destinations) and time-lapse videos
// (Service.Timelapse).
//
// It owns:
//
//   - sampling: which stored frame each sample time shows (the frame at or
//     nearest before it, in the fragment the time falls in, whether or not
//     that fragment starts inside the requested range) and which frames
//     must be decoded for it (from the preceding key frame; a key frame
//     alone when the sample falls on one);
//   - decoding: the frames of many fragments go through one ffmpeg
//     process per request (Decoder), and a few ffmpeg processes are kept
//     started and waiting for input, so that a single image does not pay
//     for starting one;
//   - the S3 object layout and metadata of KVS image delivery.
//
// Why decoding is a child process: no production-quality H.264/H.265
// decoder exists in pure Go, and the kinema binary must stay Apache-2.0
// and build with CGO_ENABLED=0, so FFmpeg's libraries (GPL builds on
// Debian) cannot be linked. Running the ffmpeg program keeps it a separate
// work. Its fixed cost is starting it (about 60-100 ms of loading
// libraries on this class of machine), which the warm processes remove,
// and probing the input, which is skipped: Kinema already knows the codec
// and hands ffmpeg a Matroska stream with the stored CodecPrivate. Frames
// go in as Matroska blocks, so anything ffmpeg decodes from Matroska
// (H.264, H.265, MJPEG, VP8/9, AV1) works, and images come back as
// Matroska blocks with their timestamps, so each image is matched to its
// sample by time, never by counting.
//
// Which frames ffmpeg outputs is chosen without a per-request filter: the
// frames Kinema feeds get new, increasing timestamps in their display
// order, odd for the frames it wants and even for those decoded only as
// references, and a fixed select filter keeps the odd ones. The command
// line therefore depends only on the output settings (format, quality,
// size), which is what lets a process be started before the request that
// will use it arrives.
package images
