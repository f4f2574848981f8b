package sigv4

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/smithy-go/logging"
)

const (
	testAKID   = "AKIAKINEMATEST"
	testSecret = "kinema/test+secret=="
	testRegion = "eu-central-1"
)

func testCreds() staticCreds { return staticCreds{testAKID: testSecret, fixtureAKID: fixtureSecret} }

// verifyResult is what the test server reports for each request it saw.
type verifyResult struct {
	OK       bool
	Identity Identity
	Code     string
	Message  string
	Proto    string
	BodyLen  int64
}

// verifyHandler verifies every request with v and answers with a JSON
// verifyResult (403 on failure). Requests to exactly /putMedia are treated
// as streamed (verified before the body is read); all others are read
// completely first, as the control plane will.
func verifyHandler(v *Verifier) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		res := verifyResult{Proto: r.Proto}
		streaming := r.URL.Path == "/putMedia"
		var body []byte
		if !streaming {
			var err error
			if body, err = io.ReadAll(io.LimitReader(r.Body, 8<<20)); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
		}
		id, err := v.Verify(r, body, streaming)
		if streaming {
			res.BodyLen, _ = io.Copy(io.Discard, r.Body)
		} else {
			res.BodyLen = int64(len(body))
		}
		status := http.StatusOK
		if err != nil {
			status = http.StatusForbidden
			if ae, ok := err.(*Error); ok {
				res.Code, res.Message = ae.Code, ae.Message
			} else {
				res.Code, res.Message, status = "InternalFailure", err.Error(), http.StatusInternalServerError
			}
		} else {
			res.OK, res.Identity = true, id
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(res)
	})
}

func decodeResult(t testing.TB, resp *http.Response) verifyResult {
	t.Helper()
	defer resp.Body.Close()
	var res verifyResult
	data, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatalf("status %d, body %q: %v", resp.StatusCode, data, err)
	}
	return res
}

func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

type sdkCase struct {
	name      string
	method    string
	target    string // escaped path and query, appended to the server URL
	body      []byte
	stream    bool   // send the body chunked, of unknown length
	payload   string // payload hash to sign; "" = sha256(body)
	shaHeader bool   // also send X-Amz-Content-Sha256: payload
	token     string
	headers   map[string]string
	presign   bool
}

func sdkCases() []sdkCase {
	json := []byte("{\n\t\"StreamName\": \"test-stream\"\n}")
	mkv := bytes.Repeat([]byte{0x1a, 0x45, 0xdf, 0xa3, 0, 1, 2, 3}, 20000)
	return []sdkCase{
		{name: "describeStream", method: "POST", target: "/describeStream", body: json},
		{name: "session token", method: "POST", target: "/describeStream", body: json, token: "FwoGZXIvYXdzE+/token=="},
		{name: "empty body", method: "POST", target: "/listStreams"},
		{name: "sha header", method: "POST", target: "/describeStream", body: json, payload: sha256Hex(json), shaHeader: true},
		{name: "unsigned payload", method: "POST", target: "/describeStream", body: json, payload: unsignedPayload, shaHeader: true},
		{name: "signed x-amzn headers", method: "POST", target: "/describeStream", body: json,
			headers: map[string]string{"X-Amzn-Stream-Name": "a  b   c", "Content-Type": "application/json", "X-Amzn-Multi": " lead and trail "}},
		{name: "putMedia streamed", method: "POST", target: "/putMedia", body: mkv, stream: true, payload: emptySHA256,
			headers: map[string]string{"X-Amzn-Stream-Name": "test-stream", "X-Amzn-Fragment-Timecode-Type": "ABSOLUTE", "X-Amzn-Producer-Start-Timestamp": "1795237808.72"}},
		{name: "putMedia streamed unsigned", method: "POST", target: "/putMedia", body: mkv, stream: true, payload: unsignedPayload, shaHeader: true},
		{name: "putMedia streamed hash header", method: "POST", target: "/putMedia", body: mkv, stream: true, payload: sha256Hex(mkv), shaHeader: true},
		{name: "chunked buffered", method: "POST", target: "/upload", body: mkv, stream: true},
		{name: "hls playlist path", method: "GET", target: "/hls/v1/getHLSMasterPlaylist.m3u8?SessionToken=CiAbc%2Bdef%2F%3D%3D"},
		{name: "path with space and percent", method: "POST", target: "/a%20b/c%25d/%E2%82%AC", body: json},
		{name: "path with reserved chars", method: "POST", target: "/x+y=z,@!$'()*:;/~._-", body: json},
		{name: "double slash", method: "POST", target: "//putMediaX", body: json},
		{name: "encoded slash", method: "GET", target: "/a%2Fb/c"},
		{name: "query sorting", method: "GET", target: "/listFragments?b=2&a=2&a=1&a-b=x&a%2Fb=y&sp=a%20b&plus=%2B&empty="},
		{name: "presign GET unsigned", method: "GET", target: "/hls/v1/getHLSMasterPlaylist.m3u8?X-Amz-Expires=300&SessionToken=t", payload: unsignedPayload, presign: true},
		{name: "presign GET empty hash", method: "GET", target: "/getMedia?X-Amz-Expires=60", payload: emptySHA256, presign: true, token: "presign/token"},
		{name: "presign POST body", method: "POST", target: "/describeStream?X-Amz-Expires=900", body: json, presign: true},
		{name: "presign putMedia", method: "POST", target: "/putMedia?X-Amz-Expires=3600", body: mkv, stream: true, payload: emptySHA256, presign: true,
			headers: map[string]string{"X-Amzn-Stream-Name": "test-stream"}},
	}
}

// buildSigned returns a request for c signed by aws-sdk-go-v2's signer.
func (c sdkCase) buildSigned(t testing.TB, baseURL string, signTime time.Time, secret string) *http.Request {
	t.Helper()
	u, err := url.Parse(baseURL + c.target)
	if err != nil {
		t.Fatal(err)
	}
	var body io.Reader
	if c.body != nil {
		body = bytes.NewReader(c.body)
	}
	if c.stream {
		// An io.Reader of unknown length: net/http sends it chunked.
		body = io.MultiReader(bytes.NewReader(c.body))
	}
	req, err := http.NewRequest(c.method, u.String(), body)
	if err != nil {
		t.Fatal(err)
	}
	if c.stream {
		req.ContentLength = -1
	}
	for k, v := range c.headers {
		req.Header.Set(k, v)
	}
	payload := c.payload
	if payload == "" {
		payload = sha256Hex(c.body)
	}
	if c.shaHeader {
		req.Header.Set("X-Amz-Content-Sha256", payload)
	}
	creds := aws.Credentials{AccessKeyID: testAKID, SecretAccessKey: secret, SessionToken: c.token}
	signer := v4.NewSigner()
	if !c.presign {
		if err := signer.SignHTTP(context.Background(), creds, req, payload, "kinesisvideo", testRegion, signTime); err != nil {
			t.Fatal(err)
		}
		return req
	}
	signedURL, signedHeaders, err := signer.PresignHTTP(context.Background(), creds, req, payload, "kinesisvideo", testRegion, signTime)
	if err != nil {
		t.Fatal(err)
	}
	if req.URL, err = url.Parse(signedURL); err != nil {
		t.Fatal(err)
	}
	for k, vs := range signedHeaders {
		if k != "Host" {
			req.Header[k] = vs
		}
	}
	return req
}

// Requests signed by aws-sdk-go-v2 and sent by http.Client to a real
// net/http server verify, over HTTP/1.1 and over HTTP/2.
func TestSDKSignedOverServer(t *testing.T) {
	v := &Verifier{Service: "kinesisvideo", Region: testRegion, Credentials: testCreds()}
	h1 := httptest.NewServer(verifyHandler(v))
	defer h1.Close()
	h2 := httptest.NewUnstartedServer(verifyHandler(v))
	h2.EnableHTTP2 = true
	h2.StartTLS()
	defer h2.Close()

	for _, srv := range []struct {
		name   string
		url    string
		client *http.Client
		proto  string
	}{
		{"http1", h1.URL, h1.Client(), "HTTP/1.1"},
		{"http2", h2.URL, h2.Client(), "HTTP/2.0"},
	} {
		for _, c := range sdkCases() {
			t.Run(srv.name+"/"+c.name, func(t *testing.T) {
				req := c.buildSigned(t, srv.url, time.Now(), testSecret)
				resp, err := srv.client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				res := decodeResult(t, resp)
				if !res.OK {
					t.Fatalf("%s %s: %s: %s", c.method, req.URL.RequestURI(), res.Code, res.Message)
				}
				if res.Proto != srv.proto {
					t.Fatalf("proto %s, want %s", res.Proto, srv.proto)
				}
				id := res.Identity
				if id.AccessKeyID != testAKID || id.Region != testRegion || id.Service != "kinesisvideo" ||
					id.SessionToken != c.token || id.Presigned != c.presign || time.Since(id.SignedAt) > time.Minute {
					t.Fatalf("identity %+v", id)
				}
				if res.BodyLen != int64(len(c.body)) {
					t.Fatalf("server read %d body bytes, want %d", res.BodyLen, len(c.body))
				}
			})
		}
	}
}

// The same requests signed with a wrong secret fail over the server too.
func TestSDKWrongSecretOverServer(t *testing.T) {
	v := &Verifier{Service: "kinesisvideo", Credentials: testCreds()}
	srv := httptest.NewServer(verifyHandler(v))
	defer srv.Close()
	for _, c := range sdkCases() {
		t.Run(c.name, func(t *testing.T) {
			req := c.buildSigned(t, srv.URL, time.Now(), testSecret+"x")
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if res := decodeResult(t, resp); res.Code != CodeInvalidSignature {
				t.Fatalf("code %s: %s", res.Code, res.Message)
			}
		})
	}
}

// The canonical URI the SDK signs (read from its signing log) is the one the
// verifier builds from the path on the wire: double-encoded, "/" kept.
func TestSDKCanonicalURI(t *testing.T) {
	for _, tc := range []struct{ target, want string }{
		{"/hls/v1/getHLSMasterPlaylist.m3u8", "/hls/v1/getHLSMasterPlaylist.m3u8"},
		{"/a%20b/c%25d", "/a%2520b/c%2525d"},
		{"/d%C3%A9j%C3%A0", "/d%25C3%25A9j%25C3%25A0"},
		{"/x+y=z,@!$'()*", "/x%2By%3Dz%2C%40%21%24%27%28%29%2A"},
		{"//putMedia", "//putMedia"},
		{"", "/"},
	} {
		t.Run(tc.target, func(t *testing.T) {
			var logged string
			logger := logging.LoggerFunc(func(_ logging.Classification, format string, v ...any) {
				logged = fmt.Sprintf(format, v...)
			})
			req, err := http.NewRequest("GET", "http://example.com"+tc.target, nil)
			if err != nil {
				t.Fatal(err)
			}
			err = v4.NewSigner().SignHTTP(context.Background(), aws.Credentials{AccessKeyID: "a", SecretAccessKey: "b"},
				req, emptySHA256, "kinesisvideo", "us-east-1", time.Now(), func(o *v4.SignerOptions) {
					o.LogSigning, o.Logger = true, logger
				})
			if err != nil {
				t.Fatal(err)
			}
			// The log holds a banner line, then the canonical request.
			lines := strings.Split(logged, "\n")
			if len(lines) < 4 {
				t.Fatalf("unexpected signing log %q", logged)
			}
			sdkURI := lines[3]
			sr := serverView(t, req)
			ours := string(appendCanonicalURI(nil, wirePath(sr)))
			if sdkURI != tc.want || ours != tc.want {
				t.Fatalf("sdk %q, verifier %q, want %q", sdkURI, ours, tc.want)
			}
		})
	}
}
