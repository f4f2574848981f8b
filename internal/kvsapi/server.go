// Package kvsapi is Kinema's KVS-compatible HTTP surface: every route in one
// table (routes.go), every error type in one table (errors.go), SigV4 on
// every call, and one file per group of operations. Handlers translate
// between the wire shapes and the archive and ingest packages; they hold no
// storage logic of their own.
package kvsapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"github.com/kinema/kinema/internal/apierr"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/clipmeta"
	"github.com/kinema/kinema/internal/ingest"
	"github.com/kinema/kinema/internal/memo"
	"github.com/kinema/kinema/internal/notify"
	"github.com/kinema/kinema/internal/playback"
	"github.com/kinema/kinema/internal/sigv4"
)

// Config wires a Server.
type Config struct {
	Archive  *archive.Archive
	Ingest   *ingest.Service
	Playback *playback.Server
	// ClipMeta serves the device clip-metadata API (clipmeta.Path); it is
	// called after the signature check, with the body restored.
	ClipMeta http.Handler
	Janitor  *archive.Janitor
	// Notify delivers notifications; the notification and events
	// operations use its configuration and redrive through it.
	Notify   *notify.Notifier
	Verifier *sigv4.Verifier
	Account  string // 12-digit account id in ARNs
	// Region pins the region in ARNs and signatures; "" means the region a
	// stream is created from is the one its ARN carries.
	Region string
	// PublicURL is what GetDataEndpoint returns (scheme://host[:port], no
	// trailing slash); when empty it is derived from the request.
	PublicURL string
	// MaxJSONBody bounds request bodies of JSON operations. Default 1 MiB.
	MaxJSONBody int64
	// GetMediaIdle ends a GetMedia response after this long without a new
	// fragment once it has caught up. Default 3 s.
	GetMediaIdle time.Duration
	Logger       *slog.Logger
}

// Server is the HTTP handler for every KVS operation Kinema serves.
type Server struct {
	cfg     Config
	log     *slog.Logger
	routes  map[string]route
	headers memo.Map[int64, []byte] // track sets by id (chunkHeader)
}

// New returns a Server.
func New(cfg Config) *Server {
	if cfg.MaxJSONBody <= 0 {
		cfg.MaxJSONBody = 1 << 20
	}
	if cfg.GetMediaIdle <= 0 {
		cfg.GetMediaIdle = 3 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Account == "" {
		cfg.Account = DefaultAccount
	}
	s := &Server{cfg: cfg, log: cfg.Logger}
	s.routes = routeTable()
	return s
}

// SetClipMeta mounts the clip-metadata API, which itself calls back into
// the server (StreamExists, ClipSessionURL), hence after New.
func (s *Server) SetClipMeta(h http.Handler) { s.cfg.ClipMeta = h }

// DefaultAccount is the account id of the single-tenant embedded server.
const DefaultAccount = "000000000000"

// call is one API request on its way through a handler.
type call struct {
	ctx       context.Context
	r         *http.Request
	w         http.ResponseWriter
	body      []byte
	ident     sigv4.Identity
	requestID string
	log       *slog.Logger
}

// decode reads the JSON body into v, answering malformed JSON with a
// SerializationException as AWS does.
func (c *call) decode(v any) error {
	if len(strings.TrimSpace(string(c.body))) == 0 {
		return nil
	}
	if err := json.Unmarshal(c.body, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return apierr.New("SerializationException", "field %s has the wrong type: %v", te.Field, err)
		}
		return apierr.New("SerializationException", "malformed JSON body: %v", err)
	}
	return nil
}

func newRequestID() string {
	var b [16]byte
	rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// ServeHTTP routes by path (the producer SDK sends no X-Amz-Target), checks
// the signature and runs the operation.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := &call{ctx: r.Context(), r: r, w: w, requestID: newRequestID()}
	w.Header().Set("x-amzn-RequestId", c.requestID)
	// Playback resources carry a session token instead of a signature.
	if s.cfg.Playback != nil && (strings.HasPrefix(r.URL.Path, playback.HLSPrefix) || strings.HasPrefix(r.URL.Path, playback.DASHPrefix) ||
		strings.HasPrefix(r.URL.Path, playback.ClipPrefix)) {
		s.cfg.Playback.ServeHTTP(w, r)
		return
	}
	if s.cfg.ClipMeta != nil && (r.URL.Path == clipmeta.Path || strings.HasPrefix(r.URL.Path, clipmeta.Path+"/")) {
		s.serveClipMeta(c)
		return
	}
	rt, ok := s.routes[r.URL.Path]
	c.log = s.log.With("op", rt.op, "request_id", c.requestID)
	if !ok {
		s.writeError(c, apierr.New("UnknownOperationException", "no operation at %s %s", r.Method, r.URL.Path))
		return
	}
	if r.Method != http.MethodPost {
		s.writeError(c, apierr.New("MethodNotAllowedException", "%s takes POST, not %s", rt.op, r.Method))
		return
	}
	if rt.streaming {
		// The producer keeps its body open while it waits for an answer: an
		// error must go out without net/http first draining the body, and
		// the connection must not be reused with unread body bytes on it.
		http.NewResponseController(w).EnableFullDuplex()
		w.Header().Set("Connection", "close")
	} else {
		body, err := s.readBody(r)
		if err != nil {
			s.writeError(c, err)
			return
		}
		c.body = body
	}
	ident, err := s.cfg.Verifier.Verify(r, c.body, rt.streaming)
	if err != nil {
		s.writeError(c, authError(err))
		return
	}
	c.ident = ident
	if rt.raw != nil {
		if err := rt.raw(s, c); err != nil {
			s.writeError(c, apierr.As(err))
		}
		return
	}
	out, err := rt.json(s, c)
	if err != nil {
		s.writeError(c, apierr.As(err))
		return
	}
	if out == nil {
		out = struct{}{}
	}
	b, err := json.Marshal(out)
	if err != nil {
		s.writeError(c, apierr.Internal(err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

// readBody reads a buffered request body of at most MaxJSONBody bytes.
func (s *Server) readBody(r *http.Request) ([]byte, *apierr.Error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, s.cfg.MaxJSONBody+1))
	if err != nil {
		return nil, apierr.InvalidArg("reading the request body: %v", err)
	}
	if int64(len(body)) > s.cfg.MaxJSONBody {
		return nil, apierr.New("RequestEntityTooLargeException", "request body exceeds %d bytes", s.cfg.MaxJSONBody)
	}
	return body, nil
}

// serveClipMeta checks the signature of a clip-metadata call (any method;
// its GETs carry a JSON body) and hands it on with the body restored.
func (s *Server) serveClipMeta(c *call) {
	c.log = s.log.With("op", "ClipMetadata", "request_id", c.requestID)
	body, err := s.readBody(c.r)
	if err != nil {
		s.writeError(c, err)
		return
	}
	if _, err := s.cfg.Verifier.Verify(c.r, body, false); err != nil {
		s.writeError(c, authError(err))
		return
	}
	c.r.Body = io.NopCloser(bytes.NewReader(body))
	s.cfg.ClipMeta.ServeHTTP(c.w, c.r)
}

// ClipSessionURL returns an HLS session URL that plays [beginMs, endMs] of a
// stream by producer time: what a clip-metadata GET answers.
func (s *Server) ClipSessionURL(ctx context.Context, r *http.Request, streamName string, beginMs, endMs int64) (string, error) {
	st, err := s.resolve(ctx, streamRef{StreamName: &streamName})
	if err != nil {
		return "", err
	}
	sess, err := s.cfg.Playback.NewSession(ctx, playback.Request{Stream: st, Kind: playback.HLS, Mode: playback.OnDemand,
		Selector: archive.ProducerTimestamp, StartMs: &beginMs, EndMs: &endMs})
	if err != nil {
		return "", err
	}
	return s.publicURL(r) + playback.HLSPrefix + "getHLSMasterPlaylist.m3u8?SessionToken=" + s.cfg.Playback.Keys.Token(sess), nil
}

// StreamExists reports whether the account has a live stream of that name.
func (s *Server) StreamExists(ctx context.Context, name string) (bool, error) {
	_, err := s.cfg.Archive.Index.StreamByName(ctx, s.cfg.Account, name)
	if errors.Is(err, archive.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

func authError(err error) *apierr.Error {
	var se *sigv4.Error
	if errors.As(err, &se) {
		if _, ok := apierr.Status[se.Code]; ok {
			return &apierr.Error{Type: se.Code, Status: http.StatusForbidden, Message: se.Message}
		}
		return &apierr.Error{Type: "InvalidSignatureException", Status: http.StatusForbidden, Message: se.Message}
	}
	return &apierr.Error{Type: "InternalFailure", Status: http.StatusInternalServerError, Message: err.Error()}
}

func (s *Server) writeError(c *call, e *apierr.Error) {
	level := slog.LevelInfo
	if e.Status >= 500 {
		level = slog.LevelError
	}
	c.log.Log(c.ctx, level, "request failed", "type", e.Type, "status", e.Status, "msg", e.Message)
	apierr.Write(c.w, e)
}
