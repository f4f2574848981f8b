package sigv4

import (
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

// queryParam is one decoded query parameter, in the order it was sent.
type queryParam struct{ key, value string }

// parseQuery decodes r's query string the way url.ParseQuery does, so the
// signature covers exactly the parameters a handler will see through
// r.URL.Query(): pairs that ParseQuery drops (bad escapes, semicolons) are
// dropped here too.
func parseQuery(r *http.Request) []queryParam {
	if r.URL == nil || r.URL.RawQuery == "" {
		return nil
	}
	var out []queryParam
	for part := range strings.SplitSeq(r.URL.RawQuery, "&") {
		if part == "" || strings.Contains(part, ";") {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		k, err1 := url.QueryUnescape(k)
		v, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil {
			continue
		}
		out = append(out, queryParam{k, v})
	}
	return out
}

// canonicalPrefix builds the canonical request up to and including the
// signed-headers line; the payload hash is appended by the caller, which may
// try more than one.
func canonicalPrefix(r *http.Request, query []queryParam, p *authParams) []byte {
	b := make([]byte, 0, 512)
	b = append(b, r.Method...)
	b = append(b, '\n')
	b = appendCanonicalURI(b, wirePath(r))
	b = append(b, '\n')
	b = appendCanonicalQuery(b, query, p.presigned)
	b = append(b, '\n')
	for _, name := range p.headerNames {
		b = append(b, name...)
		b = append(b, ':')
		b = appendHeaderValue(b, r, name)
		b = append(b, '\n')
	}
	b = append(b, '\n')
	b = append(b, p.signedHeaders...)
	b = append(b, '\n')
	return b
}

// wirePath returns the request path exactly as the client sent it, which is
// what every client signer starts from. r.RequestURI is preferred over
// r.URL.EscapedPath() because the latter may re-escape a path differently
// than the client did and is changed by middleware such as
// http.StripPrefix; it is the fallback for requests not read by a server
// (absolute-form or empty RequestURI).
func wirePath(r *http.Request) string {
	if u := r.RequestURI; strings.HasPrefix(u, "/") {
		if i := strings.IndexByte(u, '?'); i >= 0 {
			u = u[:i]
		}
		return u
	}
	if r.URL == nil {
		return ""
	}
	return r.URL.EscapedPath()
}

// appendCanonicalURI URI-encodes the (already escaped) path once more, every
// byte but RFC 3986 unreserved characters and '/'. This double encoding is
// what SigV4 asks for every service but S3, and what the AWS SDKs, botocore,
// curl and the producer SDK do: "/a%20b" is signed as "/a%2520b".
func appendCanonicalURI(b []byte, path string) []byte {
	if path == "" {
		return append(b, '/')
	}
	for i := 0; i < len(path); i++ {
		c := path[i]
		if c == '/' || isUnreserved(c) {
			b = append(b, c)
		} else {
			b = append(b, '%', upperHex[c>>4], upperHex[c&15])
		}
	}
	return b
}

// appendCanonicalQuery encodes every parameter (but X-Amz-Signature on a
// presigned request) and sorts by encoded key, then encoded value: SigV4
// sorts after encoding, and the two orders differ.
func appendCanonicalQuery(b []byte, query []queryParam, presigned bool) []byte {
	if len(query) == 0 {
		return b
	}
	enc := make([]queryParam, 0, len(query))
	for _, qp := range query {
		if presigned && qp.key == "X-Amz-Signature" {
			continue
		}
		enc = append(enc, queryParam{uriEncode(qp.key), uriEncode(qp.value)})
	}
	sort.Slice(enc, func(i, j int) bool {
		if enc[i].key != enc[j].key {
			return enc[i].key < enc[j].key
		}
		return enc[i].value < enc[j].value
	})
	for i, qp := range enc {
		if i > 0 {
			b = append(b, '&')
		}
		b = append(b, qp.key...)
		b = append(b, '=')
		b = append(b, qp.value...)
	}
	return b
}

// appendHeaderValue appends the canonical value of the signed header name:
// every value trimmed, inner runs of spaces collapsed, values joined by ','.
func appendHeaderValue(b []byte, r *http.Request, name string) []byte {
	var vals []string
	switch name {
	case "host":
		// net/http moved Host out of the header map. Use it exactly as
		// received: whether a port is present is the client's choice, and
		// it signed what it sent.
		h := r.Host
		if h == "" && r.URL != nil {
			h = r.URL.Host
		}
		return appendTrimmed(b, h)
	case "transfer-encoding":
		// net/http moved Transfer-Encoding to r.TransferEncoding.
		vals = r.TransferEncoding
		if len(vals) == 0 {
			vals = lookupHeader(r.Header, name)
		}
		if len(vals) == 0 && r.ProtoMajor == 2 {
			// curl drops this HTTP/1-only header over HTTP/2 after
			// signing it; the producer SDK signs "chunked".
			vals = []string{"chunked"}
		}
	case "connection":
		vals = lookupHeader(r.Header, name)
		if len(vals) == 0 && r.ProtoMajor == 2 {
			// As transfer-encoding: dropped by curl over HTTP/2; the
			// producer SDK signs "keep-alive".
			vals = []string{"keep-alive"}
		}
	case "content-length":
		vals = lookupHeader(r.Header, name)
		if len(vals) == 0 && r.ContentLength > 0 {
			// HTTP/2 clients may leave it out; the AWS SDKs sign it
			// whenever the body is not empty.
			vals = []string{strconv.FormatInt(r.ContentLength, 10)}
		}
	default:
		vals = lookupHeader(r.Header, name)
	}
	// A signed header that is missing is signed as empty, so the
	// signature fails unless the client really signed an empty value.
	for i, v := range vals {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendTrimmed(b, v)
	}
	return b
}

// lookupHeader finds a header by its lower-case name. The canonical form is
// tried first (it is how net/http stores well-formed names); a scan catches
// names net/http left as they were.
func lookupHeader(h http.Header, lower string) []string {
	if v, ok := h[http.CanonicalHeaderKey(lower)]; ok {
		return v
	}
	for k, v := range h {
		if strings.EqualFold(k, lower) {
			return v
		}
	}
	return nil
}

// appendTrimmed appends v without leading and trailing spaces and with each
// run of inner spaces reduced to one, as the SigV4 "trimall" rule and the
// AWS SDKs do.
func appendTrimmed(b []byte, v string) []byte {
	v = strings.Trim(v, " ")
	space := false
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == ' ' {
			if space {
				continue
			}
			space = true
		} else {
			space = false
		}
		b = append(b, c)
	}
	return b
}

const upperHex = "0123456789ABCDEF"

func isUnreserved(c byte) bool {
	return 'A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' ||
		c == '-' || c == '.' || c == '_' || c == '~'
}

// uriEncode percent-encodes every byte but the RFC 3986 unreserved ones,
// with upper-case hex; a space becomes %20, never '+'.
func uriEncode(s string) string {
	n := 0
	for i := 0; i < len(s); i++ {
		if !isUnreserved(s[i]) {
			n++
		}
	}
	if n == 0 {
		return s
	}
	b := make([]byte, 0, len(s)+2*n)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isUnreserved(c) {
			b = append(b, c)
		} else {
			b = append(b, '%', upperHex[c>>4], upperHex[c&15])
		}
	}
	return string(b)
}
