// Package bench measures Kinema as a camera fleet sees it. `kinema bench
// ingest` starts `kinema serve` as a child process (so its CPU time can be
// read apart from the load generator's), connects N paced synthetic cameras
// through PutMedia and reports PERSISTED ack latency, server CPU per GB and
// storage overhead.
package bench

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/kinema/kinema/internal/media/mkv"
)

// IngestConfig shapes the synthetic fleet.
type IngestConfig struct {
	Endpoint      string
	Credentials   aws.Credentials
	Region        string
	Streams       int
	Duration      time.Duration
	BitrateBps    int           // per camera
	FPS           int           // frames per second
	Fragment      time.Duration // GOP = fragment length
	Ramp          time.Duration // cameras connect spread over this long
	StreamPrefix  string
	RetentionHour int
	// NotifyEvery > 0 tags every NotifyEvery-th fragment for notification
	// (the producer SDK's event tag, with a custom "seq" tag).
	NotifyEvery int
	// OnPersisted, when set, is called with each PERSISTED ack as it is
	// read: when the fragment was complete on the wire, and now.
	OnPersisted func(stream, fragmentNumber string, sent, at time.Time)
}

// IngestResult is what one run measured.
type IngestResult struct {
	Streams         int
	Fragments       int64 // PERSISTED acks
	Errors          int64 // ERROR acks and failed connections
	MediaBytes      int64 // bytes of fragments acknowledged PERSISTED (cluster payloads)
	BodyBytes       int64
	Elapsed         time.Duration
	LatencyP50      time.Duration
	LatencyP99      time.Duration
	LatencyMax      time.Duration
	FirstError      string
	latencies       []time.Duration
	ReceivedP50     time.Duration
	receivedLatency []time.Duration
}

// camera is one synthetic producer.
type camera struct {
	cfg    *IngestConfig
	name   string
	res    *IngestResult
	mu     *sync.Mutex
	sent   map[uint64]time.Time // fragment timecode -> when it was complete on the wire
	sizes  map[uint64]int64
	sentMu sync.Mutex
	rng    *rand.Rand
}

// RunIngest drives the fleet against cfg.Endpoint until cfg.Duration has passed.
func RunIngest(ctx context.Context, cfg IngestConfig, createStream func(ctx context.Context, name string) error) (*IngestResult, error) {
	res := &IngestResult{Streams: cfg.Streams}
	var mu sync.Mutex
	for i := 0; i < cfg.Streams; i++ {
		if err := createStream(ctx, fmt.Sprintf("%s%04d", cfg.StreamPrefix, i)); err != nil {
			return nil, fmt.Errorf("creating stream %d: %w", i, err)
		}
	}
	// Cameras stop writing at the deadline, at the end of a fragment, and
	// then wait for their last acks; the connections themselves get longer.
	runCtx, cancel := context.WithTimeout(ctx, cfg.Duration+cfg.Ramp+60*time.Second)
	defer cancel()
	stopAt := time.Now().Add(cfg.Ramp + cfg.Duration)
	start := time.Now()
	var wg sync.WaitGroup
	for i := 0; i < cfg.Streams; i++ {
		c := &camera{cfg: &cfg, name: fmt.Sprintf("%s%04d", cfg.StreamPrefix, i), res: res, mu: &mu,
			sent: map[uint64]time.Time{}, sizes: map[uint64]int64{}, rng: rand.New(rand.NewPCG(uint64(i), 7))}
		delay := time.Duration(int64(cfg.Ramp) * int64(i) / int64(max(1, cfg.Streams)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case <-time.After(delay):
			case <-runCtx.Done():
				return
			}
			if err := c.run(runCtx, stopAt); err != nil && runCtx.Err() == nil {
				mu.Lock()
				res.Errors++
				if res.FirstError == "" {
					res.FirstError = err.Error()
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	res.Elapsed = time.Since(start)
	res.LatencyP50, res.LatencyP99, res.LatencyMax = percentiles(res.latencies)
	res.ReceivedP50, _, _ = percentiles(res.receivedLatency)
	return res, nil
}

func percentiles(d []time.Duration) (p50, p99, maxd time.Duration) {
	if len(d) == 0 {
		return 0, 0, 0
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	return d[len(d)/2], d[len(d)*99/100], d[len(d)-1]
}

var emptySHA = func() string { s := sha256.Sum256(nil); return hex.EncodeToString(s[:]) }()

// run keeps one PutMedia connection open, writing a frame every 1/FPS s and
// closing each fragment with an end-of-fragment tag, as the producer SDK does.
func (c *camera) run(ctx context.Context, stopAt time.Time) error {
	pr, pw := io.Pipe()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.cfg.Endpoint+"/putMedia", pr)
	if err != nil {
		return err
	}
	req.ContentLength = -1
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-amzn-stream-name", c.name)
	req.Header.Set("x-amzn-fragment-timecode-type", "ABSOLUTE")
	now := time.Now()
	req.Header.Set("x-amzn-producer-start-timestamp", fmt.Sprintf("%d.%d", now.Unix(), now.Nanosecond()/1e6))
	if err := v4.NewSigner().SignHTTP(ctx, c.cfg.Credentials, req, emptySHA, "kinesisvideo", c.cfg.Region, now); err != nil {
		return err
	}
	writeErr := make(chan error, 1)
	go func() { writeErr <- c.write(ctx, pw, stopAt) }()
	resp, err := httpClient.Do(req)
	if err != nil {
		pr.CloseWithError(err)
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("PutMedia %s: HTTP %d %s", c.name, resp.StatusCode, b)
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var a struct {
			EventType        string
			FragmentTimecode uint64
			FragmentNumber   string
			ErrorId          int
		}
		if json.Unmarshal(sc.Bytes(), &a) != nil {
			continue
		}
		switch a.EventType {
		case "RECEIVED", "PERSISTED":
			c.sentMu.Lock()
			t0, ok := c.sent[a.FragmentTimecode]
			size := c.sizes[a.FragmentTimecode]
			if a.EventType == "PERSISTED" {
				delete(c.sent, a.FragmentTimecode)
			}
			c.sentMu.Unlock()
			if !ok {
				continue
			}
			if a.EventType == "PERSISTED" && c.cfg.OnPersisted != nil {
				c.cfg.OnPersisted(c.name, a.FragmentNumber, t0, time.Now())
			}
			lat := time.Since(t0)
			c.mu.Lock()
			if a.EventType == "PERSISTED" {
				c.res.latencies = append(c.res.latencies, lat)
				c.res.Fragments++
				c.res.MediaBytes += size
			} else {
				c.res.receivedLatency = append(c.res.receivedLatency, lat)
			}
			c.mu.Unlock()
		case "ERROR":
			c.mu.Lock()
			c.res.Errors++
			if c.res.FirstError == "" {
				c.res.FirstError = fmt.Sprintf("%s: ERROR ack %d", c.name, a.ErrorId)
			}
			c.mu.Unlock()
		}
	}
	<-writeErr
	return nil
}

var httpClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4096, DisableCompression: true}}

func (c *camera) write(ctx context.Context, w *io.PipeWriter, stopAt time.Time) error {
	defer w.Close()
	hdr := mkv.AppendHeader(nil, mkv.Header{TimecodeScale: 1_000_000, Tracks: []mkv.Track{{
		Number: 1, UID: 1, Type: mkv.TrackTypeVideo, Name: "kvs_video_track", CodecID: "V_MPEG4/ISO/AVC",
		PixelWidth: 1920, PixelHeight: 1080, CodecPrivate: []byte{1, 0x64, 0, 0x28, 0xff, 0xe1, 0, 0},
	}}})
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	frameEvery := time.Second / time.Duration(c.cfg.FPS)
	perFragment := int(c.cfg.Fragment / frameEvery)
	bytesPerFrame := c.cfg.BitrateBps / 8 / c.cfg.FPS
	keyBytes := bytesPerFrame * 5
	deltaBytes := (bytesPerFrame*perFragment - keyBytes) / max(1, perFragment-1)
	payload := make([]byte, keyBytes)
	for i := range payload {
		payload[i] = byte(c.rng.Uint32())
	}
	// Cameras do not start their GOPs in lockstep.
	next := time.Now().Add(time.Duration(c.rng.Int64N(int64(c.cfg.Fragment))))
	var buf []byte
	for frag := 0; next.Before(stopAt); frag++ {
		tc := uint64(next.UnixMilli())
		var size int64
		for i := 0; i < perFragment; i++ {
			if d := time.Until(next); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			buf = buf[:0]
			if i == 0 {
				buf = mkv.AppendClusterStartUnknown(buf, tc)
			}
			n := deltaBytes
			if i == 0 {
				n = keyBytes
			}
			buf = mkv.AppendSimpleBlock(buf, 1, int16(i*int(frameEvery/time.Millisecond)), i == 0, payload[:n])
			size += int64(n)
			if i == perFragment-1 {
				if c.cfg.NotifyEvery > 0 && frag%c.cfg.NotifyEvery == 0 {
					buf = mkv.AppendTags(buf, []mkv.SimpleTag{{Name: "AWS_KINESISVIDEO_NOTIFICATION"}, {Name: "seq", Value: fmt.Sprint(frag)}})
				}
				buf = mkv.AppendTags(buf, []mkv.SimpleTag{{Name: "AWS_KINESISVIDEO_END_OF_FRAGMENT"}})
			}
			if _, err := w.Write(buf); err != nil {
				return err
			}
			next = next.Add(frameEvery)
		}
		c.sentMu.Lock()
		c.sent[tc] = time.Now()
		c.sizes[tc] = size
		c.sentMu.Unlock()
		c.mu.Lock()
		c.res.BodyBytes += size
		c.mu.Unlock()
	}
	return nil
}

// Report formats a result as the lines docs/benchmarks.md quotes.
func (r *IngestResult) Report() string {
	var b strings.Builder
	fmt.Fprintf(&b, "streams %d, elapsed %v, fragments PERSISTED %d, errors %d\n", r.Streams, r.Elapsed.Round(time.Millisecond), r.Fragments, r.Errors)
	fmt.Fprintf(&b, "PERSISTED latency from fragment end: p50 %v, p99 %v, max %v (RECEIVED p50 %v)\n",
		r.LatencyP50.Round(time.Microsecond), r.LatencyP99.Round(time.Microsecond), r.LatencyMax.Round(time.Microsecond), r.ReceivedP50.Round(time.Microsecond))
	fmt.Fprintf(&b, "media persisted %.1f MB (%.1f Mbit/s)\n", float64(r.MediaBytes)/1e6, float64(r.MediaBytes)*8/1e6/r.Elapsed.Seconds())
	if r.FirstError != "" {
		fmt.Fprintf(&b, "first error: %s\n", r.FirstError)
	}
	return b.String()
}
