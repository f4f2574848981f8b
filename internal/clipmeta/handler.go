package clipmeta

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/kinema/kinema/internal/apierr"
	"github.com/kinema/kinema/internal/archive"
)

// Handler serves PUT, GET and DELETE on Path and GET on Path+"/clips".
// Requests reach it already authenticated.
type Handler struct {
	Store Store
	// StreamExists reports whether a live stream has this name. PUT and GET
	// refuse clips of streams that do not exist. Nil skips the check. An
	// *apierr.Error it returns (the caller may not touch the stream) reaches
	// the caller as is.
	StreamExists func(ctx context.Context, name string) (bool, error)
	// SessionURL returns an HLS session URL that plays [beginMs, endMs] of
	// the stream by producer time (ON_DEMAND). An *apierr.Error it returns
	// reaches the caller as is; archive.ErrNotFound becomes a
	// ResourceNotFoundException, anything else an InternalFailure.
	SessionURL func(ctx context.Context, r *http.Request, streamName string, beginMs, endMs int64) (string, error)
	// Namespace returns the caller's namespace ("" or a string ending in
	// '/'): each account's clientIDs are its own. Nil means "".
	Namespace func(ctx context.Context) string
	Logger    *slog.Logger
}

// clipOut is a clip on the wire: the field names and string-valued times
// of the PUT body, so a listed record can be sent back as is.
type clipOut struct {
	ClipID      string `json:"clipID"`
	ClientID    string `json:"clientID"`
	DeviceID    string `json:"deviceID"`
	StreamName  string `json:"streamName"`
	BegTime     string `json:"begTime"`
	EndTime     string `json:"endTime"`
	Duration    string `json:"duration"`
	CreatedTime string `json:"createdTime"`
}

func toWire(c *Clip, ns string) clipOut {
	return clipOut{ClipID: c.ID, ClientID: strings.TrimPrefix(c.ClientID, ns), DeviceID: c.DeviceID, StreamName: c.StreamName,
		BegTime: strconv.FormatInt(c.BeginMs, 10), EndTime: strconv.FormatInt(c.EndMs, 10),
		Duration:    strconv.FormatFloat(c.DurationSec, 'f', -1, 64),
		CreatedTime: strconv.FormatInt(c.CreatedMs, 10)}
}

// ServeHTTP routes by path and method.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var op string
	switch r.URL.Path {
	case Path:
		switch r.Method {
		case http.MethodPut, http.MethodGet, http.MethodDelete:
			op = r.Method
		default:
			w.Header().Set("Allow", "GET, PUT, DELETE")
			h.fail(w, r, apierr.New("MethodNotAllowedException", "%s takes GET, PUT or DELETE, not %s", Path, r.Method))
			return
		}
	case Path + "/clips":
		if r.Method != http.MethodGet {
			w.Header().Set("Allow", "GET")
			h.fail(w, r, apierr.New("MethodNotAllowedException", "%s/clips takes GET, not %s", Path, r.Method))
			return
		}
		op = "LIST"
	default:
		h.fail(w, r, apierr.New("UnknownOperationException", "no operation at %s %s", r.Method, r.URL.Path))
		return
	}
	var body []byte
	if r.Body != nil {
		b, err := io.ReadAll(io.LimitReader(r.Body, MaxBodyBytes+1))
		if err != nil {
			h.fail(w, r, apierr.InvalidArg("reading the request body: %v", err))
			return
		}
		if len(b) > MaxBodyBytes {
			h.fail(w, r, apierr.New("RequestEntityTooLargeException", "the request body exceeds %d bytes", MaxBodyBytes))
			return
		}
		body = b
	}
	ns := ""
	if h.Namespace != nil {
		ns = h.Namespace(r.Context())
	}
	req, perr := parseRequest(op, ns, r.URL.RawQuery, body)
	if perr != nil {
		h.fail(w, r, perr)
		return
	}
	var out any
	var err error
	switch req := req.(type) {
	case *Clip:
		out, err = h.put(r.Context(), req, ns)
	case *getRequest:
		out, err = h.get(r, req, ns)
	case deleteRequest:
		out, err = h.delete(r.Context(), req, ns)
	case *listRequest:
		out, err = h.list(r.Context(), req, ns)
	}
	if err != nil {
		h.fail(w, r, apierr.As(err))
		return
	}
	b, err := marshal(out)
	if err != nil {
		h.fail(w, r, apierr.Internal(err))
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

// marshal writes JSON without HTML escaping: a session URL's & must reach
// clients that strip the quotes by hand as &, not \u0026.
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func (h *Handler) checkStream(ctx context.Context, name string) error {
	if h.StreamExists == nil {
		return nil
	}
	ok, err := h.StreamExists(ctx, name)
	if err != nil {
		// An *apierr.Error (a refused authorization) reaches the caller
		// as is.
		return apierr.As(err)
	}
	if !ok {
		return apierr.InvalidArg("stream %s does not exist", name)
	}
	return nil
}

func (h *Handler) put(ctx context.Context, c *Clip, ns string) (any, error) {
	if err := h.checkStream(ctx, c.StreamName); err != nil {
		return nil, err
	}
	c.CreatedMs = time.Now().UnixMilli()
	if err := h.Store.PutClip(ctx, c); err != nil {
		return nil, apierr.Internal(err)
	}
	return toWire(c, ns), nil
}

func (h *Handler) get(r *http.Request, g *getRequest, ns string) (any, error) {
	ctx := r.Context()
	if err := h.checkStream(ctx, g.StreamName); err != nil {
		return nil, err
	}
	c, err := h.Store.GetClip(ctx, g.ClientID, g.StreamName, g.BeginMs, g.EndMs)
	if errors.Is(err, archive.ErrNotFound) {
		return nil, apierr.NotFound("clientID %s has no clip of stream %s from begTime %d to endTime %d",
			strings.TrimPrefix(g.ClientID, ns), g.StreamName, g.BeginMs, g.EndMs)
	}
	if err != nil {
		return nil, apierr.Internal(err)
	}
	if h.SessionURL == nil {
		return nil, apierr.Internal(errors.New("HLS playback is not configured"))
	}
	u, err := h.SessionURL(ctx, r, c.StreamName, c.BeginMs, c.EndMs)
	var ae *apierr.Error
	switch {
	case errors.As(err, &ae):
		return nil, ae
	case errors.Is(err, archive.ErrNotFound):
		return nil, apierr.NotFound("stream %s has no media from begTime %d to endTime %d", c.StreamName, c.BeginMs, c.EndMs)
	case err != nil:
		return nil, apierr.Internal(err)
	}
	return u, nil
}

func (h *Handler) delete(ctx context.Context, d deleteRequest, ns string) (any, error) {
	err := h.Store.DeleteClip(ctx, d.ClientID, d.ID)
	if errors.Is(err, archive.ErrNotFound) {
		return nil, apierr.NotFound("clientID %s has no clip %s", strings.TrimPrefix(d.ClientID, ns), d.ID)
	}
	if err != nil {
		return nil, apierr.Internal(err)
	}
	return struct {
		ClipID string `json:"clipID"`
	}{d.ID}, nil
}

func (h *Handler) list(ctx context.Context, l *listRequest, ns string) (any, error) {
	clips, err := h.Store.ListClips(ctx, l.Query)
	if err != nil {
		return nil, apierr.Internal(err)
	}
	out := struct {
		Clips     []clipOut `json:"Clips"`
		NextToken string    `json:"NextToken,omitempty"`
	}{Clips: []clipOut{}}
	for i := range clips {
		if i == l.Max {
			last := &clips[i-1]
			out.NextToken = encodeToken(&l.Query, last.BeginMs, last.ID)
			break
		}
		out.Clips = append(out.Clips, toWire(&clips[i], ns))
	}
	return out, nil
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, e *apierr.Error) {
	log := h.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	level := slog.LevelInfo
	if e.Status >= 500 {
		level = slog.LevelError
	}
	log.Log(r.Context(), level, "clip metadata request failed", "method", r.Method, "path", r.URL.Path,
		"type", e.Type, "status", e.Status, "msg", e.Message)
	apierr.Write(w, e)
}
