package iam

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/kinema/kinema/internal/sigv4"
)

func openTestService(t *testing.T, dir string, key []byte, now func() time.Time) *Service {
	t.Helper()
	store, err := OpenSQLite(context.Background(), filepath.Join(dir, "iam.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	s, err := Open(context.Background(), Options{Store: store, ServerKey: key, DefaultAccount: "000000000000",
		RootAccessKeyID: "AKIDROOT", RootSecret: "root-secret", Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Secrets are stored encrypted, come back after a restart, and do not
// decrypt under another server key.
func TestSecretsEncryptedAtRestAndReloaded(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	key := make([]byte, 32)
	rand.Read(key)
	s := openTestService(t, dir, key, nil)
	acct, err := s.CreateAccount(ctx, "acme", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateUser(ctx, acct.ID, "cam1"); err != nil {
		t.Fatal(err)
	}
	k, err := s.CreateAccessKey(ctx, acct.ID, "cam1")
	if err != nil {
		t.Fatal(err)
	}
	s.opt.Store.Close()

	b, err := os.ReadFile(filepath.Join(dir, "iam.db"))
	if err != nil {
		t.Fatal(err)
	}
	wal, _ := os.ReadFile(filepath.Join(dir, "iam.db-wal"))
	if bytes.Contains(b, []byte(k.SecretAccessKey)) || bytes.Contains(wal, []byte(k.SecretAccessKey)) {
		t.Fatal("the secret access key is stored in plaintext")
	}

	s2 := openTestService(t, dir, key, nil)
	got, err := s2.SecretFor(ctx, k.ID)
	if err != nil || got != k.SecretAccessKey {
		t.Fatalf("after reopening: %q, %v", got, err)
	}
	s2.opt.Store.Close()

	other := make([]byte, 32)
	rand.Read(other)
	store, _ := OpenSQLite(ctx, filepath.Join(dir, "iam.db"))
	defer store.Close()
	if _, err := Open(ctx, Options{Store: store, ServerKey: other, DefaultAccount: "000000000000"}); err == nil {
		t.Fatal("secrets opened under another server key")
	}
}

func TestKeyLifecycleAndSessions(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	key := make([]byte, 32)
	s := openTestService(t, t.TempDir(), key, func() time.Time { return now })
	acct := s.DefaultAccount()
	s.CreateUser(ctx, acct, "viewer")
	k, err := s.CreateAccessKey(ctx, acct, "viewer")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateAccessKey(ctx, acct, "viewer"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateAccessKey(ctx, acct, "viewer"); err == nil {
		t.Fatal("a third key was made")
	}
	p := &Principal{Account: acct, Kind: KindUser, Name: "viewer", AccessKeyID: k.ID}
	creds, _, err := s.IssueSession(SessionSpec{From: p, Duration: 15 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if sec, err := s.SessionSecretFor(ctx, creds.AccessKeyID, creds.SessionToken); err != nil || sec != creds.SecretAccessKey {
		t.Fatalf("session secret: %q %v", sec, err)
	}
	if _, err := s.SessionSecretFor(ctx, "ASIAOTHERKEY", creds.SessionToken); !errors.Is(err, sigv4.ErrUnknownKey) {
		t.Fatalf("token used with another key id: %v", err)
	}
	tampered := []byte(creds.SessionToken)
	tampered[len(tampered)/2] ^= 1
	if _, err := s.SessionSecretFor(ctx, creds.AccessKeyID, string(tampered)); !errors.Is(err, sigv4.ErrUnknownKey) {
		t.Fatalf("tampered token: %v", err)
	}
	// Disabling the key that made a session ends the session too.
	if err := s.SetAccessKeyStatus(ctx, acct, k.ID, KeyInactive); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SecretFor(ctx, k.ID); !errors.Is(err, sigv4.ErrUnknownKey) {
		t.Fatalf("disabled key: %v", err)
	}
	if _, err := s.SessionSecretFor(ctx, creds.AccessKeyID, creds.SessionToken); !errors.Is(err, sigv4.ErrUnknownKey) {
		t.Fatalf("session of a disabled key: %v", err)
	}
	s.SetAccessKeyStatus(ctx, acct, k.ID, KeyActive)
	now = now.Add(16 * time.Minute)
	if _, err := s.SessionSecretFor(ctx, creds.AccessKeyID, creds.SessionToken); !errors.Is(err, sigv4.ErrExpiredToken) {
		t.Fatalf("expired session: %v", err)
	}
}

func TestRolePoliciesAndSessionPolicyIntersect(t *testing.T) {
	ctx := context.Background()
	s := openTestService(t, t.TempDir(), make([]byte, 32), nil)
	acct := s.DefaultAccount()
	if _, err := s.CreateRole(ctx, acct, "camera", 0, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutPolicy(ctx, acct, "own-stream", `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":["kinesisvideo:PutMedia","kinesisvideo:DescribeStream"],"Resource":"arn:aws:kinesisvideo:*:*:stream/${credentials-iot:ThingName}/*"}}`); err != nil {
		t.Fatal(err)
	}
	if err := s.AttachPolicy(ctx, acct, AttachRole, "camera", "own-stream", false); err != nil {
		t.Fatal(err)
	}
	if err := s.DeletePolicy(ctx, acct, "own-stream"); err == nil {
		t.Fatal("deleted an attached policy")
	}
	role := s.ListRoles(acct)[0]
	_, p, err := s.IssueSession(SessionSpec{Role: &role, Name: "cam-1", Thing: "cam-1", Duration: time.Hour,
		Policy: `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"kinesisvideo:PutMedia","Resource":"*"}}`})
	if err != nil {
		t.Fatal(err)
	}
	at := func(action, arn string) Decision {
		return s.Authorize(p, &Request{Action: action, Resource: arn, Now: time.Now()})
	}
	if d := at("kinesisvideo:PutMedia", arnCam1); d != Allow {
		t.Fatalf("own stream: %v", d)
	}
	if d := at("kinesisvideo:PutMedia", arnCam2); d != ImplicitDeny {
		t.Fatalf("other stream: %v", d)
	}
	if d := at("kinesisvideo:DescribeStream", arnCam1); d != ImplicitDeny {
		t.Fatalf("allowed by the role but not the session policy: %v", d)
	}
}

// Deleting an account deletes what it holds (users, keys, policies,
// roles), in memory and in the store, and nothing of another account.
func TestDeleteAccountCascades(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	key := make([]byte, 32)
	s := openTestService(t, dir, key, nil)
	made := map[string]string{} // account id -> its key id
	for _, name := range []string{"gone", "kept"} {
		acct, err := s.CreateAccount(ctx, name, "")
		if err != nil {
			t.Fatal(err)
		}
		s.CreateUser(ctx, acct.ID, "cam1")
		k, err := s.CreateAccessKey(ctx, acct.ID, "cam1")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.PutPolicy(ctx, acct.ID, "p", `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kinesisvideo:PutMedia","Resource":"*"}]}`); err != nil {
			t.Fatal(err)
		}
		if _, err := s.CreateRole(ctx, acct.ID, "r", 3600, nil); err != nil {
			t.Fatal(err)
		}
		made[acct.ID] = k.ID
	}
	var gone, kept string
	for id := range made {
		if s.st.accounts[id].Name == "gone" {
			gone = id
		} else {
			kept = id
		}
	}
	if err := s.DeleteAccount(ctx, gone); err != nil {
		t.Fatal(err)
	}
	check := func(s *Service, when string) {
		t.Helper()
		if _, err := s.SecretFor(ctx, made[gone]); !errors.Is(err, sigv4.ErrUnknownKey) {
			t.Errorf("%s: the deleted account's key still works: %v", when, err)
		}
		if _, err := s.SecretFor(ctx, made[kept]); err != nil {
			t.Errorf("%s: the other account's key: %v", when, err)
		}
		for what, n := range map[string]int{
			"users":    len(keysOwnedBy(s.st.users, gone, func(v *User) string { return v.Account })),
			"policies": len(keysOwnedBy(s.st.policies, gone, func(v *StoredPolicy) string { return v.Account })),
			"roles":    len(keysOwnedBy(s.st.roles, gone, func(v *Role) string { return v.Account })),
		} {
			if n != 0 {
				t.Errorf("%s: %d %s of the deleted account left", when, n, what)
			}
		}
		if len(keysOwnedBy(s.st.users, kept, func(v *User) string { return v.Account })) != 1 {
			t.Errorf("%s: the other account lost its user", when)
		}
	}
	check(s, "in memory")
	s.opt.Store.Close()
	check(openTestService(t, dir, key, nil), "after reopening")
}

// A shared store this node cannot read whole (here a record another
// version wrote that does not parse) leaves the last state serving, and
// Follow reports it; once the store is readable again it follows again.
func TestFollowKeepsLastStateOnUnreadableStore(t *testing.T) {
	ctx := context.Background()
	s := openTestService(t, t.TempDir(), make([]byte, 32), nil)
	if _, err := s.CreateUser(ctx, "000000000000", "cam"); err != nil {
		t.Fatal(err)
	}
	k, err := s.CreateAccessKey(ctx, "000000000000", "cam")
	if err != nil {
		t.Fatal(err)
	}
	// Another node: a newer policy grammar, and the key disabled.
	v, _ := s.opt.Store.Version(ctx)
	disabled := k.AccessKey
	disabled.Status = KeyInactive
	if _, err := s.opt.Store.Apply(ctx, v, []Record{{Kind: kindPolicy, Key: "000000000000/future", Value: []byte(`{"Account":"000000000000","Name":"future","Document":"{\"Version\":\"2031-01-01\"}"}`)},
		put(kindKey, k.ID, &disabled)}); err != nil {
		t.Fatal(err)
	}
	if err := s.Refresh(ctx); err == nil {
		t.Fatal("refreshed from a store with a record that does not load")
	}
	if got, err := s.SecretFor(ctx, k.ID); err != nil || got != k.SecretAccessKey {
		t.Fatalf("the last state does not serve: %v", err)
	}
	fctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); s.Follow(fctx, 10*time.Millisecond) }()
	defer func() { cancel(); <-done }()
	for deadline := time.Now().Add(5 * time.Second); s.FollowErr() == nil; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("FollowErr does not report the unreadable store")
		}
	}
	// The other node removes what this one cannot read.
	v, _ = s.opt.Store.Version(ctx)
	if _, err := s.opt.Store.Apply(ctx, v, []Record{del(kindPolicy, "000000000000/future")}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); s.FollowErr() != nil; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("still not following: %v", s.FollowErr())
		}
	}
	if _, err := s.SecretFor(ctx, k.ID); err == nil {
		t.Fatal("the key disabled meanwhile is still accepted")
	}
}
