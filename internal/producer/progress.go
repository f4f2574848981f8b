package producer

import (
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/kinema/kinema/internal/progress"
)

// putOutput prints kinema put's progress: one line per ack, or, on a
// terminal, a single status line redrawn in place (ack lines would scroll
// by at three per fragment). It is fed from two goroutines: OnSent comes
// from the sender, OnAck from Put.
type putOutput struct {
	mu        sync.Mutex
	w         io.Writer
	quiet     bool
	line      *progress.Line // nil unless on a terminal
	total     int
	sent      int
	received  int
	persisted int
	bytes     int64
}

func newPutOutput(w io.Writer, quiet bool, total int) *putOutput {
	o := &putOutput{w: w, quiet: quiet, total: total}
	if !quiet && progress.IsTerminal(w) {
		o.line = &progress.Line{W: w, Text: o.text}
	}
	return o
}

func (o *putOutput) start() {
	if o.line != nil {
		o.line.Start(500 * time.Millisecond)
	}
}

func (o *putOutput) stop() {
	if o.line != nil {
		o.line.Stop()
	}
}

func (o *putOutput) sentFn(i int, bytes int64) {
	o.mu.Lock()
	o.sent, o.bytes = i+1, bytes
	o.mu.Unlock()
	if o.line != nil {
		o.line.Redraw()
	}
}

func (o *putOutput) ackFn(a Ack) {
	o.mu.Lock()
	switch a.EventType {
	case AckReceived:
		o.received++
	case AckPersisted:
		o.persisted++
	}
	o.mu.Unlock()
	switch {
	case o.quiet:
	case o.line == nil:
		fmt.Fprintln(o.w, a.String())
	case a.EventType == AckError:
		o.line.Println(a.String()) // errors keep their own line
	default:
		o.line.Redraw()
	}
}

// text is the status line.
func (o *putOutput) text() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return fmt.Sprintf("%s %d/%d sent, %d received, %d persisted  %s  %.1f MB", progress.Bar(max(o.persisted, o.received), o.total, 24),
		o.sent, o.total, o.received, o.persisted, progress.Clock(o.line.Began), float64(o.bytes)/1e6)
}
