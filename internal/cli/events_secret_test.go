package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// `kinema events secret` prints the secret a webhook is signed with: with
// KINEMA_SERVER_KEY, the one every node of the cluster derives, whatever
// the data dir given; without it, the data dir's own.
func TestEventsSecretFollowsServerKey(t *testing.T) {
	const url = "https://hooks.example.com/kvs"
	secret := func(dir, serverKey string) string {
		t.Helper()
		var out, errb bytes.Buffer
		env := func(k string) string {
			if k == "KINEMA_SERVER_KEY" {
				return serverKey
			}
			return ""
		}
		if code := runEvents(context.Background(), []string{"secret", "--data-dir", dir, url}, &out, &errb, env); code != 0 {
			t.Fatalf("events secret: %d %s", code, errb.String())
		}
		return strings.TrimSpace(out.String())
	}
	const key = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
	a, b := t.TempDir(), t.TempDir()
	if secret(a, key) != secret(b, key) {
		t.Fatal("two data dirs with one server key print different secrets")
	}
	if secret(a, "") == secret(b, "") {
		t.Fatal("two data dirs without a server key print the same secret")
	}
	if secret(a, "") != secret(a, "") || secret(a, "") == secret(a, key) {
		t.Fatal("without a server key the data dir's own key is not used")
	}
}
