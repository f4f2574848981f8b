package sigv4

import (
	"bytes"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// FuzzCanonicalRequest drives the canonicalizer alone with fuzzed request
// lines, queries, headers and SignedHeaders lists, and checks the
// properties SigV4 requires of its output whatever the input:
//
//   - it never panics and is deterministic;
//   - the canonical URI and query are fully percent-encoded (only
//     unreserved bytes, '%XX', and '/' in the path, '=' and '&' in the
//     query), so no client-controlled byte can forge a line break;
//   - the query is sorted, and the order the client sent the parameters in
//     does not change it;
//   - there is exactly one header line per signed header, in the listed
//     order, and the request has exactly the shape
//     METHOD\nURI\nQUERY\nHEADERS\n\nSIGNED\n.
func FuzzCanonicalRequest(f *testing.F) {
	f.Add("POST", "/putMedia", "", "host;x-amz-date;x-amzn-stream-name", "cam  1 ", false)
	f.Add("GET", "/hls/v1/getHLSMasterPlaylist.m3u8", "SessionToken=a%2Fb&b=2&a=1&a=%2F", "host", "", false)
	f.Add("POST", "/a b/%zz/ü", "X-Amz-Signature=00&x=%E2%82%AC&y", "host;transfer-encoding;connection", "v\tv", true)
	f.Add("PUT", "", "k=v;w=1", "Host;X-Amz-Date", "multi\n line", false)
	f.Fuzz(func(t *testing.T, method, path, rawQuery, signed, value string, presigned bool) {
		if method == "" || strings.ContainsAny(method, " \r\n") {
			return
		}
		p := &authParams{presigned: presigned}
		if p.setSignedHeaders(signed) != nil {
			return // refused before canonicalization, as Verify does
		}
		names := p.headerNames
		r := &http.Request{Method: method, RequestURI: path, Host: "127.0.0.1:4566", Header: http.Header{},
			URL: &url.URL{Path: path, RawQuery: rawQuery}, ProtoMajor: 1}
		if rawQuery != "" {
			r.RequestURI = path + "?" + rawQuery
		}
		r.Header.Set("X-Amz-Date", "20261121T051008Z")
		r.Header.Set("X-Amzn-Stream-Name", value)
		r.Header.Add("X-Amzn-Stream-Name", value+" 2")
		query := parseQuery(r)
		got := canonicalPrefix(r, query, p)
		if again := canonicalPrefix(r, query, p); !bytes.Equal(got, again) {
			t.Fatal("canonicalPrefix is not deterministic")
		}

		// METHOD \n URI \n QUERY \n one line per header \n \n SIGNED \n
		lines := strings.Split(string(got), "\n")
		if len(lines) < 5 || lines[0] != method {
			t.Fatalf("malformed canonical request %q", got)
		}
		uri, q := lines[1], lines[2]
		for i := 0; i < len(uri); i++ {
			if c := uri[i]; !(isUnreserved(c) || c == '/' || c == '%') {
				t.Fatalf("canonical URI %q holds an unencoded byte %q", uri, c)
			}
		}
		for i := 0; i < len(q); i++ {
			if c := q[i]; !(isUnreserved(c) || c == '%' || c == '=' || c == '&') {
				t.Fatalf("canonical query %q holds an unencoded byte %q", q, c)
			}
		}
		if q != "" {
			pairs := strings.Split(q, "&")
			for i := 1; i < len(pairs); i++ {
				a, _, _ := strings.Cut(pairs[i-1], "=")
				b, _, _ := strings.Cut(pairs[i], "=")
				if a > b {
					t.Fatalf("canonical query %q is not sorted", q)
				}
			}
		}
		// Header values are signed as sent (trimmed), and may contain
		// line breaks only if the client put them there; net/http refuses
		// those on the wire, so only the count is checked when there are
		// none.
		if !strings.ContainsAny(value+signed, "\r\n") && !strings.ContainsAny(rawQuery+path, "\n") {
			if want := 3 + len(names) + 1 + 1 + 1; len(lines) != want {
				t.Fatalf("%d lines for %d signed headers, want %d: %q", len(lines), len(names), want, got)
			}
			if lines[len(lines)-2] != signed || lines[len(lines)-1] != "" {
				t.Fatalf("signed-headers line %q, want %q", lines[len(lines)-2], signed)
			}
		}

		// Reversing the order the parameters came in changes nothing.
		if rawQuery != "" {
			parts := strings.Split(rawQuery, "&")
			for i, j := 0, len(parts)-1; i < j; i, j = i+1, j-1 {
				parts[i], parts[j] = parts[j], parts[i]
			}
			r2 := *r
			r2.URL = &url.URL{Path: path, RawQuery: strings.Join(parts, "&")}
			r2.RequestURI = path + "?" + r2.URL.RawQuery
			if got2 := canonicalPrefix(&r2, parseQuery(&r2), p); !bytes.Equal(got, got2) {
				t.Fatalf("query order changed the canonical request:\n%q\n%q", got, got2)
			}
		}
	})
}
