package limits

import (
	"errors"
	"testing"
	"time"
)

func TestKeyRateRefillsAtItsRate(t *testing.T) {
	now := time.Unix(1000, 0)
	l := New(Config{KeyRate: 2, KeyBurst: 3})
	l.now = func() time.Time { return now }
	for i := range 3 {
		if _, err := l.Key("k", false); err != nil {
			t.Fatalf("call %d within the burst: %v", i, err)
		}
	}
	if _, err := l.Key("k", false); !errors.Is(err, ErrRate) {
		t.Fatalf("past the burst: %v", err)
	}
	if _, err := l.Key("other", false); err != nil {
		t.Fatalf("another key: %v", err)
	}
	now = now.Add(500 * time.Millisecond) // one token at 2/s
	if _, err := l.Key("k", false); err != nil {
		t.Fatalf("after refill: %v", err)
	}
	if _, err := l.Key("k", false); !errors.Is(err, ErrRate) {
		t.Fatalf("refill gave more than its rate: %v", err)
	}
	now = now.Add(time.Hour) // never more than the burst
	n := 0
	for {
		if _, err := l.Key("k", false); err != nil {
			break
		}
		n++
	}
	if n != 3 {
		t.Fatalf("after an hour idle %d calls passed, want the burst (3)", n)
	}
}

func TestConnectionsAreHeldUntilReleased(t *testing.T) {
	l := New(Config{KeyConnections: 2, StreamReaders: 1})
	r1, err1 := l.Key("k", true)
	r2, err2 := l.Key("k", true)
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	if _, err := l.Key("k", true); !errors.Is(err, ErrConnections) {
		t.Fatalf("third connection: %v", err)
	}
	if _, err := l.Key("k", false); err != nil {
		t.Fatalf("a short request is not a connection: %v", err)
	}
	r1()
	r1() // releasing twice frees one slot, not two
	r3, err := l.Key("k", true)
	if err != nil {
		t.Fatalf("after a release: %v", err)
	}
	if _, err := l.Key("k", true); !errors.Is(err, ErrConnections) {
		t.Fatalf("double release freed two slots: %v", err)
	}
	r2()
	r3()
	if len(l.conns) != 0 {
		t.Fatalf("counters left behind: %v", l.conns)
	}
	rr, err := l.Reader(7)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Reader(7); !errors.Is(err, ErrConnections) {
		t.Fatalf("second reader: %v", err)
	}
	if r, err := l.Reader(8); err != nil {
		t.Fatalf("reader of another stream: %v", err)
	} else {
		r()
	}
	rr()
}

func TestStreamRateMediaActions(t *testing.T) {
	now := time.Unix(1000, 0)
	l := New(Config{StreamRate: 100, MediaRate: 1})
	l.now = func() time.Time { return now }
	n := 0
	for l.Stream(1, "kinesisvideo:PutMedia") == nil {
		n++
	}
	if n != 10 { // burst: max(2*rate, 10)
		t.Fatalf("%d PutMedia passed at once, want 10", n)
	}
	if err := l.Stream(1, "kinesisvideo:DescribeStream"); err != nil {
		t.Fatalf("another action of the stream: %v", err)
	}
	if err := l.Stream(2, "kinesisvideo:PutMedia"); err != nil {
		t.Fatalf("another stream: %v", err)
	}
}

func TestNoLimitsWhenZero(t *testing.T) {
	l := New(Config{})
	for range 10000 {
		if _, err := l.Key("k", true); err != nil {
			t.Fatal(err)
		}
		if err := l.Stream(1, "kinesisvideo:PutMedia"); err != nil {
			t.Fatal(err)
		}
	}
}
