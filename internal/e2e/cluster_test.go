package e2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	kvtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideo/types"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia"
	avtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia/types"
	"github.com/aws/smithy-go"

	"github.com/kinema/kinema/internal/archive/pgindex"
	"github.com/kinema/kinema/internal/archive/pgindex/pgtest"
	"github.com/kinema/kinema/internal/media/mkv"
	"github.com/kinema/kinema/internal/producer"
	"github.com/kinema/kinema/internal/s3conf/s3test"
)

// natsURL is the NATS server the machine runs (scripts/setup.sh).
const natsURL = "nats://127.0.0.1:4222"

// TestClusterThreeNodes: three `kinema serve` nodes share one PostgreSQL
// schema, one S3 bucket and a NATS subject. A camera streams to node 1
// while readers on nodes 2 and 3 list fragments, play LIVE HLS, tail
// GetMedia and fetch images, each seeing a fragment within a second of its
// PERSISTED ack; a second PutMedia for the stream on another node is
// refused and GetDataEndpoint names node 1. Then node 1 is killed with
// kill -9; the producer asks node 2 for its data endpoint until it names a
// live node, streams there, and every fragment acknowledged PERSISTED by
// either node is readable from node 3.
func TestClusterThreeNodes(t *testing.T) {
	s3srv := s3test.Start(t)
	s3srv.Bucket(t, "media")
	t.Setenv("KINEMA_S3_ACCESS_KEY_ID", s3test.AccessKey)
	t.Setenv("KINEMA_S3_SECRET_ACCESS_KEY", s3test.SecretKey)
	t.Setenv("KINEMA_SERVER_KEY", clusterServerKey)
	subject := randomName("kinema.test.")
	backends := []string{"--index", pgtest.Schema(t), "--media", "s3://media/k", "--s3-endpoint", s3srv.Endpoint,
		"--media-put-interval", "100ms", "--nats", natsURL, "--nats-subject", subject}
	var nodes [3]*process
	for i := range nodes {
		nodes[i] = startProcess(t, t.TempDir(), freePort(t), append(backends, "--node-id", fmt.Sprintf("n%d", i+1))...)
	}
	n1, n2, n3 := nodes[0], nodes[1], nodes[2]
	kv3, am3 := n3.clients()
	_, am2 := n2.clients()
	ctx := ctxT(t)
	if _, err := kv3.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String("cam"), DataRetentionInHours: aws.Int32(24)}); err != nil {
		t.Fatal(err)
	}

	m := hmMedia(t, "cluster", "320x240", 20, 25) // twenty 1-second fragments
	plans := m.Fragments(0)

	var mu sync.Mutex
	persistedAt := map[string]time.Time{} // fragment number -> PERSISTED ack
	const killAfter = 8
	killed := make(chan struct{})
	var once sync.Once
	onAck := func(a producer.Ack) {
		if a.EventType != producer.AckPersisted {
			return
		}
		mu.Lock()
		persistedAt[a.FragmentNumber] = a.At
		n := len(persistedAt)
		mu.Unlock()
		if n == killAfter {
			once.Do(func() { go func() { n1.kill9(); close(killed) }() })
		}
	}

	// Readers on the other nodes, from before the first fragment.
	tail := startTail(t, n3.url, "cam")
	hls := startLivePlaylistWatch(t, am2, "cam")

	firstSession := make(chan error, 1)
	start := time.Now()
	go func() {
		cfg := producer.Config{Endpoint: n1.url, Region: testRegion, AccessKeyID: testKey, SecretAccessKey: testSecret,
			StreamName: "cam", StartTime: start, Realtime: true, OnAck: onAck}
		_, err := producer.Put(context.Background(), cfg, plans, m.Header)
		firstSession <- err
	}()

	// While node 1 ingests: one connection per stream across nodes, and
	// GetDataEndpoint on any node names node 1.
	waitUntil(t, "the first PERSISTED fragments", 20*time.Second, func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(persistedAt) >= 3
	})
	if ep := dataEndpoint(t, kv3); ep != n1.url {
		t.Fatalf("GetDataEndpoint(PUT_MEDIA) on node 3 while node 1 ingests: %s, want %s", ep, n1.url)
	}
	second := putMediaTo(t, n2.url, absolute("cam"), (&mkvBuilder{}).header().cluster(uint64(start.UnixMilli()), 3, 100).eofr().reader(), nil)
	if second.status != 400 || second.errType != "ConnectionLimitExceededException" || !strings.Contains(second.message, n1.url) {
		t.Fatalf("a second PutMedia on node 2 while node 1 ingests: %d %s %s", second.status, second.errType, second.message)
	}
	imagesFrom(t, am2, "cam", start, 2) // decoded on node 2 from what node 1 stored

	<-killed
	if err := <-firstSession; err == nil {
		t.Fatal("the session on the killed node ended without an error")
	}
	mu.Lock()
	firstCount := len(persistedAt)
	mu.Unlock()

	// The producer reconnects through GetDataEndpoint on a surviving node,
	// which names node 1 until its claim lapses with its heartbeat.
	killedAt := time.Now()
	var failover time.Duration
	for attempt := 1; ; attempt++ {
		cfg := producer.Config{Endpoint: n2.url, Region: testRegion, AccessKeyID: testKey, SecretAccessKey: testSecret,
			StreamName: "cam", StartTime: start.Add(time.Duration(len(plans)) * time.Second), OnAck: onAck}
		res, err := producer.Put(ctx, cfg, plans[:5], m.Header)
		if err == nil {
			if res.DataEndpoint == n1.url {
				t.Fatalf("the producer streamed to the dead node %s", n1.url)
			}
			failover = time.Since(killedAt)
			t.Logf("producer reconnected to %s after %d attempts, %v after kill -9", res.DataEndpoint, attempt, failover.Round(time.Millisecond))
			break
		}
		if time.Since(killedAt) > 30*time.Second {
			t.Fatalf("no node took the stream over: %v", err)
		}
		time.Sleep(300 * time.Millisecond)
	}

	// The stream's fragment numbers keep growing across the takeover
	// (readers follow a stream by number), though each node numbers from
	// blocks of its own.
	mu.Lock()
	var lastBefore, firstAfter string
	for n, at := range persistedAt {
		if at.Before(killedAt) && cmpNumbers(n, lastBefore) > 0 {
			lastBefore = n
		}
		if !at.Before(killedAt) && (firstAfter == "" || cmpNumbers(n, firstAfter) < 0) {
			firstAfter = n
		}
	}
	mu.Unlock()
	if cmpNumbers(firstAfter, lastBefore) <= 0 {
		t.Fatalf("after the takeover the stream went on at fragment %s, below %s", firstAfter, lastBefore)
	}

	// Every fragment acknowledged PERSISTED, by either node, is readable
	// from node 3.
	mu.Lock()
	numbers := make([]string, 0, len(persistedAt))
	for n := range persistedAt {
		numbers = append(numbers, n)
	}
	mu.Unlock()
	if len(numbers) != firstCount+5 {
		t.Fatalf("%d fragments PERSISTED, want %d before the kill and 5 after", len(numbers), firstCount)
	}
	if frames, tags := countMKV(t, fetchFragments(t, am3, "cam", numbers)); frames != 25*len(numbers) || tags["AWS_KINESISVIDEO_ERROR_CODE"] != 0 {
		t.Fatalf("node 3 read back %d frames of %d PERSISTED fragments (tags %v)", frames, len(numbers), tags)
	}
	listed := listRecent(t, am2, "cam")
	if len(listed) < len(numbers) {
		t.Fatalf("node 2 lists %d fragments, %d were PERSISTED", len(listed), len(numbers))
	}

	// Live readers on nodes 2 and 3 saw node 1's fragments within a
	// second of their PERSISTED ack.
	mu.Lock()
	defer mu.Unlock()
	for _, r := range []struct {
		name string
		seen map[string]time.Time
	}{{"GetMedia tail on node 3", tail.seenCopy()}, {"LIVE HLS playlist on node 2", hls.seenCopy()}} {
		var delays []time.Duration
		for n, at := range persistedAt {
			if seen, ok := r.seen[n]; ok && at.Before(killedAt) {
				delays = append(delays, seen.Sub(at))
			}
		}
		if len(delays) < firstCount-2 {
			t.Fatalf("%s saw %d of the %d fragments node 1 persisted", r.name, len(delays), firstCount)
		}
		sort.Slice(delays, func(i, j int) bool { return delays[i] < delays[j] })
		worst := delays[len(delays)-1]
		t.Logf("%s: %d fragments, PERSISTED-to-seen p50 %v, max %v", r.name, len(delays), delays[len(delays)/2].Round(time.Millisecond), worst.Round(time.Millisecond))
		if worst > time.Second {
			t.Fatalf("%s saw a fragment %v after its PERSISTED ack, want under 1 s", r.name, worst)
		}
	}
	if failover > pgindex.LiveFor+10*time.Second {
		t.Fatalf("failover took %v", failover)
	}
}

func dataEndpoint(t *testing.T, kv *kinesisvideo.Client) string {
	t.Helper()
	out, err := kv.GetDataEndpoint(ctxT(t), &kinesisvideo.GetDataEndpointInput{StreamName: aws.String("cam"), APIName: kvtypes.APINamePutMedia})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.DataEndpoint)
}

// imagesFrom asks a node for JPEGs of the stream's first seconds and wants
// at least n decoded ones.
func imagesFrom(t *testing.T, am *kinesisvideoarchivedmedia.Client, name string, start time.Time, n int) {
	t.Helper()
	out, err := am.GetImages(ctxT(t), &kinesisvideoarchivedmedia.GetImagesInput{StreamName: aws.String(name),
		ImageSelectorType: avtypes.ImageSelectorTypeProducerTimestamp, StartTimestamp: aws.Time(start),
		EndTimestamp: aws.Time(start.Add(2 * time.Second)), SamplingInterval: aws.Int32(1000), Format: avtypes.FormatJpeg})
	if err != nil {
		t.Fatal(err)
	}
	good := 0
	for _, img := range out.Images {
		if img.Error == "" && aws.ToString(img.ImageContent) != "" {
			good++
		}
	}
	if good < n {
		t.Fatalf("GetImages: %d decoded images of %d, want %d", good, len(out.Images), n)
	}
}

// listRecent lists the stream's fragments of the last hour.
func listRecent(t *testing.T, am *kinesisvideoarchivedmedia.Client, name string) []avtypes.Fragment {
	t.Helper()
	out, err := am.ListFragments(ctxT(t), &kinesisvideoarchivedmedia.ListFragmentsInput{StreamName: aws.String(name),
		FragmentSelector: &avtypes.FragmentSelector{FragmentSelectorType: avtypes.FragmentSelectorTypeServerTimestamp,
			TimestampRange: &avtypes.TimestampRange{StartTimestamp: aws.Time(time.Now().Add(-time.Hour)), EndTimestamp: aws.Time(time.Now().Add(time.Hour))}}})
	if err != nil {
		t.Fatal(err)
	}
	return out.Fragments
}

// seenLog records when a reader first saw each fragment number.
type seenLog struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

func (l *seenLog) mark(n string, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.seen[n]; !ok {
		l.seen[n] = at
	}
}

func (l *seenLog) seenCopy() map[string]time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]time.Time, len(l.seen))
	for k, v := range l.seen {
		out[k] = v
	}
	return out
}

// startTail follows the stream with GetMedia (NOW) on baseURL, again and
// again until the test ends (a GetMedia ends once idle), noting when each
// fragment arrives.
func startTail(t *testing.T, baseURL, name string) *seenLog {
	l := &seenLog{seen: map[string]time.Time{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	creds, _ := sdkConfig().Credentials.Retrieve(ctx)
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			req := signedRequest(t, baseURL, creds, http.MethodPost, "getMedia",
				`{"StreamName":"`+name+`","StartSelector":{"StartSelectorType":"NOW"}}`, time.Now(), testRegion)
			resp, err := http.DefaultClient.Do(req.WithContext(ctx))
			if err != nil {
				time.Sleep(100 * time.Millisecond)
				continue
			}
			r := mkv.NewReader(bufio.NewReader(resp.Body), mkv.Options{})
			for {
				ev, err := r.Next()
				if err != nil {
					break
				}
				if ev.Type != mkv.EventTags {
					continue
				}
				for _, tg := range ev.Tags {
					if tg.Name == "AWS_KINESISVIDEO_FRAGMENT_NUMBER" {
						l.mark(tg.Value, time.Now())
					}
				}
			}
			resp.Body.Close()
		}
	}()
	return l
}

var playlistFragment = regexp.MustCompile(`FragmentNumber=(\d+)`)

// startLivePlaylistWatch polls a LIVE HLS media playlist every 100 ms (as
// a player's reload would, only more often), noting when each fragment
// first appears.
func startLivePlaylistWatch(t *testing.T, am *kinesisvideoarchivedmedia.Client, name string) *seenLog {
	l := &seenLog{seen: map[string]time.Time{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		var mediaURL string
		for ctx.Err() == nil {
			time.Sleep(100 * time.Millisecond)
			if mediaURL == "" {
				// LIVE needs a first fragment.
				out, err := am.GetHLSStreamingSessionURL(ctx, &kinesisvideoarchivedmedia.GetHLSStreamingSessionURLInput{
					StreamName: aws.String(name), PlaybackMode: avtypes.HLSPlaybackModeLive})
				var apiErr smithy.APIError
				if err != nil && !errors.As(err, &apiErr) {
					continue
				}
				if err == nil {
					mediaURL = strings.Replace(aws.ToString(out.HLSStreamingSessionURL), "getHLSMasterPlaylist", "getHLSMediaPlaylist", 1) + "&TrackNumber=1"
				}
				continue
			}
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, mediaURL, nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			now := time.Now()
			for _, m := range playlistFragment.FindAllStringSubmatch(string(b), -1) {
				l.mark(m[1], now)
			}
		}
	}()
	return l
}

// cmpNumbers orders fragment numbers (decimal strings); "" is lowest.
func cmpNumbers(a, b string) int {
	if len(a) != len(b) {
		return len(a) - len(b)
	}
	return strings.Compare(a, b)
}
