package iam

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/kinema/kinema/internal/sigv4"
)

// Principal kinds.
const (
	KindRoot = "root"
	KindUser = "user"
	KindRole = "role"
)

// Principal is who signed a request, resolved from its access key (and
// session token).
type Principal struct {
	Account     string
	Kind        string // KindRoot, KindUser or KindRole
	Name        string // user or role name; "" for root
	AccessKeyID string
	// Session data, for temporary credentials.
	Session     bool
	SessionName string
	Thing       string // the device's thing name, for credentials from a certificate
	Expires     time.Time
	IssuedAt    time.Time
	// sessionPolicy is the policy passed to AssumeRole (it narrows the
	// role's policies); sourceKey is the long-term key a session was made
	// from.
	sessionPolicy string
	sourceKey     string
	device        string
	// Region is from the request's credential scope.
	Region string
}

// Root reports the server operator.
func (p *Principal) Root() bool { return p.Kind == KindRoot }

// ARN is the principal's ARN, as IAM and STS spell it.
func (p *Principal) ARN() string {
	switch {
	case p.Kind == KindRoot:
		return "arn:aws:iam::" + p.Account + ":root"
	case p.Kind == KindRole:
		return "arn:aws:sts::" + p.Account + ":assumed-role/" + p.Name + "/" + p.SessionName
	default:
		return "arn:aws:iam::" + p.Account + ":user/" + p.Name
	}
}

// Var resolves a policy variable or principal condition key (lower-case
// name, as the evaluator passes it).
func (p *Principal) Var(name string) (string, bool) {
	switch name {
	case "aws:username":
		if p.Kind == KindUser {
			return p.Name, true
		}
	case "aws:principalaccount":
		return p.Account, true
	case "aws:principalarn":
		return p.ARN(), true
	case "aws:principaltype":
		switch p.Kind {
		case KindRoot:
			return "Account", true
		case KindRole:
			return "AssumedRole", true
		}
		return "User", true
	case "aws:userid":
		if p.Kind == KindRole {
			return p.Name + ":" + p.SessionName, true
		}
		return p.AccessKeyID, true
	case "credentials-iot:thingname", "iot:connection.thing.thingname":
		if p.Thing != "" {
			return p.Thing, true
		}
	case "aws:tokenissuetime":
		if p.Session {
			return p.IssuedAt.UTC().Format(time.RFC3339), true
		}
	case "aws:multifactorauthpresent":
		return "false", true
	}
	return "", false
}

// claims are what a session token seals: everything needed to verify and
// authorize a request made with temporary credentials, so none are stored.
type claims struct {
	Key       string `json:"k"`
	Secret    string `json:"s"`
	Account   string `json:"a"`
	Kind      string `json:"t"`
	Name      string `json:"n,omitempty"`
	Session   string `json:"sn,omitempty"`
	SourceKey string `json:"sk,omitempty"`
	Device    string `json:"d,omitempty"`
	Thing     string `json:"th,omitempty"`
	Policy    string `json:"p,omitempty"`
	Issued    int64  `json:"i"`
	Expires   int64  `json:"e"`
}

const tokenPurpose = "session-token"

// Credentials are temporary credentials as STS returns them.
type Credentials struct {
	AccessKeyID, SecretAccessKey, SessionToken string
	Expiration                                 time.Time
}

// SessionSpec describes temporary credentials to issue for a principal.
type SessionSpec struct {
	// From is who asks: its kind, account, user and key become the
	// session's (GetSessionToken), unless Role is set (AssumeRole).
	From     *Principal
	Role     *Role
	Name     string // role session name
	Policy   string // optional session policy (AssumeRole's Policy)
	Duration time.Duration
	// Device and Thing bind credentials to a registered certificate.
	Device, Thing string
}

// IssueSession mints temporary credentials.
func (s *Service) IssueSession(spec SessionSpec) (*Credentials, *Principal, error) {
	if spec.Policy != "" {
		if _, err := ParsePolicy("session", spec.Policy); err != nil {
			return nil, nil, invalid("%v", err)
		}
	}
	now := s.now()
	id, secret := NewKeyPair("ASIA")
	c := claims{Key: id, Secret: secret, Issued: now.Unix(), Expires: now.Add(spec.Duration).Unix(),
		Policy: spec.Policy, Device: spec.Device, Thing: spec.Thing}
	if spec.Role != nil {
		c.Account, c.Kind, c.Name, c.Session = spec.Role.Account, KindRole, spec.Role.Name, spec.Name
	} else {
		c.Account, c.Kind, c.Name = spec.From.Account, spec.From.Kind, spec.From.Name
	}
	if spec.From != nil {
		// A session made from a session keeps the long-term key at its
		// origin, so disabling that key ends both.
		c.SourceKey = spec.From.sourceKey
		if !spec.From.Session {
			c.SourceKey = spec.From.AccessKeyID
		}
	}
	b, _ := json.Marshal(c)
	tok := tokenEncoding.EncodeToString(s.seal.seal(tokenPurpose, b))
	p := s.principalFromClaims(&c)
	return &Credentials{AccessKeyID: id, SecretAccessKey: secret, SessionToken: tok, Expiration: time.Unix(c.Expires, 0).UTC()}, p, nil
}

func (s *Service) principalFromClaims(c *claims) *Principal {
	return &Principal{Account: c.Account, Kind: c.Kind, Name: c.Name, AccessKeyID: c.Key, Session: true,
		SessionName: c.Session, Thing: c.Thing, IssuedAt: time.Unix(c.Issued, 0), Expires: time.Unix(c.Expires, 0),
		sessionPolicy: c.Policy, sourceKey: c.SourceKey, device: c.Device}
}

// authSlot carries the principal found while the verifier asked for the
// secret, so a request's key is looked up (or its token opened) once.
type authSlot struct{ p *Principal }

type slotKey struct{}

// SecretFor implements sigv4.Credentials for long-term keys.
func (s *Service) SecretFor(ctx context.Context, accessKeyID string) (string, error) {
	if accessKeyID == s.opt.RootAccessKeyID && s.opt.RootSecret != "" {
		setSlot(ctx, &Principal{Account: s.opt.DefaultAccount, Kind: KindRoot, AccessKeyID: accessKeyID})
		return s.opt.RootSecret, nil
	}
	s.mu.RLock()
	k, ok := s.st.keys[accessKeyID]
	s.mu.RUnlock()
	if !ok || k.Status != KeyActive {
		// A disabled key is refused exactly like an unknown one.
		return "", sigv4.ErrUnknownKey
	}
	setSlot(ctx, &Principal{Account: k.Account, Kind: KindUser, Name: k.User, AccessKeyID: k.ID})
	return k.secret, nil
}

func setSlot(ctx context.Context, p *Principal) {
	if slot, ok := ctx.Value(slotKey{}).(*authSlot); ok {
		slot.p = p
	}
}

// SessionSecretFor implements sigv4.SessionCredentials: the secret of
// temporary credentials is inside their sealed token. The token must have
// been made for this access key id, must not have expired, and whatever it
// was made from (key, user, role, device) must still be there and enabled.
func (s *Service) SessionSecretFor(ctx context.Context, accessKeyID, token string) (string, error) {
	c, err := s.openToken(token)
	if err != nil || c.Key != accessKeyID {
		return "", sigv4.ErrUnknownKey
	}
	if !s.now().Before(time.Unix(c.Expires, 0)) {
		return "", sigv4.ErrExpiredToken
	}
	if err := s.sessionStillValid(c); err != nil {
		return "", err
	}
	setSlot(ctx, s.principalFromClaims(c))
	return c.Secret, nil
}

func (s *Service) openToken(token string) (*claims, error) {
	if len(token) > 16<<10 {
		return nil, errors.New("token too long")
	}
	raw, err := tokenEncoding.DecodeString(token)
	if err != nil {
		return nil, err
	}
	plain, err := s.seal.open(tokenPurpose, raw)
	if err != nil {
		return nil, err
	}
	var c claims
	if err := json.Unmarshal(plain, &c); err != nil {
		return nil, err
	}
	return &c, nil
}

func (s *Service) sessionStillValid(c *claims) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if _, ok := s.st.accounts[c.Account]; !ok {
		return sigv4.ErrUnknownKey
	}
	if c.SourceKey != "" && c.SourceKey != s.opt.RootAccessKeyID {
		if k, ok := s.st.keys[c.SourceKey]; !ok || k.Status != KeyActive {
			return sigv4.ErrUnknownKey
		}
	}
	if c.Device != "" {
		if d, ok := s.st.devices[c.Device]; !ok || d.Status != DeviceActive {
			return sigv4.ErrUnknownKey
		}
	}
	switch c.Kind {
	case KindUser:
		if _, ok := s.st.users[qualify(c.Account, c.Name)]; !ok {
			return sigv4.ErrUnknownKey
		}
	case KindRole:
		if _, ok := s.st.roles[qualify(c.Account, c.Name)]; !ok {
			return sigv4.ErrUnknownKey
		}
	case KindRoot:
	default:
		return sigv4.ErrUnknownKey
	}
	return nil
}

// Authenticate verifies r's signature with v and returns who signed it.
// Errors are those of sigv4.Verifier.Verify.
func (s *Service) Authenticate(r *http.Request, v *sigv4.Verifier, body []byte, streaming bool) (*Principal, error) {
	slot := &authSlot{}
	ctx := context.WithValue(r.Context(), slotKey{}, slot)
	ident, err := v.Verify(r.WithContext(ctx), body, streaming)
	if err != nil {
		return nil, err
	}
	if slot.p == nil || slot.p.AccessKeyID != ident.AccessKeyID {
		return nil, fmt.Errorf("iam: the verifier of %s does not use this IAM service", r.URL.Path)
	}
	if ident.SessionToken != "" && !slot.p.Session {
		// A long-term key with a session token is a client mix-up; AWS
		// refuses it too.
		return nil, &sigv4.Error{Code: sigv4.CodeUnrecognizedClient, Message: "The security token included in the request is invalid."}
	}
	slot.p.Region = ident.Region
	return slot.p, nil
}

// Authorize decides whether p may make req.
func (s *Service) Authorize(p *Principal, req *Request) Decision {
	if p.Kind == KindRoot {
		if p.sessionPolicy == "" {
			return Allow
		}
		return s.evalSession(p, Allow, req)
	}
	var buf [8]*Policy
	pols := buf[:0]
	s.mu.RLock()
	var names []string
	switch p.Kind {
	case KindUser:
		if u, ok := s.st.users[qualify(p.Account, p.Name)]; ok {
			names = u.Policies
		}
	case KindRole:
		if r, ok := s.st.roles[qualify(p.Account, p.Name)]; ok {
			names = r.Policies
		}
	}
	for _, n := range names {
		if pol, ok := s.policy[qualify(p.Account, n)]; ok {
			pols = append(pols, pol)
		}
	}
	s.mu.RUnlock()
	d := Evaluate(pols, req, p.Var)
	if p.sessionPolicy != "" {
		return s.evalSession(p, d, req)
	}
	return d
}

// evalSession narrows an identity decision by the session policy: the
// request must be allowed by both, and a deny in either wins. Parsed
// session policies are memoized: a role session sends its policy (inside
// its token) with every request.
func (s *Service) evalSession(p *Principal, identity Decision, req *Request) Decision {
	sp, ok := s.sessionPolicies.Get(p.sessionPolicy)
	if !ok {
		var err error
		if sp, err = ParsePolicy("session", p.sessionPolicy); err != nil {
			// Checked when the session was issued; a token sealed by this
			// server cannot carry another.
			return ExplicitDeny
		}
		s.sessionPolicies.Put(p.sessionPolicy, sp)
	}
	d := Evaluate([]*Policy{sp}, req, p.Var)
	switch {
	case identity == ExplicitDeny || d == ExplicitDeny:
		return ExplicitDeny
	case identity == Allow && d == Allow:
		return Allow
	}
	return ImplicitDeny
}

// Denied is an authorization failure, worded as AWS words it.
type Denied struct {
	Principal, Action, Resource string
	Explicit                    bool
}

func (d *Denied) Error() string {
	msg := "User: " + d.Principal + " is not authorized to perform: " + d.Action + " on resource: " + d.Resource
	if d.Explicit {
		msg += " with an explicit deny"
	}
	return msg
}

// Check authorizes req for p and returns a *Denied on refusal, which it
// records in the audit log with requestID.
func (s *Service) Check(p *Principal, req *Request, requestID string) error {
	if req.Now.IsZero() {
		req.Now = s.now()
	}
	d := s.Authorize(p, req)
	if d == Allow {
		return nil
	}
	den := &Denied{Principal: p.ARN(), Action: req.Action, Resource: req.Resource, Explicit: d == ExplicitDeny}
	s.opt.Audit.Record(AuditEvent{Kind: "deny", RequestID: requestID, Principal: den.Principal, AccessKeyID: p.AccessKeyID,
		Action: req.Action, Resource: req.Resource, SourceIP: addrString(req), Result: d.String()})
	return den
}

func addrString(req *Request) string {
	if req.SourceIP.IsValid() {
		return req.SourceIP.String()
	}
	return ""
}

// SameAccount reports whether p may act on entities of account: its own,
// or any for the operator.
func (p *Principal) SameAccount(account string) bool {
	return p.Root() || p.Account == account
}

// FormatExpiry formats an expiry as STS and the IoT endpoint do.
func FormatExpiry(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

// ParseDurationSeconds parses a DurationSeconds parameter within [min, max],
// with def when empty.
func ParseDurationSeconds(v string, def, min, max int) (time.Duration, error) {
	if strings.TrimSpace(v) == "" {
		return time.Duration(def) * time.Second, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < min || n > max {
		return 0, invalid("DurationSeconds must be a whole number from %d to %d", min, max)
	}
	return time.Duration(n) * time.Second, nil
}

// SourceIP is the client address of r, for aws:SourceIp: the peer of the
// connection (Kinema does not trust forwarding headers, which clients can
// set).
func SourceIP(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, _ := netip.ParseAddr(host)
	return a.Unmap()
}

// Simulate evaluates a request for a user or role of an account, as a
// request by it (a session of it for a role, with thing as its
// credentials-iot:ThingName) would be: what `kinema admin policy simulate`
// shows before a policy reaches a camera.
func (s *Service) Simulate(account, kind, name, thing string, req *Request) (Decision, error) {
	p := &Principal{Account: account, Kind: kind, Name: name, Thing: thing}
	switch kind {
	case AttachUser:
		if _, ok := s.userOf(account, name); !ok {
			return ImplicitDeny, notFound("user %s does not exist", name)
		}
	case AttachRole:
		if _, ok := s.Role(account, name); !ok {
			return ImplicitDeny, notFound("role %s does not exist", name)
		}
		p.Session, p.SessionName = true, "simulation"
	default:
		return ImplicitDeny, invalid("simulate a user or a role, not %q", kind)
	}
	if req.Now.IsZero() {
		req.Now = s.now()
	}
	return s.Authorize(p, req), nil
}

func (s *Service) userOf(account, name string) (*User, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	u, ok := s.st.users[qualify(account, name)]
	return u, ok
}
