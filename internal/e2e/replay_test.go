package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia"
	avtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideoarchivedmedia/types"

	"github.com/kinema/kinema/internal/app"
	"github.com/kinema/kinema/internal/stream"
)

// The recorded producer-SDK traffic was signed with these.
const (
	fixtureKey    = "AKIDEXAMPLE"
	fixtureSecret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
)

func fixtureDir(t *testing.T, name string) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	dir := filepath.Join(filepath.Dir(file), "..", "..", "..", "shared", "fixtures", "kvs-producer-c", name)
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("fixture %s missing (../shared must sit beside the repository): %v", name, err)
	}
	return dir
}

type recordedRequest struct {
	Method  string   `json:"method"`
	URI     string   `json:"uri"`
	Headers []string `json:"headers"`
	Body    string   `json:"body"`
	Status  int      `json:"resp_status"`
	Time    string   `json:"time"`
}

func loadRequests(t *testing.T, dir string) []recordedRequest {
	b, err := os.ReadFile(filepath.Join(dir, "requests.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var out []recordedRequest
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		var r recordedRequest
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

// replayServer runs Kinema with the fixture's key and a clock set to when
// the traffic was recorded, so the SDK's own signatures verify unchanged.
func replayServer(t *testing.T, at time.Time, mods ...func(*app.Config)) *server {
	return startServer(t, append([]func(*app.Config){func(c *app.Config) {
		c.AccessKeyID, c.SecretAccessKey = fixtureKey, fixtureSecret
		c.SignatureClock = func() time.Time { return at }
	}}, mods...)...)
}

// rawResponse is an HTTP/1.1 response read off the socket with its chunk
// boundaries kept: the producer SDK needs one ack per chunk.
type rawResponse struct {
	status int
	header http.Header
	chunks []string
}

func readRawResponse(t *testing.T, br *bufio.Reader) rawResponse {
	t.Helper()
	var resp rawResponse
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading status: %v", err)
		}
		f := strings.Fields(line)
		code, _ := strconv.Atoi(f[1])
		resp.header = http.Header{}
		for {
			h, err := br.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			h = strings.TrimRight(h, "\r\n")
			if h == "" {
				break
			}
			k, v, _ := strings.Cut(h, ":")
			resp.header.Add(k, strings.TrimSpace(v))
		}
		if code == 100 {
			continue
		}
		resp.status = code
		break
	}
	if resp.header.Get("Transfer-Encoding") != "chunked" {
		n, _ := strconv.Atoi(resp.header.Get("Content-Length"))
		body := make([]byte, n)
		if _, err := io.ReadFull(br, body); err != nil {
			t.Fatalf("reading body: %v", err)
		}
		resp.chunks = []string{string(body)}
		return resp
	}
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			t.Fatalf("reading chunk size: %v", err)
		}
		n, err := strconv.ParseInt(strings.TrimSpace(line), 16, 64)
		if err != nil {
			t.Fatalf("bad chunk size %q", line)
		}
		if n == 0 {
			br.ReadString('\n')
			return resp
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(br, buf); err != nil {
			t.Fatal(err)
		}
		resp.chunks = append(resp.chunks, string(buf[:n]))
	}
}

// sendRecorded sends a recorded request byte for byte (Host without a port,
// as the SDK sends it) with body as its body, chunked when it was chunked.
func sendRecorded(t *testing.T, addr string, r recordedRequest, body []byte, chunked bool) rawResponse {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var hdr bytes.Buffer
	fmt.Fprintf(&hdr, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n", r.Method, r.URI)
	for _, h := range r.Headers {
		if strings.HasPrefix(strings.ToLower(h), "content-length") {
			continue
		}
		fmt.Fprintf(&hdr, "%s\r\n", h)
	}
	if chunked {
		hdr.WriteString("Transfer-Encoding: chunked\r\n\r\n")
	} else {
		fmt.Fprintf(&hdr, "Content-Length: %d\r\n\r\n", len(body))
	}
	if _, err := conn.Write(hdr.Bytes()); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	if !chunked {
		conn.Write(body)
		return readRawResponse(t, br)
	}
	// Write the body in odd-sized chunks (boundaries unrelated to MKV
	// elements, as curl's are) while the acks are read concurrently.
	done := make(chan rawResponse, 1)
	go func() { done <- readRawResponse(t, br) }()
	for off := 0; off < len(body); {
		n := min(len(body)-off, 65524-off%7919)
		fmt.Fprintf(conn, "%x\r\n", n)
		conn.Write(body[off : off+n])
		conn.Write([]byte("\r\n"))
		off += n
	}
	conn.Write([]byte("0\r\n\r\n"))
	select {
	case resp := <-done:
		return resp
	case <-time.After(60 * time.Second):
		t.Fatal("no complete PutMedia response within 60 s")
	}
	return rawResponse{}
}

type ackJSON struct {
	EventType        string
	FragmentTimecode int64
	FragmentNumber   string
	ErrorId          int
}

func TestReplayProducerSDKVideoOnly(t *testing.T) {
	dir := fixtureDir(t, "video-only-https")
	reqs := loadRequests(t, dir)
	at, _ := time.Parse(time.RFC3339Nano, reqs[0].Time)
	s := replayServer(t, at)
	addr := strings.TrimPrefix(s.URL, "http://")

	// The SDK's control-plane sequence: Describe (404 makes it create), Create, GetDataEndpoint.
	for _, r := range reqs[:3] {
		resp := sendRecorded(t, addr, r, []byte(r.Body), false)
		if resp.status != r.Status {
			t.Fatalf("%s: status %d, the SDK saw %d: %s", r.URI, resp.status, r.Status, resp.chunks)
		}
		if r.URI == "/describeStream" && resp.header.Get("x-amzn-ErrorType") != "ResourceNotFoundException" {
			t.Fatalf("describeStream error type %q", resp.header.Get("x-amzn-ErrorType"))
		}
		if r.URI == "/getDataEndpoint" && !strings.Contains(resp.chunks[0], `"DataEndpoint":"`+s.URL+`"`) {
			t.Fatalf("getDataEndpoint: %s", resp.chunks[0])
		}
	}
	body, _ := os.ReadFile(filepath.Join(dir, "putmedia-body.mkv"))
	resp := sendRecorded(t, addr, reqs[3], body, true)
	if resp.status != 200 {
		t.Fatalf("putMedia status %d: %v", resp.status, resp.chunks)
	}
	acks := checkAckChunks(t, resp.chunks)
	wantTC := []int64{1795237808072, 1795237809872, 1795237811672, 1795237813472, 1795237815272, 1795237817072}
	checkAckSequence(t, acks, wantTC)

	// Every frame and every tag reached the archive; read it back, after a
	// restart, with clients that sign with today's clock.
	s = s.restart(t)
	ctx := ctxT(t)
	lf, err := s.archived().ListFragments(ctx, &kinesisvideoarchivedmedia.ListFragmentsInput{
		StreamName: aws.String("test-stream"),
		FragmentSelector: &avtypes.FragmentSelector{FragmentSelectorType: avtypes.FragmentSelectorTypeProducerTimestamp,
			TimestampRange: &avtypes.TimestampRange{StartTimestamp: aws.Time(time.UnixMilli(1795237808072)), EndTimestamp: aws.Time(time.UnixMilli(1795237817072))}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(lf.Fragments) != 6 {
		t.Fatalf("%d fragments listed, want 6", len(lf.Fragments))
	}
	numberOf := map[int64]string{}
	for _, a := range acks {
		if a.EventType == "BUFFERING" {
			numberOf[a.FragmentTimecode] = a.FragmentNumber
		}
	}
	for i, f := range lf.Fragments {
		if f.ProducerTimestamp.UnixMilli() != wantTC[i] || aws.ToString(f.FragmentNumber) != numberOf[wantTC[i]] {
			t.Fatalf("fragment %d: %v %s", i, f.ProducerTimestamp, aws.ToString(f.FragmentNumber))
		}
	}
	mkv := getFragmentList(t, s, "test-stream", lf.Fragments)
	frames, tags := countMKV(t, mkv)
	if frames != 243 {
		t.Fatalf("%d frames archived, the SDK sent 243", frames)
	}
	if tags["TEST_KEY_1"] != 6 || tags["TEST_KEY_9"] != 6 {
		t.Fatalf("custom tags not kept per fragment: %v", tags)
	}
	if tags["AWS_KINESISVIDEO_END_OF_FRAGMENT"] != 0 {
		t.Fatalf("the end-of-fragment marker should not be stored as a tag: %v", tags)
	}
}

func TestReplayProducerSDKAudioVideoEvents(t *testing.T) {
	dir := fixtureDir(t, "av-events-httpdata")
	reqs := loadRequests(t, dir)
	at, _ := time.Parse(time.RFC3339Nano, reqs[0].Time)
	s := replayServer(t, at)
	addr := strings.TrimPrefix(s.URL, "http://")
	// The SDK found this stream already there.
	if err := s.Archive.Index.CreateStream(ctxT(t), &stream.Stream{Account: "000000000000", Region: "us-west-2",
		Name: "av-stream", Version: "v1", Status: stream.StatusActive, Created: at, RetentionHours: 2, StorageTier: "HOT"}, nil); err != nil {
		t.Fatal(err)
	}
	for _, r := range reqs[:2] {
		resp := sendRecorded(t, addr, r, []byte(r.Body), false)
		if resp.status != r.Status {
			t.Fatalf("%s: status %d, want %d: %v", r.URI, resp.status, r.Status, resp.chunks)
		}
	}
	body, _ := os.ReadFile(filepath.Join(dir, "putmedia-body.mkv"))
	resp := sendRecorded(t, addr, reqs[2], body, true)
	acks := checkAckChunks(t, resp.chunks)
	// RELATIVE: acks carry the timecodes as sent; the archive has absolute times.
	checkAckSequence(t, acks, []int64{0, 1800, 3600, 5400, 7200})

	s = s.restart(t)
	ctx := ctxT(t)
	start := int64(1795237344494)
	lf, err := s.archived().ListFragments(ctx, &kinesisvideoarchivedmedia.ListFragmentsInput{
		StreamName: aws.String("av-stream"),
		FragmentSelector: &avtypes.FragmentSelector{FragmentSelectorType: avtypes.FragmentSelectorTypeProducerTimestamp,
			TimestampRange: &avtypes.TimestampRange{StartTimestamp: aws.Time(time.UnixMilli(start)), EndTimestamp: aws.Time(time.UnixMilli(start + 7200))}},
	})
	if err != nil || len(lf.Fragments) != 5 {
		t.Fatalf("list: %v, %d fragments", err, len(lf.Fragments))
	}
	if got := lf.Fragments[1].ProducerTimestamp.UnixMilli(); got != start+1800 {
		t.Fatalf("fragment 2 producer time %d, want %d (start 1795237344.494 + 1800 ms)", got, start+1800)
	}
	mkv := getFragmentList(t, s, "av-stream", lf.Fragments)
	_, tags := countMKV(t, mkv)
	// The event tags travel with the first fragment (they precede the second Cluster).
	if tags["AWS_KINESISVIDEO_NOTIFICATION"] != 1 || tags["AWS_KINESISVIDEO_IMAGE_GENERATION"] != 1 {
		t.Fatalf("event tags: %v", tags)
	}
	total := ffprobePackets(t, mkv)
	want := ffprobePacketsFile(t, filepath.Join(dir, "putmedia-body.mkv"))
	if total != want {
		t.Fatalf("ffprobe counts %d packets in GetMediaForFragmentList output, %d in what the SDK sent", total, want)
	}
}

// checkAckChunks parses each chunk as exactly one ack of at most 1024 bytes.
func checkAckChunks(t *testing.T, chunks []string) []ackJSON {
	t.Helper()
	var acks []ackJSON
	for _, c := range chunks {
		if len(c) > 1024 {
			t.Fatalf("ack chunk of %d bytes: the SDK rejects chunks over 1024", len(c))
		}
		if strings.Count(strings.TrimSpace(c), "\n") != 0 {
			t.Fatalf("chunk holds more than one ack: %q", c)
		}
		var a ackJSON
		if err := json.Unmarshal([]byte(c), &a); err != nil {
			t.Fatalf("chunk %q is not one JSON ack: %v", c, err)
		}
		if a.EventType == "IDLE" {
			continue
		}
		acks = append(acks, a)
	}
	return acks
}

func checkAckSequence(t *testing.T, acks []ackJSON, timecodes []int64) {
	t.Helper()
	if len(acks) != 3*len(timecodes) {
		t.Fatalf("%d acks, want %d: %+v", len(acks), 3*len(timecodes), acks)
	}
	seen := map[string]int{}
	for _, a := range acks {
		seen[a.EventType]++
		if a.EventType == "ERROR" {
			t.Fatalf("ERROR ack %+v", a)
		}
	}
	if seen["BUFFERING"] != len(timecodes) || seen["RECEIVED"] != len(timecodes) || seen["PERSISTED"] != len(timecodes) {
		t.Fatalf("ack counts %v", seen)
	}
	// Per fragment: BUFFERING before RECEIVED before PERSISTED, with the timecode as sent.
	pos := map[string]int{}
	for i, a := range acks {
		pos[a.EventType+a.FragmentNumber] = i
	}
	var prev string
	for i, tc := range timecodes {
		var num string
		for _, a := range acks {
			if a.EventType == "BUFFERING" && a.FragmentTimecode == tc {
				num = a.FragmentNumber
			}
		}
		if num == "" {
			t.Fatalf("no BUFFERING ack for timecode %d", tc)
		}
		if len(num) != 47 || (prev != "" && num <= prev) {
			t.Fatalf("fragment number %q (previous %q) is not a growing 47-digit number", num, prev)
		}
		prev = num
		if !(pos["BUFFERING"+num] < pos["RECEIVED"+num] && pos["RECEIVED"+num] < pos["PERSISTED"+num]) {
			t.Fatalf("fragment %d: acks out of order", i)
		}
	}
}
