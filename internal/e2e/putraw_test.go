package e2e

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/kinema/kinema/internal/media/mkv"
)

var emptyHash = func() string { h := sha256.Sum256(nil); return hex.EncodeToString(h[:]) }()

// putResult is what a PutMedia call gave back.
type putResult struct {
	status  int
	errType string
	message string
	acks    []ackJSON
	idles   int // IDLE acks, kept apart from the fragment acks
}

func (p putResult) count(event string) int {
	n := 0
	for _, a := range p.acks {
		if a.EventType == event {
			n++
		}
	}
	return n
}

func (p putResult) errorID() int {
	for _, a := range p.acks {
		if a.EventType == "ERROR" {
			return a.ErrorId
		}
	}
	return 0
}

// putMedia sends body to /putMedia, signed as the producer SDK signs it
// (empty-payload hash), and collects the acks until the response ends.
func putMedia(t *testing.T, s *server, headers map[string]string, body io.Reader) putResult {
	t.Helper()
	return putMediaTo(t, s.URL, headers, body, nil)
}

// putMediaTo is putMedia against any base URL, calling onAck for each ack
// as it arrives.
func putMediaTo(t *testing.T, baseURL string, headers map[string]string, body io.Reader, onAck func(ackJSON)) putResult {
	t.Helper()
	creds, _ := sdkConfig().Credentials.Retrieve(context.Background())
	return putMediaAs(t, baseURL, creds, headers, body, onAck)
}

// putMediaAs is putMediaTo signed with creds (with a session token, sent
// unsigned as the producer SDK sends it).
func putMediaAs(t *testing.T, baseURL string, creds aws.Credentials, headers map[string]string, body io.Reader, onAck func(ackJSON)) putResult {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, baseURL+"/putMedia", body)
	if err != nil {
		t.Fatal(err)
	}
	req.ContentLength = -1
	// A connection of its own, as a camera's PutMedia has: after a session
	// that ends in an error the server stops reading the body, and a
	// pooled connection it then resets would fail the test's next call.
	req.Close = true
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("x-amzn-fragment-acknowledgment-required", "1")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	token := creds.SessionToken
	creds.SessionToken = ""
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, emptyHash, "kinesisvideo", testRegion, time.Now()); err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("X-Amz-Security-Token", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if onAck != nil {
			return putResult{} // the server went away; the caller expected it
		}
		t.Fatalf("PutMedia: %v", err)
	}
	defer resp.Body.Close()
	res := putResult{status: resp.StatusCode, errType: resp.Header.Get("x-amzn-ErrorType")}
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		res.message = string(b)
		return res
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var a ackJSON
		if err := json.Unmarshal([]byte(line), &a); err != nil {
			t.Fatalf("ack %q: %v", line, err)
		}
		if a.EventType == "IDLE" {
			res.idles++
		} else {
			res.acks = append(res.acks, a)
			if onAck != nil {
				onAck(a)
			}
		}
	}
	return res
}

func absolute(name string) map[string]string {
	return map[string]string{"x-amzn-stream-name": name, "x-amzn-fragment-timecode-type": "ABSOLUTE",
		"x-amzn-producer-start-timestamp": "1700000000.0"}
}

// mkvBuilder writes PutMedia bodies as the producer SDK lays them out.
type mkvBuilder struct{ b []byte }

var testTrack = mkv.Track{Number: 1, UID: 1, Type: mkv.TrackTypeVideo, Name: "kvs_video_track", CodecID: "V_MPEG4/ISO/AVC",
	PixelWidth: 320, PixelHeight: 240, CodecPrivate: []byte{1, 0x64, 0, 0x1e, 0xff, 0xe1, 0, 0}}

func (m *mkvBuilder) header(tracks ...mkv.Track) *mkvBuilder {
	if len(tracks) == 0 {
		tracks = []mkv.Track{testTrack}
	}
	m.b = mkv.AppendHeader(m.b, mkv.Header{TimecodeScale: 1_000_000, Tracks: tracks})
	return m
}

// cluster adds an unknown-size cluster at tc (ms) with n frames 40 ms apart.
func (m *mkvBuilder) cluster(tc uint64, n int, frameBytes int) *mkvBuilder {
	m.b = mkv.AppendClusterStartUnknown(m.b, tc)
	for i := 0; i < n; i++ {
		m.b = mkv.AppendSimpleBlock(m.b, 1, int16(i*40), i == 0, make([]byte, frameBytes))
	}
	return m
}

func (m *mkvBuilder) block(track uint64, reltc int16, size int) *mkvBuilder {
	m.b = mkv.AppendSimpleBlock(m.b, track, reltc, false, make([]byte, size))
	return m
}

func (m *mkvBuilder) tags(kv ...string) *mkvBuilder {
	for i := 0; i+1 < len(kv); i += 2 {
		m.b = mkv.AppendTags(m.b, []mkv.SimpleTag{{Name: kv[i], Value: kv[i+1]}})
	}
	return m
}

func (m *mkvBuilder) eofr() *mkvBuilder { return m.tags("AWS_KINESISVIDEO_END_OF_FRAGMENT", "") }

func (m *mkvBuilder) raw(b []byte) *mkvBuilder { m.b = append(m.b, b...); return m }

func (m *mkvBuilder) reader() io.Reader { return strings.NewReader(string(m.b)) }
