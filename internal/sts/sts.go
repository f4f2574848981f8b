// Package sts is Kinema's STS-compatible endpoint: the AWS query protocol
// (form-encoded POST to /, SigV4 for service "sts", XML answers) for
// GetSessionToken, AssumeRole and GetCallerIdentity, so that
// `aws sts get-session-token --endpoint-url ...` and every SDK's STS client
// obtain temporary credentials from Kinema. It owns only the wire format
// and the rules of each operation; sessions are minted and checked by iam.
package sts

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"

	"github.com/kinema/kinema/internal/apierr"
	"github.com/kinema/kinema/internal/iam"
	"github.com/kinema/kinema/internal/limits"
	"github.com/kinema/kinema/internal/sigv4"
)

const xmlns = "https://sts.amazonaws.com/doc/2011-06-15/"

// maxBody bounds a request: the largest is AssumeRole with a 2,048-byte
// session policy, URL-encoded.
const maxBody = 16 << 10

// Handler serves the STS operations.
type Handler struct {
	IAM      *iam.Service
	Verifier *sigv4.Verifier // Service "sts"
	Limits   *limits.Limiter // nil: no limits
	Logger   *slog.Logger
}

// IsSTS reports whether r is an STS query-protocol request: a POST to /.
// (KVS operations all have their own paths.)
func IsSTS(r *http.Request) bool {
	return r.URL.Path == "/" && r.Method == http.MethodPost
}

type credentialsXML struct {
	AccessKeyID     string `xml:"AccessKeyId"`
	SecretAccessKey string `xml:"SecretAccessKey"`
	SessionToken    string `xml:"SessionToken"`
	Expiration      string `xml:"Expiration"`
}

type assumedRoleUser struct {
	Arn           string `xml:"Arn"`
	AssumedRoleID string `xml:"AssumedRoleId"`
}

type result struct {
	Credentials     *credentialsXML  `xml:"Credentials,omitempty"`
	AssumedRoleUser *assumedRoleUser `xml:"AssumedRoleUser,omitempty"`
	Arn             string           `xml:"Arn,omitempty"`
	UserID          string           `xml:"UserId,omitempty"`
	Account         string           `xml:"Account,omitempty"`
}

// Error is an STS error: Code as STS names it, with its HTTP status.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func fail(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reqID := apierr.NewRequestID()
	w.Header().Set("x-amzn-RequestId", reqID)
	out, action, err := h.serve(r, reqID)
	if err != nil {
		h.writeError(w, reqID, err)
		return
	}
	var b strings.Builder
	b.WriteString(xml.Header)
	enc := xml.NewEncoder(&b)
	start := xml.StartElement{Name: xml.Name{Local: action + "Response"}, Attr: []xml.Attr{{Name: xml.Name{Local: "xmlns"}, Value: xmlns}}}
	enc.EncodeToken(start)
	enc.EncodeElement(out, xml.StartElement{Name: xml.Name{Local: action + "Result"}})
	enc.EncodeElement(reqID, xml.StartElement{Name: xml.Name{Local: "ResponseMetadata"}})
	enc.EncodeToken(start.End())
	enc.Flush()
	// ResponseMetadata holds RequestId: re-wrap the plain element.
	body := strings.Replace(b.String(), "<ResponseMetadata>"+reqID+"</ResponseMetadata>",
		"<ResponseMetadata><RequestId>"+reqID+"</RequestId></ResponseMetadata>", 1)
	w.Header().Set("Content-Type", "text/xml")
	io.WriteString(w, body)
}

func (h *Handler) serve(r *http.Request, reqID string) (*result, string, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		return nil, "", fail(400, "InvalidInput", "reading the request body: %v", err)
	}
	if len(body) > maxBody {
		return nil, "", fail(413, "RequestEntityTooLarge", "the request body exceeds %d bytes", maxBody)
	}
	form, err := url.ParseQuery(string(body))
	if err != nil {
		return nil, "", fail(400, "MalformedQueryString", "the request body is not form-encoded: %v", err)
	}
	action := form.Get("Action")
	switch action {
	case "GetSessionToken", "AssumeRole", "GetCallerIdentity":
	case "":
		return nil, "", fail(400, "MissingAction", "the Action parameter is required")
	default:
		return nil, "", fail(400, "InvalidAction", "Could not find operation %s for version 2011-06-15", action)
	}
	p, err := h.IAM.Authenticate(r, h.Verifier, body, false)
	if err != nil {
		var sampler iam.Sampler
		if h.Limits != nil {
			sampler = h.Limits
		}
		h.IAM.AuditAuthFailure(r, reqID, "sts:"+action, err, sampler)
		return nil, action, err
	}
	if h.Limits != nil {
		release, err := h.Limits.Key(p.AccessKeyID, false)
		if err != nil {
			return nil, action, fail(400, "Throttling", "Rate exceeded")
		}
		release()
	}
	switch action {
	case "GetCallerIdentity":
		// Like STS, it needs no permission: it tells callers who they are.
		return &result{Arn: p.ARN(), UserID: userID(p), Account: p.Account}, action, nil
	case "GetSessionToken":
		if p.Session {
			return nil, action, fail(403, "AccessDenied", "Cannot call GetSessionToken with session credentials")
		}
		d, err := iam.ParseDurationSeconds(form.Get("DurationSeconds"), 43200, 900, 129600)
		if err != nil {
			return nil, action, err
		}
		creds, _, err := h.IAM.IssueSession(iam.SessionSpec{From: p, Duration: d})
		if err != nil {
			return nil, action, err
		}
		return &result{Credentials: credsXML(creds)}, action, nil
	default:
		return h.assumeRole(r, p, form, reqID)
	}
}

func (h *Handler) assumeRole(r *http.Request, p *iam.Principal, form url.Values, reqID string) (*result, string, error) {
	const action = "AssumeRole"
	arn, session := form.Get("RoleArn"), form.Get("RoleSessionName")
	if arn == "" || session == "" {
		return nil, action, fail(400, "ValidationError", "RoleArn and RoleSessionName are required")
	}
	if len(session) < 2 || len(session) > 64 || strings.Trim(session, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+=,.@-_") != "" {
		return nil, action, fail(400, "ValidationError", "RoleSessionName must be 2 to 64 characters of letters, digits and +=,.@-_")
	}
	if len(form.Get("Policy")) > 2048 {
		return nil, action, fail(400, "PackedPolicyTooLarge", "the session policy exceeds 2048 characters")
	}
	// The caller needs sts:AssumeRole on the role, checked before
	// anything about the role is revealed.
	req := &iam.Request{Action: "sts:AssumeRole", Resource: arn, SourceIP: iam.SourceIP(r), Secure: r.TLS != nil}
	if err := h.IAM.Check(p, req, reqID); err != nil {
		return nil, action, err
	}
	acct, name, ok := iam.ParseRoleARN(arn)
	role, found := h.IAM.Role(acct, name)
	if !ok || !found || !p.SameAccount(acct) || !role.Trusts(p.ARN()) {
		return nil, action, fail(403, "AccessDenied", "User: %s is not authorized to perform: sts:AssumeRole on resource: %s", p.ARN(), arn)
	}
	maxS := role.MaxSessionSeconds
	if maxS == 0 {
		maxS = 3600
	}
	d, err := iam.ParseDurationSeconds(form.Get("DurationSeconds"), 3600, 900, maxS)
	if err != nil {
		return nil, action, err
	}
	creds, sp, err := h.IAM.IssueSession(iam.SessionSpec{From: p, Role: role, Name: session, Policy: form.Get("Policy"), Duration: d})
	if err != nil {
		var ae *apierr.Error
		if errors.As(err, &ae) && ae.Status == 400 {
			return nil, action, fail(400, "MalformedPolicyDocument", "%s", ae.Message)
		}
		return nil, action, err
	}
	h.IAM.Audit().Record(iam.AuditEvent{Kind: "admin", RequestID: reqID, Principal: p.ARN(), AccessKeyID: p.AccessKeyID,
		Action: "sts:AssumeRole", Resource: arn, Result: "ok", Detail: "session=" + session})
	return &result{Credentials: credsXML(creds), AssumedRoleUser: &assumedRoleUser{Arn: sp.ARN(), AssumedRoleID: "AROA" + strings.ToUpper(role.Name) + ":" + session}}, action, nil
}

func userID(p *iam.Principal) string {
	switch p.Kind {
	case iam.KindRoot:
		return p.Account
	case iam.KindRole:
		return "AROA" + strings.ToUpper(p.Name) + ":" + p.SessionName
	}
	return p.AccessKeyID
}

func credsXML(c *iam.Credentials) *credentialsXML {
	return &credentialsXML{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, SessionToken: c.SessionToken,
		Expiration: c.Expiration.UTC().Format("2006-01-02T15:04:05Z")}
}

// writeError answers in STS's XML error shape, mapping signature, IAM and
// validation failures to the codes STS uses.
func (h *Handler) writeError(w http.ResponseWriter, reqID string, err error) {
	var e *Error
	var se *sigv4.Error
	var d *iam.Denied
	var ae *apierr.Error
	switch {
	case errors.As(err, &e):
	case errors.As(err, &se):
		code := map[string]string{
			sigv4.CodeMissingAuthenticationToken: "MissingAuthenticationToken",
			sigv4.CodeIncompleteSignature:        "IncompleteSignature",
			sigv4.CodeInvalidSignature:           "SignatureDoesNotMatch",
			sigv4.CodeUnrecognizedClient:         "InvalidClientTokenId",
			sigv4.CodeExpiredToken:               "ExpiredToken",
		}[se.Code]
		if code == "" {
			code = "SignatureDoesNotMatch"
		}
		e = fail(403, code, "%s", se.Message)
	case errors.As(err, &d):
		e = fail(403, "AccessDenied", "%s", d.Error())
	case errors.As(err, &ae) && ae.Status < 500:
		e = fail(400, "ValidationError", "%s", ae.Message)
	default:
		if h.Logger != nil {
			h.Logger.Error("sts request failed", "err", err, "request_id", reqID)
		}
		e = fail(500, "InternalFailure", "internal error")
	}
	typ := "Sender"
	if e.Status >= 500 {
		typ = "Receiver"
	}
	type errXML struct {
		Type    string `xml:"Type"`
		Code    string `xml:"Code"`
		Message string `xml:"Message"`
	}
	b, _ := xml.Marshal(struct {
		XMLName   xml.Name `xml:"ErrorResponse"`
		Xmlns     string   `xml:"xmlns,attr"`
		Error     errXML   `xml:"Error"`
		RequestID string   `xml:"RequestId"`
	}{Xmlns: xmlns, Error: errXML{typ, e.Code, e.Message}, RequestID: reqID})
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(e.Status)
	w.Write(b)
}
