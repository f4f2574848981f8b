package notify

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// envelope is one message on its way to a destination.
type envelope struct {
	id      string
	attempt int
	body    []byte
}

// senders holds the connections of every transport, shared by all
// streams: one HTTP client, one MQTT connection per broker, one NATS
// connection per server. A failed send drops the broker connection so the
// next attempt dials afresh.
type senders struct {
	cfg  *Config
	http *http.Client
	now  func() time.Time

	mu   sync.Mutex
	mqtt map[string]*mqttConn
	nats map[string]*natsConn
}

func newSenders(cfg *Config, now func() time.Time) *senders {
	tr := &http.Transport{
		Proxy:               nil, // destinations are reached directly
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        512,
		MaxIdleConnsPerHost: 128,
		IdleConnTimeout:     90 * time.Second,
		TLSHandshakeTimeout: 5 * time.Second,
	}
	return &senders{cfg: cfg, now: now, http: &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse // a redirect is an answer, not a delivery
	}}, mqtt: map[string]*mqttConn{}, nats: map[string]*natsConn{}}
}

func (s *senders) send(ctx context.Context, d Destination, e envelope) error {
	switch d.Transport {
	case Webhook:
		return s.sendWebhook(ctx, d, e)
	case MQTT:
		return s.sendMQTT(ctx, d, e)
	case NATS:
		return s.sendNATS(ctx, d, e)
	}
	return fmt.Errorf("no sender for %q", d.Transport)
}

func (s *senders) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.mqtt {
		c.drop()
	}
	for _, c := range s.nats {
		c.drop()
	}
	s.http.CloseIdleConnections()
}

// sendWebhook POSTs the JSON body, signed; any 2xx answer is a delivery.
func (s *senders) sendWebhook(ctx context.Context, d Destination, e envelope) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.Target, bytes.NewReader(e.body))
	if err != nil {
		return err
	}
	ts := s.now().Unix()
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "kinema-notify/1")
	req.Header.Set(HeaderMessageID, e.id)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderAttempt, strconv.Itoa(e.attempt))
	req.Header.Set(HeaderSignature, Sign(s.cfg.SecretFor(d.Target), ts, e.id, e.body))
	resp, err := s.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("webhook answered HTTP %d", resp.StatusCode)
	}
	return nil
}

// mqttConn is one MQTT 5 session with a broker; publishes from every
// stream share it (paho allows concurrent publishes).
type mqttConn struct {
	mu     sync.Mutex
	client *paho.Client
}

func (c *mqttConn) drop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dropLocked()
}

func (c *mqttConn) dropLocked() {
	if c.client != nil {
		c.client.Disconnect(&paho.Disconnect{ReasonCode: 0})
		c.client = nil
	}
}

func (s *senders) mqttFor(d Destination) *mqttConn {
	key := d.Addr
	if d.URL.User != nil {
		key = d.URL.User.String() + "@" + key
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.mqtt[key]
	if c == nil {
		c = &mqttConn{}
		s.mqtt[key] = c
	}
	return c
}

// get returns a connected client, dialling when there is none or the last
// one has died.
func (c *mqttConn) get(ctx context.Context, d Destination) (*paho.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.client != nil {
		select {
		case <-c.client.Done():
			c.client = nil
		default:
			return c.client, nil
		}
	}
	conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", d.Addr)
	if err != nil {
		return nil, err
	}
	var id [6]byte
	rand.Read(id[:])
	cl := paho.NewClient(paho.ClientConfig{ClientID: "kinema-" + hex.EncodeToString(id[:]), Conn: conn})
	cp := &paho.Connect{ClientID: "kinema-" + hex.EncodeToString(id[:]), KeepAlive: 30, CleanStart: true}
	if u := d.URL.User; u != nil {
		cp.Username, cp.UsernameFlag = u.Username(), true
		if p, ok := u.Password(); ok {
			cp.Password, cp.PasswordFlag = []byte(p), true
		}
	}
	ack, err := cl.Connect(ctx, cp)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("MQTT connect to %s: %w", d.Addr, err)
	}
	if ack.ReasonCode != 0 {
		conn.Close()
		return nil, fmt.Errorf("MQTT broker %s refused the connection: reason %d", d.Addr, ack.ReasonCode)
	}
	c.client = cl
	return cl, nil
}

// mqttNoMatchingSubscribers is the MQTT 5 PUBACK reason code 0x10.
const mqttNoMatchingSubscribers = 0x10

// sendMQTT publishes with QoS 1 and returns once the broker's PUBACK is in.
func (s *senders) sendMQTT(ctx context.Context, d Destination, e envelope) error {
	mc := s.mqttFor(d)
	cl, err := mc.get(ctx, d)
	if err != nil {
		return err
	}
	props := &paho.PublishProperties{ContentType: "application/json"}
	props.User.Add("message-id", e.id)
	resp, err := cl.Publish(ctx, &paho.Publish{QoS: 1, Topic: d.Topic, Payload: e.body, Properties: props})
	if err == nil && resp != nil && resp.ReasonCode == mqttNoMatchingSubscribers {
		// Accepted and dropped: nobody, not even an offline persistent
		// session, would get it. Retrying lets subscribers that lost their
		// subscription (a broker restarted without persistence) come back.
		return fmt.Errorf("MQTT broker %s has no subscriber for %s", d.Addr, d.Topic)
	}
	if err != nil {
		// The session may be broken in a way paho has not noticed yet
		// (a timed-out PUBACK): start over with a fresh connection.
		mc.mu.Lock()
		if mc.client == cl {
			mc.dropLocked()
		}
		mc.mu.Unlock()
		return fmt.Errorf("MQTT publish to %s %s: %w", d.Addr, d.Topic, err)
	}
	return nil
}

// natsConn is one connection to a NATS server, with what is known of
// which subjects a JetStream stream captures.
type natsConn struct {
	mu      sync.Mutex
	nc      *nats.Conn
	js      jetstream.JetStream
	streams map[string]jsProbe
}

// jsProbe caches whether a JetStream stream captures a subject.
type jsProbe struct {
	bound bool
	at    time.Time
}

// jsProbeTTL is how long the answer is trusted: a stream created or
// removed is noticed within it.
const jsProbeTTL = 30 * time.Second

func (c *natsConn) drop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nc != nil {
		c.nc.Close()
		c.nc = nil
	}
}

func (s *senders) natsFor(d Destination) *natsConn {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.nats[d.Addr]
	if c == nil {
		c = &natsConn{streams: map[string]jsProbe{}}
		s.nats[d.Addr] = c
	}
	return c
}

func (c *natsConn) get(ctx context.Context, d Destination) (*nats.Conn, jetstream.JetStream, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nc != nil && !c.nc.IsClosed() {
		return c.nc, c.js, nil
	}
	timeout := 5 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl)
	}
	// No reconnect buffer: a publish while the server is away must fail
	// (and be retried from the outbox), not wait in client memory.
	nc, err := nats.Connect("nats://"+d.Addr, nats.Name("kinema-notify"), nats.Timeout(timeout),
		nats.ReconnectBufSize(-1), nats.MaxReconnects(-1), nats.ReconnectWait(500*time.Millisecond))
	if err != nil {
		return nil, nil, fmt.Errorf("NATS connect to %s: %w", d.Addr, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, err
	}
	c.nc, c.js = nc, js
	c.streams = map[string]jsProbe{}
	return nc, js, nil
}

// jetStreamBound reports whether a JetStream stream captures the subject.
func (c *natsConn) jetStreamBound(ctx context.Context, js jetstream.JetStream, subject string, now time.Time) (bool, error) {
	c.mu.Lock()
	p, ok := c.streams[subject]
	c.mu.Unlock()
	if ok && now.Sub(p.at) < jsProbeTTL {
		return p.bound, nil
	}
	_, err := js.StreamNameBySubject(ctx, subject)
	switch {
	case err == nil:
		p = jsProbe{bound: true, at: now}
	case errors.Is(err, jetstream.ErrStreamNotFound), errors.Is(err, jetstream.ErrJetStreamNotEnabled),
		errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount), errors.Is(err, nats.ErrNoResponders):
		p = jsProbe{bound: false, at: now}
	default:
		return false, fmt.Errorf("asking NATS which stream captures %s: %w", subject, err)
	}
	c.mu.Lock()
	c.streams[subject] = p
	c.mu.Unlock()
	return p.bound, nil
}

// sendNATS publishes through JetStream, waiting for its acknowledgement
// and letting it drop duplicates by Nats-Msg-Id, when a stream captures
// the subject; otherwise as a core NATS message, flushed so the server has
// it.
func (s *senders) sendNATS(ctx context.Context, d Destination, e envelope) error {
	c := s.natsFor(d)
	nc, js, err := c.get(ctx, d)
	if err != nil {
		return err
	}
	msg := &nats.Msg{Subject: d.Topic, Data: e.body, Header: nats.Header{}}
	msg.Header.Set("Kinema-Message-Id", e.id)
	msg.Header.Set("Content-Type", "application/json")
	bound, err := c.jetStreamBound(ctx, js, d.Topic, s.now())
	if err != nil {
		return err
	}
	if bound {
		if _, err := js.PublishMsg(ctx, msg, jetstream.WithMsgID(e.id), jetstream.WithRetryAttempts(0)); err != nil {
			return fmt.Errorf("JetStream publish to %s: %w", d.Topic, err)
		}
		return nil
	}
	if err := nc.PublishMsg(msg); err != nil {
		return fmt.Errorf("NATS publish to %s: %w", d.Topic, err)
	}
	if err := nc.FlushWithContext(ctx); err != nil {
		return fmt.Errorf("NATS flush to %s: %w", d.Addr, err)
	}
	return nil
}
