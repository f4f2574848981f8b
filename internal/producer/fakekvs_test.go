package producer

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"

	"github.com/kinema/kinema/internal/media/mkv"
)

// fakeKVS is a test double of the *server*: just enough DescribeStream,
// CreateStream, GetDataEndpoint and PutMedia to drive the producer, which
// is the unit under test. PutMedia parses the body with the mkv reader and
// acks each Cluster BUFFERING, then RECEIVED and PERSISTED when the
// end-of-fragment tag, the next Cluster or the end of the body arrives, one
// JSON object per flushed chunk, as Kinema and KVS do.
type fakeKVS struct {
	t      *testing.T
	srv    *httptest.Server
	creds  aws.Credentials
	region string

	mu        sync.Mutex
	streams   map[string]int // name -> retention hours
	creates   []map[string]any
	puts      []*putRecord
	errorAt   int           // send ERROR 5000 instead of RECEIVED for this fragment (1-based)
	noPersist bool          // never send PERSISTED
	ackDelay  time.Duration // delay before RECEIVED/PERSISTED
	// drainOnError leaves net/http to drain the body before an error answer,
	// which never ends for a producer that holds its body open.
	drainOnError bool
}

// putRecord is one PutMedia as the server saw it.
type putRecord struct {
	Header           http.Header
	TransferEncoding []string
	SigErr           error
	Body             []byte
	Events           []recEvent
	ReadErr          error
}

type recEvent struct {
	mkv.Event
	At time.Time
}

const (
	testAccessKey = "AKIDEXAMPLE"
	testSecretKey = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
)

func newFakeKVS(t *testing.T) *fakeKVS { return startFakeKVS(t, false) }

// startFakeKVS starts the double, over HTTPS (HTTP/1.1, httptest's
// self-signed certificate) when useTLS is set.
func startFakeKVS(t *testing.T, useTLS bool) *fakeKVS {
	f := &fakeKVS{
		t: t, streams: map[string]int{}, region: "us-east-1",
		creds: aws.Credentials{AccessKeyID: testAccessKey, SecretAccessKey: testSecretKey},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /describeStream", f.describe)
	mux.HandleFunc("POST /createStream", f.create)
	mux.HandleFunc("POST /getDataEndpoint", f.getDataEndpoint)
	mux.HandleFunc("POST /putMedia", f.putMedia)
	f.srv = httptest.NewUnstartedServer(mux)
	f.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the untrusted-certificate test makes handshakes fail
	if useTLS {
		f.srv.StartTLS()
	} else {
		f.srv.Start()
	}
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeKVS) config(stream string) Config {
	return Config{
		Endpoint: f.srv.URL, Region: f.region, StreamName: stream,
		AccessKeyID: testAccessKey, SecretAccessKey: testSecretKey,
	}
}

func (f *fakeKVS) addStream(name string, retention int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.streams[name] = retention
}

// lastPut waits for the handler of the n-th PutMedia (1-based) to finish:
// the producer may return before the server has read the end of the body.
func (f *fakeKVS) put(n int) *putRecord {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		f.mu.Lock()
		if len(f.puts) >= n {
			defer f.mu.Unlock()
			return f.puts[n-1]
		}
		f.mu.Unlock()
	}
	f.t.Fatalf("PutMedia #%d never finished on the server", n)
	return nil
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func apiErr(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("x-amzn-ErrorType", typ+":")
	writeJSON(w, status, map[string]string{"message": msg})
}

func (f *fakeKVS) describe(w http.ResponseWriter, r *http.Request) {
	var in struct{ StreamName string }
	json.NewDecoder(r.Body).Decode(&in)
	f.mu.Lock()
	ret, ok := f.streams[in.StreamName]
	f.mu.Unlock()
	if !ok {
		apiErr(w, http.StatusNotFound, "ResourceNotFoundException", "stream not found")
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"StreamInfo": map[string]any{
		"StreamName": in.StreamName, "StreamARN": "arn:aws:kinesisvideo:us-east-1:123456789012:stream/" + in.StreamName + "/1",
		"Status": "ACTIVE", "DataRetentionInHours": ret, "Version": "v1", "CreationTime": 1.7e9,
	}})
}

func (f *fakeKVS) create(w http.ResponseWriter, r *http.Request) {
	var in map[string]any
	json.NewDecoder(r.Body).Decode(&in)
	name, _ := in["StreamName"].(string)
	ret, _ := in["DataRetentionInHours"].(float64)
	f.mu.Lock()
	f.creates = append(f.creates, in)
	_, exists := f.streams[name]
	if !exists {
		f.streams[name] = int(ret)
	}
	f.mu.Unlock()
	if exists {
		apiErr(w, http.StatusBadRequest, "ResourceInUseException", "exists")
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"StreamARN": "arn:aws:kinesisvideo:us-east-1:123456789012:stream/" + name + "/1"})
}

func (f *fakeKVS) getDataEndpoint(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"DataEndpoint": f.srv.URL})
}

// verifySignature re-signs the request's signed headers with the same time
// and compares: it proves that what arrived is what was signed.
func (f *fakeKVS) verifySignature(r *http.Request) error {
	auth := r.Header.Get("Authorization")
	_, signed, ok := strings.Cut(auth, "SignedHeaders=")
	if !ok {
		return fmt.Errorf("no SignedHeaders in %q", auth)
	}
	signed, _, _ = strings.Cut(signed, ",")
	at, err := time.Parse("20060102T150405Z", r.Header.Get("X-Amz-Date"))
	if err != nil {
		return err
	}
	re, _ := http.NewRequest(r.Method, "http://"+r.Host+r.URL.Path, nil)
	re.ContentLength = -1
	for _, h := range strings.Split(signed, ";") {
		if h != "host" {
			re.Header[http.CanonicalHeaderKey(h)] = r.Header.Values(h)
		}
	}
	err = v4.NewSigner().SignHTTP(context.Background(), f.creds, re, emptyPayloadHash, "kinesisvideo", f.region, at)
	if err != nil {
		return err
	}
	if got := re.Header.Get("Authorization"); got != auth {
		return fmt.Errorf("signature mismatch:\n got  %s\n want %s", auth, got)
	}
	return nil
}

func (f *fakeKVS) putMedia(w http.ResponseWriter, r *http.Request) {
	rec := &putRecord{Header: r.Header.Clone(), TransferEncoding: r.TransferEncoding, SigErr: f.verifySignature(r)}
	var body bytes.Buffer
	defer func() {
		rec.Body = body.Bytes()
		f.mu.Lock()
		f.puts = append(f.puts, rec)
		f.mu.Unlock()
	}()
	rc := http.NewResponseController(w)
	if !f.drainOnError {
		rc.EnableFullDuplex()
	}
	if rec.SigErr != nil {
		apiErr(w, http.StatusForbidden, "NotAuthorizedException", rec.SigErr.Error())
		return
	}
	tcType := r.Header.Get("x-amzn-fragment-timecode-type")
	if tcType != TimecodeAbsolute && tcType != TimecodeRelative {
		apiErr(w, http.StatusBadRequest, "InvalidArgumentException", "bad x-amzn-fragment-timecode-type")
		return
	}
	f.mu.Lock()
	retention, ok := f.streams[r.Header.Get("x-amzn-stream-name")]
	errorAt, noPersist, delay := f.errorAt, f.noPersist, f.ackDelay
	f.mu.Unlock()
	if !ok {
		apiErr(w, http.StatusNotFound, "ResourceNotFoundException", "no such stream")
		return
	}

	rc.EnableFullDuplex()
	br := bufio.NewReader(io.TeeReader(r.Body, &body))
	br.Peek(1) // as Kinema does: read before answering, so 100-continue is not held up
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	rc.Flush()

	n := 0
	var open bool
	var tc uint64
	send := func(typ string, extra string) error {
		_, err := fmt.Fprintf(w, `{"EventType":"%s","FragmentTimecode":%d,"FragmentNumber":"9134385233318143239268206200000000000000%08d"%s}`+"\n", typ, tc, n, extra)
		if err == nil {
			err = rc.Flush()
		}
		return err
	}
	// complete acks the open fragment; false means the session ends.
	complete := func() bool {
		open = false
		time.Sleep(delay)
		if n == errorAt {
			send(AckError, `,"ErrorId":5000,"ErrorCode":"INTERNAL_ERROR"`)
			return false
		}
		send(AckReceived, "")
		if retention > 0 && !noPersist {
			send(AckPersisted, "")
		}
		return true
	}
	rd := mkv.NewReader(br, mkv.Options{})
	for {
		ev, err := rd.Next()
		if err != nil {
			if open && errors.Is(err, io.EOF) {
				complete()
			}
			if !errors.Is(err, io.EOF) {
				rec.ReadErr = err
				send(AckError, `,"ErrorId":4006,"ErrorCode":"INVALID_MKV_DATA"`)
			}
			return
		}
		rec.Events = append(rec.Events, recEvent{Event: ev, At: time.Now()})
		switch ev.Type {
		case mkv.EventClusterStart:
			if open && !complete() {
				return
			}
			open, tc = true, ev.ClusterTimecode
			n++
			send(AckBuffering, "")
		case mkv.EventTags:
			for _, t := range ev.Tags {
				if t.Name == TagEndOfFragment && open && !complete() {
					return
				}
			}
		}
	}
}
