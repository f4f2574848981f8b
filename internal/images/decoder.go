package images

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// ErrNoFFmpeg is returned by every decoding call when the ffmpeg program
// cannot be found. Only image operations need it.
var ErrNoFFmpeg = errors.New("images: the ffmpeg program is not installed on this server (on Debian: apt-get install ffmpeg); image operations need it, everything else works without it")

// Decoder runs ffmpeg processes and keeps a few of them started and
// waiting for input (warm), keyed by their command line, so that a request
// finds one ready. The zero value (plus Program) works; Close kills the
// idle processes.
type Decoder struct {
	// Program is the ffmpeg executable: a path, or a name looked up in
	// PATH. Default "ffmpeg".
	Program string
	// Warm is how many idle processes are kept in all (default 2; a
	// negative value keeps none). Each use of a command line starts one
	// more for it, once the use is over; the oldest parked process gives way.
	Warm int
	// IdleTimeout ends a warm process nobody has used for this long (default 2 min).
	IdleTimeout time.Duration
	Log         *slog.Logger

	mu     sync.Mutex
	path   string
	idle   []*proc // oldest first
	closed bool
}

func (d *Decoder) log() *slog.Logger {
	if d.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return d.Log
}

// Available reports ErrNoFFmpeg when the program cannot be found. It looks
// again on every call until it is found, so installing ffmpeg on a
// running server is enough.
func (d *Decoder) Available() error {
	_, err := d.program()
	return err
}

func (d *Decoder) program() (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.path != "" {
		return d.path, nil
	}
	name := d.Program
	if name == "" {
		name = "ffmpeg"
	}
	p, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%w (looked for %q: %v)", ErrNoFFmpeg, name, err)
	}
	d.path = p
	return p, nil
}

// proc is one ffmpeg process with its three pipes.
type proc struct {
	key     string
	cmd     *exec.Cmd
	stdin   *os.File
	stdout  *os.File
	stderr  *tailBuffer
	exited  chan struct{}
	waitErr error
	timer   *time.Timer
}

// tailBuffer keeps the last bytes written to it: ffmpeg's messages.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

const stderrKeep = 4 << 10

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > stderrKeep {
		t.buf = append(t.buf[:0], t.buf[len(t.buf)-stderrKeep:]...)
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.buf))
}

// spawn starts ffmpeg with args. Pipes are made here rather than with
// cmd.StdoutPipe, whose reader cmd.Wait closes: Wait runs in the
// background from the start, so that a process is reaped whenever it ends.
func (d *Decoder) spawn(args []string) (*proc, error) {
	path, err := d.program()
	if err != nil {
		return nil, err
	}
	inR, inW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return nil, err
	}
	growPipe(inW)
	growPipe(outR)
	p := &proc{key: strings.Join(args, "\x00"), cmd: exec.Command(path, args...), stdin: inW, stdout: outR,
		stderr: &tailBuffer{}, exited: make(chan struct{})}
	p.cmd.Stdin, p.cmd.Stdout, p.cmd.Stderr = inR, outW, p.stderr
	err = p.cmd.Start()
	inR.Close()
	outW.Close()
	if err != nil {
		inW.Close()
		outR.Close()
		return nil, fmt.Errorf("starting ffmpeg: %w", err)
	}
	go func() {
		p.waitErr = p.cmd.Wait()
		close(p.exited)
	}()
	return p, nil
}

// kill ends the process and releases its pipes.
func (p *proc) kill() {
	p.cmd.Process.Kill()
	p.stdin.Close()
	p.stdout.Close()
}

func (p *proc) alive() bool {
	select {
	case <-p.exited:
		return false
	default:
		return true
	}
}

// acquire returns a process running args: a warm one when there is one,
// else a new one.
func (d *Decoder) acquire(args []string) (*proc, error) {
	key := strings.Join(args, "\x00")
	d.mu.Lock()
	var p *proc
	for i, q := range d.idle {
		if q.key == key && q.alive() && q.timer.Stop() {
			p = q
			d.idle = append(d.idle[:i], d.idle[i+1:]...)
			break
		}
	}
	d.mu.Unlock()
	if p != nil {
		return p, nil
	}
	return d.spawn(args)
}

// rewarm makes a process for args ready for the next caller. Sessions call
// it when their decoding is done, not when it starts: starting ffmpeg costs
// a core for tens of milliseconds, which a decode running at the same time
// would feel.
func (d *Decoder) rewarm(args []string) {
	if d.Warm >= 0 {
		go d.warm(args)
	}
}

// warm starts a process for args and parks it, unless the pool already
// holds as many for args as it may hold in all (so that a burst of
// requests with the same settings finds more than one). The oldest parked
// process makes room when the pool is full.
func (d *Decoder) warm(args []string) {
	key := strings.Join(args, "\x00")
	limit := d.Warm
	if limit == 0 {
		limit = 2
	}
	d.mu.Lock()
	parked := 0
	for _, q := range d.idle {
		if q.key == key && q.alive() {
			parked++
		}
	}
	d.mu.Unlock()
	if parked >= limit {
		return
	}
	p, err := d.spawn(args)
	if err != nil {
		d.log().Debug("starting a warm ffmpeg failed", "err", err)
		return
	}
	timeout := d.IdleTimeout
	if timeout <= 0 {
		timeout = 2 * time.Minute
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		p.kill()
		return
	}
	p.timer = time.AfterFunc(timeout, func() { d.expire(p) })
	d.idle = append(d.idle, p)
	for len(d.idle) > limit {
		old := d.idle[0]
		d.idle = d.idle[1:]
		old.timer.Stop()
		old.kill()
	}
}

// expire ends a warm process that waited too long.
func (d *Decoder) expire(p *proc) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, q := range d.idle {
		if q == p {
			d.idle = append(d.idle[:i], d.idle[i+1:]...)
			p.kill()
			return
		}
	}
}

// Close kills the warm processes; later calls still work, without warm ones.
func (d *Decoder) Close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.closed = true
	for _, p := range d.idle {
		p.timer.Stop()
		p.kill()
	}
	d.idle = nil
}

// run is one use of a process: it kills the process when ctx ends, and
// wait collects how it ended.
func (p *proc) watch(ctx context.Context) (stop func() bool) {
	return context.AfterFunc(ctx, p.kill)
}

// wait waits for the process to exit and describes a failure with its messages.
func (p *proc) wait() error {
	<-p.exited
	if p.waitErr != nil {
		msg := p.stderr.String()
		if msg == "" {
			msg = "no message"
		}
		return fmt.Errorf("ffmpeg: %v: %s", p.waitErr, msg)
	}
	return nil
}

// drain discards what is left of r so that the process is never blocked writing.
func drain(r io.Reader) { io.Copy(io.Discard, r) }
