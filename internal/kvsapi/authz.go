package kvsapi

import (
	"context"
	"errors"
	"net/http"
	"net/netip"

	"github.com/kinema/kinema/internal/admin"
	"github.com/kinema/kinema/internal/apierr"
	"github.com/kinema/kinema/internal/iam"
	"github.com/kinema/kinema/internal/stream"
)

// How every operation is authorized
//
// Each route names its IAM action (route.action) and how its resource is
// found. For operations on a stream, the resource is the stream's ARN and it
// is authorized inside resolve, the one function every handler finds its
// stream with, because only then are the stream's ARN and tags (for
// aws:ResourceTag conditions) known; an operation on no resource
// (ListStreams) is authorized with Resource "*" before its handler runs.
// Either way exactly one action is checked per request, and guardWriter
// refuses to send a success that was never authorized, so a handler that
// forgets cannot leak.

// authz is one request's authorization state, carried in its context so
// that resolve, and the clip-metadata callbacks that reach this server
// with only a context, can authorize and find the caller's account.
type authz struct {
	p         *iam.Principal
	action    string
	denyType  string
	requestID string
	sourceIP  netip.Addr
	secure    bool
	done      bool
}

type authzKey struct{}

func authzFrom(ctx context.Context) *authz {
	a, _ := ctx.Value(authzKey{}).(*authz)
	return a
}

// account is the caller's account: the namespace its streams live in.
func (s *Server) account(ctx context.Context) string {
	if a := authzFrom(ctx); a != nil && a.p != nil {
		return a.p.Account
	}
	return s.cfg.Account
}

// authorize checks the request's action on resource. tags is called only
// if a policy conditions on the resource's tags.
func (s *Server) authorize(ctx context.Context, resource string, tags func() map[string]string) error {
	a := authzFrom(ctx)
	if a == nil || a.p == nil {
		// A request that reached a handler without authentication is a
		// wiring bug; fail closed.
		return apierr.New("AccessDeniedException", "the request was not authenticated")
	}
	req := &iam.Request{Action: a.action, Resource: resource, Tags: tags, SourceIP: a.sourceIP, Secure: a.secure}
	if err := s.cfg.IAM.Check(a.p, req, a.requestID); err != nil {
		var d *iam.Denied
		if errors.As(err, &d) {
			return apierr.New(a.denyType, "%s", d.Error())
		}
		return apierr.Internal(err)
	}
	a.done = true
	return nil
}

// authorizeStream authorizes the action on a stream (st may be nil for a
// stream that does not exist: the ARN is then made from the name, so a
// caller learns nothing about streams it may not touch).
func (s *Server) authorizeStream(ctx context.Context, st *stream.Stream, name string) error {
	if st == nil {
		return s.authorize(ctx, "arn:aws:kinesisvideo:"+s.regionFor(ctx)+":"+s.account(ctx)+":stream/"+name+"/*", nil)
	}
	return s.authorize(ctx, st.ARN(), func() map[string]string {
		tags, err := s.cfg.Archive.Index.StreamTags(ctx, st.ID)
		if err != nil {
			s.log.Warn("stream tags for a policy condition", "stream", st.Name, "err", err)
			return nil
		}
		return tags
	})
}

// requireRoot refuses every caller but the operator: for calls that span
// every account (events of all streams).
func (s *Server) requireRoot(ctx context.Context, what string) error {
	a := authzFrom(ctx)
	if a == nil || a.p == nil || !a.p.Root() {
		return apierr.New("AccessDeniedException", "%s without a stream spans every account; only the server's root key may do it", what)
	}
	return s.authorize(ctx, "*", nil)
}

func (s *Server) regionFor(ctx context.Context) string {
	if s.cfg.Region != "" {
		return s.cfg.Region
	}
	if a := authzFrom(ctx); a != nil && a.p != nil && a.p.Region != "" {
		return a.p.Region
	}
	return "us-east-1"
}

// guardWriter refuses to send a successful response for a request whose
// action was never authorized: the answer becomes a 500 and the bug is
// logged, instead of data leaving unchecked.
type guardWriter struct {
	http.ResponseWriter
	a       *authz
	s       *Server
	blocked bool
	wrote   bool
}

func (g *guardWriter) WriteHeader(code int) {
	if g.wrote {
		return
	}
	g.wrote = true
	if code < 400 && !g.a.done {
		g.blocked = true
		g.s.log.Error("BUG: an operation answered without authorizing its action", "action", g.a.action, "request_id", g.a.requestID)
		apierr.Write(g.ResponseWriter, apierr.New("InternalFailure", "the operation was not authorized"))
		return
	}
	g.ResponseWriter.WriteHeader(code)
}

func (g *guardWriter) Write(b []byte) (int, error) {
	if !g.wrote {
		g.WriteHeader(http.StatusOK)
	}
	if g.blocked {
		return 0, errors.New("kvsapi: response blocked: not authorized")
	}
	return g.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (full duplex,
// flushes, deadlines).
func (g *guardWriter) Unwrap() http.ResponseWriter { return g.ResponseWriter }

// Flush passes flushes on once the headers went out authorized.
func (g *guardWriter) Flush() {
	if !g.wrote {
		g.WriteHeader(http.StatusOK)
	}
	if f, ok := g.ResponseWriter.(http.Flusher); ok && !g.blocked {
		f.Flush()
	}
}

// runAdmin runs an admin operation and records it in the audit log
// (refusals are recorded by the IAM check itself).
func (s *Server) runAdmin(c *call, op admin.Op) (any, error) {
	if s.cfg.Admin == nil {
		return nil, apierr.New("ServiceUnavailableException", "the admin API is not enabled on this server")
	}
	a := authzFrom(c.ctx)
	var resource string
	out, err := op.Run(s.cfg.Admin, &admin.Call{Ctx: c.ctx, Principal: a.p, Body: c.body,
		Authorize: func(res string) error { resource = res; return s.authorize(c.ctx, res, nil) }})
	var d *iam.Denied
	if errors.As(err, &d) || !a.done {
		// Refused, or failed before its check: the IAM check logged
		// refusals; a malformed request is no admin action.
		return out, err
	}
	result := "ok"
	if err != nil {
		result = apierr.As(err).Type
	}
	s.cfg.IAM.Audit().Record(iam.AuditEvent{Kind: "admin", RequestID: c.requestID, Principal: a.p.ARN(),
		AccessKeyID: a.p.AccessKeyID, Action: op.Action, Resource: resource, SourceIP: a.sourceIP.String(),
		Result: result, Detail: admin.Describe(c.body)})
	return out, err
}
