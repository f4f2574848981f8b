package clipmeta

import (
	"encoding/json"
	"errors"
	"math"
	"net/url"
	"strconv"
	"testing"
	"unicode/utf8"

	"github.com/kinema/kinema/internal/apierr"
)

// FuzzParseRequest feeds the parser a query string and a body for each
// operation (op%4 picks PUT, GET, DELETE, list). It must never panic; a
// refusal must be a 400 InvalidArgumentException or SerializationException
// with a short, printable message; an accepted request must keep every
// documented rule, and must read back the same when its fields are sent
// again as strings in a body and as a query string. Seeds are in
// testdata/fuzz/FuzzParseRequest.
func FuzzParseRequest(f *testing.F) {
	tok := encodeToken(&ListQuery{ClientID: "app", DeviceID: "dev", ToMs: MaxTimeMs}, 1700000000000, ClipID("app", "dev", "cam", 1700000000000))
	f.Add(uint8(3), "clientID=app&deviceID=dev&maxResults=2&nextToken="+tok, []byte(nil))
	f.Fuzz(func(t *testing.T, op uint8, query string, body []byte) {
		name := ops[int(op)%len(ops)]
		req, err := parseRequest(name, "", query, body)
		if err != nil {
			checkRefusal(t, err)
			return
		}
		switch r := req.(type) {
		case *Clip:
			checkClip(t, r)
			f := map[string]string{fClientID: r.ClientID, fDeviceID: r.DeviceID, fStreamName: r.StreamName,
				fBegTime: strconv.FormatInt(r.BeginMs, 10), fEndTime: strconv.FormatInt(r.EndMs, 10),
				fDuration: strconv.FormatFloat(r.DurationSec, 'f', -1, 64)}
			for _, again := range reparse(t, name, f) {
				if *again.(*Clip) != *r {
					t.Fatalf("%+v reads back as %+v", r, again)
				}
			}
		case *getRequest:
			checkRange(t, r.BeginMs, r.EndMs)
			checkID(t, r.ClientID, MaxIDLen, reID.MatchString)
			checkID(t, r.StreamName, MaxStreamNameLen, reStreamName.MatchString)
			f := map[string]string{fClientID: r.ClientID, fStreamName: r.StreamName,
				fBegTime: strconv.FormatInt(r.BeginMs, 10), fEndTime: strconv.FormatInt(r.EndMs, 10)}
			for _, again := range reparse(t, name, f) {
				if *again.(*getRequest) != *r {
					t.Fatalf("%+v reads back as %+v", r, again)
				}
			}
		case deleteRequest:
			checkID(t, r.ClientID, MaxIDLen, reID.MatchString)
			if !reClipID.MatchString(r.ID) {
				t.Fatalf("clip id %q", r.ID)
			}
			for _, again := range reparse(t, name, map[string]string{fClientID: r.ClientID, fClipID: r.ID}) {
				if again.(deleteRequest) != r {
					t.Fatalf("%+v reads back as %+v", r, again)
				}
			}
		case *listRequest:
			q := r.Query
			checkID(t, q.ClientID, MaxIDLen, reID.MatchString)
			if q.DeviceID != "" {
				checkID(t, q.DeviceID, MaxIDLen, reID.MatchString)
			}
			if q.StreamName != "" {
				checkID(t, q.StreamName, MaxStreamNameLen, reStreamName.MatchString)
			}
			if q.FromMs < 0 || q.ToMs < q.FromMs || q.ToMs > MaxTimeMs || r.Max < 1 || r.Max > MaxMaxResults || q.Limit != r.Max+1 {
				t.Fatalf("list query %+v, page %d", q, r.Max)
			}
			if q.AfterID != "" && (!reClipID.MatchString(q.AfterID) || q.AfterBeginMs < 0 || q.AfterBeginMs > MaxTimeMs) {
				t.Fatalf("cursor %d %q", q.AfterBeginMs, q.AfterID)
			}
			// The token for this position continues this listing, and only it.
			next := encodeToken(&q, q.AfterBeginMs+1, ClipID(q.ClientID, "d", "s", 1))
			beg, id, terr := decodeToken(next, &q)
			if terr != nil || beg != q.AfterBeginMs+1 || id != ClipID(q.ClientID, "d", "s", 1) {
				t.Fatalf("token round trip: %d %q %v", beg, id, terr)
			}
			other := q
			other.FromMs++
			if _, _, terr := decodeToken(next, &other); terr == nil {
				t.Fatal("a token continues another listing")
			}
		default:
			t.Fatalf("parseRequest(%s) returned %T", name, req)
		}
	})
}

func checkRefusal(t *testing.T, err *apierr.Error) {
	t.Helper()
	if err.Status != 400 || (err.Type != "InvalidArgumentException" && err.Type != "SerializationException") {
		t.Fatalf("refusal %d %s: %s", err.Status, err.Type, err.Message)
	}
	if err.Message == "" || len(err.Message) > 1200 || !utf8.ValidString(err.Message) {
		t.Fatalf("refusal message of %d bytes: %q", len(err.Message), err.Message)
	}
	var ae *apierr.Error
	if !errors.As(error(err), &ae) {
		t.Fatal("not an *apierr.Error")
	}
}

func checkID(t *testing.T, v string, max int, match func(string) bool) {
	t.Helper()
	if n := utf8.RuneCountInString(v); n < 1 || n > max || !match(v) {
		t.Fatalf("accepted id %q", v)
	}
}

func checkRange(t *testing.T, begin, end int64) {
	t.Helper()
	if begin < 0 || end <= begin || end-begin > MaxClipMs || end > MaxTimeMs {
		t.Fatalf("accepted range %d..%d", begin, end)
	}
}

func checkClip(t *testing.T, c *Clip) {
	t.Helper()
	checkID(t, c.ClientID, MaxIDLen, reID.MatchString)
	checkID(t, c.DeviceID, MaxIDLen, reID.MatchString)
	checkID(t, c.StreamName, MaxStreamNameLen, reStreamName.MatchString)
	checkRange(t, c.BeginMs, c.EndMs)
	d := c.DurationSec
	if math.IsNaN(d) || d < 0 || math.Abs(math.Round(d*1000)-float64(c.EndMs-c.BeginMs)) > DurationToleranceMs || math.Round(d*1000)/1000 != d {
		t.Fatalf("accepted duration %v for %d..%d", d, c.BeginMs, c.EndMs)
	}
	if c.ID != ClipID(c.ClientID, c.DeviceID, c.StreamName, c.BeginMs) {
		t.Fatalf("clip id %s", c.ID)
	}
}

// reparse sends the fields again as a JSON body of strings and as a query
// string; both must be accepted.
func reparse(t *testing.T, op string, f map[string]string) []any {
	t.Helper()
	body, _ := json.Marshal(f)
	q := url.Values{}
	for k, v := range f {
		q.Set(k, v)
	}
	var out []any
	for _, in := range []struct {
		query string
		body  []byte
	}{{"", body}, {q.Encode(), nil}, {q.Encode(), body}} {
		req, err := parseRequest(op, "", in.query, in.body)
		if err != nil {
			t.Fatalf("%s of %s / %s refused: %s", op, in.query, in.body, err.Message)
		}
		out = append(out, req)
	}
	return out
}
