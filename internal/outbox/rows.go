package outbox

import (
	"context"
	"math"
	"strings"

	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/metrics"
)

// RowCounter counts, for metrics.Outbox.WatchRows, the rows of each kind
// that are pending and dead, each up to limit. The index has no count
// query; a bounded read keeps a scrape cheap however far a backlog grows,
// and past a few hundred rows the exact number matters less than that it
// is large.
func RowCounter(idx archive.Index, kinds []archive.TriggerKind, limit int) metrics.RowCounter {
	return func(ctx context.Context) ([]metrics.RowCount, error) {
		var out []metrics.RowCount
		for _, kind := range kinds {
			for _, state := range []archive.OutboxState{archive.OutboxPending, archive.OutboxDead} {
				es, err := idx.OutboxEntries(ctx, archive.OutboxQuery{Kind: kind, State: state, StartMs: math.MinInt64, EndMs: math.MaxInt64, Limit: limit})
				if err != nil {
					return out, err
				}
				out = append(out, metrics.RowCount{Kind: string(kind), State: strings.ToLower(string(state)), Rows: len(es)})
			}
		}
		return out, nil
	}
}
