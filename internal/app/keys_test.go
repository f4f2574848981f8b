package app

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"

	"github.com/kinema/kinema/internal/iam"
	"github.com/kinema/kinema/internal/notify"
	"github.com/kinema/kinema/internal/playback"
)

var testSession = &playback.Session{Kind: playback.HLS, StreamID: 7, StreamCreatedMs: 1_700_000_000_000, Mode: playback.OnDemand,
	StartMs: 1_700_000_000_000, EndMs: 1_700_000_060_000, Container: playback.FragmentedMP4, CreatedMs: 1_700_000_000_000,
	ExpiresMs: 1_700_000_300_000}

// keysOf runs nodeKeys for a node with data dir dir and server key hexKey
// ("" for none) and returns its session token for testSession and its
// webhook secret for one URL: what another node must agree with.
func keysOf(t *testing.T, dir, hexKey string) (token, webhook string) {
	t.Helper()
	cfg := Config{DataDir: dir, ServerKey: hexKey}
	key, err := iam.LoadServerKey(dir, hexKey)
	if err != nil {
		t.Fatal(err)
	}
	var ncfg notify.Config
	kr, err := nodeKeys(cfg, key, &ncfg)
	if err != nil {
		t.Fatal(err)
	}
	return kr.Token(testSession), ncfg.SecretFor("https://hooks.example.com/kvs")
}

// Nodes with one server key derive the same playback and notification
// keys, whatever their data dirs hold; another server key gives others.
func TestDerivedKeysAgreeAcrossNodes(t *testing.T) {
	const k1 = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	const k2 = "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	dirA, dirB, dirC := t.TempDir(), t.TempDir(), t.TempDir()
	// Node B has stray data-dir keys of its own: they must not be used.
	os.WriteFile(filepath.Join(dirB, "playback.key"), bytes.Repeat([]byte{1}, 32), 0o600)
	os.WriteFile(filepath.Join(dirB, "notify.key"), []byte(hex.EncodeToString(bytes.Repeat([]byte{2}, 32))), 0o600)
	tokA, hookA := keysOf(t, dirA, k1)
	tokB, hookB := keysOf(t, dirB, k1)
	if tokA != tokB || hookA != hookB {
		t.Fatal("two nodes with one server key disagree on the playback or notification key")
	}
	tokC, hookC := keysOf(t, dirC, k2)
	if tokC == tokA || hookC == hookA {
		t.Fatal("another server key gave the same derived keys")
	}
	for _, f := range []string{"playback.key", "notify.key", "server.key"} {
		if _, err := os.Stat(filepath.Join(dirA, f)); err == nil {
			t.Errorf("a node with a configured server key wrote %s", f)
		}
	}

	// Each purpose has its own key, and none is the server key.
	sk, _ := hex.DecodeString(k1)
	pk, _ := iam.DeriveKey(sk, playbackKeyPurpose)
	nk, _ := iam.DeriveKey(sk, notifyKeyPurpose)
	if bytes.Equal(pk, nk) || bytes.Equal(pk, sk) || bytes.Equal(nk, sk) {
		t.Fatal("derived keys are not distinct")
	}
	// Pinned: a change of label or KDF changes every cluster's keys, so
	// session URLs and webhook secrets of a running cluster would stop
	// verifying after an upgrade.
	if got := hex.EncodeToString(pk); got != pinnedPlaybackKey {
		t.Fatalf("playback key for the test server key is %s, pinned %s", got, pinnedPlaybackKey)
	}
	if got := hex.EncodeToString(nk); got != pinnedNotifyKey {
		t.Fatalf("notification key for the test server key is %s, pinned %s", got, pinnedNotifyKey)
	}
}

// HKDF-SHA256 (RFC 5869, empty salt) of the server key 00 01 ... 1f with
// the purposes as info, computed independently of Go's crypto/hkdf (with
// Python's hmac module).
const (
	pinnedPlaybackKey = "f5fac3a8da24be5b41b6269a8e05a9ce2c824f0fb49a48e7066f865b9ec3c57b"
	pinnedNotifyKey   = "7a878a4a5cecc414214a2e0a8b8a8c04a19583b24ce05b0335cf5ccab6bf90b6"
)

// Without a configured server key a node keeps the data dir's keys exactly
// as before: existing installs keep their session URLs and webhook secrets.
func TestDataDirKeysWithoutServerKey(t *testing.T) {
	dir := t.TempDir()
	pk := bytes.Repeat([]byte{0x5a}, 32)
	nk := bytes.Repeat([]byte{0xa5}, 32)
	os.WriteFile(filepath.Join(dir, "playback.key"), pk, 0o600)
	os.WriteFile(filepath.Join(dir, "notify.key"), []byte(hex.EncodeToString(nk)), 0o600)
	tok, hook := keysOf(t, dir, "")
	if want := playback.NewKeyring(pk).Token(testSession); tok != want {
		t.Fatal("the data dir's playback.key is not the session key")
	}
	var want notify.Config
	want.UseKey(nk)
	if hook != want.SecretFor("https://hooks.example.com/kvs") {
		t.Fatal("the data dir's notify.key is not the notification key")
	}
	// A fresh data dir gets its keys made and kept, as always.
	fresh := t.TempDir()
	tok1, hook1 := keysOf(t, fresh, "")
	tok2, hook2 := keysOf(t, fresh, "")
	if tok1 != tok2 || hook1 != hook2 {
		t.Fatal("a restarted node without a server key changed its keys")
	}
	for _, f := range []string{"playback.key", "notify.key"} {
		if _, err := os.Stat(filepath.Join(fresh, f)); err != nil {
			t.Errorf("%s was not kept: %v", f, err)
		}
	}
}

// LoadNotifyKey (what `kinema events secret` uses) gives the key the
// server signs with, with and without a server key.
func TestLoadNotifyKeyIsTheServers(t *testing.T) {
	const k = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
	for _, key := range []string{k, ""} {
		dir := t.TempDir()
		_, hook := keysOf(t, dir, key)
		var c notify.Config
		if err := LoadNotifyKey(dir, key, &c); err != nil {
			t.Fatal(err)
		}
		if got := c.SecretFor("https://hooks.example.com/kvs"); got != hook {
			t.Fatalf("server key %q: events secret %s, server %s", key, got, hook)
		}
	}
}
