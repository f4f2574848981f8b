package app

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/kinema/kinema/internal/metrics"
)

// Health endpoints for load balancers and orchestrators: unsigned GETs on
// paths no KVS operation uses (they are all POSTs to other paths).
//   - LivePath answers 200 while the process serves HTTP at all: restart
//     the node when it stops answering.
//   - ReadyPath answers 200 only when the index and the media store answer
//     too, and IAM follows the shared store, else 503 with the reason:
//     send no traffic to the node meanwhile.
const (
	LivePath  = "/kinema/live"
	ReadyPath = "/kinema/ready"
)

// pinger is a store that can say whether its backend answers.
type pinger interface {
	Ping(ctx context.Context) error
}

// withHealth answers the health endpoints and, also unsigned,
// metrics.Path: what Prometheus scrapes.
func (a *App) withHealth(next http.Handler) http.Handler {
	metricsHandler := a.Metrics.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet && r.URL.Path == metrics.Path {
			metricsHandler.ServeHTTP(w, r)
			return
		}
		if r.Method != http.MethodGet || (r.URL.Path != LivePath && r.URL.Path != ReadyPath) {
			next.ServeHTTP(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if r.URL.Path == ReadyPath {
			if err := a.ready(r.Context()); err != nil {
				w.WriteHeader(http.StatusServiceUnavailable)
				w.Write([]byte("not ready: " + err.Error() + "\n"))
				return
			}
		}
		w.Write([]byte("ok\n"))
	})
}

// ready pings the index and the media store, each for at most 3 s, and
// asks whether IAM follows the shared store.
func (a *App) ready(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var errs []error
	for name, s := range map[string]any{"index": a.index, "media": a.media} {
		if p, ok := s.(pinger); ok {
			if err := p.Ping(ctx); err != nil {
				errs = append(errs, errors.New(name+": "+err.Error()))
			}
		}
	}
	if a.IAM != nil {
		if err := a.IAM.FollowErr(); err != nil {
			errs = append(errs, errors.New("iam: "+err.Error()))
		}
	}
	return errors.Join(errs...)
}

// outboxRowsCap bounds each kinema_outbox_rows count (one index read per
// kind and state on every scrape).
const outboxRowsCap = 1000
