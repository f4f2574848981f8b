package sigv4

import (
	"crypto/hmac"
	"crypto/sha256"
	"sync"
)

// maxCachedKeys bounds the signing-key cache. A key is valid for one
// (secret, day, region, service), so a deployment needs about one entry per
// active access key and region: 16,384 entries (about 2 MB) hold a fleet of
// 10,000 cameras, whose every request would otherwise pay four HMACs more;
// the bound stops a client with a valid key from growing the map by
// cycling through made-up regions.
const maxCachedKeys = 16384

type cacheKey struct{ secret, date, region, service string }

// keyCache memoizes derived signing keys. Deriving one costs four HMACs; the
// hot path (a PutMedia per camera plus frequent control-plane calls) uses
// the same few keys all day.
type keyCache struct {
	mu    sync.Mutex
	m     map[cacheKey][sha256.Size]byte
	limit int // 0: maxCachedKeys (tests set a small one)
}

func (c *keyCache) signingKey(secret, date, region, service string) [sha256.Size]byte {
	k := cacheKey{secret, date, region, service}
	c.mu.Lock()
	key, ok := c.m[k]
	c.mu.Unlock()
	if ok {
		return key
	}

	// Derived outside the lock: a rare duplicate derivation is cheaper
	// than serialising every request behind it.
	key = deriveKey(secret, date, region, service)

	c.mu.Lock()
	if c.m == nil {
		c.m = make(map[cacheKey][sha256.Size]byte)
	}
	limit := c.limit
	if limit <= 0 {
		limit = maxCachedKeys
	}
	if len(c.m) >= limit {
		// Evict an arbitrary entry (map order is unspecified). Entries
		// from past days are dead anyway, and live ones are cheap to
		// derive again.
		for old := range c.m {
			delete(c.m, old)
			break
		}
	}
	c.m[k] = key
	c.mu.Unlock()
	return key
}

// deriveKey computes the SigV4 signing key:
// HMAC(HMAC(HMAC(HMAC("AWS4"+secret, date), region), service), "aws4_request").
func deriveKey(secret, date, region, service string) [sha256.Size]byte {
	k := hmacSHA256([]byte("AWS4"+secret), date)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, service)
	k = hmacSHA256(k, scopeTerminator)
	var out [sha256.Size]byte
	copy(out[:], k)
	return out
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}
