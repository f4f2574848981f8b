package cluster

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/stream"
)

// Fanout publishes the fragments this node made durable on a NATS subject
// and hands other nodes' fragments to this node's live hub. Delivery is at
// most once (core NATS): a reader that misses an announcement still finds
// the fragment in the index when it next catches up, as it does after any
// gap; the fan-out only makes following fast.
type Fanout struct {
	nc      *nats.Conn
	subject string
	node    string
	hub     *archive.Hub
	log     *slog.Logger
}

// flushWait bounds how long an announcement may hold up the acks of its
// batch.
const flushWait = 100 * time.Millisecond

// persistedMessage is what goes over NATS: one group commit's fragments.
type persistedMessage struct {
	Node      string            `json:"node"`
	Fragments []stream.Fragment `json:"fragments"`
}

// DialFanout connects to the NATS server at url; Persisted can announce
// from then on, and Follow starts receiving.
func DialFanout(url, subject, node string, log *slog.Logger) (*Fanout, error) {
	nc, err := nats.Connect(url, nats.Name("kinema "+node), nats.Timeout(5*time.Second),
		nats.MaxReconnects(-1), nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("NATS connection lost; live readers of other nodes' streams fall back to the index", "err", err)
			}
		}),
		nats.ReconnectHandler(func(*nats.Conn) { log.Info("NATS connection restored") }))
	if err != nil {
		return nil, fmt.Errorf("nats %s: %w", url, err)
	}
	return &Fanout{nc: nc, subject: subject, node: node, log: log}, nil
}

// Follow hands other nodes' announced fragments to hub from now on.
func (f *Fanout) Follow(hub *archive.Hub) error {
	f.hub = hub
	if _, err := f.nc.Subscribe(f.subject, f.receive); err != nil {
		return fmt.Errorf("nats subscribe %s: %w", f.subject, err)
	}
	// The subscription is in place before the node serves.
	return f.nc.Flush()
}

// Persisted announces a durable batch. It does not block: the NATS client
// buffers, and while disconnected the announcement is dropped.
func (f *Fanout) Persisted(frags []stream.Fragment) {
	msg := persistedMessage{Node: f.node, Fragments: make([]stream.Fragment, len(frags))}
	for i, fr := range frags {
		fr.SampleTable = nil // readers of the index get it when they need it
		msg.Fragments[i] = fr
	}
	b, err := json.Marshal(msg)
	if err == nil {
		err = f.nc.Publish(f.subject, b)
	}
	if err == nil && f.nc.IsConnected() {
		// On the wire before the producer hears PERSISTED: a node killed
		// right after acknowledging must not take its announcement along.
		// Bounded, since it holds up the acks.
		err = f.nc.FlushTimeout(flushWait)
	}
	if err != nil && f.nc.IsConnected() {
		f.log.Warn("announcing persisted fragments failed", "err", err)
	}
}

func (f *Fanout) receive(m *nats.Msg) {
	var msg persistedMessage
	if err := json.Unmarshal(m.Data, &msg); err != nil {
		f.log.Warn("ignoring a malformed fragment announcement", "err", err)
		return
	}
	if msg.Node == f.node {
		return // this node's own: its hub had them first
	}
	for _, fr := range msg.Fragments {
		f.hub.PublishPersisted(fr)
	}
}

// Close drains the connection.
func (f *Fanout) Close() { f.nc.Close() }
