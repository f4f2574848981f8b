package sigv4

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
)

// fuzzSecret is the only secret the fuzzer's Verifier knows, for both access
// keys. No seed in mode 0 carries a signature made with it (the fixture
// seeds were signed with fixtureSecret), so a success there would be a
// forgery.
const fuzzSecret = "fuzz/secret+known-only-to-the-harness"

var fuzzNow = time.Date(2026, 11, 21, 5, 10, 8, 0, time.UTC)

// FuzzVerify has three modes, chosen by mode%3:
//
//	0, forged: a request made of the fuzzed Authorization header,
//	   X-Amz-Date, query, path, header value and body. Verify must not
//	   panic and must never succeed, and every failure must be an *Error
//	   with a known code.
//	1, signed: the fuzzed path, query, header value and body are signed by
//	   aws-sdk-go-v2 with fuzzSecret, sent through the wire format and
//	   read back by net/http's request parser. Verify must succeed, and
//	   fail once a signed part is changed.
//	2, presigned: as 1, with a presigned URL.
//
// Bit 2 of mode selects streaming verification in mode 0 and the
// UNSIGNED-PAYLOAD/empty hash in mode 2; bit 3 presents mode 0's request as
// HTTP/2.
func FuzzVerify(f *testing.F) {
	for _, fr := range loadFixtures(f, fixtureDirs[0]) {
		r := fr.request(f)
		f.Add(uint8(0), r.Header.Get("Authorization"), r.Header.Get("X-Amz-Date"), "", fr.URI, r.Header.Get("X-Amzn-Stream-Name"), []byte(fr.Body))
	}
	f.Add(uint8(0), "", "", "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIDEXAMPLE%2F20261121%2Fus-west-2%2Fkinesisvideo%2Faws4_request&X-Amz-Date=20261121T051008Z&X-Amz-Expires=300&X-Amz-SignedHeaders=host&X-Amz-Signature="+strings.Repeat("0", 64), "/getMedia", "", []byte(nil))
	f.Add(uint8(1), "", "", "b=2&a=1&a=%2F&sp=a+b", "/hls/v1/getHLSMasterPlaylist.m3u8", "cam  1", []byte(`{"StreamName":"cam-1"}`))
	f.Add(uint8(2), "", "", "SessionToken=abc", "/a b/%zz", "", []byte(nil))

	v := &Verifier{Service: "kinesisvideo", Credentials: staticCreds{fixtureAKID: fuzzSecret, testAKID: fuzzSecret}, Now: fixedNow(fuzzNow)}
	f.Fuzz(func(t *testing.T, mode uint8, authz, amzDate, query, path, hdr string, body []byte) {
		switch mode % 3 {
		case 0:
			fuzzForged(t, v, mode, authz, amzDate, query, path, hdr, body)
		default:
			fuzzSigned(t, v, mode, query, path, hdr, body)
		}
	})
}

func fuzzForged(t *testing.T, v *Verifier, mode uint8, authz, amzDate, query, path, hdr string, body []byte) {
	r := &http.Request{
		Method:     "POST",
		RequestURI: path,
		Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: http.Header{},
		Host:   "127.0.0.1",
	}
	if query != "" {
		r.RequestURI += "?" + query
	}
	if u, err := url.ParseRequestURI(r.RequestURI); err == nil {
		r.URL = u
	} else {
		r.URL = &url.URL{Path: path, RawQuery: query}
	}
	if mode&8 != 0 {
		r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/2.0", 2, 0
	}
	if authz != "" {
		r.Header.Set("Authorization", authz)
	}
	if amzDate != "" {
		r.Header.Set("X-Amz-Date", amzDate)
	}
	if hdr != "" {
		r.Header.Set("X-Amzn-Stream-Name", hdr)
	}
	r = r.WithContext(context.Background())
	streaming := mode&4 != 0
	if streaming {
		body = nil
	}
	id, err := v.Verify(r, body, streaming)
	if err == nil {
		t.Fatalf("forged request verified: %+v\nAuthorization: %q\nX-Amz-Date: %q\nquery: %q", id, authz, amzDate, query)
	}
	var ae *Error
	if !errors.As(err, &ae) {
		t.Fatalf("non-*Error failure: %v", err)
	}
	switch ae.Code {
	case CodeMissingAuthenticationToken, CodeIncompleteSignature, CodeInvalidSignature, CodeUnrecognizedClient:
	default:
		t.Fatalf("unknown code %q", ae.Code)
	}
}

func fuzzSigned(t *testing.T, v *Verifier, mode uint8, query, path, hdr string, body []byte) {
	presign := mode%3 == 2
	// Skip what the SDK cannot sign faithfully (not the verifier's
	// business): header values net/http would rewrite or that the SDK trims
	// with unicode rules, and queries that already carry X-Amz-* auth
	// parameters.
	for i := 0; i < len(hdr); i++ {
		if c := hdr[i]; c != '\t' && (c < 0x20 || c >= 0x7f) {
			return
		}
	}
	q, _ := url.ParseQuery(query)
	for k := range q {
		if strings.HasPrefix(strings.ToLower(k), "x-amz-") {
			return
		}
	}
	method := "POST"
	payload := sha256Hex(body)
	if presign {
		q.Set("X-Amz-Expires", "300")
		method, body = "GET", nil
		payload = sha256Hex(nil)
		if mode&4 != 0 {
			payload = unsignedPayload
		}
	}
	u := &url.URL{Scheme: "http", Host: "127.0.0.1:8443", Path: "/" + strings.TrimPrefix(path, "/"), RawQuery: q.Encode()}
	req, err := http.NewRequest(method, u.String(), bytes.NewReader(body))
	if err != nil {
		return
	}
	req.URL = u // NewRequest re-parses; keep the exact URL
	if hdr != "" {
		req.Header.Set("X-Amzn-Stream-Name", hdr)
	}
	creds := aws.Credentials{AccessKeyID: testAKID, SecretAccessKey: fuzzSecret}
	signer := v4.NewSigner()
	if presign {
		signedURL, signedHeaders, err := signer.PresignHTTP(context.Background(), creds, req, payload, "kinesisvideo", "us-west-2", fuzzNow)
		if err != nil {
			t.Fatal(err)
		}
		if req.URL, err = url.Parse(signedURL); err != nil {
			t.Fatalf("SDK produced an unparsable URL %q: %v", signedURL, err)
		}
		for k, vs := range signedHeaders {
			if k != "Host" {
				req.Header[k] = vs
			}
		}
	} else if err := signer.SignHTTP(context.Background(), creds, req, payload, "kinesisvideo", "us-west-2", fuzzNow); err != nil {
		t.Fatal(err)
	}

	var wire bytes.Buffer
	if err := req.Write(&wire); err != nil {
		return
	}
	raw := wire.Bytes()
	read := func() (*http.Request, []byte) {
		sr, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
		if err != nil {
			t.Skipf("net/http cannot read back what it wrote: %v", err)
		}
		b, err := io.ReadAll(sr.Body)
		if err != nil {
			t.Skipf("body: %v", err)
		}
		return sr, b
	}

	sr, b := read()
	id, err := v.Verify(sr, b, false)
	if err != nil {
		t.Fatalf("SDK-signed request rejected: %v\nwire:\n%s", err, raw)
	}
	if id.AccessKeyID != testAKID || id.Presigned != presign || !id.SignedAt.Equal(fuzzNow) {
		t.Fatalf("identity %+v", id)
	}

	// Change one signed part: the body if any (it is hashed unless
	// presigned), else the signed header, else the query.
	sr, b = read()
	switch {
	case len(b) > 0 && !presign:
		b[len(b)/2] ^= 1
	case hdr != "":
		sr.Header.Set("X-Amzn-Stream-Name", hdr+"x")
	default:
		sr.URL.RawQuery += "&zz=1"
	}
	if _, err := v.Verify(sr, b, false); err == nil {
		t.Fatalf("tampered request verified\nwire:\n%s", raw)
	}
}
