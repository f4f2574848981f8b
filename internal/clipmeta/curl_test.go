package clipmeta_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"strings"
	"testing"

	"github.com/kinema/kinema/internal/apierr"
	"github.com/kinema/kinema/internal/sigv4"
)

type oneKey struct{ id, secret string }

func (k oneKey) SecretFor(_ context.Context, id string) (string, error) {
	if id != k.id {
		return "", sigv4.ErrUnknownKey
	}
	return k.secret, nil
}

// signedFront is what the server's dispatcher does before a request
// reaches the Handler: buffer the body, verify SigV4 over it, hand the body
// back.
func signedFront(v *sigv4.Verifier, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		if err != nil {
			apierr.Write(w, apierr.InvalidArg("reading the body: %v", err))
			return
		}
		if _, err := v.Verify(r, body, false); err != nil {
			apierr.Write(w, apierr.New("InvalidSignatureException", "%v", err))
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		next.ServeHTTP(w, r)
	})
}

// The curl commands of docs/clip-metadata.md, signed by curl's own SigV4.
// curl 7.x signs the query string as written rather than sorted, so the
// examples write their parameters in sorted order.
func TestCurlExamples(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Fatal("curl is required for this test (scripts/setup.sh installs it)")
	}
	e := newEnv(t, "cam-1")
	key := oneKey{"AKIDCLIPMETA", "clip/meta+secret"}
	srv := httptest.NewServer(signedFront(&sigv4.Verifier{Service: "kinesisvideo", Credentials: key}, e.h))
	defer srv.Close()
	run := func(args ...string) (int, string) {
		t.Helper()
		args = append([]string{"-sS", "-w", "\n%{http_code}", "--aws-sigv4", "aws:amz:us-east-1:kinesisvideo",
			"--user", key.id + ":" + key.secret}, args...)
		out, err := exec.Command(curl, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("curl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		s := strings.TrimSpace(string(out))
		i := strings.LastIndexByte(s, '\n')
		var code int
		fmt.Sscan(s[i+1:], &code)
		return code, s[:i]
	}
	u := srv.URL + "/ipc-video-metadata"

	code, out := run("-X", "PUT", "-H", "Content-Type: application/json", "--data",
		`{"clientID":"app-1","deviceID":"dev-1","streamName":"cam-1","begTime":"1700000000000","endTime":"1700000010000","duration":"10"}`, u)
	var c clipOut
	if code != 200 || json.Unmarshal([]byte(out), &c) != nil || c.ClipID == "" {
		t.Fatalf("PUT: %d %s", code, out)
	}

	code, out = run("-X", "GET", "-H", "Content-Type: application/json", "--data",
		`{"clientID":"app-1","streamName":"cam-1","begTime":"1700000000000","endTime":"1700000010000","duration":"10"}`, u)
	if code != 200 || out != `"`+e.lastCall().URL+`"` {
		t.Fatalf("GET with a body: %d %s", code, out)
	}
	code, out = run(u + "?begTime=1700000000000&clientID=app-1&endTime=1700000010000&streamName=cam-1")
	if code != 200 || out != `"`+e.lastCall().URL+`"` {
		t.Fatalf("GET with a query: %d %s", code, out)
	}
	code, out = run(u + "/clips?clientID=app-1&deviceID=dev-1&from=1699999000000&maxResults=50&to=1700003600000")
	if code != 200 || !strings.Contains(out, `"clipID":"`+c.ClipID+`"`) {
		t.Fatalf("list: %d %s", code, out)
	}
	code, out = run("-X", "DELETE", u+"?clientID=app-1&clipID="+c.ClipID)
	if code != 200 || out != `{"clipID":"`+c.ClipID+`"}` {
		t.Fatalf("DELETE: %d %s", code, out)
	}
	code, out = run("-i", "-X", "PUT", "--data", `{"clientID":"app-1"}`, u)
	if code != 400 || !strings.Contains(strings.ToLower(out), "x-amzn-errortype: invalidargumentexception") ||
		!strings.Contains(out, `{"message":"missing required fields deviceID, streamName, begTime, endTime, duration"}`) {
		t.Fatalf("invalid PUT: %d %s", code, out)
	}
}
