// Package kvsapi is Kinema's KVS-compatible HTTP surface: every route in one
// table (routes.go), every error type in one table (errors.go), SigV4 on
// every call, and one file per group of operations. Handlers translate
// between the wire shapes and the archive and ingest packages; they hold no
// storage logic of their own.
package kvsapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/kinema/kinema/internal/admin"
	"github.com/kinema/kinema/internal/apierr"
	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/clipmeta"
	"github.com/kinema/kinema/internal/iam"
	"github.com/kinema/kinema/internal/images"
	"github.com/kinema/kinema/internal/ingest"
	"github.com/kinema/kinema/internal/limits"
	"github.com/kinema/kinema/internal/memo"
	"github.com/kinema/kinema/internal/metrics"
	"github.com/kinema/kinema/internal/notify"
	"github.com/kinema/kinema/internal/outbox"
	"github.com/kinema/kinema/internal/playback"
	"github.com/kinema/kinema/internal/sigv4"
)

// Config wires a Server.
type Config struct {
	Archive  *archive.Archive
	Ingest   *ingest.Service
	Playback *playback.Server
	// Images serves GetImages (and the time-lapse extension).
	Images *images.Service
	// ClipMeta serves the device clip-metadata API (clipmeta.Path); it is
	// called after the signature check, with the body restored.
	ClipMeta http.Handler
	Janitor  *archive.Janitor
	// Notify delivers notifications; the notification and events
	// operations use its configuration and redrive through it.
	Notify *notify.Notifier
	// ImageGeneration makes images of tagged fragments; RedriveEvents of
	// kind IMAGE_GENERATION needs it.
	ImageGeneration *outbox.Worker
	Verifier        *sigv4.Verifier
	// IAM authenticates callers and authorizes every operation.
	IAM *iam.Service
	// Admin runs the admin API (admin.PathPrefix); nil disables it.
	Admin *admin.Handler
	// Limits throttles callers and streams; nil means no limits.
	Limits *limits.Limiter
	// Account is the default account: the root key's, and the one streams
	// made before accounts existed belong to.
	Account string
	// Region pins the region in ARNs and signatures; "" means the region a
	// stream is created from is the one its ARN carries.
	Region string
	// PublicURL is what GetDataEndpoint returns (scheme://host[:port], no
	// trailing slash); when empty it is derived from the request.
	PublicURL string
	// IngestOwners, where several nodes share the archive, says which node
	// ingests a stream: GetDataEndpoint for PUT_MEDIA names that node, so
	// a producer that reconnects lands where its stream's connection is
	// held. Nil: this node is alone.
	IngestOwners IngestOwners
	// MaxJSONBody bounds request bodies of JSON operations. Default 1 MiB.
	MaxJSONBody int64
	// MaxStreamsPerAccount bounds each account's live streams
	// (AccountStreamLimitExceededException past it); 0 means no bound.
	MaxStreamsPerAccount int
	// GetMediaIdle ends a GetMedia response after this long without a new
	// fragment once it has caught up. Default 3 s.
	GetMediaIdle time.Duration
	Logger       *slog.Logger
	// Metrics counts every routed operation; Readers the GetMedia
	// connections. Nil: not counted.
	Metrics *metrics.API
	Readers *metrics.Readers
}

// IngestOwners finds the live node that ingests a stream.
type IngestOwners interface {
	IngestOwner(ctx context.Context, streamID int64) (url string, ok bool, err error)
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
	// status and errType are what writeError answered (0 and "": success).
	status  int
	errType string
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

// ServeHTTP routes by path (the producer SDK sends no X-Amz-Target), checks
// the signature, the caller's limits and its permission, and runs the
// operation.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c := &call{ctx: r.Context(), r: r, w: w, requestID: apierr.NewRequestID()}
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
	start := time.Now()
	defer func() { s.cfg.Metrics.Request(rt.op, c.status, c.errType, time.Since(start), rt.long) }()
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
	denyType := "NotAuthorizedException"
	if rt.accessDenied {
		denyType = "AccessDeniedException"
	}
	release, err := s.authenticate(c, rt.action, denyType, rt.streaming, rt.long)
	if err != nil {
		s.writeError(c, apierr.As(err))
		return
	}
	defer release()
	if rt.noResource {
		if err := s.authorize(c.ctx, "*", nil); err != nil {
			s.writeError(c, apierr.As(err))
			return
		}
	}
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
	c.w.Header().Set("Content-Type", "application/json")
	c.w.Write(b)
}

// authenticate verifies the caller, applies its per-key limits and puts the
// authorization state for action into the call's context; from here on,
// c.w refuses unauthorized successes. release ends the call's hold on the
// key's connection limit. streaming: the body is not buffered (its hash is
// not checked); long: the request holds one of the key's connections.
func (s *Server) authenticate(c *call, action, denyType string, streaming, long bool) (release func(), err error) {
	p, err := s.cfg.IAM.Authenticate(c.r, s.cfg.Verifier, c.body, streaming)
	if err != nil {
		var sampler iam.Sampler
		if s.cfg.Limits != nil {
			sampler = s.cfg.Limits
		}
		s.cfg.IAM.AuditAuthFailure(c.r, c.requestID, action, err, sampler)
		return nil, authError(err)
	}
	c.ident = sigv4.Identity{AccessKeyID: p.AccessKeyID, Region: p.Region}
	release = func() {}
	// The root key is exempt from the per-key limits: with zero set-up a
	// whole fleet shares it (as `kinema bench` does), and the operator is
	// not whom they protect against. Per-stream limits still apply.
	if s.cfg.Limits != nil && !(p.Root() && !p.Session) {
		if release, err = s.cfg.Limits.Key(p.AccessKeyID, long); err != nil {
			return nil, limitError(err)
		}
	}
	a := &authz{p: p, action: action, denyType: denyType, requestID: c.requestID,
		sourceIP: iam.SourceIP(c.r), secure: c.r.TLS != nil}
	c.ctx = context.WithValue(c.ctx, authzKey{}, a)
	c.r = c.r.WithContext(c.ctx)
	c.w = &guardWriter{ResponseWriter: c.w, a: a, s: s}
	c.log = c.log.With("principal", p.ARN())
	return release, nil
}

// limitError maps a limits refusal to its KVS error.
func limitError(err error) *apierr.Error {
	switch {
	case errors.Is(err, limits.ErrConnections):
		return apierr.New("ConnectionLimitExceededException", "%v", err)
	case errors.Is(err, limits.ErrRate):
		return apierr.New("ClientLimitExceededException", "%v", err)
	}
	return apierr.As(err)
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

// clipMetaOps are the clip-metadata API's operations by method (LIST is GET
// on Path+"/clips"), with their actions. PUT and GET name a stream and are
// authorized on it when the handler looks the stream up (StreamExists,
// ClipSessionURL); DELETE and LIST name none and are authorized on "*".
var clipMetaOps = map[string]struct {
	name, action string
	stream       bool
}{
	http.MethodPut:    {"PutClipMetadata", ActionPrefix + "PutClipMetadata", true},
	http.MethodGet:    {"GetClipMetadata", ActionPrefix + "GetClipMetadata", true},
	http.MethodDelete: {"DeleteClipMetadata", ActionPrefix + "DeleteClipMetadata", false},
	"LIST":            {"ListClipMetadata", ActionPrefix + "ListClipMetadata", false},
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
	c.body = body
	method := c.r.Method
	if c.r.URL.Path == clipmeta.Path+"/clips" && method == http.MethodGet {
		method = "LIST"
	}
	op, known := clipMetaOps[method]
	if !known {
		// The handler answers unknown methods; an action nobody can be
		// granted keeps the guard closed.
		op.action = ActionPrefix + "UnknownClipMetadataOperation"
	}
	release, aerr := s.authenticate(c, op.action, "AccessDeniedException", false, false)
	if aerr != nil {
		s.writeError(c, apierr.As(aerr))
		return
	}
	defer release()
	if known && !op.stream {
		if err := s.authorize(c.ctx, "*", nil); err != nil {
			s.writeError(c, apierr.As(err))
			return
		}
	}
	c.r.Body = io.NopCloser(bytes.NewReader(body))
	s.cfg.ClipMeta.ServeHTTP(c.w, c.r)
}

// ClipSessionURL returns an HLS session URL that plays [beginMs, endMs] of a
// stream by producer time: what a clip-metadata GET answers.
//
// It runs inside a clip-metadata request, whose context carries the
// caller, and authorizes the request's action on the stream.
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

// ClipNamespace is the caller's clip-metadata namespace: "" for the default
// account (whose records predate accounts), "ACCOUNT/" for the others, so
// each account's clientIDs are its own.
func (s *Server) ClipNamespace(ctx context.Context) string {
	if acct := s.account(ctx); acct != s.cfg.Account {
		return acct + "/"
	}
	return ""
}

// StreamExists reports whether the caller's account has a live stream of
// that name, after authorizing the request's action on it: it runs inside a
// clip-metadata request, whose context carries the caller.
func (s *Server) StreamExists(ctx context.Context, name string) (bool, error) {
	st, err := s.cfg.Archive.Index.StreamByName(ctx, s.account(ctx), name)
	if errors.Is(err, archive.ErrNotFound) {
		st, err = nil, nil
	}
	if err != nil {
		return false, err
	}
	if err := s.authorizeStream(ctx, st, name); err != nil {
		return false, err
	}
	return st != nil, nil
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
	c.status, c.errType = e.Status, e.Type
	apierr.Write(c.w, e)
}
