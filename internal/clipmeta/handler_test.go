package clipmeta_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/kinema/kinema/internal/apierr"
	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/archive/sqlindex"
	"github.com/kinema/kinema/internal/clipmeta"
	"github.com/kinema/kinema/internal/clipmeta/cliptest"
	"github.com/kinema/kinema/internal/stream"
)

const account = "000000000000"

var ctx = context.Background()

func openIndex(t *testing.T) *sqlindex.Index {
	t.Helper()
	x, err := sqlindex.Open(ctx, filepath.Join(t.TempDir(), "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	return x
}

func TestStoreConformance(t *testing.T) {
	cliptest.Run(t, func(t *testing.T) clipmeta.Store { return openIndex(t) })
}

// env is a clip-metadata server over a real index: streams are created in
// the index and StreamExists looks them up there; SessionURL records what
// it was asked for and answers with a URL naming it.
type env struct {
	t     *testing.T
	idx   *sqlindex.Index
	h     *clipmeta.Handler
	srv   *httptest.Server
	mu    sync.Mutex
	calls []sessionCall
	// sessionErr, when set, is what SessionURL fails with.
	sessionErr error
}

type sessionCall struct {
	Stream     string
	Begin, End int64
	URL        string
}

func newEnv(t *testing.T, streams ...string) *env {
	e := &env{t: t, idx: openIndex(t)}
	for _, name := range streams {
		e.createStream(name)
	}
	e.h = &clipmeta.Handler{
		Store: e.idx,
		StreamExists: func(ctx context.Context, name string) (bool, error) {
			_, err := e.idx.StreamByName(ctx, account, name)
			if errors.Is(err, archive.ErrNotFound) {
				return false, nil
			}
			return err == nil, err
		},
		SessionURL: func(ctx context.Context, r *http.Request, name string, begin, end int64) (string, error) {
			e.mu.Lock()
			defer e.mu.Unlock()
			if e.sessionErr != nil {
				return "", e.sessionErr
			}
			u := fmt.Sprintf("http://%s/hls/v1/getHLSMasterPlaylist.m3u8?SessionToken=%s.%d.%d&n=%d", r.Host, name, begin, end, len(e.calls))
			e.calls = append(e.calls, sessionCall{name, begin, end, u})
			return u, nil
		},
	}
	e.srv = httptest.NewServer(e.h)
	t.Cleanup(e.srv.Close)
	return e
}

func (e *env) createStream(name string) {
	s := &stream.Stream{Account: account, Region: "us-east-1", Name: name, Version: "v1",
		Status: stream.StatusActive, Created: time.UnixMilli(1_700_000_000_000), RetentionHours: 24, StorageTier: "HOT"}
	if err := e.idx.CreateStream(ctx, s, nil); err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) lastCall() sessionCall {
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.calls) == 0 {
		e.t.Fatal("SessionURL was not called")
	}
	return e.calls[len(e.calls)-1]
}

type response struct {
	Status int
	Header http.Header
	Body   []byte
}

// do sends method path?query with body ("" for none).
func (e *env) do(method, path, query, body string) response {
	e.t.Helper()
	u := e.srv.URL + path
	if query != "" {
		u += "?" + query
	}
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, b}
}

// ok checks a 200 JSON response and decodes it into v.
func (r response) ok(t *testing.T, v any) {
	t.Helper()
	if r.Status != http.StatusOK {
		t.Fatalf("status %d (%s): %s", r.Status, r.Header.Get("x-amzn-ErrorType"), r.Body)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("%v: %s", err, r.Body)
	}
}

// apiError checks an error response's status, type and message.
func (r response) apiError(t *testing.T, status int, typ, msg string) {
	t.Helper()
	if r.Status != status || r.Header.Get("x-amzn-ErrorType") != typ {
		t.Fatalf("got %d %s %s; want %d %s", r.Status, r.Header.Get("x-amzn-ErrorType"), r.Body, status, typ)
	}
	if ct := r.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("error Content-Type %q", ct)
	}
	var body map[string]string
	if err := json.Unmarshal(r.Body, &body); err != nil || len(body) != 1 {
		t.Fatalf("error body %s is not {\"message\": ...}: %v", r.Body, err)
	}
	if !strings.Contains(body["message"], msg) {
		t.Fatalf("message %q does not contain %q", body["message"], msg)
	}
}

type clipOut struct {
	ClipID, ClientID, DeviceID, StreamName, BegTime, EndTime, Duration, CreatedTime string
}

type listOut struct {
	Clips     []clipOut
	NextToken *string
}

const (
	t0   = int64(1_700_000_000_000)
	path = clipmeta.Path
)

func clipJSON(client, device, stream string, begin, end int64, duration string) string {
	return fmt.Sprintf(`{"clientID":%q,"deviceID":%q,"streamName":%q,"begTime":"%d","endTime":"%d","duration":%q}`,
		client, device, stream, begin, end, duration)
}

var reClipID = regexp.MustCompile(`^[0-9a-f]{32}$`)

func TestPutThenPlay(t *testing.T) {
	e := newEnv(t, "cam-1")
	var a, b clipOut
	// Times and duration as strings, as devices send them.
	e.do("PUT", path, "", clipJSON("app-1", "dev-1", "cam-1", t0, t0+10_000, "10")).ok(t, &a)
	if !reClipID.MatchString(a.ClipID) || a.ClientID != "app-1" || a.DeviceID != "dev-1" || a.StreamName != "cam-1" ||
		a.BegTime != fmt.Sprint(t0) || a.EndTime != fmt.Sprint(t0+10_000) || a.Duration != "10" || a.CreatedTime == "" {
		t.Fatalf("PUT answered %+v", a)
	}
	if a.ClipID != clipmeta.ClipID("app-1", "dev-1", "cam-1", t0) {
		t.Fatalf("clipID %s is not ClipID of the key", a.ClipID)
	}
	// And as JSON numbers.
	e.do("PUT", path, "", fmt.Sprintf(`{"clientID":"app-1","deviceID":"dev-1","streamName":"cam-1","begTime":%d,"endTime":%d,"duration":9.5}`,
		t0+20_000, t0+29_500)).ok(t, &b)
	if b.BegTime != fmt.Sprint(t0+20_000) || b.EndTime != fmt.Sprint(t0+29_500) || b.Duration != "9.5" || b.ClipID == a.ClipID {
		t.Fatalf("PUT with numbers answered %+v", b)
	}

	// GET with a JSON body (as the existing apps send it).
	r := e.do("GET", path, "", fmt.Sprintf(`{"clientID":"app-1","streamName":"cam-1","begTime":"%d","endTime":"%d","duration":"10"}`, t0, t0+10_000))
	var u string
	r.ok(t, &u)
	call := e.lastCall()
	if u != call.URL || call.Stream != "cam-1" || call.Begin != t0 || call.End != t0+10_000 {
		t.Fatalf("GET answered %q; SessionURL was asked %+v", u, call)
	}
	// The body is the JSON string literal itself, & unescaped.
	if string(r.Body) != `"`+call.URL+`"` {
		t.Fatalf("body %s, want the quoted URL %q", r.Body, call.URL)
	}

	// GET with query parameters, numbers given as numbers in the other clip.
	q := url.Values{"clientID": {"app-1"}, "streamName": {"cam-1"}, "begTime": {fmt.Sprint(t0 + 20_000)}, "endTime": {fmt.Sprint(t0 + 29_500)}}
	e.do("GET", path, q.Encode(), "").ok(t, &u)
	if call := e.lastCall(); u != call.URL || call.Begin != t0+20_000 || call.End != t0+29_500 {
		t.Fatalf("GET by query answered %q; SessionURL was asked %+v", u, call)
	}
	// duration is optional on GET, numbers are fine too.
	e.do("GET", path, "", fmt.Sprintf(`{"clientID":"app-1","streamName":"cam-1","begTime":%d,"endTime":%d}`, t0+20_000, t0+29_500)).ok(t, &u)
	// Query and body may both carry fields when they agree.
	e.do("GET", path, "clientID=app-1", fmt.Sprintf(`{"clientID":"app-1","streamName":"cam-1","begTime":%d,"endTime":%d}`, t0, t0+10_000)).ok(t, &u)

	// Only an exact range finds a clip.
	e.do("GET", path, "", fmt.Sprintf(`{"clientID":"app-1","streamName":"cam-1","begTime":%d,"endTime":%d}`, t0, t0+9_000)).
		apiError(t, 404, "ResourceNotFoundException", "clientID app-1 has no clip of stream cam-1 from begTime")
}

func TestIdempotentPut(t *testing.T) {
	e := newEnv(t, "cam-1")
	var first, second clipOut
	e.do("PUT", path, "", clipJSON("app", "dev", "cam-1", t0, t0+10_000, "10")).ok(t, &first)
	time.Sleep(5 * time.Millisecond)
	e.do("PUT", path, "", clipJSON("app", "dev", "cam-1", t0, t0+12_000, "12")).ok(t, &second)
	if second.ClipID != first.ClipID || second.CreatedTime != first.CreatedTime || second.EndTime != fmt.Sprint(t0+12_000) || second.Duration != "12" {
		t.Fatalf("first %+v, then %+v: want the same clip, updated", first, second)
	}
	// The same body once more changes nothing.
	var third clipOut
	e.do("PUT", path, "", clipJSON("app", "dev", "cam-1", t0, t0+12_000, "12")).ok(t, &third)
	if third != second {
		t.Fatalf("repeated PUT: %+v, then %+v", second, third)
	}
	var l listOut
	e.do("GET", path+"/clips", "clientID=app", "").ok(t, &l)
	if len(l.Clips) != 1 || l.Clips[0] != second {
		t.Fatalf("listing after repeated PUTs: %+v", l)
	}
	var u string
	e.do("GET", path, "", fmt.Sprintf(`{"clientID":"app","streamName":"cam-1","begTime":"%d","endTime":"%d"}`, t0, t0+10_000)).
		apiError(t, 404, "ResourceNotFoundException", "has no clip")
	e.do("GET", path, "", fmt.Sprintf(`{"clientID":"app","streamName":"cam-1","begTime":"%d","endTime":"%d"}`, t0, t0+12_000)).ok(t, &u)
}

func TestClientIsolation(t *testing.T) {
	e := newEnv(t, "cam-1")
	var a clipOut
	e.do("PUT", path, "", clipJSON("tenant-a", "dev", "cam-1", t0, t0+10_000, "10")).ok(t, &a)
	get := func(client string) response {
		return e.do("GET", path, "", fmt.Sprintf(`{"clientID":%q,"streamName":"cam-1","begTime":"%d","endTime":"%d"}`, client, t0, t0+10_000))
	}
	get("tenant-b").apiError(t, 404, "ResourceNotFoundException", "clientID tenant-b has no clip")
	var l listOut
	e.do("GET", path+"/clips", "clientID=tenant-b&deviceID=dev", "").ok(t, &l)
	if l.Clips == nil || len(l.Clips) != 0 || l.NextToken != nil {
		t.Fatalf("tenant-b lists %s", mustJSON(l))
	}
	e.do("DELETE", path, "clientID=tenant-b&clipID="+a.ClipID, "").apiError(t, 404, "ResourceNotFoundException", "clientID tenant-b has no clip "+a.ClipID)
	e.do("DELETE", path, fmt.Sprintf("clientID=tenant-b&deviceID=dev&streamName=cam-1&begTime=%d", t0), "").
		apiError(t, 404, "ResourceNotFoundException", "has no clip")
	// tenant-b's own record of the same key is a separate clip.
	var b clipOut
	e.do("PUT", path, "", clipJSON("tenant-b", "dev", "cam-1", t0, t0+10_000, "10")).ok(t, &b)
	if b.ClipID == a.ClipID {
		t.Fatal("two tenants' clips share an id")
	}
	var u string
	get("tenant-a").ok(t, &u)
	e.do("GET", path+"/clips", "clientID=tenant-a", "").ok(t, &l)
	if len(l.Clips) != 1 || l.Clips[0] != a {
		t.Fatalf("tenant-a lists %+v, want only %+v", l.Clips, a)
	}
}

func TestListPagination(t *testing.T) {
	e := newEnv(t, "cam-1", "cam-2")
	// 23 clips of two devices on two streams, some sharing a begin time.
	var all []clipOut
	for i := range int64(23) {
		dev, cam := fmt.Sprintf("dev-%d", i%2), fmt.Sprintf("cam-%d", 1+i%2)
		begin := t0 + i/2*60_000
		var c clipOut
		e.do("PUT", path, "", clipJSON("app", dev, cam, begin, begin+30_000, "30")).ok(t, &c)
		all = append(all, c)
	}
	e.do("PUT", path, "", clipJSON("other", "dev-0", "cam-1", t0, t0+30_000, "30")).ok(t, &clipOut{})

	pages := func(query url.Values, max int) []clipOut {
		t.Helper()
		got := []clipOut{}
		seen := map[string]bool{}
		for n := 0; ; n++ {
			q := url.Values{}
			for k, v := range query {
				q[k] = v
			}
			q.Set("maxResults", fmt.Sprint(max))
			var l listOut
			r := e.do("GET", path+"/clips", q.Encode(), "")
			r.ok(t, &l)
			got = append(got, l.Clips...)
			if l.NextToken == nil {
				if strings.Contains(string(r.Body), "NextToken") {
					t.Fatalf("last page carries a NextToken: %s", r.Body)
				}
				return got
			}
			if len(l.Clips) != max {
				t.Fatalf("page %d has %d clips and a NextToken", n, len(l.Clips))
			}
			if seen[*l.NextToken] || *l.NextToken == "" {
				t.Fatalf("NextToken %q repeats", *l.NextToken)
			}
			seen[*l.NextToken] = true
			query.Set("nextToken", *l.NextToken)
		}
	}
	check := func(name string, query url.Values, want []clipOut) {
		t.Helper()
		var one listOut
		q := url.Values{}
		for k, v := range query {
			q[k] = v
		}
		e.do("GET", path+"/clips", q.Encode(), "").ok(t, &one)
		if mustJSON(one.Clips) != mustJSON(want) {
			t.Fatalf("%s in one page: %d clips, want %d", name, len(one.Clips), len(want))
		}
		for _, max := range []int{1, 2, 5, len(want), len(want) + 1} {
			if max < 1 {
				continue
			}
			q := url.Values{}
			for k, v := range query {
				q[k] = v
			}
			if got := pages(q, max); mustJSON(got) != mustJSON(want) {
				t.Fatalf("%s in pages of %d:\n got %s\nwant %s", name, max, mustJSON(got), mustJSON(want))
			}
		}
	}
	filter := func(keep func(c clipOut) bool) []clipOut {
		out := []clipOut{}
		for _, c := range all {
			if keep(c) {
				out = append(out, c)
			}
		}
		// Listings are ordered by begin time, then clip id.
		for i := range out {
			for j := i + 1; j < len(out); j++ {
				if out[j].BegTime < out[i].BegTime || (out[j].BegTime == out[i].BegTime && out[j].ClipID < out[i].ClipID) {
					out[i], out[j] = out[j], out[i]
				}
			}
		}
		return out
	}
	check("all", url.Values{"clientID": {"app"}}, filter(func(clipOut) bool { return true }))
	check("device", url.Values{"clientID": {"app"}, "deviceID": {"dev-1"}}, filter(func(c clipOut) bool { return c.DeviceID == "dev-1" }))
	check("stream", url.Values{"clientID": {"app"}, "streamName": {"cam-1"}}, filter(func(c clipOut) bool { return c.StreamName == "cam-1" }))
	check("device and stream", url.Values{"clientID": {"app"}, "deviceID": {"dev-0"}, "streamName": {"cam-1"}},
		filter(func(c clipOut) bool { return c.DeviceID == "dev-0" && c.StreamName == "cam-1" }))
	// Overlap with [from, to], both inclusive: a clip that ends at from counts.
	from, to := t0+2*60_000+30_000, t0+5*60_000
	check("time range", url.Values{"clientID": {"app"}, "from": {fmt.Sprint(from)}, "to": {fmt.Sprint(to)}},
		filter(func(c clipOut) bool { return c.BegTime <= fmt.Sprint(to) && c.EndTime >= fmt.Sprint(from) }))
	check("no match", url.Values{"clientID": {"app"}, "deviceID": {"dev-9"}}, []clipOut{})

	// A token is bound to its listing.
	var l listOut
	e.do("GET", path+"/clips", "clientID=app&maxResults=2", "").ok(t, &l)
	e.do("GET", path+"/clips", "clientID=app&deviceID=dev-0&nextToken="+*l.NextToken, "").
		apiError(t, 400, "InvalidArgumentException", "nextToken belongs to a different listing")
	e.do("GET", path+"/clips", "clientID=other&nextToken="+*l.NextToken, "").
		apiError(t, 400, "InvalidArgumentException", "nextToken belongs to a different listing")
	// maxResults may change between pages.
	var rest listOut
	e.do("GET", path+"/clips", "clientID=app&maxResults=1000&nextToken="+*l.NextToken, "").ok(t, &rest)
	if len(rest.Clips) != 21 || rest.NextToken != nil {
		t.Fatalf("the rest after a page of 2: %d clips, token %v", len(rest.Clips), rest.NextToken)
	}
}

func TestDelete(t *testing.T) {
	e := newEnv(t, "cam-1")
	var a, b clipOut
	e.do("PUT", path, "", clipJSON("app", "dev", "cam-1", t0, t0+10_000, "10")).ok(t, &a)
	e.do("PUT", path, "", clipJSON("app", "dev", "cam-1", t0+10_000, t0+20_000, "10")).ok(t, &b)

	var out struct{ ClipID string }
	// By the id PUT returned.
	e.do("DELETE", path, "clientID=app&clipID="+a.ClipID, "").ok(t, &out)
	if out.ClipID != a.ClipID {
		t.Fatalf("DELETE answered %+v", out)
	}
	e.do("DELETE", path, "clientID=app&clipID="+a.ClipID, "").apiError(t, 404, "ResourceNotFoundException", "has no clip "+a.ClipID)
	e.do("GET", path, "", fmt.Sprintf(`{"clientID":"app","streamName":"cam-1","begTime":"%d","endTime":"%d"}`, t0, t0+10_000)).
		apiError(t, 404, "ResourceNotFoundException", "has no clip")

	// By key, with both id and key (they must agree), and with a JSON body.
	keyQuery := fmt.Sprintf("clientID=app&deviceID=dev&streamName=cam-1&begTime=%d", t0+10_000)
	e.do("DELETE", path, keyQuery+"&clipID="+a.ClipID, "").apiError(t, 400, "InvalidArgumentException", "is not the clip of deviceID, streamName and begTime")
	e.do("DELETE", path, keyQuery+"&clipID="+b.ClipID, "").ok(t, &out)
	if out.ClipID != b.ClipID {
		t.Fatalf("DELETE by key answered %+v, want %s", out, b.ClipID)
	}
	e.do("PUT", path, "", clipJSON("app", "dev", "cam-1", t0+10_000, t0+20_000, "10")).ok(t, &b)
	e.do("DELETE", path, "", fmt.Sprintf(`{"clientID":"app","deviceID":"dev","streamName":"cam-1","begTime":%d}`, t0+10_000)).ok(t, &out)
	var l listOut
	e.do("GET", path+"/clips", "clientID=app", "").ok(t, &l)
	if len(l.Clips) != 0 {
		t.Fatalf("clips left after deleting all: %+v", l.Clips)
	}
}

func TestValidation(t *testing.T) {
	e := newEnv(t, "cam-1")
	long := strings.Repeat("x", 129)
	put := func(fields string) string { return "{" + fields + "}" }
	okFields := fmt.Sprintf(`"clientID":"app","deviceID":"dev","streamName":"cam-1","begTime":"%d","endTime":"%d"`, t0, t0+10_000)
	type tc struct {
		name                string
		method, path, query string
		body                string
		status              int
		typ, msg            string
		header, headerValue string
	}
	const inv = "InvalidArgumentException"
	cases := []tc{
		{name: "nothing", method: "PUT", body: `{}`, status: 400, typ: inv,
			msg: "missing required fields clientID, deviceID, streamName, begTime, endTime, duration"},
		{name: "no body at all", method: "PUT", status: 400, typ: inv, msg: "missing required fields clientID,"},
		{name: "no duration", method: "PUT", body: put(okFields), status: 400, typ: inv, msg: "missing required field duration"},
		{name: "null is absent", method: "PUT", body: put(okFields + `,"duration":null`), status: 400, typ: inv, msg: "missing required field duration"},
		{name: "non-numeric begTime", method: "PUT", body: clipJSONRaw(`"abc"`, fmt.Sprintf(`"%d"`, t0), `"10"`), status: 400, typ: inv,
			msg: `begTime must be epoch milliseconds, a string or number of digits such as "1700000000000"; got "abc"`},
		{name: "fractional endTime", method: "PUT", body: clipJSONRaw(fmt.Sprint(t0), fmt.Sprintf("%d.5", t0+10_000), `10`), status: 400, typ: inv,
			msg: "endTime must be epoch milliseconds"},
		{name: "negative begTime", method: "PUT", body: clipJSONRaw(`-5`, fmt.Sprint(t0), `10`), status: 400, typ: inv, msg: "begTime must be epoch milliseconds"},
		{name: "exponent begTime", method: "PUT", body: clipJSONRaw(`1.7e12`, fmt.Sprint(t0), `10`), status: 400, typ: inv, msg: "begTime must be epoch milliseconds"},
		{name: "spaces in begTime", method: "PUT", body: clipJSONRaw(fmt.Sprintf(`" %d"`, t0), fmt.Sprint(t0), `10`), status: 400, typ: inv, msg: "begTime must be epoch milliseconds"},
		{name: "boolean begTime", method: "PUT", body: clipJSONRaw(`true`, fmt.Sprint(t0), `10`), status: 400, typ: inv, msg: "begTime must be a string or a number"},
		{name: "object deviceID", method: "PUT", body: `{"deviceID":{}}`, status: 400, typ: inv, msg: "deviceID must be a string or a number"},
		{name: "year 10000", method: "PUT", body: clipJSONRaw(`"253402300800000"`, `"253402300810000"`, `10`), status: 400, typ: inv,
			msg: "begTime 253402300800000 is beyond the year 9999"},
		{name: "int64 overflow", method: "PUT", body: clipJSONRaw(`"99999999999999999999"`, fmt.Sprint(t0), `10`), status: 400, typ: inv, msg: "is beyond the year 9999"},
		{name: "end before begin", method: "PUT", body: clipJSONRaw(fmt.Sprint(t0+10_000), fmt.Sprint(t0), `10`), status: 400, typ: inv,
			msg: fmt.Sprintf("endTime %d is before begTime %d", t0, t0+10_000)},
		{name: "end equals begin", method: "PUT", body: clipJSONRaw(fmt.Sprint(t0), fmt.Sprint(t0), `0`), status: 400, typ: inv,
			msg: fmt.Sprintf("endTime must be after begTime; both are %d", t0)},
		{name: "longer than 24 h", method: "PUT", body: clipJSONRaw(fmt.Sprint(t0), fmt.Sprint(t0+86_400_001), `86400`), status: 400, typ: inv,
			msg: "spans 24h0m0.001s; at most 24h0m0s is allowed"},
		{name: "duration inconsistent", method: "PUT", body: clipJSONRaw(fmt.Sprint(t0), fmt.Sprint(t0+20_000), `"10"`), status: 400, typ: inv,
			msg: "duration 10 s does not match endTime - begTime = 20 s (allowed difference: 1000 ms"},
		{name: "duration just outside the tolerance", method: "PUT", body: clipJSONRaw(fmt.Sprint(t0), fmt.Sprint(t0+11_001), `"10"`), status: 400, typ: inv,
			msg: "duration 10 s does not match endTime - begTime = 11.001 s"},
		{name: "epoch seconds", method: "PUT", body: clipJSONRaw(`"1700000000"`, `"1700000010"`, `"10"`), status: 400, typ: inv,
			msg: "does not match endTime - begTime = 0.01 s (allowed difference: 1000 ms; times are epoch milliseconds, duration is seconds)"},
		{name: "non-numeric duration", method: "PUT", body: clipJSONRaw(fmt.Sprint(t0), fmt.Sprint(t0+10_000), `"ten"`), status: 400, typ: inv,
			msg: `duration must be a non-negative number of seconds such as "10" or "9.5"; got "ten"`},
		{name: "NaN duration", method: "PUT", body: clipJSONRaw(fmt.Sprint(t0), fmt.Sprint(t0+10_000), `"NaN"`), status: 400, typ: inv, msg: "duration must be a non-negative number"},
		{name: "negative duration", method: "PUT", body: clipJSONRaw(fmt.Sprint(t0), fmt.Sprint(t0+10_000), `-10`), status: 400, typ: inv, msg: "duration must be a non-negative number"},
		{name: "huge duration", method: "PUT", body: clipJSONRaw(fmt.Sprint(t0), fmt.Sprint(t0+10_000), `"1`+strings.Repeat("0", 400)+`"`), status: 400, typ: inv,
			msg: "is longer than any clip may be"},
		{name: "unknown stream", method: "PUT", body: clipJSON("app", "dev", "nope", t0, t0+10_000, "10"), status: 400, typ: inv, msg: "stream nope does not exist"},
		{name: "clientID with a space", method: "PUT", body: clipJSON("a b", "dev", "cam-1", t0, t0+10_000, "10"), status: 400, typ: inv,
			msg: `clientID must be 1 to 128 characters of letters, digits and _ . : @ -; got "a b"`},
		{name: "empty deviceID", method: "PUT", body: clipJSON("app", "", "cam-1", t0, t0+10_000, "10"), status: 400, typ: inv, msg: "deviceID must be 1 to 128 characters"},
		{name: "deviceID of 129", method: "PUT", body: clipJSON("app", long, "cam-1", t0, t0+10_000, "10"), status: 400, typ: inv, msg: "deviceID must be 1 to 128 characters"},
		{name: "bad stream name", method: "PUT", body: clipJSON("app", "dev", "cam/1", t0, t0+10_000, "10"), status: 400, typ: inv,
			msg: `streamName must be 1 to 256 characters of letters, digits and _ . -; got "cam/1"`},
		{name: "malformed JSON", method: "PUT", body: `{"clientID":`, status: 400, typ: "SerializationException", msg: "malformed JSON body"},
		{name: "not an object", method: "PUT", body: `["clientID"]`, status: 400, typ: "SerializationException", msg: "the body must be a JSON object"},
		{name: "query and body disagree", method: "PUT", query: "clientID=b", body: clipJSON("a", "dev", "cam-1", t0, t0+10_000, "10"), status: 400, typ: inv,
			msg: `clientID is given in the query string and in the body with different values ("b", "a")`},
		{name: "query repeats a field", method: "GET", query: "clientID=a&clientID=b", status: 400, typ: inv, msg: "clientID is given more than once in the query string"},
		{name: "malformed query", method: "GET", query: "clientID=%zz", status: 400, typ: inv, msg: "the query string is malformed"},
		{name: "body too large", method: "PUT", body: `{"x":"` + strings.Repeat("a", clipmeta.MaxBodyBytes) + `"}`, status: 413, typ: "RequestEntityTooLargeException",
			msg: "the request body exceeds 65536 bytes"},
		{name: "POST", method: "POST", body: `{}`, status: 405, typ: "MethodNotAllowedException", msg: "takes GET, PUT or DELETE, not POST",
			header: "Allow", headerValue: "GET, PUT, DELETE"},
		{name: "PUT a listing", method: "PUT", path: path + "/clips", status: 405, typ: "MethodNotAllowedException", msg: "/ipc-video-metadata/clips takes GET, not PUT",
			header: "Allow", headerValue: "GET"},
		{name: "unknown path", method: "GET", path: path + "/nope", status: 404, typ: "UnknownOperationException", msg: "no operation at GET /ipc-video-metadata/nope"},

		{name: "GET without fields", method: "GET", status: 400, typ: inv, msg: "missing required fields clientID, streamName, begTime, endTime"},
		{name: "GET unknown stream", method: "GET", query: fmt.Sprintf("clientID=app&streamName=nope&begTime=%d&endTime=%d", t0, t0+1), status: 400, typ: inv,
			msg: "stream nope does not exist"},
		{name: "GET end before begin", method: "GET", query: fmt.Sprintf("clientID=app&streamName=cam-1&begTime=%d&endTime=%d", t0, t0-1), status: 400, typ: inv,
			msg: "is before begTime"},
		{name: "GET wrong duration", method: "GET", query: fmt.Sprintf("clientID=app&streamName=cam-1&begTime=%d&endTime=%d&duration=5", t0, t0+10_000), status: 400, typ: inv,
			msg: "duration 5 s does not match endTime - begTime = 10 s"},
		{name: "GET over 24 h", method: "GET", query: fmt.Sprintf("clientID=app&streamName=cam-1&begTime=%d&endTime=%d", t0, t0+86_400_001), status: 400, typ: inv,
			msg: "at most 24h0m0s is allowed"},
		{name: "GET no such clip", method: "GET", query: fmt.Sprintf("clientID=app&streamName=cam-1&begTime=%d&endTime=%d", t0, t0+1), status: 404,
			typ: "ResourceNotFoundException", msg: fmt.Sprintf("clientID app has no clip of stream cam-1 from begTime %d to endTime %d", t0, t0+1)},

		{name: "DELETE naming nothing", method: "DELETE", query: "clientID=app", status: 400, typ: inv,
			msg: "name the clip to delete: give clipID, or deviceID, streamName and begTime"},
		{name: "DELETE without client", method: "DELETE", query: "clipID=" + strings.Repeat("a", 32), status: 400, typ: inv, msg: "missing required field clientID"},
		{name: "DELETE bad clipID", method: "DELETE", query: "clientID=app&clipID=XYZ", status: 400, typ: inv,
			msg: `clipID must be 32 lowercase hex digits as returned by PUT; got "XYZ"`},
		{name: "DELETE partial key", method: "DELETE", query: "clientID=app&deviceID=dev", status: 400, typ: inv, msg: "missing required fields streamName, begTime"},
		{name: "DELETE bad begTime", method: "DELETE", query: "clientID=app&deviceID=dev&streamName=cam-1&begTime=yesterday", status: 400, typ: inv,
			msg: "begTime must be epoch milliseconds"},

		{name: "list without client", method: "GET", path: path + "/clips", query: "deviceID=dev", status: 400, typ: inv, msg: "missing required field clientID"},
		{name: "list maxResults 0", method: "GET", path: path + "/clips", query: "clientID=app&maxResults=0", status: 400, typ: inv,
			msg: `maxResults must be an integer from 1 to 1000; got "0"`},
		{name: "list maxResults 1001", method: "GET", path: path + "/clips", query: "clientID=app&maxResults=1001", status: 400, typ: inv, msg: "maxResults must be an integer from 1 to 1000"},
		{name: "list maxResults text", method: "GET", path: path + "/clips", query: "clientID=app&maxResults=many", status: 400, typ: inv, msg: "maxResults must be an integer from 1 to 1000"},
		{name: "list to before from", method: "GET", path: path + "/clips", query: "clientID=app&from=2000&to=1000", status: 400, typ: inv, msg: "to 1000 is before from 2000"},
		{name: "list bad from", method: "GET", path: path + "/clips", query: "clientID=app&from=now", status: 400, typ: inv, msg: "from must be epoch milliseconds"},
		{name: "list bad deviceID", method: "GET", path: path + "/clips", query: "clientID=app&deviceID=" + long, status: 400, typ: inv, msg: "deviceID must be 1 to 128 characters"},
		{name: "list forged token", method: "GET", path: path + "/clips", query: "clientID=app&nextToken=Zm9v", status: 400, typ: inv,
			msg: "nextToken is not a token this server issued"},
		{name: "list token with bad characters", method: "GET", path: path + "/clips", query: "clientID=app&nextToken=a%2Fb", status: 400, typ: inv,
			msg: "nextToken is not a token this server issued"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p := c.path
			if p == "" {
				p = path
			}
			r := e.do(c.method, p, c.query, c.body)
			r.apiError(t, c.status, c.typ, c.msg)
			if c.header != "" && r.Header.Get(c.header) != c.headerValue {
				t.Fatalf("%s: %q, want %q", c.header, r.Header.Get(c.header), c.headerValue)
			}
		})
	}
	// Nothing above was stored.
	var l listOut
	for _, client := range []string{"app", "a", "b"} {
		e.do("GET", path+"/clips", "clientID="+client, "").ok(t, &l)
		if len(l.Clips) != 0 {
			t.Fatalf("a refused request stored %+v", l.Clips)
		}
	}

	// The limits themselves are accepted.
	var c clipOut
	e.do("PUT", path, "", clipJSON(strings.Repeat("c", 128), "a.b:c@d_e-f", "cam-1", t0, t0+86_400_000, "86400")).ok(t, &c)
	e.do("PUT", path, "", clipJSONRaw(fmt.Sprint(t0), fmt.Sprint(t0+11_000), `"10"`)).ok(t, &c)      // 1 s short: within the tolerance
	e.do("PUT", path, "", clipJSONRaw(fmt.Sprint(t0+1), fmt.Sprint(t0+9_001), `"9.0005"`)).ok(t, &c) // kept to the millisecond
	if c.Duration != "9.001" {
		t.Fatalf("duration 9.0005 stored as %s, want 9.001", c.Duration)
	}
	e.do("PUT", path, "", clipJSONRaw(`"0"`, `"1000"`, `"1"`)).ok(t, &c)
	e.do("PUT", path, "", clipJSONRaw(`"253402300789999"`, `"253402300799999"`, `10`)).ok(t, &c)
}

// clipJSONRaw is a PUT body for client app, device dev, stream cam-1 with
// begTime, endTime and duration as the JSON given.
func clipJSONRaw(beg, end, dur string) string {
	return fmt.Sprintf(`{"clientID":"app","deviceID":"dev","streamName":"cam-1","begTime":%s,"endTime":%s,"duration":%s}`, beg, end, dur)
}

func TestSessionURLFailures(t *testing.T) {
	e := newEnv(t, "cam-1")
	e.do("PUT", path, "", clipJSON("app", "dev", "cam-1", t0, t0+10_000, "10")).ok(t, &clipOut{})
	get := func() response {
		return e.do("GET", path, fmt.Sprintf("clientID=app&streamName=cam-1&begTime=%d&endTime=%d", t0, t0+10_000), "")
	}
	for _, tc := range []struct {
		err      error
		status   int
		typ, msg string
	}{
		{apierr.NotFound("stream cam-1 has no fragment in the requested range"), 404, "ResourceNotFoundException", "stream cam-1 has no fragment in the requested range"},
		{apierr.New("NoDataRetentionException", "stream cam-1 keeps no data"), 400, "NoDataRetentionException", "keeps no data"},
		{fmt.Errorf("wrapped: %w", archive.ErrNotFound), 404, "ResourceNotFoundException", fmt.Sprintf("stream cam-1 has no media from begTime %d to endTime %d", t0, t0+10_000)},
		{errors.New("disk on fire"), 500, "InternalFailure", "disk on fire"},
	} {
		e.mu.Lock()
		e.sessionErr = tc.err
		e.mu.Unlock()
		get().apiError(t, tc.status, tc.typ, tc.msg)
	}
	// A stream deleted after its clips were stored cannot be played.
	st, err := e.idx.StreamByName(ctx, account, "cam-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.idx.DeleteStream(ctx, st.ID); err != nil {
		t.Fatal(err)
	}
	get().apiError(t, 400, "InvalidArgumentException", "stream cam-1 does not exist")
	// Its clips can still be listed and deleted.
	var l listOut
	e.do("GET", path+"/clips", "clientID=app&streamName=cam-1", "").ok(t, &l)
	if len(l.Clips) != 1 {
		t.Fatalf("clips of a deleted stream: %+v", l.Clips)
	}
	e.do("DELETE", path, "clientID=app&clipID="+l.Clips[0].ClipID, "").ok(t, &struct{}{})
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}
