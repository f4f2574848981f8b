package images

import (
	"fmt"
	"math"
	"strconv"
)

// Format is an image encoding.
type Format int

// Image formats, as GetImages and the image generation configuration name them.
const (
	JPEG Format = iota
	PNG
)

// ParseFormat reads the KVS name of a format.
func ParseFormat(s string) (Format, bool) {
	switch s {
	case "JPEG":
		return JPEG, true
	case "PNG":
		return PNG, true
	}
	return 0, false
}

func (f Format) String() string {
	if f == PNG {
		return "PNG"
	}
	return "JPEG"
}

// Extension is the file name extension of the format, as KVS writes S3 keys.
func (f Format) Extension() string {
	if f == PNG {
		return "png"
	}
	return "jpg"
}

// ContentType is the MIME type of the format.
func (f Format) ContentType() string {
	if f == PNG {
		return "image/png"
	}
	return "image/jpeg"
}

// DefaultJPEGQuality is KVS's default JPEGQuality.
const DefaultJPEGQuality = 80

// Output says how images are encoded. Width and Height follow the KVS
// rules: both set, the image is stretched to exactly that size; one set,
// the other follows the source's aspect ratio; neither, the source size.
type Output struct {
	Format  Format
	Quality int // JPEG quality 1-100 on libjpeg's scale; 0 means DefaultJPEGQuality
	Width   int // 0: not given
	Height  int // 0: not given
}

// jpegQScale maps a JPEG quality (1-100, libjpeg's scale) onto ffmpeg's
// MJPEG quantizer scale (1-31). libjpeg multiplies its base tables by
// S = 5000/Q % (Q < 50) or 200-2Q %; ffmpeg's MJPEG tables are its
// intra matrix times q/8. Equal mean AC quantizers give q = 0.1395 S
// (measured from the DQT segments ffmpeg 5.1 writes), so quality 80 is
// q 6 and quality 90 is q 3.
func jpegQScale(quality int) int {
	if quality <= 0 {
		quality = DefaultJPEGQuality
	}
	quality = min(quality, 100)
	s := 200 - 2*float64(quality)
	if quality < 50 {
		s = 5000 / float64(quality)
	}
	return min(max(int(math.Round(0.1395*s)), 1), 31)
}

// scaleFilter is the scale step for the requested size, "" for the source size.
func (o Output) scaleFilter() string {
	w, h := o.Width, o.Height
	switch {
	case w > 0 && h > 0:
	case w > 0:
		h = -1 // follow the aspect ratio
	case h > 0:
		w = -1
	default:
		return ""
	}
	// setsar=1: a stretched image is exactly w x h pixels, not an image
	// whose pixel aspect ratio undoes the stretch.
	return fmt.Sprintf(",scale=%d:%d,setsar=1", w, h)
}

// selectTargets keeps the frames whose fed timestamp is odd (see the
// package comment).
const selectTargets = "select=eq(mod(pts\\,2)\\,1)"

// encoderArgs are the ffmpeg output options of an image format.
func (o Output) encoderArgs() []string {
	if o.Format == PNG {
		return []string{"-c:v", "png"}
	}
	return []string{"-c:v", "mjpeg", "-qmin", "1", "-qmax", "31", "-q:v", strconv.Itoa(jpegQScale(o.Quality))}
}

// imageArgs is the whole ffmpeg command line (without the program) that
// turns a Matroska stream of fed frames on stdin into a Matroska stream of
// images on stdout.
func (o Output) imageArgs() []string {
	// The encoder's time base must be the fed one: by default it is 1/25 s
	// when the input has no frame rate, which would merge timestamps.
	args := append(inputArgs(), "-map", "0:v:0", "-vf", selectTargets+o.scaleFilter(), "-fps_mode", "passthrough",
		"-enc_time_base", "1:1000")
	args = append(args, o.encoderArgs()...)
	return append(args, "-f", "matroska", "pipe:1")
}

// renderArgs is the command line of a GetImages request of n samples. A
// single sample decodes one frame or one GOP, which frame threads cannot
// speed up: one decoding thread saves setting the others up (each with its
// own picture buffers), about 5 ms of a single 1080p image here (bench
// images, alternating builds). Larger requests keep frame threads.
func (o Output) renderArgs(n int) []string {
	args := o.imageArgs()
	if n == 1 {
		args = append([]string{"-threads", "1"}, args...)
	}
	return args
}

// inputArgs read the Matroska stream Kinema writes on stdin. Probing is
// skipped: the stream's one track says everything (codec, CodecPrivate,
// size), and probing would decode the first frame twice. -copyts keeps the
// fed timestamps, by which images are matched to samples.
func inputArgs() []string {
	return []string{"-hide_banner", "-nostats", "-loglevel", "error", "-copyts", "-nofind_stream_info", "-f", "matroska", "-i", "pipe:0"}
}
