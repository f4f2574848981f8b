package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// `kinema bench notify` runs the ingest fleet with every fragment (or
// every n-th) tagged for notification and measures, at a real receiver in
// this process, how long after the producer read a fragment's PERSISTED
// ack its notification arrived, and how many arrived per second.

// Arrivals records when each fragment's notification arrived and when its
// PERSISTED ack was read.
type Arrivals struct {
	mu         sync.Mutex
	persisted  map[string]time.Time // fragment number -> PERSISTED ack read
	sent       map[string]time.Time // fragment number -> fragment complete on the wire
	arrived    map[string]time.Time // fragment number -> first message
	duplicates int64
	first      time.Time
	last       time.Time
}

// NewArrivals returns an empty record.
func NewArrivals() *Arrivals {
	return &Arrivals{persisted: map[string]time.Time{}, sent: map[string]time.Time{}, arrived: map[string]time.Time{}}
}

// Persisted is IngestConfig.OnPersisted.
func (a *Arrivals) Persisted(_ string, number string, sent, at time.Time) {
	a.mu.Lock()
	a.persisted[number] = at
	a.sent[number] = sent
	a.mu.Unlock()
}

// message records one received notification body.
func (a *Arrivals) message(body []byte) {
	at := time.Now()
	var m struct{ FragmentNumber string }
	if json.Unmarshal(body, &m) != nil || m.FragmentNumber == "" {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, dup := a.arrived[m.FragmentNumber]; dup {
		a.duplicates++
		return
	}
	a.arrived[m.FragmentNumber] = at
	if a.first.IsZero() {
		a.first = at
	}
	a.last = at
}

func (a *Arrivals) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.arrived)
}

// WebhookReceiver serves a webhook on a loopback port that records every
// message and answers 204.
func (a *Arrivals) WebhookReceiver() (url string, stop func(), err error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		a.message(b)
		w.WriteHeader(http.StatusNoContent)
	})}
	go srv.Serve(l)
	return "http://" + l.Addr().String() + "/notify", func() { srv.Close() }, nil
}

// MQTTReceiver subscribes (QoS 1) to every topic under prefix.
func (a *Arrivals) MQTTReceiver(ctx context.Context, addr, prefix string) (stop func(), err error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("MQTT broker %s: %w", addr, err)
	}
	c := paho.NewClient(paho.ClientConfig{ClientID: "kinema-bench-sub", Conn: conn,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){func(pr paho.PublishReceived) (bool, error) {
			a.message(pr.Packet.Payload)
			return true, nil
		}}})
	if _, err := c.Connect(ctx, &paho.Connect{ClientID: "kinema-bench-sub", KeepAlive: 30, CleanStart: true}); err != nil {
		conn.Close()
		return nil, err
	}
	if _, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: prefix + "/#", QoS: 1}}}); err != nil {
		c.Disconnect(&paho.Disconnect{})
		return nil, err
	}
	return func() { c.Disconnect(&paho.Disconnect{}) }, nil
}

// NotifyResult is what the receiver saw.
type NotifyResult struct {
	Tagged     int // tagged fragments acknowledged PERSISTED
	Delivered  int // of them, with a notification received
	Duplicates int64
	Throughput float64 // messages per second while they flowed
	P50, P99   time.Duration
	Max        time.Duration
	Early      int // messages that arrived before the producer read the PERSISTED ack
	// From the fragment complete on the wire to its message: ingest,
	// persist and delivery together.
	SentP50, SentP99 time.Duration
}

// Wait waits (up to timeout) for a message for every PERSISTED fragment
// and returns the figures.
func (a *Arrivals) Wait(timeout time.Duration) NotifyResult {
	a.mu.Lock()
	want := len(a.persisted)
	a.mu.Unlock()
	for deadline := time.Now().Add(timeout); a.count() < want && time.Now().Before(deadline); {
		time.Sleep(50 * time.Millisecond)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	r := NotifyResult{Tagged: len(a.persisted), Duplicates: a.duplicates}
	var lat, fromSent []time.Duration
	for n, p := range a.persisted {
		at, ok := a.arrived[n]
		if !ok {
			continue
		}
		r.Delivered++
		fromSent = append(fromSent, at.Sub(a.sent[n]))
		d := at.Sub(p)
		if d < 0 {
			// The message and the ack leave the server at the same moment;
			// the message won the race. Counted as zero.
			r.Early++
			d = 0
		}
		lat = append(lat, d)
	}
	r.P50, r.P99, r.Max = percentiles(lat)
	r.SentP50, r.SentP99, _ = percentiles(fromSent)
	if span := a.last.Sub(a.first).Seconds(); span > 0 {
		r.Throughput = float64(len(a.arrived)) / span
	}
	return r
}

// Report formats the figures as docs/benchmarks.md quotes them.
func (r NotifyResult) Report(dest string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "notifications to %s: %d of %d tagged PERSISTED fragments delivered, %d duplicates\n", dest, r.Delivered, r.Tagged, r.Duplicates)
	fmt.Fprintf(&b, "throughput %.0f messages/s\n", r.Throughput)
	fmt.Fprintf(&b, "PERSISTED ack -> message received: p50 %v, p99 %v, max %v (%d arrived before the ack)\n",
		r.P50.Round(time.Microsecond), r.P99.Round(time.Microsecond), r.Max.Round(time.Microsecond), r.Early)
	fmt.Fprintf(&b, "fragment complete on the wire -> message received: p50 %v, p99 %v\n", r.SentP50.Round(time.Microsecond), r.SentP99.Round(time.Microsecond))
	return b.String()
}
