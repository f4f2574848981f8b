package playback

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"

	"github.com/kinema/kinema/internal/apierr"
	"github.com/kinema/kinema/internal/stream"
)

// Clip sessions are Kinema's extension past GetClip's 100 MB / 200-fragment
// wall: a plain GET URL for an MP4 of any range, with HTTP Range requests
// (players seek, downloads resume) and a strong ETag. The token carries the
// stream and range like an HLS token does.

// ClipKind marks a clip session token.
const ClipKind Kind = 3

// ClipPrefix is where clip session URLs live.
const ClipPrefix = "/clip/v1/"

// ClipResource is the clip's file name under ClipPrefix.
const ClipResource = "getClip.mp4"

// NewClipSession checks a clip request and returns the session to sign.
func (p *Server) NewClipSession(ctx context.Context, req ClipRequest, expiresSec *int64) (*Session, error) {
	plan, err := p.planClip(ctx, req) // refuses empty or malformed ranges now, not at the first GET
	if err != nil {
		return nil, err
	}
	now := p.now()
	expires := int64(minExpires)
	if expiresSec != nil {
		if *expiresSec < minExpires || *expiresSec > maxExpires {
			return nil, apierr.InvalidArg("Expires must be %d to %d seconds; got %d", minExpires, maxExpires, *expiresSec)
		}
		expires = *expiresSec
	}
	s := &Session{Kind: ClipKind, StreamID: req.Stream.ID, StreamCreatedMs: req.Stream.Created.UnixMilli(), Mode: OnDemand,
		Selector: req.Selector, StartMs: req.StartMs, EndMs: req.EndMs, CreatedMs: now.UnixMilli(), ExpiresMs: now.UnixMilli() + expires*1000}
	p.plans.put(p.Keys.Token(s), plan)
	return s, nil
}

// planCache keeps recent clip plans: a player seeking sends many Range
// requests for one clip, and planning reads every fragment's sample table.
type planCache struct {
	mu    sync.Mutex
	order []string
	plans map[string]*clipPlan
}

const planCacheSize = 32

func (c *planCache) get(k string) *clipPlan {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.plans[k]
}

func (c *planCache) put(k string, p *clipPlan) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.plans == nil {
		c.plans = map[string]*clipPlan{}
	}
	if _, ok := c.plans[k]; !ok {
		c.order = append(c.order, k)
	}
	c.plans[k] = p
	for len(c.order) > planCacheSize {
		delete(c.plans, c.order[0])
		c.order = c.order[1:]
	}
}

// etagOf identifies the clip's bytes: the same fragments in the same layout
// give the same file.
func etagOf(plan *clipPlan) string {
	h := sha256.New()
	var b [8]byte
	for _, f := range plan.frags {
		binary.BigEndian.PutUint64(b[:], uint64(f.Number))
		h.Write(b[:])
		binary.BigEndian.PutUint64(b[:], uint64(f.SizeBytes))
		h.Write(b[:])
	}
	binary.BigEndian.PutUint64(b[:], uint64(plan.layout.Size()))
	h.Write(b[:])
	return `"` + hex.EncodeToString(h.Sum(nil)[:16]) + `"`
}

// serveClip answers GET/HEAD of a clip session URL, honouring one Range.
func (p *Server) serveClip(w http.ResponseWriter, r *http.Request, token string, s *Session, st *stream.Stream) {
	ctx := r.Context()
	plan := p.plans.get(token)
	if plan == nil {
		var err error
		if plan, err = p.planClip(ctx, ClipRequest{Stream: st, Selector: s.Selector, StartMs: s.StartMs, EndMs: s.EndMs}); err != nil {
			apierr.Write(w, apierr.As(err))
			return
		}
		p.plans.put(token, plan)
	}
	size := plan.layout.Size()
	etag := plan.etag
	h := w.Header()
	h.Set("Accept-Ranges", "bytes")
	h.Set("ETag", etag)
	h.Set("Content-Type", mp4Type)
	from, to := int64(0), size
	status := http.StatusOK
	if rng := r.Header.Get("Range"); rng != "" && (r.Header.Get("If-Range") == "" || r.Header.Get("If-Range") == etag) {
		a, b, ok := parseRange(rng, size)
		if !ok {
			h.Set("Content-Range", fmt.Sprintf("bytes */%d", size))
			apierr.Write(w, &apierr.Error{Type: "InvalidArgumentException", Status: http.StatusRequestedRangeNotSatisfiable,
				Message: fmt.Sprintf("range %q is not satisfiable for %d bytes", rng, size)})
			return
		}
		from, to, status = a, b, http.StatusPartialContent
		h.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", from, to-1, size))
	}
	h.Set("Content-Length", strconv.FormatInt(to-from, 10))
	w.WriteHeader(status)
	if r.Method == http.MethodHead {
		return
	}
	err := plan.layout.WriteRange(w, from, to, p.clipPayload(ctx, plan))
	if err != nil && ctx.Err() == nil {
		p.Log.Warn("clip download ended early", "stream", st.Name, "err", err)
	}
}

// parseRange reads a single "bytes=a-b", "bytes=a-" or "bytes=-n" range into
// [from, to). Multiple ranges are not served (players do not send them).
func parseRange(v string, size int64) (int64, int64, bool) {
	spec, ok := strings.CutPrefix(v, "bytes=")
	if !ok || strings.Contains(spec, ",") {
		return 0, 0, false
	}
	a, b, ok := strings.Cut(spec, "-")
	if !ok {
		return 0, 0, false
	}
	if a == "" {
		n, err := strconv.ParseInt(b, 10, 64)
		if err != nil || n <= 0 {
			return 0, 0, false
		}
		return max(0, size-n), size, true
	}
	from, err := strconv.ParseInt(a, 10, 64)
	if err != nil || from < 0 || from >= size {
		return 0, 0, false
	}
	to := size
	if b != "" {
		last, err := strconv.ParseInt(b, 10, 64)
		if err != nil || last < from {
			return 0, 0, false
		}
		to = min(last+1, size)
	}
	return from, to, true
}
