package producer

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/kinema/kinema/internal/media/mkv"
)

// FragmentResult is what happened to one fragment of a Put.
type FragmentResult struct {
	Timecode  uint64    // Cluster Timecode as sent
	Number    string    // from the first ack that named it
	Started   time.Time // its Cluster began to go out
	Completed time.Time // complete on the wire; zero if it never was
	Buffering bool
	Received  bool
	Persisted bool

	ReceivedLatency  time.Duration
	PersistedLatency time.Duration
}

// Result is what a Put did.
type Result struct {
	DataEndpoint string
	// WaitFor is the ack Put waited for on every fragment: PERSISTED, or
	// RECEIVED for a stream without retention.
	WaitFor   string
	Fragments []FragmentResult // every fragment that began to go out, in order
	Acks      []Ack            // every ack, in arrival order
	Counts    map[string]int   // acks per EventType
	Error     *Ack             // the first ERROR ack, if any
	BytesSent int64
	Elapsed   time.Duration // from the first body byte to the end
}

// PersistedLatencies lists the PERSISTED latency of each persisted
// fragment, in fragment order.
func (r *Result) PersistedLatencies() []time.Duration {
	var out []time.Duration
	for _, f := range r.Fragments {
		if f.Persisted {
			out = append(out, f.PersistedLatency)
		}
	}
	return out
}

// Done counts the fragments that got the WaitFor ack.
func (r *Result) Done() int {
	n := 0
	for _, f := range r.Fragments {
		if (r.WaitFor == AckReceived && f.Received) || f.Persisted {
			n++
		}
	}
	return n
}

// tracker is the fragment table shared by the sending goroutine, which
// adds and completes fragments, and Put's goroutine, which reads acks.
type tracker struct {
	mu      sync.Mutex
	frags   []FragmentResult
	byTC    map[uint64]int
	waitFor string
	done    int // fragments that got waitFor
	open    int // no fragment before this one is waiting for its ack
}

func (t *tracker) isDone(f *FragmentResult) bool {
	return f.Persisted || (t.waitFor == AckReceived && f.Received)
}

func (t *tracker) doneCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.done
}

func (t *tracker) begin(i int, tc uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.frags = append(t.frags, FragmentResult{Timecode: tc, Started: time.Now()})
	t.byTC[tc] = i
}

func (t *tracker) complete(i int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.frags[i].Completed = time.Now()
}

// apply notes an ack against its fragment and fills Fragment and Latency.
func (t *tracker) apply(a *Ack) {
	t.mu.Lock()
	defer t.mu.Unlock()
	i, ok := t.byTC[a.FragmentTimecode]
	if !ok || a.EventType == AckIdle || (a.EventType == AckError && a.FragmentNumber == "" && a.FragmentTimecode == 0) {
		return
	}
	a.Fragment = i
	f := &t.frags[i]
	if f.Number == "" {
		f.Number = a.FragmentNumber
	}
	wasDone := t.isDone(f)
	defer func() {
		if !wasDone && t.isDone(f) {
			t.done++
		}
	}()
	var lat time.Duration
	if !f.Completed.IsZero() {
		lat = max(a.At.Sub(f.Completed), 0)
	}
	switch a.EventType {
	case AckBuffering:
		f.Buffering = true
	case AckReceived:
		if !f.Received {
			f.Received, f.ReceivedLatency = true, lat
		}
		a.Latency = lat
	case AckPersisted:
		if !f.Persisted {
			f.Persisted, f.PersistedLatency = true, lat
		}
		a.Latency = lat
	}
}

// overdue returns the first fragment complete on the wire for longer than
// timeout without its ack, or -1.
func (t *tracker) overdue(timeout time.Duration) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	for ; t.open < len(t.frags) && t.isDone(&t.frags[t.open]); t.open++ {
	}
	// Acks come in fragment order, so the oldest open fragment is the one
	// to check; a later one cannot be more overdue.
	if t.open < len(t.frags) {
		f := &t.frags[t.open]
		if !t.isDone(f) && !f.Completed.IsZero() && time.Since(f.Completed) > timeout {
			return t.open
		}
	}
	return -1
}

func (t *tracker) snapshot() []FragmentResult {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]FragmentResult(nil), t.frags...)
}

// Put sends the plans (Loop times) as one PutMedia session and waits until
// the server has acknowledged every fragment PERSISTED (RECEIVED for a
// stream without retention). Before that it resolves the stream as the SDK
// does: DescribeStream, CreateStream if allowed, GetDataEndpoint.
//
// The body streams through a pipe while acks are read from the response
// concurrently (the server answers 200 as soon as the body starts). As the
// SDK does, the body stays open until the last ack arrives, then ends.
// Put fails on an ERROR ack (a *RejectedError), an HTTP error, a fragment
// not acknowledged within AckTimeout of being sent, a response that ends
// early, or ctx's end; the Result holds what happened up to then.
func Put(ctx context.Context, cfg Config, plans []FragmentPlan, header mkv.Header) (Result, error) {
	res := Result{Counts: map[string]int{}}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return res, err
	}
	if cfg.StreamName == "" {
		return res, errors.New("producer: no stream name")
	}
	sched, err := newSchedule(cfg, plans, header)
	if err != nil {
		return res, err
	}
	tgt, err := cfg.resolve(ctx, mediaTypeOf(header))
	if err != nil {
		return res, err
	}
	res.DataEndpoint, res.WaitFor = tgt.dataEndpoint, AckPersisted
	if tgt.retentionHours == 0 {
		res.WaitFor = AckReceived // no archive, so no PERSISTED
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pr, pw := io.Pipe()
	req, err := cfg.newPutMedia(ctx, tgt.dataEndpoint, pr, nil)
	if err != nil {
		return res, err
	}
	tr := &tracker{byTC: map[uint64]int{}, waitFor: res.WaitFor}
	cw := &countWriter{w: pw}
	stop := make(chan struct{})
	t0 := time.Now()
	sn := &sender{
		s: sched, w: bufio.NewWriterSize(cw, 64<<10), flushAll: cfg.Realtime,
		begin: tr.begin, complete: tr.complete,
		sent: func(i int) {
			if cfg.OnSent != nil {
				cfg.OnSent(i, cw.n.Load())
			}
		},
	}
	if cfg.Realtime {
		sn.pace = pacer(ctx, stop, t0)
	}
	st := &sendState{done: make(chan struct{})}
	go func() {
		err := sn.run()
		if err == nil && cfg.NoEndOfFragmentTags {
			err = pw.Close() // the end of the body completes the last fragment
		}
		st.err = err
		close(st.done)
	}()

	var stopOnce sync.Once
	finish := func(bodyErr error) {
		stopOnce.Do(func() {
			close(stop)
			if bodyErr == nil {
				pw.Close()
			} else {
				pr.CloseWithError(bodyErr)
			}
		})
	}
	fill := func() {
		res.Fragments = tr.snapshot()
		res.BytesSent = cw.n.Load()
		res.Elapsed = time.Since(t0)
	}

	resp, err := awaitResponse(ctx, cfg, req, st, func(err error) { cancel(); finish(err) })
	if err != nil {
		finish(err)
		<-st.done
		fill()
		return res, fmt.Errorf("producer: PutMedia %s: %w", tgt.dataEndpoint, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		errType, msg := httpError(resp)
		finish(errStopped)
		<-st.done
		fill()
		return res, fmt.Errorf("producer: PutMedia answered %s: %s %s", resp.Status, errType, msg)
	}

	acks, ackStop := make(chan ackEvent), make(chan struct{})
	defer close(ackStop)
	go readAcks(resp.Body, acks, ackStop)

	err = res.await(ctx, cfg, sched.total(), tr, acks, st)
	finish(err)
	if err == nil {
		res.drain(cfg, tr, acks)
	} else {
		cancel() // aborts the request: a server still reading is told at once
	}
	<-st.done
	fill()
	return res, err
}

// sendState is the sending goroutine's outcome: err is set before done
// closes.
type sendState struct {
	done chan struct{}
	err  error
}

// awaitResponse runs the request until its response headers arrive. A
// KVS-like server answers as soon as the body starts; one that waits for
// the body to end would wait forever, since the body stays open for acks.
// So a response that is not there AckTimeout after the start, or after the
// body was written, whichever is later, aborts the request. Aborting must
// close the body: until its body read returns, the transport does not give
// up on a request, even a cancelled one.
func awaitResponse(ctx context.Context, cfg Config, req *http.Request, st *sendState, abort func(error)) (*http.Response, error) {
	type result struct {
		resp *http.Response
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		resp, err := cfg.HTTPClient.Do(req)
		ch <- result{resp, err}
	}()
	timer := time.NewTimer(cfg.AckTimeout)
	defer timer.Stop()
	sent := st.done
	for {
		select {
		case r := <-ch:
			return r.resp, r.err
		case <-sent:
			sent = nil
			timer.Reset(cfg.AckTimeout)
		case <-ctx.Done():
			abort(ctx.Err())
			if r := <-ch; r.resp != nil {
				r.resp.Body.Close()
			}
			return nil, ctx.Err()
		case <-timer.C:
			err := fmt.Errorf("no response within %v (the server may be waiting for the body to end)", cfg.AckTimeout)
			abort(err)
			if r := <-ch; r.resp != nil {
				r.resp.Body.Close()
			}
			return nil, err
		}
	}
}

// await reads acks until every fragment got res.WaitFor, or failure.
func (res *Result) await(ctx context.Context, cfg Config, total int, tr *tracker, acks <-chan ackEvent, st *sendState) error {
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	sentAll := false
	var sendErr error
	var grace <-chan time.Time
	sendDone := st.done
	for {
		select {
		case <-sendDone:
			sendDone = nil
			if err := st.err; err != nil {
				// The connection broke. The server's last acks (an ERROR,
				// usually) explain why better than a broken pipe: read them
				// for a moment.
				sendErr = err
				grace = time.After(min(5*time.Second, cfg.AckTimeout))
				continue
			}
			sentAll = true
		case ev := <-acks:
			if ev.err != nil {
				if errors.Is(ev.err, io.EOF) {
					ev.err = errors.New("the server ended the response")
				}
				return fmt.Errorf("producer: %v with %d of %d fragments acknowledged %s%s", ev.err, tr.doneCount(), total, res.WaitFor, sendSuffix(sendErr))
			}
			a := res.record(cfg, tr, ev.ack)
			if a.EventType == AckError {
				res.Error = &a
				return &RejectedError{Ack: a}
			}
		case <-tick.C:
			if i := tr.overdue(cfg.AckTimeout); i >= 0 {
				return fmt.Errorf("producer: fragment %d (timecode %d) not acknowledged %s within %v of being sent",
					i, tr.snapshot()[i].Timecode, res.WaitFor, cfg.AckTimeout)
			}
		case <-grace:
			return fmt.Errorf("producer: sending the body failed: %w", sendErr)
		case <-ctx.Done():
			return ctx.Err()
		}
		if sentAll && tr.doneCount() == total {
			return nil
		}
	}
}

// record matches an ack to its fragment, keeps it and reports it.
func (res *Result) record(cfg Config, tr *tracker, a Ack) Ack {
	tr.apply(&a)
	res.Acks = append(res.Acks, a)
	res.Counts[a.EventType]++
	if cfg.OnAck != nil {
		cfg.OnAck(a)
	}
	return a
}

func sendSuffix(err error) string {
	if err == nil {
		return ""
	}
	return fmt.Sprintf(" (sending: %v)", err)
}

// drain reads what the server sends after the body ended, so that it can
// end its response cleanly, but not for long: everything needed is in.
func (res *Result) drain(cfg Config, tr *tracker, acks <-chan ackEvent) {
	limit := time.After(5 * time.Second)
	for {
		select {
		case ev := <-acks:
			if ev.err != nil {
				return
			}
			res.record(cfg, tr, ev.ack)
		case <-limit:
			return
		}
	}
}
