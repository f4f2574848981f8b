package producer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync/atomic"
)

// RawResult is what PutRaw saw.
type RawResult struct {
	StatusCode int
	ErrorType  string // x-amzn-ErrorType of a non-200 answer, without its ":…" suffix
	Message    string // message of a non-200 answer
	Acks       []Ack
	BytesSent  int64
	// ReadErr is why reading the ack stream stopped, when it was not a clean
	// end of the response (a malformed ack, a dropped connection).
	ReadErr error
}

// Count returns how many acks of the event type arrived.
func (r *RawResult) Count(eventType string) int {
	n := 0
	for _, a := range r.Acks {
		if a.EventType == eventType {
			n++
		}
	}
	return n
}

// PutRaw sends body, whatever it holds, as a PutMedia request with the SDK's
// headers, and returns every ack once the server ends its response. It is
// the entry point for tests of bad input: corrupt MKV (see MarshalBody),
// missing headers, unknown streams.
//
// headers replaces the default headers one by one; a key with an empty
// value list removes that header (e.g. x-amzn-fragment-timecode-type).
// The request is signed after headers are applied. With cfg.DataEndpoint
// set no control-plane call is made, so a stream that does not exist can
// be named; otherwise the stream is resolved as Put does.
//
// Unlike Put, PutRaw does not hold the body open for acks: the body ends
// when body returns EOF (an io.Pipe gives the caller control of that). The
// error is for failures to make the call; HTTP errors are in the result.
// cfg.OnAck is called for each ack as it arrives. cfg.AckTimeout bounds
// the wait for the response headers as in Put. When PutRaw returns early
// (ctx, timeout) a Read it started on body may still be pending; it ends
// when body does.
func PutRaw(ctx context.Context, cfg Config, body io.Reader, headers http.Header) (RawResult, error) {
	var res RawResult
	cfg, err := cfg.withDefaults()
	if err != nil {
		return res, err
	}
	endpoint := cfg.DataEndpoint
	if endpoint == "" {
		if cfg.StreamName == "" {
			return res, errors.New("producer: no stream name and no data endpoint")
		}
		tgt, err := cfg.resolve(ctx, "")
		if err != nil {
			return res, err
		}
		endpoint = tgt.dataEndpoint
	}
	// The body goes through a pipe of our own: a transport whose request
	// failed or was cancelled waits for its body read to return, and only
	// a pipe we own can be closed under a Read the caller's reader blocks.
	cr := &countReader{r: body}
	pr, pw := io.Pipe()
	st := &sendState{done: make(chan struct{})}
	go func() {
		_, err := io.Copy(pw, cr)
		pw.CloseWithError(err)
		st.err = err
		close(st.done)
	}()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer pr.CloseWithError(errStopped)
	req, err := cfg.newPutMedia(ctx, endpoint, pr, headers)
	if err != nil {
		return res, err
	}
	resp, err := awaitResponse(ctx, cfg, req, st, func(err error) { cancel(); pr.CloseWithError(err) })
	if err != nil {
		res.BytesSent = cr.n.Load()
		return res, fmt.Errorf("producer: PutMedia %s: %w", endpoint, err)
	}
	defer resp.Body.Close()
	res.StatusCode = resp.StatusCode
	if resp.StatusCode != http.StatusOK {
		res.ErrorType, res.Message = httpError(resp)
		res.BytesSent = cr.n.Load()
		return res, nil
	}
	acks, stop := make(chan ackEvent), make(chan struct{})
	defer close(stop)
	go readAcks(resp.Body, acks, stop)
	for {
		var ev ackEvent
		select {
		case ev = <-acks:
		case <-ctx.Done():
			res.BytesSent = cr.n.Load()
			return res, ctx.Err()
		}
		if ev.err != nil {
			if !errors.Is(ev.err, io.EOF) {
				res.ReadErr = ev.err
			}
			res.BytesSent = cr.n.Load()
			return res, nil
		}
		res.Acks = append(res.Acks, ev.ack)
		if cfg.OnAck != nil {
			cfg.OnAck(ev.ack)
		}
	}
}

// countReader counts the bytes read through it; read concurrently.
type countReader struct {
	r io.Reader
	n atomic.Int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}
