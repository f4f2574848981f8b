package memo

import "testing"

func TestMap(t *testing.T) {
	var m Map[int, string]
	m.Max = 2
	if _, ok := m.Get(1); ok {
		t.Fatal("empty map has a value")
	}
	m.Put(1, "a")
	m.Put(2, "b")
	if v, ok := m.Get(2); !ok || v != "b" {
		t.Fatalf("Get(2) = %q %v", v, ok)
	}
	m.Put(3, "c") // full: dropped whole, then 3 kept
	if _, ok := m.Get(1); ok {
		t.Fatal("a full map was not dropped")
	}
	if v, _ := m.Get(3); v != "c" {
		t.Fatalf("Get(3) = %q", v)
	}
}
