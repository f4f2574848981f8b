package e2e

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia"

	"github.com/kinema/kinema/internal/app"
	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/ingest"
	"github.com/kinema/kinema/internal/kvsapi"
	"github.com/kinema/kinema/internal/media/mkv"
	"github.com/kinema/kinema/internal/putmedia"
)

func createStream(t *testing.T, s *server, name string, retention int32) string {
	t.Helper()
	out, err := s.kv().CreateStream(ctxT(t), &kinesisvideo.CreateStreamInput{StreamName: aws.String(name), DataRetentionInHours: aws.Int32(retention)})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(out.StreamARN)
}

func listCount(t *testing.T, s *server, name string) int {
	t.Helper()
	out, err := s.archived().ListFragments(ctxT(t), &kinesisvideoarchivedmedia.ListFragmentsInput{StreamName: aws.String(name)})
	if err != nil {
		t.Fatal(err)
	}
	return len(out.Fragments)
}

func smallLimits(c *app.Config) {
	l := ingest.DefaultLimits()
	l.MaxFragmentBytes = 1 << 20
	c.Limits = &l
}

// Each bad body gets its KVS ErrorId after the good fragment before it was
// PERSISTED, and that fragment stays readable.
func TestPutMediaErrorAcks(t *testing.T) {
	s := startServer(t, smallLimits)
	good := func() *mkvBuilder { return (&mkvBuilder{}).header().cluster(1_700_000_000_000, 5, 100).eofr() }
	cases := []struct {
		name string
		body *mkvBuilder
		want int
	}{
		{"invalid MKV", good().raw([]byte{0xff, 0xff, 0x00, 0x12, 0x34}), putmedia.ErrInvalidMKV},
		{"timecode backwards", good().cluster(1_699_999_999_000, 2, 10), putmedia.ErrTimecodeBackwards},
		{"fragment too large", good().cluster(1_700_000_002_000, 12, 100_000), putmedia.ErrMaxFragmentSize},
		{"fragment too long", good().cluster(1_700_000_002_000, 1, 10).block(1, 21000, 10), putmedia.ErrMaxFragmentDuration},
		{"undeclared track", good().cluster(1_700_000_002_000, 1, 10).block(3, 40, 10), putmedia.ErrTrackMismatch},
		{"too many tags", good().cluster(1_700_000_002_000, 2, 10).tags("k1", "v", "k2", "v", "k3", "v", "k4", "v", "k5", "v", "k6", "v",
			"k7", "v", "k8", "v", "k9", "v", "k10", "v", "k11", "v"), putmedia.ErrMetadataLimit},
		{"tag value too long", good().cluster(1_700_000_002_000, 2, 10).tags("k", strings.Repeat("x", 257)), putmedia.ErrMetadataLimit},
		{"truncated upload", good().cluster(1_700_000_002_000, 2, 10).raw([]byte{0xa3, 0x88, 0x00}), putmedia.ErrInvalidMKV},
		{"lying block size", good().cluster(1_700_000_002_000, 1, 10).raw([]byte{0xa3, 0x01, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x81}), putmedia.ErrMaxFragmentSize},
	}
	for i, c := range cases {
		name := "bad-" + strings.ReplaceAll(c.name, " ", "-")
		createStream(t, s, name, 1)
		res := putMedia(t, s, absolute(name), c.body.reader())
		if res.status != 200 {
			t.Fatalf("%s: HTTP %d %s", c.name, res.status, res.errType)
		}
		if got := res.errorID(); got != c.want {
			t.Errorf("%s: ErrorId %d, want %d (acks %+v)", c.name, got, c.want, res.acks)
		}
		if res.count("PERSISTED") != 1 || listCount(t, s, name) != 1 {
			t.Errorf("%s: the good fragment before the error was not kept (%d PERSISTED)", c.name, res.count("PERSISTED"))
		}
		_ = i
	}
	t.Logf("%d bad PutMedia bodies each got their ErrorId", len(cases))
	// Too many tracks is refused at the header.
	createStream(t, s, "four-tracks", 1)
	tr := func(n uint64) mkv.Track { x := testTrack; x.Number, x.UID = n, n; return x }
	res := putMedia(t, s, absolute("four-tracks"), (&mkvBuilder{}).header(tr(1), tr(2), tr(3), tr(4)).cluster(1_700_000_000_000, 2, 10).reader())
	if res.errorID() != putmedia.ErrTooManyTracks {
		t.Fatalf("4 tracks: %+v", res.acks)
	}
}

func TestPutMediaHTTPErrors(t *testing.T) {
	s := startServer(t)
	createStream(t, s, "cam", 1)
	body := func() io.Reader { return (&mkvBuilder{}).header().cluster(1_700_000_000_000, 2, 10).reader() }
	cases := []struct {
		name    string
		headers map[string]string
		status  int
		errType string
	}{
		{"unknown stream", absolute("nope"), 404, "ResourceNotFoundException"},
		{"no stream", map[string]string{"x-amzn-fragment-timecode-type": "ABSOLUTE"}, 400, "InvalidArgumentException"},
		{"no timecode type", map[string]string{"x-amzn-stream-name": "cam"}, 400, "InvalidArgumentException"},
		{"bad timecode type", map[string]string{"x-amzn-stream-name": "cam", "x-amzn-fragment-timecode-type": "SOMETIMES"}, 400, "InvalidArgumentException"},
		{"relative without start", map[string]string{"x-amzn-stream-name": "cam", "x-amzn-fragment-timecode-type": "RELATIVE"}, 400, "InvalidArgumentException"},
		{"bad start", map[string]string{"x-amzn-stream-name": "cam", "x-amzn-fragment-timecode-type": "RELATIVE", "x-amzn-producer-start-timestamp": "yesterday"}, 400, "InvalidArgumentException"},
	}
	for _, c := range cases {
		res := putMedia(t, s, c.headers, body())
		if res.status != c.status || res.errType != c.errType {
			t.Errorf("%s: HTTP %d %s, want %d %s", c.name, res.status, res.errType, c.status, c.errType)
		}
		// A producer keeps its body open while it waits: the error must
		// still arrive.
		pr, pw := io.Pipe()
		go pw.Write(make([]byte, 1024))
		done := make(chan putResult, 1)
		go func() { done <- putMedia(t, s, c.headers, pr) }()
		select {
		case res := <-done:
			if res.status != c.status {
				t.Errorf("%s with the body open: HTTP %d", c.name, res.status)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: no answer while the body stays open", c.name)
		}
		pw.Close()
	}
}

// A second PutMedia while the first is receiving is refused; once the first
// body has ended (its acks may still be draining) a new one is accepted.
func TestPutMediaOneConnectionPerStream(t *testing.T) {
	s := startServer(t)
	createStream(t, s, "cam", 1)
	pr, pw := io.Pipe()
	first := make(chan putResult, 1)
	go func() { first <- putMedia(t, s, absolute("cam"), pr) }()
	pw.Write((&mkvBuilder{}).header().cluster(1_700_000_000_000, 3, 10).b)
	time.Sleep(300 * time.Millisecond)
	res := putMedia(t, s, absolute("cam"), (&mkvBuilder{}).header().cluster(1_700_000_010_000, 2, 10).reader())
	if res.status != 400 || res.errType != "ConnectionLimitExceededException" {
		t.Fatalf("second connection: %d %s", res.status, res.errType)
	}
	pw.Write((&mkvBuilder{}).cluster(1_700_000_001_000, 3, 10).b)
	pw.Close()
	// Rotation: the next session starts right away.
	res = putMedia(t, s, absolute("cam"), (&mkvBuilder{}).header().cluster(1_700_000_010_000, 2, 10).reader())
	if res.status != 200 || res.count("PERSISTED") != 1 {
		t.Fatalf("rotated connection: %d %+v", res.status, res.acks)
	}
	if r := <-first; r.count("PERSISTED") != 2 {
		t.Fatalf("first connection: %+v", r.acks)
	}
	if n := listCount(t, s, "cam"); n != 3 {
		t.Fatalf("%d fragments archived, want 3", n)
	}
}

// After an ERROR ack the producer SDK reconnects without an EBML header,
// starting at Tags, at a Cluster, or (rarely) mid-block; all must work.
func TestPutMediaResumeWithoutHeader(t *testing.T) {
	s := startServer(t)
	createStream(t, s, "cam", 1)
	res := putMedia(t, s, absolute("cam"), (&mkvBuilder{}).header().cluster(1_700_000_000_000, 3, 10).eofr().reader())
	if res.count("PERSISTED") != 1 {
		t.Fatalf("first session: %+v", res.acks)
	}
	starts := map[string]*mkvBuilder{
		"tags first":    (&mkvBuilder{}).tags("TEST_KEY", "v").eofr().cluster(1_700_000_002_000, 3, 10).eofr(),
		"cluster first": (&mkvBuilder{}).cluster(1_700_000_004_000, 3, 10).eofr(),
		"mid block":     (&mkvBuilder{}).raw(make([]byte, 700)).cluster(1_700_000_006_000, 3, 10).eofr(),
	}
	for _, name := range []string{"tags first", "cluster first", "mid block"} {
		res := putMedia(t, s, absolute("cam"), starts[name].reader())
		if res.count("PERSISTED") != 1 || res.errorID() != 0 {
			t.Fatalf("%s: %+v", name, res.acks)
		}
	}
	if n := listCount(t, s, "cam"); n != 4 {
		t.Fatalf("%d fragments, want 4", n)
	}
}

// Deleting a stream while it ingests ends the session with ERROR 4008.
func TestPutMediaStreamDeleted(t *testing.T) {
	s := startServer(t)
	arn := createStream(t, s, "cam", 1)
	pr, pw := io.Pipe()
	done := make(chan putResult, 1)
	go func() { done <- putMedia(t, s, absolute("cam"), pr) }()
	pw.Write((&mkvBuilder{}).header().cluster(1_700_000_000_000, 3, 10).eofr().b)
	time.Sleep(300 * time.Millisecond)
	if _, err := s.kv().DeleteStream(ctxT(t), &kinesisvideo.DeleteStreamInput{StreamARN: aws.String(arn)}); err != nil {
		t.Fatal(err)
	}
	pw.Write((&mkvBuilder{}).cluster(1_700_000_001_000, 3, 10).eofr().b)
	res := <-done
	pw.Close()
	if res.errorID() != putmedia.ErrStreamNotActive || res.count("PERSISTED") != 1 {
		t.Fatalf("acks %+v", res.acks)
	}
}

// A stream without retention gets BUFFERING and RECEIVED, no PERSISTED, and
// nothing is archived.
func TestPutMediaNoRetention(t *testing.T) {
	s := startServer(t)
	createStream(t, s, "live-only", 0)
	res := putMedia(t, s, absolute("live-only"), (&mkvBuilder{}).header().cluster(1_700_000_000_000, 3, 10).eofr().cluster(1_700_000_001_000, 3, 10).reader())
	if res.count("RECEIVED") != 2 || res.count("PERSISTED") != 0 || res.errorID() != 0 {
		t.Fatalf("acks %+v", res.acks)
	}
	if n := listCount(t, s, "live-only"); n != 0 {
		t.Fatalf("%d fragments archived for a stream without retention", n)
	}
}

// A producer that lost its connection after a fragment was persisted, but
// before it saw the ack, resends it; the archive keeps one copy.
func TestPutMediaReplayedFragmentStoredOnce(t *testing.T) {
	s := startServer(t)
	createStream(t, s, "cam", 1)
	first := putMedia(t, s, absolute("cam"), (&mkvBuilder{}).header().cluster(1_700_000_000_000, 3, 100).eofr().cluster(1_700_000_001_000, 3, 100).eofr().reader())
	if first.count("PERSISTED") != 2 {
		t.Fatalf("first session: %+v", first.acks)
	}
	// The reconnect replays the second fragment, then goes on.
	again := putMedia(t, s, absolute("cam"), (&mkvBuilder{}).header().cluster(1_700_000_001_000, 3, 100).eofr().cluster(1_700_000_002_000, 3, 100).eofr().reader())
	if again.count("PERSISTED") != 2 || again.errorID() != 0 {
		t.Fatalf("replay session: %+v", again.acks)
	}
	if n := listCount(t, s, "cam"); n != 3 {
		t.Fatalf("%d fragments archived, want 3 (the replayed one once)", n)
	}
	var persistedNum string
	for _, a := range again.acks {
		if a.EventType == "PERSISTED" && a.FragmentTimecode == 1_700_000_001_000 {
			persistedNum = a.FragmentNumber
		}
	}
	for _, a := range first.acks {
		if a.EventType == "PERSISTED" && a.FragmentTimecode == 1_700_000_001_000 && a.FragmentNumber != persistedNum {
			t.Fatalf("the replay was acknowledged as %s, the stored fragment is %s", persistedNum, a.FragmentNumber)
		}
	}
	// A different fragment at the same start time is not a replay.
	other := putMedia(t, s, absolute("cam"), (&mkvBuilder{}).header().cluster(1_700_000_002_000, 4, 100).eofr().reader())
	if other.count("PERSISTED") != 1 || listCount(t, s, "cam") != 4 {
		t.Fatalf("a different fragment with a repeated timestamp was dropped")
	}
}

func quickIdle(c *app.Config) {
	l := ingest.DefaultLimits()
	l.IdleAckInterval, l.IdleTimeout, l.StaleAfter = 200*time.Millisecond, 1500*time.Millisecond, 300*time.Millisecond
	c.Limits = &l
}

// A producer that goes quiet gets IDLE acks, and the request ends after the
// idle timeout even though the producer never closes its body.
func TestPutMediaIdleAcksAndTimeout(t *testing.T) {
	s := startServer(t, quickIdle)
	createStream(t, s, "cam", 1)
	pr, pw := io.Pipe()
	defer pw.Close()
	done := make(chan putResult, 1)
	started := time.Now()
	go func() { done <- putMedia(t, s, absolute("cam"), pr) }()
	pw.Write((&mkvBuilder{}).header().cluster(1_700_000_000_000, 3, 10).eofr().b)
	select {
	case res := <-done:
		if res.count("PERSISTED") != 1 || res.idles < 2 || res.errorID() != 0 {
			t.Fatalf("quiet producer: %d IDLE acks, acks %+v", res.idles, res.acks)
		}
		if d := time.Since(started); d < 1400*time.Millisecond {
			t.Fatalf("the request ended after %v, before the idle timeout", d)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a silent PutMedia was not ended by the idle timeout")
	}
}

// Live readers see the blocks of a fragment while it arrives (LL-HLS serves
// them), and stop seeing it when its producer goes away before finishing
// it: such a fragment is never RECEIVED.
func TestPutMediaOpenFragmentDroppedWithItsProducer(t *testing.T) {
	s := startServer(t, quickIdle)
	createStream(t, s, "cam", 1)
	st, err := s.Archive.Index.StreamByName(ctxT(t), kvsapi.DefaultAccount, "cam")
	if err != nil {
		t.Fatal(err)
	}
	pr, pw := io.Pipe()
	defer pw.Close()
	done := make(chan putResult, 1)
	go func() { done <- putMedia(t, s, absolute("cam"), pr) }()
	pw.Write((&mkvBuilder{}).header().cluster(1_700_000_000_000, 3, 10).b) // no end of fragment
	var open archive.OpenFragment
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		var ok bool
		if open, ok = s.Archive.Live.Open(st.ID); ok {
			break
		}
	}
	if open.Body == nil {
		t.Fatal("the fragment being received was never published to live readers")
	}
	res := <-done // the idle timeout ends the silent request
	if res.count("RECEIVED") != 0 {
		t.Fatalf("an unfinished fragment was acknowledged: %+v", res.acks)
	}
	if o, ok := s.Archive.Live.Open(st.ID); ok {
		t.Fatalf("fragment %s is still open after its producer went away", o.Fragment.Number)
	}
}

// A connection that has been silent longer than StaleAfter (a camera whose
// network dropped without a FIN) gives way to the camera's new connection.
func TestPutMediaSilentConnectionIsPreempted(t *testing.T) {
	s := startServer(t, quickIdle)
	createStream(t, s, "cam", 1)
	pr, pw := io.Pipe()
	defer pw.Close()
	first := make(chan putResult, 1)
	go func() { first <- putMedia(t, s, absolute("cam"), pr) }()
	pw.Write((&mkvBuilder{}).header().cluster(1_700_000_000_000, 3, 10).eofr().b)
	time.Sleep(600 * time.Millisecond) // silent past StaleAfter, short of the idle timeout
	res := putMedia(t, s, absolute("cam"), (&mkvBuilder{}).header().cluster(1_700_000_001_000, 3, 10).eofr().reader())
	if res.status != 200 || res.count("PERSISTED") != 1 {
		t.Fatalf("the new connection: %d %s %+v", res.status, res.errType, res.acks)
	}
	select {
	case r := <-first:
		if r.count("PERSISTED") != 1 {
			t.Fatalf("the pre-empted connection lost its acknowledged fragment: %+v", r.acks)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the pre-empted connection was not ended")
	}
	if n := listCount(t, s, "cam"); n != 2 {
		t.Fatalf("%d fragments archived, want 2", n)
	}
}
