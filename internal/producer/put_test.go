package producer

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/kinema/kinema/internal/media/mkv"
)

// TestPutFast sends a file as fast as the server reads and checks what the
// server received, byte for byte, and the acks and latencies.
func TestPutFast(t *testing.T) {
	kvs := newFakeKVS(t)
	kvs.addStream("cam", 24)
	m := openMedia(t, "av.mp4")
	plans := m.Fragments(0)
	header := m.Header
	header.SegmentUID = bytes.Repeat([]byte{9}, 16) // fixed, so that the body can be rebuilt exactly
	cfg := kvs.config("cam")
	cfg.StartTime = time.UnixMilli(1795237808072)
	var acks []Ack
	cfg.OnAck = func(a Ack) { acks = append(acks, a) }
	var sent []int
	cfg.OnSent = func(i int, _ int64) { sent = append(sent, i) }

	res, err := Put(context.Background(), cfg, plans, header)
	if err != nil {
		t.Fatal(err)
	}
	if res.Counts[AckBuffering] != 3 || res.Counts[AckReceived] != 3 || res.Counts[AckPersisted] != 3 || res.Done() != 3 {
		t.Errorf("ack counts %v, done %d", res.Counts, res.Done())
	}
	if len(acks) != len(res.Acks) || len(sent) != 3 || res.WaitFor != AckPersisted {
		t.Errorf("OnAck saw %d acks of %d, OnSent %v, wait for %s", len(acks), len(res.Acks), sent, res.WaitFor)
	}
	for i, f := range res.Fragments {
		if !f.Persisted || f.PersistedLatency <= 0 || f.ReceivedLatency <= 0 || f.Number == "" ||
			f.Timecode != uint64(1795237808072+i*1000) {
			t.Errorf("fragment %d: %+v", i, f)
		}
	}
	for _, a := range res.Acks {
		if a.Fragment < 0 || (a.EventType == AckPersisted && a.Latency <= 0) {
			t.Errorf("ack %+v", a)
		}
	}
	if lat := res.PersistedLatencies(); len(lat) != 3 {
		t.Errorf("persisted latencies %v", lat)
	}

	rec := kvs.put(1)
	if rec.SigErr != nil {
		t.Error(rec.SigErr)
	}
	for h, want := range map[string]string{
		"x-amzn-stream-name":                      "cam",
		"x-amzn-fragment-timecode-type":           "ABSOLUTE",
		"x-amzn-producer-start-timestamp":         "1795237808.72",
		"x-amzn-fragment-acknowledgment-required": "1",
		"content-type":                            "application/json",
	} {
		if got := rec.Header.Get(h); got != want {
			t.Errorf("header %s: %q, want %q", h, got, want)
		}
	}
	signed := rec.Header.Get("Authorization")
	for _, h := range []string{"host", "x-amz-date", "x-amzn-stream-name", "x-amzn-producer-start-timestamp", "x-amzn-fragment-timecode-type"} {
		if !strings.Contains(signed, h) {
			t.Errorf("%s not signed: %s", h, signed)
		}
	}
	if !strings.Contains(signed, "/us-east-1/kinesisvideo/aws4_request") {
		t.Errorf("scope: %s", signed)
	}
	if len(rec.TransferEncoding) != 1 || rec.TransferEncoding[0] != "chunked" {
		t.Errorf("transfer encoding %v", rec.TransferEncoding)
	}
	want, err := MarshalBody(cfg, plans, header)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(rec.Body, want) {
		t.Errorf("the server received %d bytes that differ from MarshalBody's %d", len(rec.Body), len(want))
	}
	if res.BytesSent != int64(len(want)) {
		t.Errorf("BytesSent %d, body %d", res.BytesSent, len(want))
	}
	checkBody(t, rec.Body, cfg, plans, header)
}

// TestPutRealtime: a 3 s file takes about 3 s, clusters arrive when their
// key frames are due, and acks come back while the body is still going out
// (full duplex).
func TestPutRealtime(t *testing.T) {
	kvs := newFakeKVS(t)
	kvs.addStream("live", 1)
	m := openMedia(t, "av.mp4")
	cfg := kvs.config("live")
	cfg.Realtime = true
	start := time.Now()
	res, err := Put(context.Background(), cfg, m.Fragments(0), m.Header)
	if err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 2900*time.Millisecond || el > 6*time.Second {
		t.Errorf("realtime put of a 3 s file took %v", el)
	}
	rec := kvs.put(1)
	var clusters []time.Time
	for _, ev := range rec.Events {
		if ev.Type == mkv.EventClusterStart {
			clusters = append(clusters, ev.At)
		}
	}
	if len(clusters) != 3 {
		t.Fatalf("%d clusters", len(clusters))
	}
	for i := 1; i < 3; i++ {
		if d := clusters[i].Sub(clusters[0]); d < time.Duration(i)*time.Second-100*time.Millisecond ||
			d > time.Duration(i)*time.Second+300*time.Millisecond {
			t.Errorf("cluster %d arrived %v after the first", i, d)
		}
	}
	// Fragment 0 was persisted before fragment 2 began to go out.
	if p, s := res.Fragments[0], res.Fragments[2]; !p.Persisted || !p.Completed.Add(p.PersistedLatency).Before(s.Started) {
		t.Errorf("no full duplex: fragment 0 persisted at %v, fragment 2 started at %v",
			p.Completed.Add(p.PersistedLatency), s.Started)
	}
	for i, f := range res.Fragments {
		if f.PersistedLatency <= 0 || f.PersistedLatency > time.Second {
			t.Errorf("fragment %d latency %v", i, f.PersistedLatency)
		}
	}

	// Fast mode is much quicker.
	cfg.Realtime = false
	start = time.Now()
	if _, err := Put(context.Background(), cfg, m.Fragments(0), m.Header); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("fast put took %v", el)
	}
}

// TestPutCreateAndOptions: CreateStream after a 404, RELATIVE timecodes,
// Loop, tags, no end-of-fragment tags, HEVC.
func TestPutCreateAndOptions(t *testing.T) {
	kvs := newFakeKVS(t)
	m := openMedia(t, "hevc.mkv")
	plans := m.Fragments(0)
	cfg := kvs.config("new")
	if _, err := Put(context.Background(), cfg, plans, m.Header); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("missing stream: %v", err)
	}
	cfg.CreateStream, cfg.RetentionHours = true, 48
	cfg.TimecodeType, cfg.Loop, cfg.NoEndOfFragmentTags = TimecodeRelative, 2, true
	cfg.FragmentTags = func(i int) []Tag {
		return []Tag{{TagNotification, ""}, {"INDEX", strings.Repeat("x", i)}}
	}
	res, err := Put(context.Background(), cfg, plans, m.Header)
	if err != nil {
		t.Fatal(err)
	}
	if len(kvs.creates) != 1 || kvs.creates[0]["DataRetentionInHours"] != 48.0 || kvs.creates[0]["MediaType"] != "video/h265,audio/aac" {
		t.Errorf("CreateStream calls %v", kvs.creates)
	}
	if res.Done() != 6 || len(res.PersistedLatencies()) != 6 {
		t.Errorf("done %d, latencies %v", res.Done(), res.PersistedLatencies())
	}
	for i, f := range res.Fragments {
		if f.PersistedLatency <= 0 {
			t.Errorf("fragment %d: no latency without EoFR tags", i)
		}
	}
	rec := kvs.put(1)
	if rec.Header.Get("x-amzn-fragment-timecode-type") != "RELATIVE" {
		t.Error("timecode type header")
	}
	checkBody(t, rec.Body, cfg, plans, m.Header)
	if _, frags := parseBody(t, rec.Body); frags[0].Timecode != 0 || frags[3].Timecode != 3000+uint64(plans[2].DurationMs-1000) {
		t.Errorf("relative timecodes %d, %d", frags[0].Timecode, frags[3].Timecode)
	}
}

// TestPutRetentionZero: a stream without retention gets no PERSISTED, so
// Put waits for RECEIVED.
func TestPutRetentionZero(t *testing.T) {
	kvs := newFakeKVS(t)
	kvs.addStream("live-only", 0)
	m := openMedia(t, "audio.m4a")
	res, err := Put(context.Background(), kvs.config("live-only"), m.Fragments(1000), m.Header)
	if err != nil {
		t.Fatal(err)
	}
	if res.WaitFor != AckReceived || res.Done() != 3 || res.Counts[AckPersisted] != 0 {
		t.Errorf("wait for %s, done %d, counts %v", res.WaitFor, res.Done(), res.Counts)
	}
}

func TestPutFailures(t *testing.T) {
	m := openMedia(t, "av.mp4")
	plans := m.Fragments(0)

	t.Run("error ack", func(t *testing.T) {
		kvs := newFakeKVS(t)
		kvs.addStream("s", 1)
		kvs.errorAt = 2
		res, err := Put(context.Background(), kvs.config("s"), plans, m.Header)
		var rej *RejectedError
		if !errors.As(err, &rej) || rej.Ack.ErrorID != 5000 || res.Error == nil || res.Error.ErrorCode != "INTERNAL_ERROR" {
			t.Fatalf("err %v, result error %+v", err, res.Error)
		}
		if res.Error.Fragment != 1 || res.Done() != 1 {
			t.Errorf("error on fragment %d, done %d", res.Error.Fragment, res.Done())
		}
	})
	t.Run("no persisted", func(t *testing.T) {
		kvs := newFakeKVS(t)
		kvs.addStream("s", 1)
		kvs.noPersist = true
		cfg := kvs.config("s")
		cfg.AckTimeout = 300 * time.Millisecond
		start := time.Now()
		_, err := Put(context.Background(), cfg, plans, m.Header)
		if err == nil || !strings.Contains(err.Error(), "not acknowledged PERSISTED") || time.Since(start) > 3*time.Second {
			t.Fatalf("after %v: %v", time.Since(start), err)
		}
	})
	t.Run("bad credentials", func(t *testing.T) {
		kvs := newFakeKVS(t)
		kvs.addStream("s", 1)
		cfg := kvs.config("s")
		cfg.DataEndpoint = kvs.srv.URL
		cfg.SecretAccessKey = "wrong"
		_, err := Put(context.Background(), cfg, plans, m.Header)
		if err == nil || !strings.Contains(err.Error(), "403") || !strings.Contains(err.Error(), "NotAuthorizedException") {
			t.Fatalf("%v", err)
		}
	})
	t.Run("server drains before answering", func(t *testing.T) {
		kvs := newFakeKVS(t)
		kvs.addStream("s", 1)
		kvs.drainOnError = true
		cfg := kvs.config("s")
		cfg.SecretAccessKey = "wrong"
		cfg.AckTimeout = 500 * time.Millisecond
		_, err := Put(context.Background(), cfg, plans[:1], m.Header)
		if err == nil || !strings.Contains(err.Error(), "no response within") {
			t.Fatalf("%v", err)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		kvs := newFakeKVS(t)
		kvs.addStream("s", 1)
		cfg := kvs.config("s")
		cfg.Realtime = true
		ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		defer cancel()
		res, err := Put(ctx, cfg, plans, m.Header)
		if !errors.Is(err, context.DeadlineExceeded) || len(res.Fragments) != 1 {
			t.Fatalf("%v, %d fragments started", err, len(res.Fragments))
		}
	})
}

// TestPutRaw sends hand-made bytes: a body cut inside a block, and a
// request without a required header.
func TestPutRaw(t *testing.T) {
	kvs := newFakeKVS(t)
	kvs.addStream("raw", 1)
	m := openMedia(t, "av.mp4")
	cfg := kvs.config("raw")
	cfg.StartTime = time.UnixMilli(1700000000000)
	body, err := MarshalBody(cfg, m.Fragments(0), m.Header)
	if err != nil {
		t.Fatal(err)
	}
	_, frags := parseBody(t, body)
	cut := bytes.Index(body, []byte{0x1f, 0x43, 0xb6, 0x75}) // first Cluster
	cut = bytes.Index(body[cut+4:], []byte{0x1f, 0x43, 0xb6, 0x75}) + cut + 4 + 100

	var seen []Ack
	cfg.OnAck = func(a Ack) { seen = append(seen, a) }
	res, err := PutRaw(context.Background(), cfg, bytes.NewReader(body[:cut]), nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 200 || res.Count(AckPersisted) != 1 || res.Count(AckError) != 1 || len(seen) != len(res.Acks) {
		t.Fatalf("status %d, acks %+v", res.StatusCode, res.Acks)
	}
	last := res.Acks[len(res.Acks)-1]
	if last.EventType != AckError || last.ErrorID != 4006 || last.FragmentTimecode != frags[1].Timecode || res.BytesSent != int64(cut) {
		t.Errorf("last ack %+v, %d bytes sent", last, res.BytesSent)
	}

	// Through a pipe the caller decides when the body ends.
	pr, pw := io.Pipe()
	go func() {
		pw.Write(body[:cut-100])
		time.Sleep(100 * time.Millisecond)
		pw.Close()
	}()
	cfg.DataEndpoint = kvs.srv.URL
	res, err = PutRaw(context.Background(), cfg, pr, nil)
	if err != nil || res.Count(AckPersisted) != 1 || res.Count(AckError) != 0 {
		t.Fatalf("%v: %+v", err, res.Acks)
	}

	res, err = PutRaw(context.Background(), cfg, bytes.NewReader(body), http.Header{"X-Amzn-Fragment-Timecode-Type": nil})
	if err != nil || res.StatusCode != 400 || res.ErrorType != "InvalidArgumentException" || !strings.Contains(res.Message, "timecode-type") {
		t.Fatalf("%v: %+v", err, res)
	}
	if rec := kvs.put(3); rec.SigErr != nil || rec.Header.Get("x-amzn-fragment-timecode-type") != "" {
		t.Errorf("signature %v, header %q", rec.SigErr, rec.Header.Get("x-amzn-fragment-timecode-type"))
	}
}
