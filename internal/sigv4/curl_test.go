package sigv4

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// curl --aws-sigv4 is an independent SigV4 implementation (and the one
// the producer SDK is built on). Its habits: it signs host:port as sent,
// every header given with -H (transfer-encoding and connection included),
// and sha256 of the data it holds in memory even when it sends it chunked;
// a -H 'x-amz-content-sha256: ...' replaces that payload hash.
func TestCurlSigV4(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatal("curl is required for this test (scripts/setup.sh installs it)")
	}
	v := &Verifier{Service: "kinesisvideo", Region: "us-east-1", Credentials: testCreds()}
	h1 := httptest.NewServer(verifyHandler(v))
	defer h1.Close()
	h2 := httptest.NewUnstartedServer(verifyHandler(v))
	h2.EnableHTTP2 = true
	h2.StartTLS()
	defer h2.Close()

	dir := t.TempDir()
	jsonFile := filepath.Join(dir, "body.json")
	if err := os.WriteFile(jsonFile, []byte(`{"StreamName": "cam-1"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	blob := make([]byte, 300_000)
	rand.Read(blob)
	blobFile := filepath.Join(dir, "blob.mkv")
	if err := os.WriteFile(blobFile, blob, 0o600); err != nil {
		t.Fatal(err)
	}

	sigv4 := []string{"--aws-sigv4", "aws:amz:us-east-1:kinesisvideo", "--user", testAKID + ":" + testSecret}
	cases := []struct {
		name    string
		url     string
		args    []string
		proto   string
		bodyLen int64
		code    string // expected failure code; "" = success
	}{
		{name: "json POST", url: h1.URL + "/describeStream", proto: "HTTP/1.1", bodyLen: 23,
			args: []string{"-H", "Content-Type: application/json", "--data-binary", "@" + jsonFile}},
		{name: "chunked upload, buffered", url: h1.URL + "/upload", proto: "HTTP/1.1", bodyLen: int64(len(blob)),
			args: []string{"-H", "Transfer-Encoding: chunked", "--data-binary", "@" + blobFile}},
		{name: "chunked upload, streamed, unsigned payload", url: h1.URL + "/putMedia", proto: "HTTP/1.1", bodyLen: int64(len(blob)),
			args: []string{"-H", "Transfer-Encoding: chunked", "-H", "Connection: keep-alive", "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD",
				"-H", "x-amzn-stream-name: cam-1", "--data-binary", "@" + blobFile}},
		{name: "chunked upload, streamed, body hash", url: h1.URL + "/putMedia", proto: "HTTP/1.1", bodyLen: int64(len(blob)),
			code: CodeInvalidSignature, // curl signed sha256(body), the server cannot know it without buffering
			args: []string{"-H", "Transfer-Encoding: chunked", "--data-binary", "@" + blobFile}},
		// Over HTTP/2 curl drops connection and transfer-encoding after
		// signing them, as the producer SDK's libcurl does.
		{name: "http2 streamed with dropped headers", url: h2.URL + "/putMedia", proto: "HTTP/2.0", bodyLen: int64(len(blob)),
			args: []string{"-k", "--http2", "-H", "Transfer-Encoding: chunked", "-H", "Connection: keep-alive",
				"-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD", "--data-binary", "@" + blobFile}},
		{name: "http2 json POST", url: h2.URL + "/describeStream", proto: "HTTP/2.0", bodyLen: 23,
			args: []string{"-k", "--http2", "-H", "Content-Type: application/json", "--data-binary", "@" + jsonFile}},
		// curl 7.88 signs the query string as sent instead of sorting it
		// as SigV4 asks (the AWS SDKs sort): a query already in canonical
		// order verifies, another order does not. No KVS API signs a query
		// with header auth, so the verifier stays strict.
		{name: "query string in canonical order", url: h1.URL + "/listFragments?a=1&a=x%20y&b=2&c=%2B", proto: "HTTP/1.1",
			args: []string{"-X", "POST"}},
		{name: "query string unsorted", url: h1.URL + "/listFragments?b=2&a=1", proto: "HTTP/1.1", code: CodeInvalidSignature,
			args: []string{"-X", "POST"}},
		{name: "wrong secret", url: h1.URL + "/describeStream", proto: "HTTP/1.1", bodyLen: 23, code: CodeInvalidSignature,
			args: []string{"--aws-sigv4", "aws:amz:us-east-1:kinesisvideo", "--user", testAKID + ":wrong", "--data-binary", "@" + jsonFile}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"-sS", "--max-time", "20"}, sigv4...)
			args = append(args, c.args...)
			args = append(args, c.url)
			cmd := exec.Command(curl, args...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("curl: %v: %s", err, stderr.String())
			}
			var res verifyResult
			if err := json.Unmarshal(out, &res); err != nil {
				t.Fatalf("response %q: %v", out, err)
			}
			if c.code != "" {
				if res.OK || res.Code != c.code {
					t.Fatalf("got %+v, want code %s", res, c.code)
				}
				return
			}
			if !res.OK {
				t.Fatalf("%s: %s", res.Code, res.Message)
			}
			if res.Proto != c.proto || res.BodyLen != c.bodyLen {
				t.Fatalf("proto %s body %d, want %s %d", res.Proto, res.BodyLen, c.proto, c.bodyLen)
			}
			if res.Identity.AccessKeyID != testAKID || res.Identity.Region != "us-east-1" {
				t.Fatalf("identity %+v", res.Identity)
			}
		})
	}
}
