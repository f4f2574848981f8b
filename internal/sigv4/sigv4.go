package sigv4

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

const (
	algorithm = "AWS4-HMAC-SHA256"
	// amzDateLayout is the ISO 8601 basic format of X-Amz-Date.
	amzDateLayout   = "20060102T150405Z"
	scopeTerminator = "aws4_request"

	// emptySHA256 is hex(sha256("")): the payload hash of an empty body, and
	// what the producer SDK signs for PutMedia, whose body it streams.
	emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

	unsignedPayload = "UNSIGNED-PAYLOAD"

	defaultMaxSkew = 5 * time.Minute
	// maxPresignExpires is the longest validity AWS allows a presigned URL
	// (7 days).
	maxPresignExpires = 604800
)

// Error codes, as AWS JSON services name them. They are sent with HTTP 403.
const (
	// CodeMissingAuthenticationToken: no Authorization header and no
	// presigned query parameters.
	CodeMissingAuthenticationToken = "MissingAuthenticationTokenException"
	// CodeIncompleteSignature: the Authorization header or the presigned
	// parameters are malformed or lack a required part.
	CodeIncompleteSignature = "IncompleteSignatureException"
	// CodeInvalidSignature: well-formed but wrong: signature mismatch, date
	// out of range, wrong region or service, expired presigned URL.
	CodeInvalidSignature = "InvalidSignatureException"
	// CodeUnrecognizedClient: the access key id is unknown.
	CodeUnrecognizedClient = "UnrecognizedClientException"
	// CodeExpiredToken: temporary credentials whose session token has
	// expired.
	CodeExpiredToken = "ExpiredTokenException"
)

// ErrUnknownKey is returned (or wrapped) by a Credentials implementation for
// an access key id it does not know.
var ErrUnknownKey = errors.New("sigv4: unknown access key id")

// ErrExpiredToken is returned (or wrapped) by a SessionCredentials
// implementation for a session token that has expired.
var ErrExpiredToken = errors.New("sigv4: the security token has expired")

// SessionCredentials is implemented by Credentials that also issue
// temporary credentials: for a request carrying X-Amz-Security-Token, the
// secret is looked up with the token, since temporary keys may be known
// only through it. It returns ErrUnknownKey or ErrExpiredToken (or wraps
// them) when it refuses the pair.
type SessionCredentials interface {
	SessionSecretFor(ctx context.Context, accessKeyID, sessionToken string) (secret string, err error)
}

// Credentials resolves an access key id to its secret. It returns
// ErrUnknownKey (or wraps it) for keys it does not know. Any other error is
// passed on by Verify as a server-side failure, not as an *Error.
type Credentials interface {
	SecretFor(ctx context.Context, accessKeyID string) (secret string, err error)
}

// Error is an authentication failure. Code is the AWS error type to send
// back with HTTP 403 (the Code* constants); Message is the human-readable
// text, worded like AWS's where clients are known to look at it (the
// producer SDKs detect clock skew from "Signature expired" and "Signature
// not yet current").
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func authErr(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Identity is who signed a verified request, and how.
type Identity struct {
	AccessKeyID string
	// Region and Service are taken from the credential scope.
	Region  string
	Service string
	// SignedAt is the request's X-Amz-Date (or Date).
	SignedAt time.Time
	// SessionToken is X-Amz-Security-Token, if the client sent one. The
	// producer SDK sends it without signing it, so it is reported as is; it
	// is up to the caller to check it.
	SessionToken string
	// Presigned reports query-string (presigned URL) authentication.
	Presigned bool
}

// Verifier checks SigV4 signatures. Set the exported fields before first use;
// a Verifier is safe for concurrent use and must not be copied after first
// use (it holds a cache of derived signing keys).
type Verifier struct {
	// Service is the service name the credential scope must carry,
	// "kinesisvideo" for every KVS API.
	Service string
	// Region, if not empty, is the only region accepted in the credential
	// scope. Empty accepts any region, which suits a self-hosted server that
	// clients reach with whatever region they were configured with.
	Region string
	// Credentials resolves access key ids to secrets.
	Credentials Credentials
	// MaxSkew is how far X-Amz-Date may be from Now, either way. Zero or
	// negative means 5 minutes, as AWS.
	MaxSkew time.Duration
	// Now returns the current time; nil means time.Now. Tests set it.
	Now func() time.Time

	keys keyCache
}

// authParams is what one of the two authentication forms carries, parsed.
type authParams struct {
	accessKeyID   string
	scopeDate     string
	region        string
	service       string
	terminator    string
	signedHeaders string   // as sent: it is part of the canonical request
	headerNames   []string // signedHeaders split on ';'
	signature     []byte   // decoded from hex
	amzDate       string   // the timestamp as it goes into the string to sign
	signedAt      time.Time
	dateHeader    string // lower-case name of the header the date came from; "" for presigned
	presigned     bool
	expires       time.Duration // presigned only
	sessionToken  string
}

// Verify checks the SigV4 signature of r.
//
// body is the complete request body for ordinary requests (the caller has
// read it already, with a size limit). For bodies that are streamed and not
// buffered (PutMedia) pass nil and streaming=true: the payload hash is then
// X-Amz-Content-Sha256 if the client sent it, used as is, else sha256("").
//
// For non-streaming requests a hex X-Amz-Content-Sha256 must equal
// sha256(body), UNSIGNED-PAYLOAD is accepted, and without the header
// sha256(body) is used. Presigned requests without X-Amz-Content-Sha256 are
// tried with UNSIGNED-PAYLOAD and with the body's (or for streaming, the
// empty) hash, since clients presign with either.
//
// Authentication failures are returned as *Error. A failure of Credentials
// other than ErrUnknownKey is returned wrapped, as a plain error: it is the
// server's fault, not the client's.
func (v *Verifier) Verify(r *http.Request, body []byte, streaming bool) (Identity, error) {
	query := parseQuery(r)
	p, err := v.parseAuth(r, query)
	if err != nil {
		return Identity{}, err
	}
	if err := v.checkScope(p); err != nil {
		return Identity{}, err
	}
	if err := v.checkTime(p); err != nil {
		return Identity{}, err
	}
	hashes, err := payloadHashes(r, query, body, streaming, p.presigned)
	if err != nil {
		return Identity{}, err
	}

	if v.Credentials == nil {
		return Identity{}, errors.New("sigv4: Verifier.Credentials is not set")
	}
	var secret string
	if sc, ok := v.Credentials.(SessionCredentials); ok && p.sessionToken != "" {
		secret, err = sc.SessionSecretFor(r.Context(), p.accessKeyID, p.sessionToken)
	} else {
		secret, err = v.Credentials.SecretFor(r.Context(), p.accessKeyID)
	}
	switch {
	case errors.Is(err, ErrExpiredToken):
		return Identity{}, authErr(CodeExpiredToken, "The security token included in the request is expired")
	case errors.Is(err, ErrUnknownKey):
		return Identity{}, authErr(CodeUnrecognizedClient, "The security token included in the request is invalid.")
	case err != nil:
		return Identity{}, fmt.Errorf("sigv4: looking up access key %q: %w", p.accessKeyID, err)
	case secret == "":
		// An empty secret would make every signature for this key
		// computable by anyone; treat it as a misconfigured, unknown key.
		return Identity{}, authErr(CodeUnrecognizedClient, "The security token included in the request is invalid.")
	}
	key := v.keys.signingKey(secret, p.scopeDate, p.region, p.service)

	prefix := canonicalPrefix(r, query, p)
	scope := p.scopeDate + "/" + p.region + "/" + p.service + "/" + p.terminator
	var firstStringToSign string
	for i, ph := range hashes {
		h := sha256.New()
		h.Write(prefix)
		h.Write([]byte(ph))
		sts := algorithm + "\n" + p.amzDate + "\n" + scope + "\n" + hex.EncodeToString(h.Sum(nil))
		mac := hmac.New(sha256.New, key[:])
		mac.Write([]byte(sts))
		// hmac.Equal compares in constant time, so a mismatch leaks
		// nothing about how much of the signature was right.
		if hmac.Equal(mac.Sum(nil), p.signature) {
			return Identity{
				AccessKeyID:  p.accessKeyID,
				Region:       p.region,
				Service:      p.service,
				SignedAt:     p.signedAt,
				SessionToken: p.sessionToken,
				Presigned:    p.presigned,
			}, nil
		}
		if i == 0 {
			firstStringToSign = sts
		}
	}
	// Like AWS, show what the server signed: it is made only of what the
	// client sent, and it is what a client developer needs to find the
	// difference.
	return Identity{}, authErr(CodeInvalidSignature,
		"The request signature we calculated does not match the signature you provided. "+
			"Check your AWS Secret Access Key and signing method. Consult the service documentation for details.\n\n"+
			"The Canonical String for this request should have been\n'%s'\n\n"+
			"The String-to-Sign should have been\n'%s'\n", string(prefix)+hashes[0], firstStringToSign)
}

func (v *Verifier) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

func (v *Verifier) maxSkew() time.Duration {
	if v.MaxSkew > 0 {
		return v.MaxSkew
	}
	return defaultMaxSkew
}

// parseAuth finds and parses whichever authentication form r uses.
func (v *Verifier) parseAuth(r *http.Request, query []queryParam) (*authParams, error) {
	authz := r.Header.Values("Authorization")
	presigned := false
	for _, qp := range query {
		switch qp.key {
		case "X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature":
			presigned = true
		}
	}
	switch {
	case len(authz) == 0 && !presigned:
		return nil, authErr(CodeMissingAuthenticationToken, "Missing Authentication Token")
	case len(authz) > 0 && presigned:
		return nil, authErr(CodeIncompleteSignature, "Only one authentication method is allowed: an Authorization header or presigned query parameters, not both.")
	case len(authz) > 1:
		return nil, authErr(CodeIncompleteSignature, "Only one Authorization header is allowed.")
	case presigned:
		return parseQueryAuth(query, r)
	default:
		return parseHeaderAuth(authz[0], r)
	}
}

// parseHeaderAuth parses
//
//	AWS4-HMAC-SHA256 Credential=AKID/20261121/us-west-2/kinesisvideo/aws4_request, SignedHeaders=host;x-amz-date, Signature=hex
//
// The parameters are separated by commas, spaces, or both: clients differ.
func parseHeaderAuth(h string, r *http.Request) (*authParams, error) {
	alg, rest, _ := strings.Cut(strings.TrimSpace(h), " ")
	if alg != algorithm {
		return nil, authErr(CodeIncompleteSignature, "Unsupported authorization type or algorithm %q: only %s is supported.", truncate(alg, 40), algorithm)
	}
	var cred, signed, sig string
	var haveCred, haveSigned, haveSig bool
	for _, f := range strings.FieldsFunc(rest, func(c rune) bool { return c == ',' || c == ' ' }) {
		name, value, ok := strings.Cut(f, "=")
		if !ok {
			return nil, authErr(CodeIncompleteSignature, "Authorization header parameter %q is not of the form name=value.", truncate(f, 40))
		}
		var dst *string
		var seen *bool
		switch name {
		case "Credential":
			dst, seen = &cred, &haveCred
		case "SignedHeaders":
			dst, seen = &signed, &haveSigned
		case "Signature":
			dst, seen = &sig, &haveSig
		default:
			return nil, authErr(CodeIncompleteSignature, "Unknown Authorization header parameter %q.", truncate(name, 40))
		}
		if *seen {
			return nil, authErr(CodeIncompleteSignature, "Authorization header parameter %q appears twice.", name)
		}
		*dst, *seen = value, true
	}
	var missing []string
	if !haveCred {
		missing = append(missing, "Authorization header requires 'Credential' parameter.")
	}
	if !haveSig {
		missing = append(missing, "Authorization header requires 'Signature' parameter.")
	}
	if !haveSigned {
		missing = append(missing, "Authorization header requires 'SignedHeaders' parameter.")
	}
	if len(missing) > 0 {
		return nil, authErr(CodeIncompleteSignature, "%s", strings.Join(missing, " "))
	}

	p := &authParams{}
	if err := p.setCredential(cred); err != nil {
		return nil, err
	}
	if err := p.setSignedHeaders(signed); err != nil {
		return nil, err
	}
	if err := p.setSignature(sig); err != nil {
		return nil, err
	}

	// The date: X-Amz-Date, or an RFC 1123 Date header as SigV4 allows.
	if d := r.Header.Get("X-Amz-Date"); d != "" {
		t, err := parseAmzDate(d)
		if err != nil {
			return nil, err
		}
		p.amzDate, p.signedAt, p.dateHeader = d, t, "x-amz-date"
	} else if d := r.Header.Get("Date"); d != "" {
		t, err := http.ParseTime(d)
		if err != nil {
			return nil, authErr(CodeIncompleteSignature, "Date header %q is not a valid HTTP date.", truncate(d, 40))
		}
		t = t.UTC()
		p.amzDate, p.signedAt, p.dateHeader = t.Format(amzDateLayout), t, "date"
	} else {
		return nil, authErr(CodeIncompleteSignature, "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
	}
	// An unsigned date could be replaced by an attacker to replay an old
	// request, so the header the date came from must be signed.
	if !p.signs(p.dateHeader) {
		return nil, authErr(CodeIncompleteSignature, "The %s header must be signed (listed in SignedHeaders).", p.dateHeader)
	}
	p.sessionToken = r.Header.Get("X-Amz-Security-Token")
	return p, nil
}

// parseQueryAuth parses the parameters of a presigned URL.
func parseQueryAuth(query []queryParam, r *http.Request) (*authParams, error) {
	get := func(name string) (string, bool) {
		for _, qp := range query {
			if qp.key == name {
				return qp.value, true
			}
		}
		return "", false
	}
	var missing []string
	for _, name := range []string{"X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Date", "X-Amz-Expires", "X-Amz-SignedHeaders", "X-Amz-Signature"} {
		if _, ok := get(name); !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		return nil, authErr(CodeIncompleteSignature, "Presigned request is missing query parameters: %s.", strings.Join(missing, ", "))
	}
	if alg, _ := get("X-Amz-Algorithm"); alg != algorithm {
		return nil, authErr(CodeIncompleteSignature, "Unsupported X-Amz-Algorithm %q: only %s is supported.", truncate(alg, 40), algorithm)
	}
	p := &authParams{presigned: true}
	cred, _ := get("X-Amz-Credential")
	if err := p.setCredential(cred); err != nil {
		return nil, err
	}
	signed, _ := get("X-Amz-SignedHeaders")
	if err := p.setSignedHeaders(signed); err != nil {
		return nil, err
	}
	sig, _ := get("X-Amz-Signature")
	if err := p.setSignature(sig); err != nil {
		return nil, err
	}
	d, _ := get("X-Amz-Date")
	t, err := parseAmzDate(d)
	if err != nil {
		return nil, err
	}
	p.amzDate, p.signedAt = d, t
	exp, _ := get("X-Amz-Expires")
	n, err := strconv.Atoi(exp)
	if err != nil || n < 1 || n > maxPresignExpires {
		return nil, authErr(CodeIncompleteSignature, "X-Amz-Expires must be a whole number of seconds from 1 to %d, not %q.", maxPresignExpires, truncate(exp, 40))
	}
	p.expires = time.Duration(n) * time.Second
	if tok, ok := get("X-Amz-Security-Token"); ok {
		p.sessionToken = tok
	} else {
		p.sessionToken = r.Header.Get("X-Amz-Security-Token")
	}
	return p, nil
}

// setCredential parses AKID/yyyymmdd/region/service/aws4_request.
func (p *authParams) setCredential(cred string) error {
	parts := strings.Split(cred, "/")
	if len(parts) != 5 {
		return authErr(CodeIncompleteSignature, "Credential %q is not of the form <access key id>/<yyyymmdd>/<region>/<service>/aws4_request.", truncate(cred, 120))
	}
	for _, s := range parts {
		if s == "" {
			return authErr(CodeIncompleteSignature, "Credential %q has an empty part.", truncate(cred, 120))
		}
	}
	p.accessKeyID, p.scopeDate, p.region, p.service, p.terminator = parts[0], parts[1], parts[2], parts[3], parts[4]
	if p.terminator != scopeTerminator {
		return authErr(CodeIncompleteSignature, "Credential should be scoped with a valid terminator: 'aws4_request', not '%s'.", truncate(p.terminator, 40))
	}
	if _, err := time.Parse("20060102", p.scopeDate); err != nil || len(p.scopeDate) != 8 {
		return authErr(CodeIncompleteSignature, "Credential date %q is not of the form yyyymmdd.", truncate(p.scopeDate, 40))
	}
	return nil
}

// setSignedHeaders splits the SignedHeaders list. The list is kept as sent
// because it goes verbatim into the canonical request; headers are looked
// up by its names case-insensitively.
func (p *authParams) setSignedHeaders(s string) error {
	if s == "" {
		return authErr(CodeIncompleteSignature, "SignedHeaders is empty.")
	}
	p.signedHeaders = s
	p.headerNames = strings.Split(strings.ToLower(s), ";")
	for _, n := range p.headerNames {
		if n == "" {
			return authErr(CodeIncompleteSignature, "SignedHeaders %q contains an empty header name.", truncate(s, 120))
		}
	}
	// Without host, a signed request could be replayed against another
	// server that shares the credentials.
	if !p.signs("host") {
		return authErr(CodeIncompleteSignature, "The host header must be signed (listed in SignedHeaders).")
	}
	return nil
}

func (p *authParams) setSignature(s string) error {
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != sha256.Size {
		return authErr(CodeIncompleteSignature, "Signature %q is not 64 hexadecimal digits.", truncate(s, 80))
	}
	p.signature = b
	return nil
}

func (p *authParams) signs(name string) bool {
	for _, n := range p.headerNames {
		if n == name {
			return true
		}
	}
	return false
}

// parseAmzDate parses an ISO 8601 basic timestamp, strictly: the string goes
// into the string to sign as sent, so it must be exactly what it parses to.
func parseAmzDate(s string) (time.Time, error) {
	t, err := time.Parse(amzDateLayout, s)
	if err != nil || t.Format(amzDateLayout) != s {
		return time.Time{}, authErr(CodeIncompleteSignature, "X-Amz-Date %q is not of the form yyyymmddThhmmssZ.", truncate(s, 40))
	}
	return t, nil
}

// checkScope checks the credential scope against the Verifier and the
// request date.
func (v *Verifier) checkScope(p *authParams) error {
	if p.service != v.Service {
		return authErr(CodeInvalidSignature, "Credential should be scoped to correct service: '%s', not '%s'.", v.Service, truncate(p.service, 40))
	}
	if v.Region != "" && p.region != v.Region {
		return authErr(CodeInvalidSignature, "Credential should be scoped to a valid region, not '%s'.", truncate(p.region, 40))
	}
	if p.scopeDate != p.amzDate[:8] {
		return authErr(CodeInvalidSignature, "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '%s' != '%s', from '%s'.", p.scopeDate, p.amzDate[:8], p.amzDate)
	}
	return nil
}

// checkTime rejects requests signed too far from now (header auth) or
// presigned URLs used outside [date-skew, date+expires].
func (v *Verifier) checkTime(p *authParams) error {
	now := v.now().UTC()
	skew := v.maxSkew()
	mins := strconv.FormatFloat(skew.Minutes(), 'f', -1, 64)
	if p.signedAt.After(now.Add(skew)) {
		// Wording as AWS: SDKs match on "Signature not yet current".
		return authErr(CodeInvalidSignature, "Signature not yet current: %s is still later than %s (%s + %s min.)",
			p.amzDate, now.Add(skew).Format(amzDateLayout), now.Format(amzDateLayout), mins)
	}
	if p.presigned {
		if now.After(p.signedAt.Add(p.expires)) {
			return authErr(CodeInvalidSignature, "Request has expired: it was signed at %s and was valid for %d seconds; it is now %s.",
				p.amzDate, int64(p.expires/time.Second), now.Format(amzDateLayout))
		}
		return nil
	}
	if p.signedAt.Before(now.Add(-skew)) {
		// Wording as AWS: SDKs match on "Signature expired".
		return authErr(CodeInvalidSignature, "Signature expired: %s is now earlier than %s (%s - %s min.)",
			p.amzDate, now.Add(-skew).Format(amzDateLayout), now.Format(amzDateLayout), mins)
	}
	return nil
}

// payloadHashes returns the payload hash(es) to try, in order.
func payloadHashes(r *http.Request, query []queryParam, body []byte, streaming, presigned bool) ([]string, error) {
	declared, ok := "", false
	if presigned {
		for _, qp := range query {
			if qp.key == "X-Amz-Content-Sha256" {
				declared, ok = qp.value, true
				break
			}
		}
	}
	if !ok {
		if vs := r.Header.Values("X-Amz-Content-Sha256"); len(vs) > 0 {
			declared, ok = vs[0], true
		}
	}

	if streaming {
		if ok {
			// The body is not buffered, so a hex hash cannot be checked
			// here; it is what the client signed, so sign with it.
			return []string{declared}, nil
		}
		if presigned {
			return []string{unsignedPayload, emptySHA256}, nil
		}
		return []string{emptySHA256}, nil
	}

	bodyHash := func() string {
		sum := sha256.Sum256(body)
		return hex.EncodeToString(sum[:])
	}
	if !ok {
		if presigned {
			return []string{unsignedPayload, bodyHash()}, nil
		}
		return []string{bodyHash()}, nil
	}
	switch {
	case declared == unsignedPayload:
		return []string{declared}, nil
	case isHex64(declared):
		if !strings.EqualFold(declared, bodyHash()) {
			return nil, authErr(CodeInvalidSignature, "The provided 'x-amz-content-sha256' header does not match what was computed.")
		}
		return []string{declared}, nil
	default:
		// STREAMING-* means aws-chunked framing with per-chunk
		// signatures, which a buffered body here is not decoded from.
		return nil, authErr(CodeInvalidSignature, "Unsupported x-amz-content-sha256 value %q for this request.", truncate(declared, 60))
	}
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// truncate keeps client-supplied strings echoed in error messages short.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
