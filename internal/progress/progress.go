// Package progress is the status line of Kinema's long-running client
// commands (kinema put, kinema timelapse): on a terminal, one line redrawn
// in place now and then, so that the clock moves even while nothing
// happens; elsewhere nothing, and the commands print plain lines instead.
package progress

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// IsTerminal reports whether w is a character device other than /dev/null:
// where a line redrawn in place makes sense. A stat rather than a termios
// ioctl keeps this portable.
func IsTerminal(w io.Writer) bool {
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

// Line is a status line on W. Text returns its content; it is called from
// the redraw goroutine as well as from Redraw, so it must do its own
// locking of what it reads.
type Line struct {
	W     io.Writer
	Text  func() string
	Began time.Time // set by Start

	mu   sync.Mutex
	done chan struct{}
	wg   sync.WaitGroup
}

// Start draws the line and redraws it every interval until Stop.
func (l *Line) Start(every time.Duration) {
	l.Began = time.Now()
	l.done = make(chan struct{})
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				l.Redraw()
			case <-l.done:
				return
			}
		}
	}()
	l.Redraw()
}

// Redraw rewrites the line now.
func (l *Line) Redraw() {
	text := l.Text()
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(l.W, "\r%s\x1b[K", text)
}

// Println prints a line of its own above the status line.
func (l *Line) Println(s string) {
	l.mu.Lock()
	fmt.Fprintf(l.W, "\r\x1b[K%s\n", s)
	l.mu.Unlock()
	l.Redraw()
}

// Stop draws the line a last time and ends it.
func (l *Line) Stop() {
	close(l.done)
	l.wg.Wait()
	l.Redraw()
	fmt.Fprintln(l.W)
}

// Bar is a bar of width characters, done of total filled: [#####.....].
func Bar(done, total, width int) string {
	n := 0
	if total > 0 {
		n = min(max(done, 0)*width/total, width)
	}
	return "[" + strings.Repeat("#", n) + strings.Repeat(".", width-n) + "]"
}

// Clock is the time since began as mm:ss.
func Clock(began time.Time) string {
	el := time.Since(began).Truncate(time.Second)
	return fmt.Sprintf("%02d:%02d", int(el.Minutes()), int(el.Seconds())%60)
}
