package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/kinema/kinema/internal/images"
	"github.com/kinema/kinema/internal/producer"
	"github.com/kinema/kinema/internal/progress"
)

const timelapseUsage = `usage: kinema timelapse --stream NAME --start T --end T --every 3s [--size 1920x1080] -o out.mp4

Makes an MP4 of one frame every --every from --start to --end of a stream
(GetTimelapse on the server). Without --size no frame is re-encoded: each
is the key frame at or before its time, copied. With --size each is the
exact frame at its time, scaled (WxH stretches; Wx or xH keeps the aspect
ratio) and encoded with H.264. Times are RFC 3339 or epoch seconds.

flags:
`

// runTimelapse is `kinema timelapse`.
func runTimelapse(ctx context.Context, args []string, stdout, stderr io.Writer, env func(string) string) int {
	var conn producer.Connection
	fs := flag.NewFlagSet("kinema timelapse", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, timelapseUsage)
		fs.PrintDefaults()
	}
	conn.Register(fs, env)
	name := fs.String("stream", "", "stream `NAME` (required)")
	start := fs.String("start", "", "first sample `time` (required)")
	end := fs.String("end", "", "last sample `time` at the latest (required)")
	every := fs.Duration("every", 3*time.Second, "one frame per `interval`")
	size := fs.String("size", "", "frame size `WxH` (default: the stream's, copying key frames)")
	fps := fs.Int("fps", images.DefaultTimelapseFPS, "frames per second of the video")
	clock := fs.String("clock", "producer", "the clock times are on: producer or server")
	out := fs.String("o", "", "output `file` (required)")
	quiet := fs.Bool("quiet", false, "print only errors")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	body, err := timelapseRequest(*name, *start, *end, *every, *size, *fps, *clock, *out)
	if err == nil {
		err = conn.CheckCredentials()
	}
	if err != nil {
		fmt.Fprintf(stderr, "kinema timelapse: %v\n(kinema timelapse -h for help)\n", err)
		return 2
	}
	if err := fetchTimelapse(ctx, &conn, body, *out, stdout, *quiet); err != nil {
		fmt.Fprintf(stderr, "kinema timelapse: %v\n", err)
		return 1
	}
	return 0
}

// timelapseRequest checks the flags and makes GetTimelapse's JSON body.
func timelapseRequest(name, start, end string, every time.Duration, size string, fps int, clock, out string) ([]byte, error) {
	if name == "" || start == "" || end == "" || out == "" {
		return nil, errors.New("--stream, --start, --end and -o are required")
	}
	from, err := parseTime(start)
	if err != nil {
		return nil, fmt.Errorf("--start: %w", err)
	}
	to, err := parseTime(end)
	if err != nil {
		return nil, fmt.Errorf("--end: %w", err)
	}
	if every < time.Millisecond {
		return nil, errors.New("--every must be at least 1ms")
	}
	in := map[string]any{"StreamName": name, "StartTimestamp": from, "EndTimestamp": to,
		"SamplingInterval": every.Milliseconds(), "FramesPerSecond": fps}
	switch clock {
	case "producer":
		in["ImageSelectorType"] = "PRODUCER_TIMESTAMP"
	case "server":
		in["ImageSelectorType"] = "SERVER_TIMESTAMP"
	default:
		return nil, fmt.Errorf("--clock %q is neither producer nor server", clock)
	}
	if size != "" {
		w, h, ok := strings.Cut(size, "x")
		if !ok {
			return nil, fmt.Errorf("--size %q is not WxH, Wx or xH", size)
		}
		for _, d := range []struct{ v, field string }{{w, "WidthPixels"}, {h, "HeightPixels"}} {
			if d.v == "" {
				continue
			}
			n, err := strconv.Atoi(d.v)
			if err != nil || n < 1 {
				return nil, fmt.Errorf("--size %q is not WxH, Wx or xH", size)
			}
			in[d.field] = n
		}
	}
	return json.Marshal(in)
}

// fetchTimelapse calls GetTimelapse and writes the MP4 to path (through a
// temporary file, so that a failed run leaves no half file), drawing
// progress on a terminal.
func fetchTimelapse(ctx context.Context, conn *producer.Connection, body []byte, path string, stdout io.Writer, quiet bool) error {
	client, err := conn.HTTPClient()
	if err != nil {
		return fmt.Errorf("--ca-file: %w", err)
	}
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(conn.Endpoint, "/")+"/getTimelapse", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	sum := sha256.Sum256(body)
	creds := aws.Credentials{AccessKeyID: conn.AccessKey, SecretAccessKey: conn.SecretKey, SessionToken: conn.SessionToken}
	if err := v4.NewSigner().SignHTTP(ctx, creds, req, hex.EncodeToString(sum[:]), "kinesisvideo", conn.Region, time.Now()); err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		var e struct {
			Message string `json:"message"`
		}
		json.Unmarshal(b, &e)
		return fmt.Errorf("%s: %s", resp.Header.Get("x-amzn-ErrorType"), e.Message)
	}
	samples, _ := strconv.Atoi(resp.Header.Get(images.TimelapseSamplesHeader))
	f, err := os.CreateTemp(filepath.Dir(path), ".timelapse-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	began := time.Now()
	p := &timelapseProgress{samples: samples}
	if !quiet && progress.IsTerminal(stdout) {
		p.line = &progress.Line{W: stdout, Text: p.text}
		p.line.Start(200 * time.Millisecond)
	}
	n, err := io.Copy(io.MultiWriter(f, p), resp.Body)
	if p.line != nil {
		p.line.Stop()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if p.count.frames == 0 {
		return errors.New("the server sent no frame")
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}
	if !quiet {
		fmt.Fprintf(stdout, "%s: %d frames (%d samples), %.1f MB in %v\n", path, p.count.frames, samples, float64(n)/1e6,
			time.Since(began).Round(time.Millisecond))
	}
	return nil
}

// timelapseProgress counts frames as the MP4 arrives and, on a terminal,
// shows them on a status line.
type timelapseProgress struct {
	mu      sync.Mutex
	line    *progress.Line // nil unless on a terminal
	samples int
	bytes   int64
	count   fragmentCounter
}

func (p *timelapseProgress) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.bytes += int64(len(b))
	p.count.Write(b)
	return len(b), nil
}

func (p *timelapseProgress) text() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return fmt.Sprintf("%s %d/%d frames  %s  %.1f MB", progress.Bar(p.count.frames, p.samples, 24), p.count.frames, p.samples,
		progress.Clock(p.line.Began), float64(p.bytes)/1e6)
}

// fragmentCounter follows the top-level boxes of an MP4 byte stream, fed in
// any pieces, and counts the movie fragments (moof): one per frame in a
// Kinema time-lapse. A malformed box size stops the counting, never the
// download.
type fragmentCounter struct {
	hdr    [16]byte
	have   int    // header bytes collected
	skip   uint64 // payload bytes of the current box still to pass
	toEnd  bool   // the current box runs to the end of the stream
	broken bool
	frames int
}

func (c *fragmentCounter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 && !c.broken && !c.toEnd {
		if c.skip > 0 {
			k := min(uint64(len(p)), c.skip)
			c.skip -= k
			p = p[k:]
			continue
		}
		need := 8
		if c.have >= 8 && binary.BigEndian.Uint32(c.hdr[:4]) == 1 {
			need = 16 // a 64-bit size follows the type
		}
		k := copy(c.hdr[c.have:need], p)
		c.have += k
		p = p[k:]
		if c.have < need {
			continue
		}
		if need == 8 && binary.BigEndian.Uint32(c.hdr[:4]) == 1 {
			continue // read the 64-bit size first
		}
		size := uint64(binary.BigEndian.Uint32(c.hdr[:4]))
		switch size {
		case 0:
			c.toEnd = true
		case 1:
			size = binary.BigEndian.Uint64(c.hdr[8:16])
		}
		if string(c.hdr[4:8]) == "moof" {
			c.frames++
		}
		switch {
		case c.toEnd:
		case size < uint64(need):
			c.broken = true
		default:
			c.skip = size - uint64(need)
		}
		c.have = 0
	}
	return n, nil
}
