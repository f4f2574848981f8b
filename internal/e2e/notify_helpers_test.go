package e2e

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesisvideo"
	kvtypes "github.com/aws/aws-sdk-go-v2/service/kinesisvideo/types"
	"github.com/eclipse/paho.golang/paho"

	"github.com/kinema/kinema/internal/app"
	"github.com/kinema/kinema/internal/media/mkv"
	"github.com/kinema/kinema/internal/notify"
	"github.com/kinema/kinema/internal/stream"
)

const hookSecret = "e2e-webhook-secret"

// notifyCfg is a notification configuration with short retries, so fault
// tests take seconds, and the test webhook secret for every loopback URL.
func notifyCfg(attempts int, minBackoff, maxBackoff time.Duration) *notify.Config {
	return &notify.Config{
		MaxAttempts: attempts, MinBackoff: notify.Duration(minBackoff), MaxBackoff: notify.Duration(maxBackoff),
		AttemptTimeout: notify.Duration(3 * time.Second),
		WebhookSecrets: []notify.WebhookSecret{{URIPrefix: "http://127.0.0.1:", Secret: hookSecret}},
		Topics:         map[string]string{},
	}
}

func withNotify(nc *notify.Config) func(*app.Config) { return func(c *app.Config) { c.Notify = nc } }

// writeNotifyConfig writes nc as a --notify-config file.
func writeNotifyConfig(t *testing.T, nc *notify.Config) string {
	t.Helper()
	b, err := json.Marshal(map[string]any{
		"topics": nc.Topics, "webhook_secrets": []map[string]string{{"uri_prefix": "http://127.0.0.1:", "secret": hookSecret}},
		"max_attempts": nc.MaxAttempts, "min_backoff": time.Duration(nc.MinBackoff).String(),
		"max_backoff": time.Duration(nc.MaxBackoff).String(), "attempt_timeout": "3s",
	})
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "notify.json")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// received is one message as a destination got it.
type received struct {
	id       string
	attempt  int
	msg      notify.Message
	fields   map[string]any // the JSON object as sent, to check its exact field set
	at       time.Time
	accepted bool // the receiver answered 2xx
}

func decodeMessage(t *testing.T, body []byte) (notify.Message, map[string]any) {
	t.Helper()
	var m notify.Message
	var f map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Errorf("message %q: %v", body, err)
	}
	json.Unmarshal(body, &f)
	return m, f
}

// hookReceiver is a real webhook receiver on a loopback port. It checks
// every request's signature and timestamp, independently of Kinema's code,
// and can be taken down and brought back on the same address.
type hookReceiver struct {
	t      *testing.T
	addr   string
	status atomic.Int32 // what to answer; 0 means 200

	mu   sync.Mutex
	srv  *http.Server
	all  []received // every request, failed ones too
	seen map[string]bool
}

func newHookReceiver(t *testing.T) *hookReceiver {
	h := &hookReceiver{t: t, seen: map[string]bool{}}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.addr = l.Addr().String()
	h.serve(l)
	t.Cleanup(h.down)
	return h
}

func (h *hookReceiver) url(path string) string { return "http://" + h.addr + path }

func (h *hookReceiver) serve(l net.Listener) {
	srv := &http.Server{Handler: http.HandlerFunc(h.handle)}
	h.mu.Lock()
	h.srv = srv
	h.mu.Unlock()
	go srv.Serve(l)
}

func (h *hookReceiver) down() {
	h.mu.Lock()
	srv := h.srv
	h.srv = nil
	h.mu.Unlock()
	if srv != nil {
		srv.Close()
	}
}

func (h *hookReceiver) up() {
	var l net.Listener
	var err error
	for i := 0; i < 50; i++ {
		if l, err = net.Listen("tcp", h.addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		h.t.Fatalf("receiver cannot listen again on %s: %v", h.addr, err)
	}
	h.serve(l)
}

func (h *hookReceiver) handle(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	id, ts, sig := r.Header.Get(notify.HeaderMessageID), r.Header.Get(notify.HeaderTimestamp), r.Header.Get(notify.HeaderSignature)
	// The documented scheme, computed here without Kinema's code.
	mac := hmac.New(sha256.New, []byte(hookSecret))
	mac.Write([]byte(ts + "." + id + "."))
	mac.Write(body)
	if want := "v1=" + hex.EncodeToString(mac.Sum(nil)); sig != want || r.Method != http.MethodPost ||
		r.Header.Get("Content-Type") != "application/json" {
		h.t.Errorf("webhook request %s with signature %q, want %q (content type %q)", r.Method, sig, want, r.Header.Get("Content-Type"))
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	if err := notify.Verify(hookSecret, ts, id, sig, body, 5*time.Minute, time.Now()); err != nil {
		h.t.Errorf("notify.Verify: %v", err)
	}
	if err := notify.Verify(hookSecret, ts, id, sig, body, 5*time.Minute, time.Now().Add(10*time.Minute)); !errors.Is(err, notify.ErrStale) {
		h.t.Errorf("a 10-minute-old request is not stale: %v", err)
	}
	status := int(h.status.Load())
	if status == 0 {
		status = http.StatusOK
	}
	m, f := decodeMessage(h.t, body)
	attempt, _ := strconv.Atoi(r.Header.Get(notify.HeaderAttempt))
	h.mu.Lock()
	h.all = append(h.all, received{id: id, attempt: attempt, msg: m, fields: f, at: time.Now(), accepted: status < 300})
	h.mu.Unlock()
	w.WriteHeader(status)
}

// delivered returns the accepted messages, duplicates (same id) dropped, in
// arrival order.
func (h *hookReceiver) delivered() []received {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []received
	seen := map[string]bool{}
	for _, r := range h.all {
		if r.accepted && !seen[r.id] {
			seen[r.id] = true
			out = append(out, r)
		}
	}
	return out
}

func (h *hookReceiver) requests() []received {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]received(nil), h.all...)
}

// waitFor polls get until it holds n messages.
func waitFor(t *testing.T, what string, n int, timeout time.Duration, get func() []received) []received {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := get()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d of %d messages after %v", what, len(got), n, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// setNotification sets a stream's configuration through the AWS SDK.
func setNotification(t *testing.T, kv *kinesisvideo.Client, name, uri string) {
	t.Helper()
	_, err := kv.UpdateNotificationConfiguration(ctxT(t), &kinesisvideo.UpdateNotificationConfigurationInput{
		StreamName: aws.String(name),
		NotificationConfiguration: &kvtypes.NotificationConfiguration{Status: kvtypes.ConfigurationStatusEnabled,
			DestinationConfig: &kvtypes.NotificationDestinationConfig{Uri: aws.String(uri)}},
	})
	if err != nil {
		t.Fatalf("UpdateNotificationConfiguration %s: %v", uri, err)
	}
}

// event adds one Tags element as the producer SDK writes an event: the
// event's SimpleTag followed by its custom key/value siblings.
func (m *mkvBuilder) event(name string, kv ...string) *mkvBuilder {
	tags := []mkv.SimpleTag{{Name: name}}
	for i := 0; i+1 < len(kv); i += 2 {
		tags = append(tags, mkv.SimpleTag{Name: kv[i], Value: kv[i+1]})
	}
	m.b = mkv.AppendTags(m.b, tags)
	return m
}

// taggedFragment is one fragment a test sends and what it expects.
type taggedFragment struct {
	tc      uint64 // producer time, ms (ABSOLUTE)
	notify  bool
	payload map[string]string
}

// body writes the fragments, tagged as described, each closed by an
// end-of-fragment tag; with header the body starts a session.
func tagBody(header bool, frags []taggedFragment) *mkvBuilder {
	b := &mkvBuilder{}
	if header {
		b.header()
	}
	for _, f := range frags {
		b.cluster(f.tc, 3, 200)
		if f.notify {
			var kv []string
			keys := make([]string, 0, len(f.payload))
			for k := range f.payload {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				kv = append(kv, k, f.payload[k])
			}
			b.event(stream.TagNotification, kv...)
		}
		b.eofr()
	}
	return b
}

// persistedNumbers maps producer timecodes to the fragment numbers their
// PERSISTED acks carried.
func persistedNumbers(t *testing.T, res putResult) map[int64]string {
	t.Helper()
	out := map[int64]string{}
	for _, a := range res.acks {
		if a.EventType == "PERSISTED" {
			out[a.FragmentTimecode] = a.FragmentNumber
		}
	}
	return out
}

// checkMessages checks each delivered message against the fragment it is
// for: exactly the six KVS fields with the right values; and that no
// untagged fragment yielded one.
func checkMessages(t *testing.T, got []received, arn string, frags []taggedFragment, numbers map[int64]string, serverMs map[string]int64) {
	t.Helper()
	byNumber := map[string]received{}
	for _, r := range got {
		if r.msg.StreamArn != arn {
			continue
		}
		if _, dup := byNumber[r.msg.FragmentNumber]; dup {
			t.Errorf("two messages with different ids for fragment %s", r.msg.FragmentNumber)
		}
		byNumber[r.msg.FragmentNumber] = r
	}
	want := 0
	for _, f := range frags {
		num := numbers[int64(f.tc)]
		if num == "" {
			t.Fatalf("fragment at %d was not PERSISTED", f.tc)
		}
		r, ok := byNumber[num]
		if !f.notify {
			if ok {
				t.Errorf("untagged fragment %s yielded a message: %+v", num, r.msg)
			}
			continue
		}
		want++
		if !ok {
			t.Errorf("tagged fragment %s (tc %d) yielded no message", num, f.tc)
			continue
		}
		if len(r.fields) != 6 {
			t.Errorf("message has fields %v, want exactly the six KVS fields", r.fields)
		}
		m := r.msg
		payload := f.payload
		if payload == nil {
			payload = map[string]string{}
		}
		if m.FragmentStartProducerTimestamp != int64(f.tc) || m.NotificationType != "PERSISTED" ||
			fmt.Sprint(m.NotificationPayload) != fmt.Sprint(payload) ||
			(serverMs != nil && m.FragmentStartServerTimestamp != serverMs[num]) || m.FragmentStartServerTimestamp < 1_700_000_000_000 {
			t.Errorf("message for %s: %+v; want producer %d, payload %v, server %d", num, m, f.tc, payload, serverMs[num])
		}
	}
	if len(byNumber) != want {
		t.Errorf("%d messages for stream %s, want %d", len(byNumber), arn, want)
	}
}

// listEventsAPI calls ListEvents and returns the events.
type apiEvent struct {
	EventId, Kind, StreamName, FragmentNumber, MessageId, Status, LastError, Destination string
	Attempts                                                                             int
	Tags                                                                                 map[string]string
}

func listEventsAPI(t *testing.T, baseURL string, in map[string]any) []apiEvent {
	t.Helper()
	b, _ := json.Marshal(in)
	st, body := signedJSONTo(t, baseURL, "listEvents", string(b))
	if st != 200 {
		t.Fatalf("listEvents %s: %d %s", b, st, body)
	}
	var out struct{ Events []apiEvent }
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatal(err)
	}
	return out.Events
}

// waitEvents polls ListEvents until ok accepts the list.
func waitEvents(t *testing.T, baseURL string, in map[string]any, timeout time.Duration, ok func([]apiEvent) bool) []apiEvent {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		evs := listEventsAPI(t, baseURL, in)
		if ok(evs) {
			return evs
		}
		if time.Now().After(deadline) {
			t.Fatalf("events never reached the expected state: %+v", evs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func countStatus(evs []apiEvent, status string) int {
	n := 0
	for _, e := range evs {
		if e.Status == status {
			n++
		}
	}
	return n
}

func randomName(prefix string) string {
	var b [4]byte
	rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// mqttSubscriber is a real MQTT 5 client subscribed with QoS 1. With a
// persistent session the broker keeps its messages while it is away.
type mqttSubscriber struct {
	t        *testing.T
	addr     string
	topic    string
	clientID string
	mu       sync.Mutex
	client   *paho.Client
	got      []received
}

func subscribeMQTT(t *testing.T, addr, topic string) *mqttSubscriber {
	s := &mqttSubscriber{t: t, addr: addr, topic: topic, clientID: randomName("e2e-sub-")}
	if err := s.connect(); err != nil {
		t.Fatalf("MQTT subscriber: %v", err)
	}
	t.Cleanup(s.close)
	return s
}

func (s *mqttSubscriber) connect() error {
	conn, err := net.DialTimeout("tcp", s.addr, 2*time.Second)
	if err != nil {
		return err
	}
	c := paho.NewClient(paho.ClientConfig{ClientID: s.clientID, Conn: conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			m, f := decodeMessage(s.t, pr.Packet.Payload)
			id := ""
			if pr.Packet.Properties != nil {
				id = pr.Packet.Properties.User.Get("message-id")
			}
			s.mu.Lock()
			s.got = append(s.got, received{id: id, msg: m, fields: f, at: time.Now(), accepted: true})
			s.mu.Unlock()
			return true, nil
		}}})
	expiry := uint32(3600)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	ack, err := c.Connect(ctx, &paho.Connect{ClientID: s.clientID, KeepAlive: 30, CleanStart: false,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: &expiry}})
	if err != nil {
		conn.Close()
		return err
	}
	if ack.ReasonCode != 0 {
		conn.Close()
		return fmt.Errorf("connack %d", ack.ReasonCode)
	}
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: s.topic, QoS: 1}}}); err != nil {
		return err
	}
	s.mu.Lock()
	s.client = c
	s.mu.Unlock()
	return nil
}

func (s *mqttSubscriber) close() {
	s.mu.Lock()
	c := s.client
	s.client = nil
	s.mu.Unlock()
	if c != nil {
		c.Disconnect(&paho.Disconnect{})
	}
}

func (s *mqttSubscriber) delivered() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []received
	seen := map[string]bool{}
	for _, r := range s.got {
		if !seen[r.id] {
			seen[r.id] = true
			out = append(out, r)
		}
	}
	return out
}

// broker is a Mosquitto or NATS server this test runs on its own port, so
// that it can restart it without touching the machine's shared one.
type broker struct {
	t    *testing.T
	args []string
	addr string
	cmd  *exec.Cmd
	log  string
}

func startBroker(t *testing.T, name, addr string, args ...string) *broker {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Fatalf("%s is required for this test (scripts/setup.sh installs it): %v", name, err)
	}
	b := &broker{t: t, addr: addr, args: append([]string{name}, args...), log: filepath.Join(t.TempDir(), name+".log")}
	b.start()
	t.Cleanup(b.stop)
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := os.ReadFile(b.log)
			t.Logf("%s log:\n%s", name, out)
		}
	})
	return b
}

func (b *broker) start() {
	b.t.Helper()
	logf, _ := os.OpenFile(b.log, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	b.cmd = exec.Command(b.args[0], b.args[1:]...)
	b.cmd.Stdout, b.cmd.Stderr = logf, logf
	if err := b.cmd.Start(); err != nil {
		b.t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if c, err := net.Dial("tcp", b.addr); err == nil {
			c.Close()
			return
		}
	}
	out, _ := os.ReadFile(b.log)
	b.t.Fatalf("%s did not come up on %s:\n%s", b.args[0], b.addr, out)
}

// stop ends the broker with SIGTERM, as a service restart does.
func (b *broker) stop() {
	if b.cmd == nil || b.cmd.Process == nil {
		return
	}
	b.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { b.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		b.cmd.Process.Kill()
		<-done
	}
	b.cmd = nil
}
