package e2e

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// signedJSON posts a SigV4-signed JSON call and returns status and body.
func signedJSON(t *testing.T, s *server, op, body string) (int, []byte) {
	t.Helper()
	return signedJSONTo(t, s.URL, op, body)
}

// signedJSONTo is signedJSON against any base URL.
func signedJSONTo(t *testing.T, baseURL, op, body string) (int, []byte) {
	t.Helper()
	resp, b := signedCall(t, baseURL, op, body)
	return resp.StatusCode, b
}

// signedCall is signedJSONTo returning the whole response (its body read).
func signedCall(t *testing.T, baseURL, op, body string) (*http.Response, []byte) {
	t.Helper()
	creds, _ := sdkConfig().Credentials.Retrieve(context.Background())
	return signedCallAs(t, baseURL, creds, http.MethodPost, op, body, time.Now(), testRegion)
}

// signedCallAs sends a call signed with creds at signedAt for region.
func signedCallAs(t *testing.T, baseURL string, creds aws.Credentials, method, op, body string, signedAt time.Time, region string) (*http.Response, []byte) {
	t.Helper()
	req := signedRequest(t, baseURL, creds, method, op, body, signedAt, region)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, b
}

// signedRequest builds a JSON call signed with creds at signedAt for region.
func signedRequest(t *testing.T, baseURL string, creds aws.Credentials, method, op, body string, signedAt time.Time, region string) *http.Request {
	t.Helper()
	req, _ := http.NewRequest(method, baseURL+"/"+op, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	sum := sha256.Sum256([]byte(body))
	if err := v4.NewSigner().SignHTTP(context.Background(), creds, req, hex.EncodeToString(sum[:]), "kinesisvideo", region, signedAt); err != nil {
		t.Fatal(err)
	}
	return req
}

func getRange(t *testing.T, url string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

// Kinema's clip URL: an MP4 of any range behind a plain GET, with byte
// ranges that equal the same slices of the whole file, a stable ETag, and
// the Range/If-Range/416 semantics players and download managers rely on.
func TestClipSessionURLWithRanges(t *testing.T) {
	s := startServer(t)
	file := makeMedia(t, "src.mkv", "-f", "lavfi", "-i", "testsrc2=size=320x240:rate=25", "-f", "lavfi", "-i", "sine=sample_rate=48000",
		"-t", "6", "-c:v", "libx264", "-g", "25", "-pix_fmt", "yuv420p", "-c:a", "aac", "-cluster_time_limit", "1000")
	createStream(t, s, "cam", 1)
	start := time.Now().Add(-time.Minute).UnixMilli()
	curlPutMedia(t, s, "cam", file, start)
	code, body := signedJSON(t, s, "getClipSessionURL", fmt.Sprintf(`{"StreamName":"cam","ClipFragmentSelector":{"FragmentSelectorType":"PRODUCER_TIMESTAMP","TimestampRange":{"StartTimestamp":%d,"EndTimestamp":%d}}}`,
		start/1000, start/1000+60))
	var out struct{ ClipURL string }
	if code != 200 || json.Unmarshal(body, &out) != nil || !strings.Contains(out.ClipURL, "/clip/v1/getClip.mp4?SessionToken=") {
		t.Fatalf("getClipSessionURL: %d %s", code, body)
	}
	resp, full := getRange(t, out.ClipURL, nil)
	etag := resp.Header.Get("ETag")
	if resp.StatusCode != 200 || resp.Header.Get("Accept-Ranges") != "bytes" || etag == "" || resp.ContentLength != int64(len(full)) {
		t.Fatalf("full GET: %d %v (%d bytes)", resp.StatusCode, resp.Header, len(full))
	}
	p := filepath.Join(t.TempDir(), "clip.mp4")
	os.WriteFile(p, full, 0o644)
	if vf, _ := ffprobeURL(t, p); vf != 150 {
		t.Fatalf("the clip plays %d frames, 150 were ingested", vf)
	}
	// ffmpeg reads it straight from the URL too (it seeks with Range).
	if vf, _ := ffprobeURL(t, out.ClipURL); vf != 150 {
		t.Fatalf("ffprobe over HTTP: %d frames", vf)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	n := int64(len(full))
	for i := 0; i < 40; i++ {
		a := rng.Int64N(n)
		b := a + rng.Int64N(n-a)
		resp, part := getRange(t, out.ClipURL, map[string]string{"Range": fmt.Sprintf("bytes=%d-%d", a, b)})
		if resp.StatusCode != 206 || !bytes.Equal(part, full[a:b+1]) || resp.Header.Get("Content-Range") != fmt.Sprintf("bytes %d-%d/%d", a, b, n) ||
			resp.Header.Get("ETag") != etag {
			t.Fatalf("range %d-%d: %d %s, %d bytes", a, b, resp.StatusCode, resp.Header.Get("Content-Range"), len(part))
		}
	}
	// A resumed download: the tail, guarded by If-Range.
	resp, tail := getRange(t, out.ClipURL, map[string]string{"Range": "bytes=-1000", "If-Range": etag})
	if resp.StatusCode != 206 || !bytes.Equal(tail, full[n-1000:]) {
		t.Fatalf("suffix range: %d", resp.StatusCode)
	}
	resp, all := getRange(t, out.ClipURL, map[string]string{"Range": "bytes=100-", "If-Range": `"stale"`})
	if resp.StatusCode != 200 || !bytes.Equal(all, full) {
		t.Fatalf("If-Range with another ETag must give the whole file: %d", resp.StatusCode)
	}
	if resp, _ := getRange(t, out.ClipURL, map[string]string{"Range": fmt.Sprintf("bytes=%d-", n)}); resp.StatusCode != 416 {
		t.Fatalf("unsatisfiable range: %d", resp.StatusCode)
	}
	// The token is checked like any session token.
	if resp, _ := getRange(t, strings.Replace(out.ClipURL, "SessionToken=", "SessionToken=A", 1), nil); resp.StatusCode != 403 {
		t.Fatalf("tampered clip token: %d", resp.StatusCode)
	}
}
