package clipmeta

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"math"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kinema/kinema/internal/apierr"
)

// Every request field, wherever it comes from: the JSON body, the query
// string, or both (then they must agree). Names are matched exactly.
const (
	fClientID   = "clientID"
	fDeviceID   = "deviceID"
	fStreamName = "streamName"
	fBegTime    = "begTime"
	fEndTime    = "endTime"
	fDuration   = "duration"
	fClipID     = "clipID"
	fFrom       = "from"
	fTo         = "to"
	fMaxResults = "maxResults"
	fNextToken  = "nextToken"
)

var knownFields = []string{fClientID, fDeviceID, fStreamName, fBegTime, fEndTime, fDuration,
	fClipID, fFrom, fTo, fMaxResults, fNextToken}

var (
	reID         = regexp.MustCompile(`^[A-Za-z0-9_.:@\-]+$`)
	reStreamName = regexp.MustCompile(`^[A-Za-z0-9_.\-]+$`)
	reClipID     = regexp.MustCompile(`^[0-9a-f]{32}$`)
	reInteger    = regexp.MustCompile(`^[0-9]+$`)
	reSeconds    = regexp.MustCompile(`^[0-9]+(\.[0-9]+)?$`)
	reToken      = regexp.MustCompile(`^[A-Za-z0-9_\-]+$`)
)

const idChars = "letters, digits and _ . : @ -"

// fields is a request's known fields as text. A JSON number keeps its
// literal text, so "17" and 17 read the same; null means absent.
type fields map[string]string

func invalid(format string, args ...any) *apierr.Error { return apierr.InvalidArg(format, args...) }

// gather collects the known fields of the query string and the body.
// Unknown fields are ignored (presigned URLs carry X-Amz-* parameters,
// existing apps send more than Kinema reads).
func gather(rawQuery string, body []byte) (fields, *apierr.Error) {
	f := fields{}
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return nil, invalid("the query string is malformed: %v", err)
	}
	for _, name := range knownFields {
		vs, ok := q[name]
		if !ok {
			continue
		}
		for _, v := range vs[1:] {
			if v != vs[0] {
				return nil, invalid("%s is given more than once in the query string", name)
			}
		}
		f[name] = vs[0]
	}
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return f, nil
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil {
		if body[0] != '{' {
			return nil, apierr.New("SerializationException", "the body must be a JSON object")
		}
		return nil, apierr.New("SerializationException", "malformed JSON body: %v", err)
	}
	for _, name := range knownFields {
		raw, ok := obj[name]
		if !ok {
			continue
		}
		var v string
		switch c := raw[0]; {
		case c == 'n': // null
			continue
		case c == '"':
			if err := json.Unmarshal(raw, &v); err != nil {
				return nil, apierr.New("SerializationException", "malformed JSON body: %v", err)
			}
		case c == '-' || (c >= '0' && c <= '9'):
			v = string(raw)
		default:
			return nil, invalid("%s must be a string or a number", name)
		}
		if qv, ok := f[name]; ok && qv != v {
			return nil, invalid("%s is given in the query string and in the body with different values (%q, %q)", name, qv, v)
		}
		f[name] = v
	}
	return f, nil
}

// missing reports the required fields that are absent, all at once.
func (f fields) missing(names ...string) *apierr.Error {
	var absent []string
	for _, n := range names {
		if _, ok := f[n]; !ok {
			absent = append(absent, n)
		}
	}
	if len(absent) == 0 {
		return nil
	}
	if len(absent) == 1 {
		return invalid("missing required field %s", absent[0])
	}
	return invalid("missing required fields %s", strings.Join(absent, ", "))
}

// id reads an identifier field; "" when absent.
func (f fields) id(name string) (string, *apierr.Error) {
	v, ok := f[name]
	if !ok {
		return "", nil
	}
	if n := utf8.RuneCountInString(v); n < 1 || n > MaxIDLen || !reID.MatchString(v) {
		return "", invalid("%s must be 1 to %d characters of %s; got %q", name, MaxIDLen, idChars, clip(v))
	}
	return v, nil
}

func (f fields) streamName() (string, *apierr.Error) {
	v, ok := f[fStreamName]
	if !ok {
		return "", nil
	}
	if n := utf8.RuneCountInString(v); n < 1 || n > MaxStreamNameLen || !reStreamName.MatchString(v) {
		return "", invalid("streamName must be 1 to %d characters of letters, digits and _ . -; got %q", MaxStreamNameLen, clip(v))
	}
	return v, nil
}

// ms reads an epoch-milliseconds field; ok is false when absent.
func (f fields) ms(name string) (ms int64, ok bool, err *apierr.Error) {
	v, ok := f[name]
	if !ok {
		return 0, false, nil
	}
	bad := invalid("%s must be epoch milliseconds, a string or number of digits such as \"1700000000000\"; got %q", name, clip(v))
	if !reInteger.MatchString(v) {
		return 0, true, bad
	}
	n, perr := strconv.ParseInt(v, 10, 64)
	if perr != nil || n > MaxTimeMs {
		return 0, true, invalid("%s %s is beyond the year 9999 (times are epoch milliseconds)", name, clip(v))
	}
	return n, true, nil
}

// seconds reads a duration in seconds, kept to the millisecond.
func (f fields) seconds(name string) (sec float64, ok bool, err *apierr.Error) {
	v, ok := f[name]
	if !ok {
		return 0, false, nil
	}
	if !reSeconds.MatchString(v) {
		return 0, true, invalid("%s must be a non-negative number of seconds such as \"10\" or \"9.5\"; got %q", name, clip(v))
	}
	d, perr := strconv.ParseFloat(v, 64)
	if perr != nil || d > float64(MaxClipMs) { // far beyond any valid clip; keeps d·1000 exact enough
		return 0, true, invalid("%s %s is longer than any clip may be (%v)", name, clip(v), MaxClip)
	}
	return math.Round(d*1000) / 1000, true, nil
}

// clip shortens a value quoted in an error message.
func clip(v string) string {
	if len(v) <= 140 {
		return v
	}
	i := 128
	for i > 0 && !utf8.RuneStart(v[i]) {
		i--
	}
	return v[:i] + "…"
}

// checkTimes checks a clip's range and, when given, its duration.
func checkTimes(beginMs, endMs int64, durationSec float64, hasDuration bool) *apierr.Error {
	if endMs <= beginMs {
		if endMs == beginMs {
			return invalid("endTime must be after begTime; both are %d", beginMs)
		}
		return invalid("endTime %d is before begTime %d", endMs, beginMs)
	}
	if endMs-beginMs > MaxClipMs {
		return invalid("the clip from begTime %d to endTime %d spans %v; at most %v is allowed", beginMs, endMs,
			msDuration(endMs-beginMs), MaxClip)
	}
	if hasDuration {
		span := endMs - beginMs
		durMs := int64(math.Round(durationSec * 1000))
		if diff := durMs - span; diff > DurationToleranceMs || -diff > DurationToleranceMs {
			return invalid("duration %s s does not match endTime - begTime = %s s (allowed difference: %d ms; times are epoch milliseconds, duration is seconds)",
				strconv.FormatFloat(durationSec, 'f', -1, 64), strconv.FormatFloat(float64(span)/1000, 'f', -1, 64), DurationToleranceMs)
		}
	}
	return nil
}

func msDuration(ms int64) string { return (time.Duration(ms) * time.Millisecond).String() }

// client is the request's clientID in namespace ns. Namespaces end in
// '/', which a clientID cannot hold, so no clientID of one namespace is
// another's.
func (f fields) client(ns string) (string, *apierr.Error) {
	id, err := f.id(fClientID)
	return ns + id, err
}

// parsePut parses PUT: every field of the record is required.
func parsePut(f fields, ns string) (*Clip, *apierr.Error) {
	if err := f.missing(fClientID, fDeviceID, fStreamName, fBegTime, fEndTime, fDuration); err != nil {
		return nil, err
	}
	c := &Clip{}
	var err *apierr.Error
	if c.ClientID, err = f.client(ns); err != nil {
		return nil, err
	}
	if c.DeviceID, err = f.id(fDeviceID); err != nil {
		return nil, err
	}
	if c.StreamName, err = f.streamName(); err != nil {
		return nil, err
	}
	if c.BeginMs, _, err = f.ms(fBegTime); err != nil {
		return nil, err
	}
	if c.EndMs, _, err = f.ms(fEndTime); err != nil {
		return nil, err
	}
	if c.DurationSec, _, err = f.seconds(fDuration); err != nil {
		return nil, err
	}
	if err := checkTimes(c.BeginMs, c.EndMs, c.DurationSec, true); err != nil {
		return nil, err
	}
	c.ID = ClipID(c.ClientID, c.DeviceID, c.StreamName, c.BeginMs)
	return c, nil
}

// getRequest is a playback request: the clip is found by client, stream
// and exact range. duration is optional and checked when given; deviceID
// is not needed and ignored.
type getRequest struct {
	ClientID, StreamName string
	BeginMs, EndMs       int64
}

func parseGet(f fields, ns string) (*getRequest, *apierr.Error) {
	if err := f.missing(fClientID, fStreamName, fBegTime, fEndTime); err != nil {
		return nil, err
	}
	g := &getRequest{}
	var err *apierr.Error
	if g.ClientID, err = f.client(ns); err != nil {
		return nil, err
	}
	if g.StreamName, err = f.streamName(); err != nil {
		return nil, err
	}
	if g.BeginMs, _, err = f.ms(fBegTime); err != nil {
		return nil, err
	}
	if g.EndMs, _, err = f.ms(fEndTime); err != nil {
		return nil, err
	}
	dur, hasDur, err := f.seconds(fDuration)
	if err != nil {
		return nil, err
	}
	if err := checkTimes(g.BeginMs, g.EndMs, dur, hasDur); err != nil {
		return nil, err
	}
	return g, nil
}

// parseDelete names a clip by clipID, or by deviceID, streamName and
// begTime; when both are given they must name the same clip.
func parseDelete(f fields, ns string) (clientID, id string, _ *apierr.Error) {
	if err := f.missing(fClientID); err != nil {
		return "", "", err
	}
	clientID, err := f.client(ns)
	if err != nil {
		return "", "", err
	}
	_, byID := f[fClipID]
	_, hasDev := f[fDeviceID]
	_, hasStream := f[fStreamName]
	_, hasBeg := f[fBegTime]
	byKey := hasDev || hasStream || hasBeg
	if !byID && !byKey {
		return "", "", invalid("name the clip to delete: give clipID, or deviceID, streamName and begTime")
	}
	if byID {
		id = f[fClipID]
		if !reClipID.MatchString(id) {
			return "", "", invalid("clipID must be 32 lowercase hex digits as returned by PUT; got %q", clip(id))
		}
	}
	if byKey {
		if err := f.missing(fDeviceID, fStreamName, fBegTime); err != nil {
			return "", "", err
		}
		dev, err := f.id(fDeviceID)
		if err != nil {
			return "", "", err
		}
		name, err := f.streamName()
		if err != nil {
			return "", "", err
		}
		beg, _, err := f.ms(fBegTime)
		if err != nil {
			return "", "", err
		}
		keyID := ClipID(clientID, dev, name, beg)
		if byID && keyID != id {
			return "", "", invalid("clipID %s is not the clip of deviceID, streamName and begTime given", id)
		}
		id = keyID
	}
	return clientID, id, nil
}

// listRequest is a page of a listing: the query (Limit one more than the
// page, to know whether another follows) and the page size.
type listRequest struct {
	Query ListQuery
	Max   int
}

func parseList(f fields, ns string) (*listRequest, *apierr.Error) {
	if err := f.missing(fClientID); err != nil {
		return nil, err
	}
	l := &listRequest{Max: DefaultMaxResults}
	q := &l.Query
	var err *apierr.Error
	if q.ClientID, err = f.client(ns); err != nil {
		return nil, err
	}
	if q.DeviceID, err = f.id(fDeviceID); err != nil {
		return nil, err
	}
	if q.StreamName, err = f.streamName(); err != nil {
		return nil, err
	}
	var ok bool
	if q.FromMs, _, err = f.ms(fFrom); err != nil {
		return nil, err
	}
	if q.ToMs, ok, err = f.ms(fTo); err != nil {
		return nil, err
	} else if !ok {
		q.ToMs = MaxTimeMs
	}
	if q.ToMs < q.FromMs {
		return nil, invalid("to %d is before from %d", q.ToMs, q.FromMs)
	}
	if v, ok := f[fMaxResults]; ok {
		n, perr := strconv.Atoi(v)
		if !reInteger.MatchString(v) || perr != nil || n < 1 || n > MaxMaxResults {
			return nil, invalid("maxResults must be an integer from 1 to %d; got %q", MaxMaxResults, clip(v))
		}
		l.Max = n
	}
	if tok, ok := f[fNextToken]; ok {
		if q.AfterBeginMs, q.AfterID, err = decodeToken(tok, q); err != nil {
			return nil, err
		}
	}
	q.Limit = l.Max + 1
	return l, nil
}

// A NextToken is the position after the last clip of a page and a
// fingerprint of the query it belongs to, base64url without padding:
// "c1.<beginMs>.<clipID>.<fingerprint>".
func encodeToken(q *ListQuery, afterBeginMs int64, afterID string) string {
	s := "c1." + strconv.FormatInt(afterBeginMs, 10) + "." + afterID + "." + fingerprint(q)
	return base64.RawURLEncoding.EncodeToString([]byte(s))
}

func decodeToken(tok string, q *ListQuery) (int64, string, *apierr.Error) {
	bad := invalid("nextToken is not a token this server issued")
	if len(tok) > 256 || !reToken.MatchString(tok) {
		return 0, "", bad
	}
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return 0, "", bad
	}
	p := strings.Split(string(b), ".")
	if len(p) != 4 || p[0] != "c1" || !reInteger.MatchString(p[1]) || !reClipID.MatchString(p[2]) {
		return 0, "", bad
	}
	beg, err := strconv.ParseInt(p[1], 10, 64)
	if err != nil || beg > MaxTimeMs {
		return 0, "", bad
	}
	if p[3] != fingerprint(q) {
		return 0, "", invalid("nextToken belongs to a different listing: repeat clientID, deviceID, streamName, from and to unchanged")
	}
	return beg, p[2], nil
}

func fingerprint(q *ListQuery) string {
	h := sha256.Sum256([]byte(strings.Join([]string{q.ClientID, q.DeviceID, q.StreamName,
		strconv.FormatInt(q.FromMs, 10), strconv.FormatInt(q.ToMs, 10)}, "\x00")))
	return hex.EncodeToString(h[:6])
}

// parseRequest parses a request for op ("PUT", "GET", "DELETE" or "LIST"),
// returning a *Clip, *getRequest, deleteRequest or *listRequest. ns is the
// caller's namespace, prefixed to clientID before anything is derived from
// it (clip ids, listing tokens), so tenants' records never meet.
func parseRequest(op, ns, rawQuery string, body []byte) (any, *apierr.Error) {
	f, err := gather(rawQuery, body)
	if err != nil {
		return nil, err
	}
	switch op {
	case "PUT":
		return parsePut(f, ns)
	case "GET":
		return parseGet(f, ns)
	case "DELETE":
		clientID, id, err := parseDelete(f, ns)
		if err != nil {
			return nil, err
		}
		return deleteRequest{ClientID: clientID, ID: id}, nil
	case "LIST":
		return parseList(f, ns)
	}
	return nil, invalid("unknown operation %s", op)
}

type deleteRequest struct{ ClientID, ID string }

// ops lists what parseRequest accepts (the fuzz target walks it).
var ops = []string{"PUT", "GET", "DELETE", "LIST"}
