package sigv4

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The credentials the producer SDK captures were signed with (the AWS
// documentation's example key pair).
const (
	fixtureAKID   = "AKIDEXAMPLE"
	fixtureSecret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
)

var fixtureDirs = []string{
	"testdata/producer-c/video-only-https",
	"testdata/producer-c/av-events-httpdata",
}

// staticCreds is a Credentials backed by a map.
type staticCreds map[string]string

func (c staticCreds) SecretFor(_ context.Context, id string) (string, error) {
	s, ok := c[id]
	if !ok {
		return "", fmt.Errorf("access key %q: %w", id, ErrUnknownKey)
	}
	return s, nil
}

func fixtureCreds() staticCreds { return staticCreds{fixtureAKID: fixtureSecret} }

// fixtureRequest is one line of a recorder's requests.jsonl. Headers is
// r.Header as the recorder's Go server saw it: Host and Transfer-Encoding
// are in their own fields.
type fixtureRequest struct {
	Seq              int      `json:"seq"`
	Proto            string   `json:"proto"`
	Method           string   `json:"method"`
	URI              string   `json:"uri"`
	Host             string   `json:"host"`
	TransferEncoding []string `json:"transfer_encoding"`
	ContentLength    int64    `json:"content_length"`
	Headers          []string `json:"headers"`
	Body             string   `json:"body"`
}

func loadFixtures(t testing.TB, dir string) []fixtureRequest {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "requests.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var out []fixtureRequest
	for line := range bytes.SplitSeq(bytes.TrimSpace(data), []byte("\n")) {
		var fr fixtureRequest
		if err := json.Unmarshal(line, &fr); err != nil {
			t.Fatalf("%s: %v", dir, err)
		}
		out = append(out, fr)
	}
	if len(out) == 0 {
		t.Fatalf("%s: no requests", dir)
	}
	return out
}

// request builds the *http.Request the way Go's server presents it.
func (fr fixtureRequest) request(t testing.TB) *http.Request {
	t.Helper()
	u, err := url.ParseRequestURI(fr.URI)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	for _, line := range fr.Headers {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			t.Fatalf("bad header line %q", line)
		}
		h.Add(k, strings.TrimSpace(v))
	}
	r := &http.Request{
		Method:           fr.Method,
		URL:              u,
		RequestURI:       fr.URI,
		Proto:            "HTTP/1.1",
		ProtoMajor:       1,
		ProtoMinor:       1,
		Header:           h,
		Host:             fr.Host,
		TransferEncoding: fr.TransferEncoding,
		ContentLength:    fr.ContentLength,
		Body:             io.NopCloser(strings.NewReader(fr.Body)),
	}
	return r.WithContext(context.Background())
}

func (fr fixtureRequest) streaming() bool { return fr.URI == "/putMedia" }

func (fr fixtureRequest) amzDate(t testing.TB) time.Time {
	t.Helper()
	for _, line := range fr.Headers {
		if k, v, _ := strings.Cut(line, ":"); strings.EqualFold(k, "X-Amz-Date") {
			d, err := time.Parse(amzDateLayout, strings.TrimSpace(v))
			if err != nil {
				t.Fatal(err)
			}
			return d
		}
	}
	t.Fatalf("request %d has no X-Amz-Date", fr.Seq)
	return time.Time{}
}

func fixedNow(t time.Time) func() time.Time { return func() time.Time { return t } }

// serverView sends r through the wire format and back through
// http.ReadRequest, the parser net/http's server uses, so that Host,
// Transfer-Encoding, RequestURI and the header map look as a handler would
// see them.
func serverView(t testing.TB, r *http.Request) *http.Request {
	t.Helper()
	var buf bytes.Buffer
	if err := r.Write(&buf); err != nil {
		t.Fatal(err)
	}
	sr, err := http.ReadRequest(bufio.NewReader(&buf))
	if err != nil {
		t.Fatal(err)
	}
	return sr
}

// wantCode fails unless err is an *Error with the given code.
func wantCode(t testing.TB, err error, code string) *Error {
	t.Helper()
	var ae *Error
	if !errors.As(err, &ae) {
		t.Fatalf("got error %v (%T), want *Error with code %s", err, err, code)
	}
	if ae.Code != code {
		t.Fatalf("got code %s (%s), want %s", ae.Code, ae.Message, code)
	}
	return ae
}
