package producer

import (
	"bytes"
	"context"
	"encoding/pem"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func runPut(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = RunPut(context.Background(), args, &out, &errOut, func(k string) string { return env[k] })
	return code, out.String(), errOut.String()
}

func credsEnv(endpoint string) map[string]string {
	return map[string]string{"AWS_ACCESS_KEY_ID": testAccessKey, "AWS_SECRET_ACCESS_KEY": testSecretKey, "KINEMA_ENDPOINT": endpoint}
}

func TestRunPut(t *testing.T) {
	file := media.File(t, "av.mp4")
	kvs := newFakeKVS(t)
	kvs.addStream("cam", 24)
	env := credsEnv(kvs.srv.URL)

	// Flags after FILE work too.
	code, out, errOut := runPut(t, env, "--stream", "cam", "--fast", file, "--tag", "SITE=lab", "--notify", "--event-every", "2")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errOut)
	}
	if n := strings.Count(out, "PERSISTED fragment"); n != 3 || !strings.Contains(out, "3 of 3 fragments persisted") ||
		!strings.Contains(out, "H.264 320x240") {
		t.Errorf("output:\n%s", out)
	}
	_, frags := parseBody(t, kvs.put(1).Body)
	for i, f := range frags {
		var names []string
		for _, tags := range f.Tags {
			names = append(names, tags[0].Name+"="+tags[0].Value)
		}
		want := "SITE=lab," + TagEndOfFragment + "="
		if i%2 == 0 {
			want = TagNotification + "=," + want
		}
		if got := strings.Join(names, ","); got != want {
			t.Errorf("fragment %d tags %s, want %s", i, got, want)
		}
	}

	// --create, --quiet, --relative, --no-eofr.
	code, out, errOut = runPut(t, env, "--stream", "made", "--create", "--quiet", "--fast", "--relative", "--no-eofr", file)
	if code != 0 || out != "" || errOut != "" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	if len(kvs.creates) != 1 || kvs.creates[0]["DataRetentionInHours"] != 24.0 {
		t.Errorf("creates %v", kvs.creates)
	}
	if rec := kvs.put(2); rec.Header.Get("x-amzn-fragment-timecode-type") != TimecodeRelative || bytes.Contains(rec.Body, []byte(TagEndOfFragment)) {
		t.Error("--relative or --no-eofr not applied")
	}
}

func TestRunPutFailures(t *testing.T) {
	file := media.File(t, "av.mp4")
	kvs := newFakeKVS(t)
	kvs.addStream("cam", 24)
	env := credsEnv(kvs.srv.URL)
	for _, c := range []struct {
		name string
		env  map[string]string
		args []string
		code int
		msg  string
	}{
		{"no stream", env, []string{file}, 2, "--stream is required"},
		{"no file", env, []string{"--stream", "cam"}, 2, "exactly one FILE"},
		{"no credentials", map[string]string{}, []string{"--stream", "cam", file}, 2, "AWS_ACCESS_KEY_ID"},
		{"bad tag", env, []string{"--stream", "cam", "--tag", "novalue", file}, 2, "KEY=VALUE"},
		{"missing stream", env, []string{"--stream", "other", "--fast", file}, 1, "--create"},
		{"missing file", env, []string{"--stream", "cam", file + ".nope"}, 1, "no such file"},
		{"help", env, []string{"-h"}, 0, "usage: kinema put"},
	} {
		code, _, errOut := runPut(t, c.env, c.args...)
		if code != c.code || !strings.Contains(errOut, c.msg) {
			t.Errorf("%s: exit %d, stderr %q", c.name, code, errOut)
		}
	}
	kvs.errorAt = 1
	code, out, errOut := runPut(t, env, "--stream", "cam", "--fast", file)
	if code != 1 || !strings.Contains(errOut, "ERROR ack 5000") || !strings.Contains(out, "ERROR") {
		t.Errorf("error ack: exit %d\n%s%s", code, out, errOut)
	}
}

// TestRunPutTLS trusts the server's CA with --ca-file.
func TestRunPutTLS(t *testing.T) {
	file := media.File(t, "audio.m4a")
	kvs := startFakeKVS(t, true)
	kvs.addStream("cam", 1)
	env := credsEnv(kvs.srv.URL)
	code, _, errOut := runPut(t, env, "--stream", "cam", "--fast", file)
	if code != 1 || !strings.Contains(errOut, "certificate") {
		t.Errorf("untrusted: exit %d, %s", code, errOut)
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: kvs.srv.Certificate().Raw})
	if err := os.WriteFile(ca, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runPut(t, env, "--stream", "cam", "--fast", "--ca-file", ca, file)
	if code != 0 || !strings.Contains(out, "2 of 2 fragments persisted") {
		t.Errorf("exit %d\n%s%s", code, out, errOut)
	}
}
