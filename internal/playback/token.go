package playback

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/kinema/kinema/internal/archive"
)

// Session is what a playback URL grants: one stream, one selection, one
// mode, until it expires. It travels inside the URL's SessionToken, signed,
// so any node can check it without shared state.
type Session struct {
	Kind            Kind
	StreamID        int64
	StreamCreatedMs int64 // binds the token to this stream, not a later one of the same name
	Mode            Mode
	Selector        archive.TimestampKind
	StartMs         int64
	EndMs           int64 // 0: open-ended
	Container       Container
	Discontinuity   Discontinuity
	ShowTimestamp   bool // EXT-X-PROGRAM-DATE-TIME / kvs:ts
	ShowNumber      bool // DASH kvs:fn
	MaxFragments    int
	CreatedMs       int64
	ExpiresMs       int64
}

// Kind is the protocol a session serves.
type Kind byte

const (
	HLS Kind = iota + 1
	DASH
)

// Mode is the KVS PlaybackMode.
type Mode byte

const (
	Live Mode = iota + 1
	LiveReplay
	OnDemand
)

// Container is the HLS ContainerFormat.
type Container byte

const (
	FragmentedMP4 Container = iota + 1
	MPEGTS
)

// Discontinuity is the HLS DiscontinuityMode.
type Discontinuity byte

const (
	DiscontinuityAlways Discontinuity = iota + 1
	DiscontinuityNever
	DiscontinuityOnGap
)

// Keyring signs and checks session tokens with a server key.
type Keyring struct {
	key []byte
}

// keyFile holds the HMAC key in the data dir.
const keyFile = "playback.key"

// LoadKeyring reads the session key from dataDir, creating it (mode 0600) on
// first use. Tokens stay valid across restarts.
func LoadKeyring(dataDir string) (*Keyring, error) {
	p := filepath.Join(dataDir, keyFile)
	if b, err := os.ReadFile(p); err == nil {
		if len(b) != 32 {
			return nil, fmt.Errorf("%s is damaged (want 32 bytes)", p)
		}
		return &Keyring{key: b}, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	k := make([]byte, 32)
	rand.Read(k)
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(k); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, err
	}
	return &Keyring{key: k}, f.Close()
}

// NewKeyring uses key as is: a key derived from a cluster's shared server
// key, so that any node verifies the session URLs every other node mints.
func NewKeyring(key []byte) *Keyring { return &Keyring{key: key} }

const tokenVersion = 1

// macBytes of HMAC-SHA256 are kept: forging one is a 2^-128 guess.
const macBytes = 16

// Token encodes and signs s. The result is URL-safe.
func (k *Keyring) Token(s *Session) string {
	b := []byte{tokenVersion, byte(s.Kind), byte(s.Mode), byte(s.Selector), byte(s.Container), byte(s.Discontinuity), flags(s)}
	for _, v := range []int64{s.StreamID, s.StreamCreatedMs, s.StartMs, s.EndMs, int64(s.MaxFragments), s.CreatedMs, s.ExpiresMs} {
		b = binary.AppendVarint(b, v)
	}
	mac := hmac.New(sha256.New, k.key)
	mac.Write(b)
	b = mac.Sum(b)[:len(b)+macBytes]
	return base64.RawURLEncoding.EncodeToString(b)
}

func flags(s *Session) byte {
	var f byte
	if s.ShowTimestamp {
		f |= 1
	}
	if s.ShowNumber {
		f |= 2
	}
	return f
}

// Token errors; all answer 403 with nothing of the stream.
var (
	ErrBadToken     = errors.New("the session token is malformed or was not issued by this server")
	ErrExpiredToken = errors.New("the session token has expired")
)

// Parse checks the token's signature and expiry and returns its session.
func (k *Keyring) Parse(tok string, now time.Time) (*Session, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(b) < 7+macBytes {
		return nil, ErrBadToken
	}
	body, sum := b[:len(b)-macBytes], b[len(b)-macBytes:]
	mac := hmac.New(sha256.New, k.key)
	mac.Write(body)
	if !hmac.Equal(mac.Sum(nil)[:macBytes], sum) || body[0] != tokenVersion {
		return nil, ErrBadToken
	}
	s := &Session{Kind: Kind(body[1]), Mode: Mode(body[2]), Selector: archive.TimestampKind(body[3]),
		Container: Container(body[4]), Discontinuity: Discontinuity(body[5]),
		ShowTimestamp: body[6]&1 != 0, ShowNumber: body[6]&2 != 0}
	rest := body[7:]
	vals := make([]int64, 7)
	for i := range vals {
		v, n := binary.Varint(rest)
		if n <= 0 {
			return nil, ErrBadToken
		}
		vals[i], rest = v, rest[n:]
	}
	if len(rest) != 0 {
		return nil, ErrBadToken
	}
	s.StreamID, s.StreamCreatedMs, s.StartMs, s.EndMs = vals[0], vals[1], vals[2], vals[3]
	s.MaxFragments, s.CreatedMs, s.ExpiresMs = int(vals[4]), vals[5], vals[6]
	if now.UnixMilli() >= s.ExpiresMs {
		return nil, ErrExpiredToken
	}
	return s, nil
}
