package sigv4

import (
	"fmt"
	"sync"
	"testing"
)

// The cache stays within its bound under concurrent use and always returns
// the key deriveKey would.
func TestKeyCacheBoundedAndConcurrent(t *testing.T) {
	const limit = 256
	c := keyCache{limit: limit}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 3 * limit {
				region := fmt.Sprintf("region-%d", (i*7+g)%(2*limit))
				got := c.signingKey("secret", "20261121", region, "kinesisvideo")
				if got != deriveKey("secret", "20261121", region, "kinesisvideo") {
					t.Errorf("wrong key for %s", region)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := len(c.m); n > limit {
		t.Fatalf("cache holds %d keys, bound is %d", n, limit)
	}
	// A rotated secret for the same scope gets its own key.
	if c.signingKey("secret", "20261121", "r", "s") == c.signingKey("other", "20261121", "r", "s") {
		t.Fatal("different secrets share a cached key")
	}
}
