package sigv4

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

var signTime = time.Date(2026, 11, 21, 5, 10, 8, 0, time.UTC)

// signed returns the server's view of a POST /describeStream with body,
// signed by the SDK at signTime with secret.
func signed(t testing.TB, secret string, mod func(c *sdkCase)) (*http.Request, []byte) {
	t.Helper()
	c := sdkCase{method: "POST", target: "/describeStream", body: []byte(`{"StreamName":"cam-1"}`),
		headers: map[string]string{"X-Amzn-Stream-Name": "cam-1"}}
	if mod != nil {
		mod(&c)
	}
	r := serverView(t, c.buildSigned(t, "http://127.0.0.1:8443", signTime, secret))
	body, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return r, body
}

func testVerifier(now time.Time) *Verifier {
	return &Verifier{Service: "kinesisvideo", Credentials: testCreds(), Now: fixedNow(now)}
}

func TestVerifyFailures(t *testing.T) {
	type tc struct {
		name      string
		build     func(t *testing.T) (*http.Request, []byte, bool)
		v         *Verifier
		code      string
		inMessage string
	}
	ok := func(t *testing.T) (*http.Request, []byte, bool) {
		r, b := signed(t, testSecret, nil)
		return r, b, false
	}
	with := func(mod func(r *http.Request, body []byte) []byte) func(t *testing.T) (*http.Request, []byte, bool) {
		return func(t *testing.T) (*http.Request, []byte, bool) {
			r, b := signed(t, testSecret, nil)
			return r, mod(r, b), false
		}
	}
	setAuthz := func(a string) func(t *testing.T) (*http.Request, []byte, bool) {
		return with(func(r *http.Request, b []byte) []byte { r.Header.Set("Authorization", a); return b })
	}
	goodCred := "Credential=" + testAKID + "/20261121/" + testRegion + "/kinesisvideo/aws4_request"
	goodSig := "Signature=" + strings.Repeat("ab", 32)

	cases := []tc{
		{name: "tampered body", build: with(func(_ *http.Request, b []byte) []byte { return bytes.Replace(b, []byte("cam-1"), []byte("cam-2"), 1) }),
			code: CodeInvalidSignature, inMessage: "The Canonical String for this request should have been"},
		{name: "tampered signed header", build: with(func(r *http.Request, b []byte) []byte { r.Header.Set("X-Amzn-Stream-Name", "cam-2"); return b }),
			code: CodeInvalidSignature},
		{name: "tampered path", build: with(func(r *http.Request, b []byte) []byte {
			r.RequestURI, r.URL.Path = "/deleteStream", "/deleteStream"
			return b
		}),
			code: CodeInvalidSignature},
		{name: "added query", build: with(func(r *http.Request, b []byte) []byte { r.URL.RawQuery = "x=1"; return b }),
			code: CodeInvalidSignature},
		{name: "wrong secret", build: func(t *testing.T) (*http.Request, []byte, bool) {
			r, b := signed(t, "not-the-secret", nil)
			return r, b, false
		}, code: CodeInvalidSignature},
		{name: "unknown key", build: ok, v: &Verifier{Service: "kinesisvideo", Credentials: staticCreds{}, Now: fixedNow(signTime)},
			code: CodeUnrecognizedClient},
		{name: "empty secret is unknown", build: ok, v: &Verifier{Service: "kinesisvideo", Credentials: staticCreds{testAKID: ""}, Now: fixedNow(signTime)},
			code: CodeUnrecognizedClient},
		{name: "6 min past", build: ok, v: testVerifier(signTime.Add(6 * time.Minute)), code: CodeInvalidSignature,
			inMessage: "Signature expired: 20261121T051008Z is now earlier than 20261121T051108Z (20261121T051608Z - 5 min.)"},
		{name: "6 min future", build: ok, v: testVerifier(signTime.Add(-6 * time.Minute)), code: CodeInvalidSignature,
			inMessage: "Signature not yet current: 20261121T051008Z is still later than 20261121T050908Z (20261121T050408Z + 5 min.)"},
		{name: "custom skew", build: ok, v: &Verifier{Service: "kinesisvideo", Credentials: testCreds(), MaxSkew: 90 * time.Second, Now: fixedNow(signTime.Add(2 * time.Minute))},
			code: CodeInvalidSignature, inMessage: "- 1.5 min."},
		{name: "region pinned", build: ok, v: &Verifier{Service: "kinesisvideo", Region: "us-west-2", Credentials: testCreds(), Now: fixedNow(signTime)},
			code: CodeInvalidSignature, inMessage: "valid region"},
		{name: "wrong service", build: ok, v: &Verifier{Service: "kinesisvideomedia", Credentials: testCreds(), Now: fixedNow(signTime)},
			code: CodeInvalidSignature, inMessage: "correct service"},
		{name: "missing auth", build: with(func(r *http.Request, b []byte) []byte { r.Header.Del("Authorization"); return b }),
			code: CodeMissingAuthenticationToken},
		{name: "garbled: other scheme", build: setAuthz("Bearer abc"), code: CodeIncompleteSignature},
		{name: "garbled: algorithm only", build: setAuthz("AWS4-HMAC-SHA256"), code: CodeIncompleteSignature, inMessage: "requires 'Credential'"},
		{name: "garbled: no signature", build: setAuthz("AWS4-HMAC-SHA256 " + goodCred + ", SignedHeaders=host;x-amz-date"), code: CodeIncompleteSignature},
		{name: "garbled: short credential", build: setAuthz("AWS4-HMAC-SHA256 Credential=AK/20261121/kinesisvideo/aws4_request, SignedHeaders=host;x-amz-date, " + goodSig),
			code: CodeIncompleteSignature},
		{name: "garbled: bad terminator", build: setAuthz("AWS4-HMAC-SHA256 Credential=" + testAKID + "/20261121/r/kinesisvideo/aws5_request, SignedHeaders=host;x-amz-date, " + goodSig),
			code: CodeIncompleteSignature},
		{name: "garbled: bad scope date", build: setAuthz("AWS4-HMAC-SHA256 Credential=" + testAKID + "/2026-11-21/r/kinesisvideo/aws4_request, SignedHeaders=host;x-amz-date, " + goodSig),
			code: CodeIncompleteSignature},
		{name: "garbled: signature not hex", build: setAuthz("AWS4-HMAC-SHA256 " + goodCred + ", SignedHeaders=host;x-amz-date, Signature=zz"), code: CodeIncompleteSignature},
		{name: "garbled: duplicate parameter", build: setAuthz("AWS4-HMAC-SHA256 " + goodCred + ", " + goodCred + ", SignedHeaders=host;x-amz-date, " + goodSig), code: CodeIncompleteSignature},
		{name: "garbled: no equals", build: setAuthz("AWS4-HMAC-SHA256 " + goodCred + ", SignedHeaders, " + goodSig), code: CodeIncompleteSignature},
		{name: "garbled: empty header name", build: setAuthz("AWS4-HMAC-SHA256 " + goodCred + ", SignedHeaders=host;;x-amz-date, " + goodSig), code: CodeIncompleteSignature},
		{name: "host not signed", build: setAuthz("AWS4-HMAC-SHA256 " + goodCred + ", SignedHeaders=x-amz-date, " + goodSig), code: CodeIncompleteSignature, inMessage: "host"},
		{name: "date not signed", build: setAuthz("AWS4-HMAC-SHA256 " + goodCred + ", SignedHeaders=host, " + goodSig), code: CodeIncompleteSignature, inMessage: "x-amz-date"},
		{name: "no date", build: with(func(r *http.Request, b []byte) []byte { r.Header.Del("X-Amz-Date"); return b }), code: CodeIncompleteSignature},
		{name: "bad date", build: with(func(r *http.Request, b []byte) []byte { r.Header.Set("X-Amz-Date", "20261121T251008Z"); return b }), code: CodeIncompleteSignature},
		{name: "scope date differs", build: with(func(r *http.Request, b []byte) []byte { r.Header.Set("X-Amz-Date", "20261122T001008Z"); return b }),
			v: testVerifier(time.Date(2026, 11, 22, 0, 10, 8, 0, time.UTC)), code: CodeInvalidSignature, inMessage: "Date in Credential scope"},
		{name: "two Authorization headers", build: with(func(r *http.Request, b []byte) []byte {
			r.Header.Add("Authorization", r.Header.Get("Authorization"))
			return b
		}),
			code: CodeIncompleteSignature},
		{name: "header and query auth", build: with(func(r *http.Request, b []byte) []byte { r.URL.RawQuery = "X-Amz-Signature=00"; return b }),
			code: CodeIncompleteSignature},
		{name: "content sha mismatch", build: func(t *testing.T) (*http.Request, []byte, bool) {
			r, b := signed(t, testSecret, func(c *sdkCase) { c.payload, c.shaHeader = sha256Hex([]byte("other")), true })
			return r, b, false
		}, code: CodeInvalidSignature, inMessage: "x-amz-content-sha256"},
		{name: "streaming literal on buffered body", build: func(t *testing.T) (*http.Request, []byte, bool) {
			r, b := signed(t, testSecret, func(c *sdkCase) { c.payload, c.shaHeader = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", true })
			return r, b, false
		}, code: CodeInvalidSignature},
		{name: "body hash signed but treated as streaming", build: func(t *testing.T) (*http.Request, []byte, bool) {
			r, b := signed(t, testSecret, nil)
			return r, b, true
		}, code: CodeInvalidSignature},
		{name: "signed transfer-encoding missing on HTTP/1.1", build: func(t *testing.T) (*http.Request, []byte, bool) {
			fr := loadFixtures(t, fixtureDirs[0])[3]
			r := fr.request(t)
			r.TransferEncoding = nil
			return r, nil, true
		}, v: &Verifier{Service: "kinesisvideo", Credentials: fixtureCreds(), Now: fixedNow(signTime)}, code: CodeInvalidSignature},
		{name: "presign expired", build: func(t *testing.T) (*http.Request, []byte, bool) {
			r, b := signed(t, testSecret, func(c *sdkCase) {
				c.method, c.target, c.body, c.presign = "GET", "/getMedia?X-Amz-Expires=60", nil, true
			})
			return r, b, false
		}, v: testVerifier(signTime.Add(61 * time.Second)), code: CodeInvalidSignature, inMessage: "expired"},
		{name: "presign not yet valid", build: func(t *testing.T) (*http.Request, []byte, bool) {
			r, b := signed(t, testSecret, func(c *sdkCase) {
				c.method, c.target, c.body, c.presign = "GET", "/getMedia?X-Amz-Expires=60", nil, true
			})
			return r, b, false
		}, v: testVerifier(signTime.Add(-6 * time.Minute)), code: CodeInvalidSignature, inMessage: "not yet current"},
		{name: "presign tampered query", build: func(t *testing.T) (*http.Request, []byte, bool) {
			r, b := signed(t, testSecret, func(c *sdkCase) {
				c.method, c.target, c.body, c.presign = "GET", "/getMedia?X-Amz-Expires=60&a=1", nil, true
			})
			r.URL.RawQuery = strings.Replace(r.URL.RawQuery, "a=1", "a=2", 1)
			return r, b, false
		}, code: CodeInvalidSignature},
		{name: "presign expires too long", build: func(t *testing.T) (*http.Request, []byte, bool) {
			r, b := signed(t, testSecret, func(c *sdkCase) {
				c.method, c.target, c.body, c.presign = "GET", "/getMedia?X-Amz-Expires=604801", nil, true
			})
			return r, b, false
		}, code: CodeIncompleteSignature},
		{name: "presign missing parameter", build: func(t *testing.T) (*http.Request, []byte, bool) {
			r, b := signed(t, testSecret, nil)
			r.Header.Del("Authorization")
			r.URL.RawQuery = "X-Amz-Algorithm=AWS4-HMAC-SHA256"
			return r, b, false
		}, code: CodeIncompleteSignature, inMessage: "X-Amz-Credential"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			v := c.v
			if v == nil {
				v = testVerifier(signTime)
			}
			r, body, streaming := c.build(t)
			_, err := v.Verify(r, body, streaming)
			ae := wantCode(t, err, c.code)
			if !strings.Contains(ae.Message, c.inMessage) {
				t.Fatalf("message %q does not contain %q", ae.Message, c.inMessage)
			}
		})
	}
}

// The boundaries of the skew window are inclusive; just inside works.
func TestVerifySkewBoundaries(t *testing.T) {
	for _, d := range []time.Duration{0, 4 * time.Minute, -4 * time.Minute, 5 * time.Minute, -5 * time.Minute} {
		r, body := signed(t, testSecret, nil)
		if _, err := testVerifier(signTime.Add(d)).Verify(r, body, false); err != nil {
			t.Fatalf("now = signTime%+v: %v", d, err)
		}
	}
}

// A Date header (RFC 1123) can stand in for X-Amz-Date. No SDK signs that
// way any more, so the canonical request is written out literally here.
func TestVerifyDateHeader(t *testing.T) {
	const canonical = "POST\n/listStreams\n\n" +
		"date:Sat, 21 Nov 2026 05:10:08 GMT\nhost:127.0.0.1:8443\n\n" +
		"date;host\n" + emptySHA256
	scope := "20261121/" + testRegion + "/kinesisvideo/aws4_request"
	sts := "AWS4-HMAC-SHA256\n20261121T051008Z\n" + scope + "\n" + sha256Hex([]byte(canonical))
	key := hmacSHA256([]byte("AWS4"+testSecret), "20261121")
	for _, s := range []string{testRegion, "kinesisvideo", "aws4_request"} {
		key = hmacSHA256(key, s)
	}
	sig := hex.EncodeToString(hmacSHA256(key, sts))

	r, _ := http.NewRequest("POST", "http://127.0.0.1:8443/listStreams", nil)
	r.Header.Set("Date", "Sat, 21 Nov 2026 05:10:08 GMT")
	r.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+testAKID+"/"+scope+", SignedHeaders=date;host, Signature="+sig)
	id, err := testVerifier(signTime.Add(time.Minute)).Verify(serverView(t, r), nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if !id.SignedAt.Equal(signTime) {
		t.Fatalf("SignedAt %v", id.SignedAt)
	}
}

// A failing Credentials backend is a server error, not an auth failure.
func TestVerifyCredentialsBackendError(t *testing.T) {
	boom := errors.New("database is down")
	v := &Verifier{Service: "kinesisvideo", Credentials: credsFunc(func(context.Context, string) (string, error) { return "", boom }), Now: fixedNow(signTime)}
	r, body := signed(t, testSecret, nil)
	_, err := v.Verify(r, body, false)
	var ae *Error
	if errors.As(err, &ae) || !errors.Is(err, boom) {
		t.Fatalf("got %v, want a wrapped backend error", err)
	}
}

type credsFunc func(context.Context, string) (string, error)

func (f credsFunc) SecretFor(ctx context.Context, id string) (string, error) { return f(ctx, id) }

// Failures also come out right through a real server.
func TestVerifyFailuresOverServer(t *testing.T) {
	v := &Verifier{Service: "kinesisvideo", Region: testRegion, Credentials: testCreds()}
	srv := httptest.NewServer(verifyHandler(v))
	defer srv.Close()

	resp, err := http.Post(srv.URL+"/describeStream", "application/json", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	if res := decodeResult(t, resp); resp.StatusCode != 403 || res.Code != CodeMissingAuthenticationToken {
		t.Fatalf("no auth: %d %+v", resp.StatusCode, res)
	}

	c := sdkCase{method: "POST", target: "/describeStream", body: []byte("{}")}
	req := c.buildSigned(t, srv.URL, time.Now().Add(-6*time.Minute), testSecret)
	resp, err = srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res := decodeResult(t, resp); res.Code != CodeInvalidSignature || !strings.HasPrefix(res.Message, "Signature expired: ") {
		t.Fatalf("skewed: %+v", res)
	}

	req = c.buildSigned(t, srv.URL, time.Now(), testSecret)
	req.Body = io.NopCloser(strings.NewReader("[]"))
	resp, err = srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if res := decodeResult(t, resp); res.Code != CodeInvalidSignature {
		t.Fatalf("tampered body: %+v", res)
	}
}
