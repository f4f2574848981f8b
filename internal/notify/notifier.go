package notify

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"time"

	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/metrics"
	"github.com/kinema/kinema/internal/outbox"
)

// Notifier delivers the notification rows of the outbox: an outbox.Worker
// whose attempt sends the stream's message to its configured destination.
type Notifier struct {
	cfg    Config
	idx    archive.Index
	log    *slog.Logger
	out    *senders
	worker *outbox.Worker
}

// Options wires a Notifier.
type Options struct {
	Index archive.Index
	// Wake is Archive.WatchTriggers: a signal that new outbox rows exist.
	Wake <-chan struct{}
	// PollInterval is outbox.Options.PollInterval.
	PollInterval time.Duration
	Logger       *slog.Logger
	// Now replaces the clock (tests). Nil: time.Now.
	Now func() time.Time
	// Metrics counts delivery attempts; nil: not counted.
	Metrics *metrics.Outbox
}

// New returns a Notifier; cfg must have been validated.
func New(cfg Config, o Options) *Notifier {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	n := &Notifier{cfg: cfg, idx: o.Index, log: o.Logger}
	n.out = newSenders(&n.cfg, o.Now)
	n.worker = outbox.New(outbox.Options{
		Kind: archive.TriggerNotification, Index: o.Index, Wake: o.Wake, PollInterval: o.PollInterval, Name: "notification", Logger: o.Logger, Now: o.Now,
		MaxAttempts: cfg.MaxAttempts, MinBackoff: time.Duration(cfg.MinBackoff), MaxBackoff: time.Duration(cfg.MaxBackoff),
		AttemptTimeout: time.Duration(cfg.AttemptTimeout), Concurrency: cfg.Concurrency, Metrics: o.Metrics,
	}, n.attempt)
	return n
}

// Config returns the configuration in force.
func (n *Notifier) Config() *Config { return &n.cfg }

// Run delivers until ctx ends, then waits for attempts in flight and
// records their outcomes.
func (n *Notifier) Run(ctx context.Context) {
	defer n.out.close()
	n.worker.Run(ctx)
}

// attempt makes one delivery attempt of e.
func (n *Notifier) attempt(ctx context.Context, e archive.OutboxEntry) outbox.Outcome {
	st, err := n.idx.StreamByID(ctx, e.StreamID)
	if errors.Is(err, archive.ErrNotFound) {
		return outbox.Outcome{Skip: "the stream was deleted"}
	}
	if err != nil {
		return outbox.Outcome{Err: err}
	}
	nc, err := n.idx.NotificationConfig(ctx, e.StreamID)
	if errors.Is(err, archive.ErrNotFound) {
		return outbox.Outcome{Skip: "the stream has no notification configuration"}
	}
	if err != nil {
		return outbox.Outcome{Err: err}
	}
	if nc.Status != "ENABLED" {
		return outbox.Outcome{Skip: "notifications are " + nc.Status + " for the stream"}
	}
	d, err := n.cfg.Resolve(nc.URI)
	if err != nil {
		return outbox.Outcome{Destination: nc.URI, Err: err}
	}
	err = n.out.send(ctx, d, envelope{id: MessageID(e), attempt: e.Attempts + 1, body: marshal(NewMessage(st, e))})
	return outbox.Outcome{Destination: nc.URI, Err: err}
}

// Redrive makes dead notifications of a stream (every stream when
// streamID is 0), or those with the given ids, pending again and queues
// them. It returns the entries redriven.
func (n *Notifier) Redrive(ctx context.Context, streamID int64, ids []int64) ([]archive.OutboxEntry, error) {
	return n.worker.Redrive(ctx, streamID, ids)
}

// Check validates a Uri for UpdateNotificationConfiguration.
func (n *Notifier) Check(uri string) (Destination, error) { return n.cfg.Resolve(uri) }

// Probe tries to reach a destination's host once, so that a typo in a
// host name shows in the log when the configuration is set rather than at
// the first tagged fragment. It never rejects the configuration: a
// receiver may well be down for now (docs/notifications.md).
func (n *Notifier) Probe(ctx context.Context, d Destination, streamName string) {
	addr := d.Addr
	if d.Transport == Webhook {
		port := d.URL.Port()
		if port == "" {
			port = map[string]string{"http": "80", "https": "443"}[d.URL.Scheme]
		}
		addr = net.JoinHostPort(d.URL.Hostname(), port)
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 3*time.Second)
		defer cancel()
		if err := dialOnce(ctx, addr); err != nil {
			n.log.Warn("notification destination is not reachable now; messages will be retried", "stream", streamName,
				"uri", d.URI, "addr", addr, "err", err)
		}
	}()
}

func dialOnce(ctx context.Context, addr string) error {
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}
