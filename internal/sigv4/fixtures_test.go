package sigv4

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Every request the producer SDK sent in the captures verifies.
func TestProducerFixtures(t *testing.T) {
	for _, dir := range fixtureDirs {
		for _, fr := range loadFixtures(t, dir) {
			t.Run(filepath.Base(dir)+fr.URI, func(t *testing.T) {
				v := &Verifier{Service: "kinesisvideo", Region: "us-west-2", Credentials: fixtureCreds(), Now: fixedNow(fr.amzDate(t))}
				var body []byte
				if !fr.streaming() {
					body = []byte(fr.Body)
				}
				id, err := v.Verify(fr.request(t), body, fr.streaming())
				if err != nil {
					t.Fatal(err)
				}
				want := Identity{AccessKeyID: fixtureAKID, Region: "us-west-2", Service: "kinesisvideo", SignedAt: fr.amzDate(t)}
				if id != want {
					t.Fatalf("identity %+v, want %+v", id, want)
				}
			})
		}
	}
}

// The raw captured bytes, parsed by net/http's own request reader, verify
// too: this checks the assumptions about what net/http moves out of
// r.Header, not just the recorder's account of it.
func TestProducerRawCaptures(t *testing.T) {
	for _, dir := range fixtureDirs {
		files, _ := filepath.Glob(filepath.Join(dir, "conn-*.raw"))
		if len(files) == 0 {
			t.Fatalf("%s: no raw captures", dir)
		}
		for _, f := range files {
			t.Run(filepath.Base(dir)+"/"+filepath.Base(f), func(t *testing.T) {
				raw, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
				if err != nil {
					t.Fatal(err)
				}
				streaming := r.URL.Path == "/putMedia"
				var body []byte
				if streaming {
					if len(r.TransferEncoding) != 1 || r.TransferEncoding[0] != "chunked" || r.Header.Get("Transfer-Encoding") != "" {
						t.Fatalf("net/http no longer moves Transfer-Encoding: %q / %q", r.TransferEncoding, r.Header.Get("Transfer-Encoding"))
					}
				} else if body, err = io.ReadAll(r.Body); err != nil {
					t.Fatal(err)
				}
				if r.Header.Get("Host") != "" {
					t.Fatal("net/http no longer moves Host out of r.Header")
				}
				d, err := time.Parse(amzDateLayout, r.Header.Get("X-Amz-Date"))
				if err != nil {
					t.Fatal(err)
				}
				v := &Verifier{Service: "kinesisvideo", Credentials: fixtureCreds(), Now: fixedNow(d.Add(4 * time.Minute))}
				if _, err := v.Verify(r, body, streaming); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

// PutMedia from the producer SDK over HTTP/2: curl drops connection and
// transfer-encoding although they are signed. The verifier rebuilds them for
// HTTP/2 only; the same request over HTTP/1.1 without them must fail.
func TestProducerPutMediaOverHTTP2(t *testing.T) {
	var put fixtureRequest
	for _, fr := range loadFixtures(t, fixtureDirs[0]) {
		if fr.streaming() {
			put = fr
		}
	}
	v := &Verifier{Service: "kinesisvideo", Credentials: fixtureCreds(), Now: fixedNow(put.amzDate(t))}

	r := put.request(t)
	r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/2.0", 2, 0
	r.Header.Del("Connection")
	r.Header.Del("Expect")
	r.TransferEncoding = nil
	if _, err := v.Verify(r, nil, true); err != nil {
		t.Fatalf("HTTP/2 without connection/transfer-encoding: %v", err)
	}

	r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/1.1", 1, 1
	_, err := v.Verify(r, nil, true)
	wantCode(t, err, CodeInvalidSignature)

	// A client that did send them over HTTP/2 (they are signed as sent).
	r = put.request(t)
	r.Proto, r.ProtoMajor, r.ProtoMinor = "HTTP/2.0", 2, 0
	if _, err := v.Verify(r, nil, true); err != nil {
		t.Fatalf("HTTP/2 with the headers present: %v", err)
	}
}

// The producer SDK sends X-Amz-Security-Token unsigned; it is reported, and
// adding it does not break the signature.
func TestProducerUnsignedSessionToken(t *testing.T) {
	fr := loadFixtures(t, fixtureDirs[0])[0]
	r := fr.request(t)
	r.Header.Set("X-Amz-Security-Token", "token/with+chars=")
	v := &Verifier{Service: "kinesisvideo", Credentials: fixtureCreds(), Now: fixedNow(fr.amzDate(t))}
	id, err := v.Verify(r, []byte(fr.Body), false)
	if err != nil {
		t.Fatal(err)
	}
	if id.SessionToken != "token/with+chars=" {
		t.Fatalf("session token %q", id.SessionToken)
	}
}

// Changing any signed part of a captured request breaks it.
func TestProducerFixtureTampering(t *testing.T) {
	fr := loadFixtures(t, fixtureDirs[0])[3]
	if !fr.streaming() {
		t.Fatal("fixture 4 is not PutMedia")
	}
	v := &Verifier{Service: "kinesisvideo", Credentials: fixtureCreds(), Now: fixedNow(fr.amzDate(t))}
	mutations := map[string]func(r *http.Request){
		"stream name": func(r *http.Request) { r.Header.Set("X-Amzn-Stream-Name", "other-stream") },
		"host port":   func(r *http.Request) { r.Host = "127.0.0.1:8443" },
		"path":        func(r *http.Request) { r.RequestURI = "//putMedia" },
		"method":      func(r *http.Request) { r.Method = "PUT" },
		"query":       func(r *http.Request) { r.URL.RawQuery = "a=b" },
		"chunked":     func(r *http.Request) { r.TransferEncoding = nil },
		"user agent":  func(r *http.Request) { r.Header.Set("User-Agent", strings.ToUpper(r.Header.Get("User-Agent"))) },
	}
	for name, mutate := range mutations {
		t.Run(name, func(t *testing.T) {
			r := fr.request(t)
			mutate(r)
			_, err := v.Verify(r, nil, true)
			wantCode(t, err, CodeInvalidSignature)
		})
	}
	// Not signed: changing these must not matter.
	r := fr.request(t)
	r.Header.Set("Content-Type", "video/webm")
	r.Header.Set("Accept", "text/plain")
	if _, err := v.Verify(r, nil, true); err != nil {
		t.Fatal(err)
	}
}
