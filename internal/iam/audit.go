package iam

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/kinema/kinema/internal/sigv4"
)

// AuditFile is the audit log's file in the data dir.
const AuditFile = "audit.log"

// AuditEvent is one line of the audit log: an admin action (kind "admin")
// or a refused request (kind "deny").
type AuditEvent struct {
	Time        time.Time `json:"time"`
	Kind        string    `json:"kind"`
	RequestID   string    `json:"requestId,omitempty"`
	Principal   string    `json:"principal,omitempty"`
	AccessKeyID string    `json:"accessKeyId,omitempty"`
	Action      string    `json:"action"`
	Resource    string    `json:"resource,omitempty"`
	SourceIP    string    `json:"sourceIp,omitempty"`
	Result      string    `json:"result"`
	Detail      string    `json:"detail,omitempty"`
}

// Audit appends events as JSON lines to a file and to the server log. A
// nil *Audit records nothing.
type Audit struct {
	mu  sync.Mutex
	w   io.WriteCloser
	log *slog.Logger
}

// OpenAudit opens (appending) the audit log at path.
func OpenAudit(path string, log *slog.Logger) (*Audit, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Audit{w: f, log: log}, nil
}

// Record appends one event. Failing to write the audit log is logged, not
// returned: refusing service because the log disk is full would turn a
// logging problem into an outage, and the server log still has the event.
func (a *Audit) Record(ev AuditEvent) {
	if a == nil {
		return
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	b, _ := json.Marshal(ev)
	b = append(b, '\n')
	a.mu.Lock()
	_, err := a.w.Write(b)
	a.mu.Unlock()
	level := slog.LevelInfo
	if ev.Kind == "deny" {
		level = slog.LevelWarn
	}
	a.log.Log(context.Background(), level, "audit", "kind", ev.Kind, "principal", ev.Principal, "action", ev.Action,
		"resource", ev.Resource, "result", ev.Result, "request_id", ev.RequestID)
	if err != nil {
		a.log.Error("audit log write failed", "err", err)
	}
}

// Close closes the file.
func (a *Audit) Close() error {
	if a == nil {
		return nil
	}
	return a.w.Close()
}

// Sampler bounds how often an event of a key may be recorded
// (limits.Limiter implements it).
type Sampler interface {
	Sample(key string, perSecond float64) bool
}

// AuditAuthFailure records a refused signature, key or token (err from
// Authenticate) in the audit log, sampled per client address at 5 records
// a second (when sampler is not nil) so that a flood of forged requests
// cannot fill the disk. Requests with no signature at all are not
// recorded: they are noise, not attempts; nor are server-side failures.
func (s *Service) AuditAuthFailure(r *http.Request, requestID, action string, err error, sampler Sampler) {
	var se *sigv4.Error
	if !errors.As(err, &se) || se.Code == sigv4.CodeMissingAuthenticationToken {
		return
	}
	ip := SourceIP(r).String()
	if sampler != nil && !sampler.Sample("auth-failure:"+ip, 5) {
		return
	}
	msg, _, _ := strings.Cut(se.Message, "\n")
	s.Audit().Record(AuditEvent{Kind: "deny", RequestID: requestID, Action: action, SourceIP: ip, Result: se.Code, Detail: msg})
}
