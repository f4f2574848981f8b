package playback

import (
	"strings"
	"testing"
	"time"

	"github.com/kinema/kinema/internal/archive"
)

func TestTokenRoundTripAndTamper(t *testing.T) {
	k := NewKeyring([]byte("0123456789abcdef0123456789abcdef"))
	now := time.UnixMilli(1_800_000_000_000)
	s := &Session{Kind: HLS, StreamID: 42, StreamCreatedMs: 1_700_000_000_123, Mode: OnDemand, Selector: archive.ProducerTimestamp,
		StartMs: 1_799_999_000_000, EndMs: 1_799_999_600_000, Container: MPEGTS, Discontinuity: DiscontinuityOnGap,
		ShowTimestamp: true, MaxFragments: 1000, CreatedMs: now.UnixMilli(), ExpiresMs: now.Add(300 * time.Second).UnixMilli()}
	tok := k.Token(s)
	if strings.ContainsAny(tok, "+/=") {
		t.Fatalf("token %q is not URL-safe", tok)
	}
	got, err := k.Parse(tok, now)
	if err != nil || *got != *s {
		t.Fatalf("round trip: %+v %v", got, err)
	}
	if _, err := k.Parse(tok, now.Add(301*time.Second)); err != ErrExpiredToken {
		t.Fatalf("expired token: %v", err)
	}
	// Every single-character change is refused.
	for i := range tok {
		for _, c := range "AZaz09-_" {
			if byte(c) == tok[i] {
				continue
			}
			bad := tok[:i] + string(c) + tok[i+1:]
			if _, err := k.Parse(bad, now); err == nil {
				t.Fatalf("altered token accepted: position %d -> %c", i, c)
			}
		}
	}
	if _, err := NewKeyring([]byte("another key another key another k")).Parse(tok, now); err != ErrBadToken {
		t.Fatalf("token from another server accepted: %v", err)
	}
	for _, junk := range []string{"", "~", "abc", strings.Repeat("A", 400)} {
		if _, err := k.Parse(junk, now); err != ErrBadToken {
			t.Fatalf("%q: %v", junk, err)
		}
	}
}

func TestKeyringPersists(t *testing.T) {
	dir := t.TempDir()
	a, err := LoadKeyring(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := LoadKeyring(dir)
	if err != nil || string(a.key) != string(b.key) {
		t.Fatal("key not kept across loads")
	}
}
