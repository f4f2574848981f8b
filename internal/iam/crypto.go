package iam

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ServerKeyFile is the server key's file in the data dir. It encrypts
// stored secret access keys and seals session tokens; losing it invalidates
// every access key and session (they cannot be decrypted), so back it up
// with the data dir, but never store it next to a copy of the database you
// hand out.
const ServerKeyFile = "server.key"

// sealer encrypts with AES-256-GCM under the server key. The purpose string
// is the additional data, so a ciphertext made for one purpose (a stored
// secret of key A) cannot be replayed as another (the secret of key B, or a
// session token).
type sealer struct{ aead cipher.AEAD }

// LoadServerKey reads the server key from the environment value (64 hex
// digits) if set, else from dir/server.key, creating it (mode 0600) when
// missing.
func LoadServerKey(dir, env string) ([]byte, error) {
	if env != "" {
		k, err := hex.DecodeString(strings.TrimSpace(env))
		if err != nil || len(k) != 32 {
			return nil, errors.New("KINEMA_SERVER_KEY must be 64 hexadecimal digits (32 bytes)")
		}
		return k, nil
	}
	path := filepath.Join(dir, ServerKeyFile)
	b, err := os.ReadFile(path)
	if err == nil {
		k, err := hex.DecodeString(strings.TrimSpace(string(b)))
		if err != nil || len(k) != 32 {
			return nil, fmt.Errorf("%s is damaged: it must hold 64 hexadecimal digits", path)
		}
		return k, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	k := make([]byte, 32)
	rand.Read(k)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	if _, err := f.WriteString(hex.EncodeToString(k) + "\n"); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, err
	}
	return k, f.Close()
}

// DeriveKey derives a 32-byte key for one purpose from the server key
// (HKDF-SHA256, the purpose as the info): every node configured with the
// same server key derives the same key, while a key of one purpose tells
// nothing of the server key or of another purpose's key.
func DeriveKey(serverKey []byte, purpose string) ([]byte, error) {
	if len(serverKey) != 32 {
		return nil, errors.New("iam: the server key must be 32 bytes")
	}
	return hkdf.Key(sha256.New, serverKey, nil, purpose, 32)
}

func newSealer(key []byte) (*sealer, error) {
	if len(key) != 32 {
		return nil, errors.New("iam: the server key must be 32 bytes")
	}
	blk, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(blk)
	if err != nil {
		return nil, err
	}
	return &sealer{aead: aead}, nil
}

func (s *sealer) seal(purpose string, plain []byte) []byte {
	nonce := make([]byte, s.aead.NonceSize(), s.aead.NonceSize()+len(plain)+s.aead.Overhead())
	rand.Read(nonce)
	return s.aead.Seal(nonce, nonce, plain, []byte(purpose))
}

func (s *sealer) open(purpose string, sealed []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n+s.aead.Overhead() {
		return nil, errors.New("sealed value too short")
	}
	return s.aead.Open(nil, sealed[:n], sealed[n:], []byte(purpose))
}

var tokenEncoding = base64.RawURLEncoding

// randomID returns n characters from alphabet, uniformly (rejection
// sampling, so no character is likelier than another).
func randomID(alphabet string, n int) string {
	out := make([]byte, 0, n)
	var buf [64]byte
	limit := 256 - 256%len(alphabet)
	for len(out) < n {
		rand.Read(buf[:])
		for _, b := range buf {
			if int(b) < limit && len(out) < n {
				out = append(out, alphabet[int(b)%len(alphabet)])
			}
		}
	}
	return string(out)
}

const (
	idAlphabet     = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
	secretAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
)

// NewKeyPair makes an access key id with the given prefix (AKIA for
// long-term keys, ASIA for temporary ones, as AWS) and a 40-character secret.
func NewKeyPair(prefix string) (id, secret string) {
	return prefix + randomID(idAlphabet, 16), randomID(secretAlphabet, 40)
}
