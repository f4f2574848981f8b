// Package memo keeps values that never change once computed (a stored
// track set, its parsed tracks, a complete fragment's LL-HLS parts) for
// readers that ask for the same ones again and again. The bound is crude on
// purpose: when the map is full it is dropped whole, since every entry is
// cheap to compute again and the working set is normally far smaller.
package memo

import "sync"

// DefaultMax is the bound of a Map whose Max is 0.
const DefaultMax = 4096

// Map is a bounded, concurrency-safe memo. The zero value is ready to use.
type Map[K comparable, V any] struct {
	Max int

	mu sync.Mutex
	m  map[K]V
}

// Get returns the value kept for k.
func (c *Map[K, V]) Get(k K) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[k]
	return v, ok
}

// Put keeps v for k.
func (c *Map[K, V]) Put(k K, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	max := c.Max
	if max == 0 {
		max = DefaultMax
	}
	if c.m == nil || len(c.m) >= max {
		c.m = make(map[K]V)
	}
	c.m[k] = v
}
