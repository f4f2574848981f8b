package e2e

import (
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia"
	avtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/kinema/kinema/internal/archive/pgindex/pgtest"
	"github.com/kinema/kinema/internal/producer"
	"github.com/kinema/kinema/internal/s3conf/s3test"
)

// TestScaleServeOnPostgresAndS3: `kinema serve --index postgres://...
// --media s3://...` ingests with the producer and serves the fragments back
// through the AWS SDK; after kill -9, a replacement node with an empty data
// dir on the same PostgreSQL and S3 serves them too (the node keeps no
// state of its own).
func TestScaleServeOnPostgresAndS3(t *testing.T) {
	s3srv := s3test.Start(t)
	s3srv.Bucket(t, "media")
	dsn := pgtest.Schema(t)
	t.Setenv("KINEMA_S3_ACCESS_KEY_ID", s3test.AccessKey)
	t.Setenv("KINEMA_S3_SECRET_ACCESS_KEY", s3test.SecretKey)
	t.Setenv("KINEMA_SERVER_KEY", clusterServerKey)
	backends := []string{"--index", dsn, "--media", "s3://media/kinema", "--s3-endpoint", s3srv.Endpoint}
	p := startProcess(t, t.TempDir(), freePort(t), append(backends, "--node-id", "n1")...)
	kv, am := p.clients()
	ctx := ctxT(t)
	if _, err := kv.CreateStream(ctx, &kinesisvideo.CreateStreamInput{StreamName: aws.String("cam"), DataRetentionInHours: aws.Int32(24)}); err != nil {
		t.Fatal(err)
	}
	m := hmMedia(t, "scale", "320x240", 6, 25) // six 1-second fragments of 25 frames
	plans := m.Fragments(0)
	start := time.UnixMilli(1_700_000_000_000)
	res, err := producer.Put(ctx, producer.Config{Endpoint: p.url, Region: testRegion, AccessKeyID: testKey, SecretAccessKey: testSecret,
		StreamName: "cam", StartTime: start}, plans, m.Header)
	if err != nil {
		t.Fatal(err)
	}
	if res.Counts[producer.AckPersisted] != len(plans) {
		t.Fatalf("acks %v, want %d PERSISTED", res.Counts, len(plans))
	}

	objects, err := s3srv.Client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("media"), Prefix: aws.String("kinema/seg/")})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(objects.Contents); n == 0 || n > len(plans) {
		t.Fatalf("%d objects in S3 for %d fragments, want 1..%d (one per group commit)", n, len(plans), len(plans))
	}
	for _, o := range objects.Contents {
		if !strings.HasSuffix(aws.ToString(o.Key), ".kchunk") {
			t.Fatalf("unexpected object %s", aws.ToString(o.Key))
		}
	}

	check := func(am *kinesisvideoarchivedmedia.Client, node string) {
		t.Helper()
		out, err := am.ListFragments(ctx, &kinesisvideoarchivedmedia.ListFragmentsInput{StreamName: aws.String("cam"),
			FragmentSelector: &avtypes.FragmentSelector{FragmentSelectorType: avtypes.FragmentSelectorTypeProducerTimestamp,
				TimestampRange: &avtypes.TimestampRange{StartTimestamp: aws.Time(start), EndTimestamp: aws.Time(start.Add(time.Hour))}}})
		if err != nil {
			t.Fatalf("%s: ListFragments: %v", node, err)
		}
		if len(out.Fragments) != len(plans) {
			t.Fatalf("%s: listed %d fragments, want %d", node, len(out.Fragments), len(plans))
		}
		var numbers []string
		for _, f := range out.Fragments {
			numbers = append(numbers, aws.ToString(f.FragmentNumber))
		}
		frames, tags := countMKV(t, fetchFragments(t, am, "cam", numbers))
		if frames != 6*25 || tags["AWS_KINESISVIDEO_ERROR_CODE"] != 0 {
			t.Fatalf("%s: read back %d frames (want 150), tags %v", node, frames, tags)
		}
	}
	check(am, "ingesting node")

	// Two processes never run as the same node: they would recover (cut)
	// each other's segments.
	if out, err := serveOnce(ctx, t, append(backends, "--node-id", "n1")...); err == nil || !strings.Contains(out, "running as this node") {
		t.Fatalf("a second process started as node n1: %v\n%s", err, out)
	}
	// The node dies; a replacement with nothing in its data dir serves
	// everything from the shared stores.
	p.kill9()
	p2 := startProcess(t, t.TempDir(), freePort(t), append(backends, "--node-id", "n1")...)
	_, am2 := p2.clients()
	check(am2, "replacement node")
	t.Logf("%d fragments in %d S3 objects", len(plans), len(objects.Contents))
}

// TestScaleRefusesUnreachableBackends: a node whose PostgreSQL or S3 does
// not answer exits with the reason instead of serving.
func TestScaleRefusesUnreachableBackends(t *testing.T) {
	for _, c := range []struct {
		name, want string
		args       []string
	}{
		{"postgres", "postgres index", []string{"--index", "postgres://postgres@127.0.0.1:1/none?connect_timeout=2"}},
		{"s3", "s3 media", []string{"--media", "s3://media/x", "--s3-endpoint", "http://127.0.0.1:1"}},
		{"scheme", "want a postgres:// URL", []string{"--index", "mysql://x"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("KINEMA_S3_ACCESS_KEY_ID", s3test.AccessKey)
			t.Setenv("KINEMA_S3_SECRET_ACCESS_KEY", s3test.SecretKey)
			t.Setenv("KINEMA_SERVER_KEY", clusterServerKey)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			out, err := serveOnce(ctx, t, c.args...)
			if err == nil || !strings.Contains(out, c.want) {
				t.Fatalf("kinema serve %v: %v\n%s", c.args, err, out)
			}
		})
	}
}

// serveOnce runs `kinema serve` expecting it to exit, and returns its output.
func serveOnce(ctx context.Context, t *testing.T, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, kinemaBinary(t), append([]string{"serve", "--data-dir", t.TempDir(), "--listen", freePort(t)}, args...)...)
	cmd.Env = append(os.Environ(), "KINEMA_ACCESS_KEY_ID="+testKey, "KINEMA_SECRET_ACCESS_KEY="+testSecret)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// TestScaleS3Outage: the S3 store goes away mid-stream. The session ends
// with the KVS archival error (5001) instead of a PERSISTED ack for what
// was not stored; once S3 is back a new session ingests again; and every
// fragment ever acknowledged PERSISTED is listed and readable.
func TestScaleS3Outage(t *testing.T) {
	s3srv := s3test.Start(t)
	s3srv.Bucket(t, "media")
	p := startScaleNode(t, s3srv.Endpoint, pgtest.Schema(t))
	if code, body := health(t, p, "/kinema/ready"); code != 200 {
		t.Fatalf("ready before the outage: %d %s", code, body)
	}
	persisted, res := streamWithFault(t, p, s3srv.Stop)
	if id := res.errorID(); id != 5001 {
		t.Fatalf("with S3 down the session ended with error %d, want 5001 (acks %+v)", id, res.acks)
	}
	if code, body := health(t, p, "/kinema/ready"); code != 503 || !strings.Contains(body, "media") {
		t.Fatalf("ready with S3 down: %d %s", code, body)
	}
	if code, _ := health(t, p, "/kinema/live"); code != 200 {
		t.Fatalf("live with S3 down: %d", code)
	}
	s3srv.Resume(t)
	if code, body := health(t, p, "/kinema/ready"); code != 200 {
		t.Fatalf("ready after S3 came back: %d %s", code, body)
	}
	resumeAndCheck(t, p, persisted)
}

// TestScalePostgresConnectionsDropped: every connection of the node to
// PostgreSQL is terminated mid-stream (what a server restart does to its
// clients). Whatever the session was told PERSISTED stays readable, and
// ingest goes on over new connections. (Restarting the machine's shared
// server itself would disturb other tests.)
func TestScalePostgresConnectionsDropped(t *testing.T) {
	s3srv := s3test.Start(t)
	s3srv.Bucket(t, "media")
	const app = "kinema_drop_test"
	dsn := pgtest.WithParam(pgtest.Schema(t), "application_name", app)
	p := startScaleNode(t, s3srv.Endpoint, dsn)
	persisted, _ := streamWithFault(t, p, func() { pgtest.Terminate(t, app) })
	resumeAndCheck(t, p, persisted)
}

// TestScalePostgresRestart: the node's PostgreSQL server itself (a private
// one, pgtest.StartServer) restarts while a producer streams, once with
// `pg_ctl restart -m fast` and once stopped for two seconds. The session
// carries on or ends with a KVS server error, never with a PERSISTED ack
// for what the index did not record; the node reports itself not ready
// while the database is down; ingest resumes afterwards; and every
// fragment acked PERSISTED is readable.
func TestScalePostgresRestart(t *testing.T) {
	for _, c := range []struct {
		name string
		// down takes the server down (and maybe up again); up runs after
		// the session and brings it back.
		down, up func(pg *pgtest.Server) error
	}{
		{"restart", (*pgtest.Server).Restart, nil},
		{"stop-2s-start", (*pgtest.Server).Stop, (*pgtest.Server).Start},
	} {
		t.Run(c.name, func(t *testing.T) {
			pg := pgtest.StartServer(t)
			s3srv := s3test.Start(t)
			s3srv.Bucket(t, "media")
			p := startScaleNode(t, s3srv.Endpoint, pg.DSN())
			// In the background: the producer keeps reading acks meanwhile
			// (one that stops reading loses the last acks when the server
			// closes the connection).
			down := make(chan error, 1)
			persisted, res := streamWithFault(t, p, func() { go func() { down <- c.down(pg) }() })
			if err := <-down; err != nil {
				t.Fatal(err)
			}
			if c.up != nil {
				for range 2 {
					if code, body := health(t, p, "/kinema/ready"); code != 503 || !strings.Contains(body, "index") {
						t.Errorf("ready with PostgreSQL down: %d %s", code, body)
					}
					time.Sleep(time.Second)
				}
				if err := c.up(pg); err != nil {
					t.Fatal(err)
				}
			}
			if id := res.errorID(); id != 0 && id < 5000 {
				t.Fatalf("the session ended with error %d, want none or a KVS server error (acks %+v)", id, res.acks)
			}
			// Ready again once every part of the node has reconnected (IAM
			// follows the database once a second).
			waitUntil(t, "ready after PostgreSQL came back", 10*time.Second, func() bool {
				code, _ := health(t, p, "/kinema/ready")
				return code == 200
			})
			t.Logf("session: %d acked PERSISTED, then error %d", len(persisted), res.errorID())
			resumeAndCheck(t, p, persisted)
		})
	}
}

// TestScaleSlowS3: the S3 store answers slowly (a proxy holds every request
// 300 ms to 1 s): ingest goes on, every fragment PERSISTED, later. Then
// the store stalls beyond the node's --s3-timeout: the session ends with
// the KVS archival error (5001) about that long after, instead of hanging.
// Once the store is only slow again, ingest resumes, and readers get every
// fragment ever acked PERSISTED, complete.
func TestScaleSlowS3(t *testing.T) {
	s3srv := s3test.Start(t)
	s3srv.Bucket(t, "media")
	proxy := s3srv.Proxy(t)
	const timeout = 3 * time.Second
	p := startScaleNode(t, proxy.Endpoint, pgtest.Schema(t), "--s3-timeout", timeout.String())

	proxy.SetDelay(300*time.Millisecond, time.Second)
	const n = 20
	var mu sync.Mutex
	sent := map[int64]time.Time{}
	var latency []time.Duration
	pr, pw := io.Pipe()
	go func() {
		defer pw.Close()
		if _, err := pw.Write((&mkvBuilder{}).header().b); err != nil {
			return
		}
		for i := range n {
			tc := int64(1_600_000_000_000 + i*200)
			mu.Lock()
			sent[tc] = time.Now()
			mu.Unlock()
			if _, err := pw.Write((&mkvBuilder{}).cluster(uint64(tc), 5, 10_000).eofr().b); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	persisted := map[string]bool{}
	res := putMediaTo(t, p.url, absolute("cam"), pr, func(a ackJSON) {
		if a.EventType == "PERSISTED" {
			mu.Lock()
			latency = append(latency, time.Since(sent[a.FragmentTimecode]))
			mu.Unlock()
			persisted[a.FragmentNumber] = true
		}
	})
	pr.Close()
	if res.count("PERSISTED") != n || res.errorID() != 0 {
		t.Fatalf("with a slow store: %d PERSISTED of %d, error %d", res.count("PERSISTED"), n, res.errorID())
	}
	slices.Sort(latency)
	if latency[0] < 300*time.Millisecond {
		t.Fatalf("a fragment was PERSISTED %v after it was sent, before any PUT to the slow store could finish", latency[0])
	}
	t.Logf("slow store: %d fragments PERSISTED, latency min %v, median %v, max %v", n,
		latency[0].Round(time.Millisecond), latency[n/2].Round(time.Millisecond), latency[n-1].Round(time.Millisecond))

	var stalledAt time.Time
	more, res := streamWithFault(t, p, func() {
		stalledAt = time.Now()
		proxy.SetDelay(time.Hour, time.Hour)
	})
	if id := res.errorID(); id != 5001 {
		t.Fatalf("with S3 stalled the session ended with error %d, want 5001 (acks %+v)", id, res.acks)
	}
	// The PUT under way when the store stalled may still finish; the next
	// one waits for the timeout, and the session ends once the producer
	// has sent its last fragment (1.5 s after the stall).
	took := time.Since(stalledAt)
	if took > 2*timeout+5*time.Second {
		t.Fatalf("the session ended %v after the store stalled (--s3-timeout %v)", took, timeout)
	}
	if code, body := health(t, p, "/kinema/ready"); code != 503 || !strings.Contains(body, "media") {
		t.Fatalf("ready with S3 stalled: %d %s", code, body)
	}
	t.Logf("stalled store: the session ended with 5001 %v after the stall", took.Round(time.Millisecond))
	for k := range more {
		persisted[k] = true
	}
	proxy.SetDelay(200*time.Millisecond, 500*time.Millisecond)
	resumeAndCheck(t, p, persisted)
}

// startScaleNode runs `kinema serve` on PostgreSQL (dsn) and the S3 server
// at s3Endpoint (an s3test server or a proxy in front of one).
func startScaleNode(t *testing.T, s3Endpoint, dsn string, args ...string) *process {
	t.Setenv("KINEMA_S3_ACCESS_KEY_ID", s3test.AccessKey)
	t.Setenv("KINEMA_S3_SECRET_ACCESS_KEY", s3test.SecretKey)
	t.Setenv("KINEMA_SERVER_KEY", clusterServerKey)
	p := startProcess(t, t.TempDir(), freePort(t), append([]string{"--index", dsn, "--media", "s3://media/k",
		"--s3-endpoint", s3Endpoint, "--media-put-interval", "0s"}, args...)...)
	kv, _ := p.clients()
	if _, err := kv.CreateStream(ctxT(t), &kinesisvideo.CreateStreamInput{StreamName: aws.String("cam"), DataRetentionInHours: aws.Int32(24)}); err != nil {
		t.Fatal(err)
	}
	return p
}

// streamWithFault streams 5-frame fragments to the node's stream "cam"
// every 50 ms, calls fault after the fifth PERSISTED ack, and keeps
// streaming until the server ends the session or 30 more fragments went
// out. It returns the fragments acknowledged PERSISTED.
func streamWithFault(t *testing.T, p *process, fault func()) (map[string]bool, putResult) {
	var mu sync.Mutex
	persisted := map[string]bool{}
	const faultAfter = 5
	pr, pw := io.Pipe()
	writerDone := make(chan struct{})
	faulted := make(chan struct{})
	go func() {
		defer close(writerDone)
		defer pw.Close()
		if _, err := pw.Write((&mkvBuilder{}).header().b); err != nil {
			return
		}
		after := -1
		for i := 0; after < 30; i++ {
			if _, err := pw.Write((&mkvBuilder{}).cluster(1_700_000_000_000+uint64(i)*200, 5, 10_000).eofr().b); err != nil {
				return
			}
			select {
			case <-faulted:
				after++
			default:
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	res := putMediaTo(t, p.url, absolute("cam"), pr, func(a ackJSON) {
		if a.EventType != "PERSISTED" {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		persisted[a.FragmentNumber] = true
		if len(persisted) == faultAfter {
			fault()
			close(faulted)
		}
	})
	pr.Close()
	<-writerDone
	if len(persisted) < faultAfter {
		t.Fatalf("the session ended before the fault: %+v", res.acks)
	}
	return persisted, res
}

// resumeAndCheck streams three more fragments in a new session (retrying
// for a while: the backend may take a moment to come back), then reads
// back every fragment acknowledged PERSISTED.
func resumeAndCheck(t *testing.T, p *process, persisted map[string]bool) {
	t.Helper()
	_, am := p.clients()
	var again putResult
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
		b := (&mkvBuilder{}).header()
		for i := range 3 {
			b.cluster(1_800_000_000_000+uint64(i)*200, 5, 10_000).eofr()
		}
		again = putMediaTo(t, p.url, absolute("cam"), b.reader(), nil)
		if again.count("PERSISTED") == 3 || time.Now().After(deadline) {
			break
		}
	}
	if again.count("PERSISTED") != 3 {
		t.Fatalf("after the fault: %+v", again.acks)
	}
	for _, a := range again.acks {
		persisted[a.FragmentNumber] = true
	}
	b := fetchFragments(t, am, "cam", keys(persisted))
	if frames, tags := countMKV(t, b); frames != 5*len(persisted) || tags["AWS_KINESISVIDEO_ERROR_CODE"] != 0 {
		log, _ := os.ReadFile(p.log.Name())
		t.Fatalf("read back %d frames of %d PERSISTED fragments (tags %v; in-band errors %q)\nserver log:\n%s",
			frames, len(persisted), tags, inBandErrors(b), log)
	}
	t.Logf("%d fragments PERSISTED around the fault, all readable", len(persisted))
}

// health GETs a health endpoint of the node.
func health(t *testing.T, p *process, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(p.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
