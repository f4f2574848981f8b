package kvsapi

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"time"

	"github.com/kinema/kinema/internal/apierr"

	"github.com/kinema/kinema/internal/ingest"
	"github.com/kinema/kinema/internal/stream"
)

// putMedia validates the headers (errors here are ordinary HTTP errors), then
// answers 200 and streams one ack per HTTP chunk while it reads the body.
func (s *Server) putMedia(c *call) error {
	r := c.r
	var ref streamRef
	if v := r.Header.Get("x-amzn-stream-name"); v != "" {
		ref.StreamName = &v
	}
	if v := r.Header.Get("x-amzn-stream-arn"); v != "" {
		ref.StreamARN = &v
	}
	tcType := r.Header.Get("x-amzn-fragment-timecode-type")
	if tcType == "" {
		return apierr.InvalidArg("the x-amzn-fragment-timecode-type header is required")
	}
	if err := checkEnum("x-amzn-fragment-timecode-type", tcType, "ABSOLUTE", "RELATIVE"); err != nil {
		return err
	}
	var startMs int64
	if v := r.Header.Get("x-amzn-producer-start-timestamp"); v != "" {
		ms, err := stream.ParseProducerStartTimestamp(v)
		if err != nil {
			return apierr.InvalidArg("x-amzn-producer-start-timestamp: %v", err)
		}
		startMs = ms
	} else if tcType == "RELATIVE" {
		return apierr.InvalidArg("the x-amzn-producer-start-timestamp header is required for RELATIVE timecodes")
	}
	st, err := s.resolve(c.ctx, ref)
	if err != nil {
		return err
	}
	conn, err := s.cfg.Ingest.Acquire(c.ctx, st.ID)
	var elsewhere *ingest.ElsewhereError
	if errors.As(err, &elsewhere) {
		return apierr.New("ConnectionLimitExceededException",
			"stream %s is being ingested by another node (%s): call GetDataEndpoint for PUT_MEDIA", st.Name, elsewhere.URL)
	}
	if errors.Is(err, ingest.ErrConnectionLimit) {
		return apierr.New("ConnectionLimitExceededException", "stream %s already has a PutMedia connection", st.Name)
	}
	if err != nil {
		return apierr.Internal(err)
	}
	defer conn.Release()

	rc := http.NewResponseController(c.w)
	if err := rc.EnableFullDuplex(); err != nil {
		return apierr.Internal(err)
	}
	// Read before answering: net/http sends "100 Continue" on the first body
	// read, and curl holds the body back for a second if the 200 comes first.
	rc.SetReadDeadline(time.Now().Add(s.cfg.Ingest.Limits.IdleTimeout))
	reqBody := &eofReader{r: r.Body}
	body := bufio.NewReaderSize(reqBody, 64<<10)
	body.Peek(1)

	h := c.w.Header()
	h.Del("Connection") // a PutMedia that got this far is read to its end
	h.Set("Content-Type", "application/json")
	c.w.WriteHeader(http.StatusOK)
	rc.Flush()

	sum, err := conn.Run(c.ctx, ingest.Params{
		Stream:          st,
		Relative:        tcType == "RELATIVE",
		ProducerStartMs: startMs,
		SetReadDeadline: rc.SetReadDeadline,
		Send: func(ack []byte) error {
			if _, err := c.w.Write(ack); err != nil {
				return err
			}
			return rc.Flush()
		},
	}, body)
	if !reqBody.ended && r.ProtoMajor == 1 {
		endUnread(rc, r.ProtoAtLeast(1, 1))
	} else {
		// Bound whatever net/http still reads of the body (it drains up to
		// 256 KB to reuse the connection); the next request gets its own
		// deadlines.
		rc.SetReadDeadline(time.Now().Add(2 * time.Second))
	}
	c.log.Info("PutMedia ended", "stream", st.Name, "fragments", sum.Fragments, "persisted", sum.Persisted,
		"bytes", sum.Bytes, "error_id", sum.ErrorID, "err", err)
	return nil
}

// eofReader notes whether the request body was read to its end.
type eofReader struct {
	r     io.Reader
	ended bool
}

func (e *eofReader) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF {
		e.ended = true
	}
	return n, err
}

// endUnread ends an HTTP/1 PutMedia response whose request body was not
// read to its end: the session ended first (an ERROR ack), and the body
// read was cut short by a deadline. net/http would then fail its drain of
// the body yet keep the connection, and parse the rest of the body as the
// next request: a producer reusing the connection would get 400 Bad
// Request for its next call. So the connection is taken over instead: the
// chunked response is terminated, our side closed for writing, whatever
// the producer still sends is read and dropped for a moment (closing with
// data unread would reset the connection and could destroy acks the
// producer has not read yet), and then it is closed.
func endUnread(rc *http.ResponseController, chunked bool) {
	rc.Flush()
	conn, brw, err := rc.Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	if chunked {
		brw.WriteString("0\r\n\r\n")
	}
	if brw.Flush() != nil {
		return
	}
	if cw, ok := conn.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	conn.SetReadDeadline(time.Now().Add(2 * time.Second))
	io.Copy(io.Discard, conn)
}
