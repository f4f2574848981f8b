package producer

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// putOutput prints kinema put's progress: one line per ack, or, on a
// terminal, a single status line redrawn in place (ack lines would scroll
// by at three per fragment). It is fed from two goroutines: OnSent comes
// from the sender, OnAck from Put.
type putOutput struct {
	mu        sync.Mutex
	w         io.Writer
	quiet     bool
	tty       bool
	total     int
	sent      int
	received  int
	persisted int
	bytes     int64
	began     time.Time
	done      chan struct{}
	wg        sync.WaitGroup
}

func newPutOutput(w io.Writer, quiet bool, total int) *putOutput {
	return &putOutput{w: w, quiet: quiet, tty: !quiet && isTerminal(w), total: total}
}

// isTerminal reports whether w is a character device other than /dev/null.
// A stat rather than a termios ioctl keeps this portable.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	null, err := os.Stat(os.DevNull)
	return err != nil || !os.SameFile(fi, null)
}

func (o *putOutput) start() {
	o.began = time.Now()
	if !o.tty {
		return
	}
	// Redraw now and then so that the clock moves while nothing happens.
	o.done = make(chan struct{})
	o.wg.Add(1)
	go func() {
		defer o.wg.Done()
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				o.mu.Lock()
				o.draw()
				o.mu.Unlock()
			case <-o.done:
				return
			}
		}
	}()
}

func (o *putOutput) stop() {
	if !o.tty {
		return
	}
	close(o.done)
	o.wg.Wait()
	o.mu.Lock()
	defer o.mu.Unlock()
	o.draw()
	fmt.Fprintln(o.w)
}

func (o *putOutput) sentFn(i int, bytes int64) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.sent, o.bytes = i+1, bytes
	if o.tty {
		o.draw()
	}
}

func (o *putOutput) ackFn(a Ack) {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch a.EventType {
	case AckReceived:
		o.received++
	case AckPersisted:
		o.persisted++
	}
	switch {
	case o.quiet:
	case !o.tty:
		fmt.Fprintln(o.w, a.String())
	case a.EventType == AckError:
		fmt.Fprintf(o.w, "\r\x1b[K%s\n", a.String()) // errors keep their own line
		o.draw()
	default:
		o.draw()
	}
}

// draw rewrites the status line; the caller holds mu.
func (o *putOutput) draw() {
	const width = 24
	n := 0
	if o.total > 0 {
		n = min(max(o.persisted, o.received)*width/o.total, width)
	}
	el := time.Since(o.began).Truncate(time.Second)
	fmt.Fprintf(o.w, "\r[%s%s] %d/%d sent, %d received, %d persisted  %02d:%02d  %.1f MB\x1b[K",
		strings.Repeat("#", n), strings.Repeat(".", width-n), o.sent, o.total, o.received, o.persisted,
		int(el.Minutes()), int(el.Seconds())%60, float64(o.bytes)/1e6)
}
