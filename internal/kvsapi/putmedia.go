package kvsapi

import (
	"bufio"
	"errors"
	"github.com/kinema/kinema/internal/apierr"
	"net/http"
	"time"

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
	body := bufio.NewReaderSize(r.Body, 64<<10)
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
	// Bound whatever net/http still reads of the body (it drains up to 256 KB
	// to reuse the connection); the next request gets its own deadlines.
	rc.SetReadDeadline(time.Now().Add(2 * time.Second))
	c.log.Info("PutMedia ended", "stream", st.Name, "fragments", sum.Fragments, "persisted", sum.Persisted,
		"bytes", sum.Bytes, "error_id", sum.ErrorID, "err", err)
	return nil
}
