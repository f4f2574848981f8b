// Package iamtest is the contract of iam.Store as a test suite: the
// embedded SQLite store and the PostgreSQL store run it unchanged. It also
// holds the contract the store exists for: two iam.Services on one store
// (two nodes) see each other's changes within the stated delay. Only tests
// import it.
package iamtest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kinema/kinema/internal/iam"
	"github.com/kinema/kinema/internal/sigv4"
)

// Open returns two handles (two connections, as two nodes have) on one
// fresh, empty store; the suite closes neither, the opener's cleanup does.
type Open func(t *testing.T) (a, b iam.Store)

// Run runs the suite, each subtest on a store of its own.
func Run(t *testing.T, open Open) {
	tests := []struct {
		name string
		fn   func(t *testing.T, a, b iam.Store)
	}{
		{"Empty", testEmpty},
		{"ApplyAndRead", testApplyAndRead},
		{"ReplaceAndDelete", testReplaceAndDelete},
		{"StaleBaseConflicts", testStaleBase},
		{"ConcurrentWritersOneWins", testConcurrentWriters},
		{"SnapshotReads", testSnapshotReads},
		{"TwoServices", testTwoServices},
		{"TwoServicesRaceForLimits", testTwoServicesRace},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			a, b := open(t)
			tc.fn(t, a, b)
		})
	}
}

func all(t *testing.T, s iam.Store) (map[string][]byte, int64) {
	t.Helper()
	recs, v, err := s.All(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	m := map[string][]byte{}
	for _, r := range recs {
		if r.Value == nil {
			t.Fatalf("All returned %s/%s without a value", r.Kind, r.Key)
		}
		m[r.Kind+"/"+r.Key] = r.Value
	}
	return m, v
}

func version(t *testing.T, s iam.Store) int64 {
	t.Helper()
	v, err := s.Version(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func apply(t *testing.T, s iam.Store, base int64, changes ...iam.Record) int64 {
	t.Helper()
	v, err := s.Apply(context.Background(), base, changes)
	if err != nil {
		t.Fatalf("Apply at %d: %v", base, err)
	}
	if v != base+1 {
		t.Fatalf("Apply at %d returned version %d, want %d", base, v, base+1)
	}
	return v
}

func testEmpty(t *testing.T, a, b iam.Store) {
	m, v := all(t, a)
	if len(m) != 0 {
		t.Fatalf("a new store holds %d records", len(m))
	}
	if got := version(t, b); got != v {
		t.Fatalf("Version %d, All's version %d", got, v)
	}
}

func testApplyAndRead(t *testing.T, a, b iam.Store) {
	binary := make([]byte, 256)
	for i := range binary {
		binary[i] = byte(i)
	}
	want := map[string][]byte{
		"account/000000000001":  []byte(`{"Id":"000000000001"}`),
		"user/000000000001/cam": []byte(`{"Name":"cam"}`),
		"key/AKIAEXAMPLE":       binary, // values are opaque bytes
		"policy/000000000001/p": []byte(`{"Document":"{\"Version\":\"2012-10-17\"}"}`),
	}
	var changes []iam.Record
	for k, v := range want {
		kind, key, _ := cut(k)
		changes = append(changes, iam.Record{Kind: kind, Key: key, Value: v})
	}
	v0 := version(t, a)
	v1 := apply(t, a, v0, changes...)
	if got := version(t, b); got != v1 {
		t.Fatalf("the other handle is at version %d, want %d", got, v1)
	}
	got, v := all(t, b)
	if v != v1 {
		t.Fatalf("All at version %d, want %d", v, v1)
	}
	sameRecords(t, got, want)
}

func testReplaceAndDelete(t *testing.T, a, b iam.Store) {
	v := apply(t, a, version(t, a),
		iam.Record{Kind: "user", Key: "x/u1", Value: []byte(`1`)},
		iam.Record{Kind: "user", Key: "x/u2", Value: []byte(`2`)},
		iam.Record{Kind: "role", Key: "x/u1", Value: []byte(`same key, other kind`)})
	v = apply(t, b, v,
		iam.Record{Kind: "user", Key: "x/u1", Value: []byte(`1 again`)},
		iam.Record{Kind: "user", Key: "x/u2"},     // deleted
		iam.Record{Kind: "device", Key: "absent"}) // deleting nothing is no error
	got, gv := all(t, a)
	if gv != v {
		t.Fatalf("All at %d, want %d", gv, v)
	}
	sameRecords(t, got, map[string][]byte{"user/x/u1": []byte(`1 again`), "role/x/u1": []byte(`same key, other kind`)})
	// A batch may put and delete the same record: the last change wins.
	v = apply(t, a, v, iam.Record{Kind: "user", Key: "x/u3", Value: []byte(`3`)}, iam.Record{Kind: "user", Key: "x/u3"})
	got, _ = all(t, b)
	if _, ok := got["user/x/u3"]; ok {
		t.Fatal("put then delete in one batch left the record")
	}
}

func testStaleBase(t *testing.T, a, b iam.Store) {
	v0 := version(t, a)
	v1 := apply(t, b, v0, iam.Record{Kind: "user", Key: "x/first", Value: []byte(`first`)})
	// a decided on v0 and must not overwrite what b wrote since.
	_, err := a.Apply(context.Background(), v0, []iam.Record{{Kind: "user", Key: "x/first", Value: []byte(`stale`)},
		{Kind: "user", Key: "x/second", Value: []byte(`stale`)}})
	if !errors.Is(err, iam.ErrConflict) {
		t.Fatalf("Apply on a stale version: %v, want ErrConflict", err)
	}
	got, v := all(t, a)
	if v != v1 {
		t.Fatalf("a refused Apply moved the version to %d", v)
	}
	sameRecords(t, got, map[string][]byte{"user/x/first": []byte(`first`)})
	if _, err := a.Apply(context.Background(), v1+5, nil); !errors.Is(err, iam.ErrConflict) {
		t.Fatalf("Apply on a future version: %v, want ErrConflict", err)
	}
}

func testConcurrentWriters(t *testing.T, a, b iam.Store) {
	v0 := version(t, a)
	const writers = 8
	var wins atomic.Int32
	var wg sync.WaitGroup
	errs := make([]error, writers)
	for i := range writers {
		s := a
		if i%2 == 1 {
			s = b
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Apply(context.Background(), v0, []iam.Record{{Kind: "user", Key: fmt.Sprintf("x/w%d", i), Value: []byte(`w`)}})
			switch {
			case err == nil:
				wins.Add(1)
			case !errors.Is(err, iam.ErrConflict):
				errs[i] = err
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	got, v := all(t, b)
	if wins.Load() != 1 || len(got) != 1 || v != v0+1 {
		t.Fatalf("%d writers from one version: %d won, %d records, version %d -> %d; want exactly one", writers, wins.Load(), len(got), v0, v)
	}
}

// testSnapshotReads: All never sees half a batch, nor records of a version
// other than the one it reports.
func testSnapshotReads(t *testing.T, a, b iam.Store) {
	const batches, per = 15, 40
	v0 := version(t, a)
	done := make(chan struct{})
	var readErr error
	reads := 0
	go func() {
		defer close(done)
		for {
			recs, v, err := b.All(context.Background())
			if err != nil {
				readErr = err
				return
			}
			reads++
			if len(recs) != per*int(v-v0) {
				readErr = fmt.Errorf("All at version %d returned %d records, want %d", v, len(recs), per*int(v-v0))
				return
			}
			if v == v0+batches {
				return
			}
		}
	}()
	v := v0
	for i := range batches {
		var changes []iam.Record
		for j := range per {
			changes = append(changes, iam.Record{Kind: "device", Key: fmt.Sprintf("%02d-%02d", i, j), Value: []byte(`{}`)})
		}
		v = apply(t, a, v, changes...)
		time.Sleep(5 * time.Millisecond) // let reads fall between batches too
	}
	<-done
	if readErr != nil {
		t.Fatal(readErr)
	}
	t.Logf("%d consistent reads during %d batches", reads, batches)
}

func cut(s string) (string, string, bool) {
	for i := range s {
		if s[i] == '/' {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func sameRecords(t *testing.T, got, want map[string][]byte) {
	t.Helper()
	var g, w []string
	for k := range got {
		g = append(g, k)
	}
	for k := range want {
		w = append(w, k)
	}
	sort.Strings(g)
	sort.Strings(w)
	if fmt.Sprint(g) != fmt.Sprint(w) {
		t.Fatalf("records %v, want %v", g, w)
	}
	for k, v := range want {
		if !bytes.Equal(got[k], v) {
			t.Fatalf("record %s is %q, want %q", k, got[k], v)
		}
	}
}

// ---- two nodes ----

// Propagation is the delay the suite holds a change on one node to before
// it must take effect on another: FollowInterval plus margin for the
// reload on a loaded machine.
const Propagation = 2 * iam.FollowInterval

const account = "000000000000"

// services opens a Service on each handle (one server key, as a cluster
// shares) and follows the store at the interval a server uses.
func services(t *testing.T, a, b iam.Store) (*iam.Service, *iam.Service) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	key := make([]byte, 32)
	rand.Read(key)
	var out [2]*iam.Service
	var wg sync.WaitGroup
	for i, st := range []iam.Store{a, b} {
		s, err := iam.Open(ctx, iam.Options{Store: st, ServerKey: key, DefaultAccount: account})
		if err != nil {
			cancel()
			t.Fatal(err)
		}
		out[i] = s
		wg.Add(1)
		go func() { defer wg.Done(); s.Follow(ctx, 0) }()
	}
	t.Cleanup(func() { cancel(); wg.Wait() })
	return out[0], out[1]
}

// within waits until cond holds on the other node, failing after
// Propagation; it returns how long that took.
func within(t *testing.T, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > Propagation {
			t.Fatalf("%s: not seen by the other node within %v", what, Propagation)
		}
		time.Sleep(10 * time.Millisecond)
	}
	d := time.Since(start)
	t.Logf("%s: seen by the other node after %v", what, d.Round(time.Millisecond))
	return d
}

func accepts(s *iam.Service, id, secret string) bool {
	got, err := s.SecretFor(context.Background(), id)
	return err == nil && got == secret
}

func refuses(s *iam.Service, id string) bool {
	_, err := s.SecretFor(context.Background(), id)
	return errors.Is(err, sigv4.ErrUnknownKey)
}

func testTwoServices(t *testing.T, a, b iam.Store) {
	ctx := context.Background()
	nodeA, nodeB := services(t, a, b)

	if _, err := nodeA.CreateUser(ctx, account, "cam-1"); err != nil {
		t.Fatal(err)
	}
	// An admin call on B right after one on A sees it, without waiting
	// for the poll: writes catch up with the store first.
	k, err := nodeB.CreateAccessKey(ctx, account, "cam-1")
	if err != nil {
		t.Fatalf("creating a key on B for a user just created on A: %v", err)
	}
	if !accepts(nodeB, k.ID, k.SecretAccessKey) {
		t.Fatal("B refuses the key it created")
	}
	within(t, "key created on B, accepted on A", func() bool { return accepts(nodeA, k.ID, k.SecretAccessKey) })

	if err := nodeA.SetAccessKeyStatus(ctx, account, k.ID, iam.KeyInactive); err != nil {
		t.Fatal(err)
	}
	within(t, "key disabled on A, refused on B", func() bool { return refuses(nodeB, k.ID) })

	if err := nodeB.SetAccessKeyStatus(ctx, account, k.ID, iam.KeyActive); err != nil {
		t.Fatal(err)
	}
	within(t, "key enabled on B, accepted on A", func() bool { return accepts(nodeA, k.ID, k.SecretAccessKey) })

	// Policies and roles travel too: what a principal may do.
	doc := `{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"kinesisvideo:PutMedia","Resource":"*"}]}`
	if _, err := nodeA.PutPolicy(ctx, account, "put", doc); err != nil {
		t.Fatal(err)
	}
	if err := nodeB.AttachPolicy(ctx, account, iam.AttachUser, "cam-1", "put", false); err != nil {
		t.Fatalf("attaching on B a policy just put on A: %v", err)
	}
	within(t, "policy attached on B, listed on A", func() bool {
		u := nodeA.ListUsers(account)
		return len(u) == 1 && len(u[0].Policies) == 1 && u[0].Policies[0] == "put"
	})

	if err := nodeA.DeleteAccessKey(ctx, account, k.ID); err != nil {
		t.Fatal(err)
	}
	within(t, "key deleted on A, refused on B", func() bool { return refuses(nodeB, k.ID) })
	if err := nodeB.DeleteAccessKey(ctx, account, k.ID); err == nil {
		t.Fatal("B deleted a key A had deleted already")
	}

	if err := nodeB.DeleteUser(ctx, account, "cam-1"); err != nil {
		t.Fatal(err)
	}
	within(t, "user deleted on B, gone on A", func() bool { return len(nodeA.ListUsers(account)) == 0 })
}

// testTwoServicesRace: limits and uniqueness hold across nodes writing at
// once, because a write decided on a stale copy is decided again.
func testTwoServicesRace(t *testing.T, a, b iam.Store) {
	ctx := context.Background()
	nodeA, nodeB := services(t, a, b)
	if _, err := nodeA.CreateUser(ctx, account, "cam-1"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var created, users atomic.Int32
	for i := range 6 {
		s := nodeA
		if i%2 == 1 {
			s = nodeB
		}
		wg.Add(2)
		go func() {
			defer wg.Done()
			if _, err := s.CreateAccessKey(ctx, account, "cam-1"); err == nil {
				created.Add(1)
			}
		}()
		go func() {
			defer wg.Done()
			if _, err := s.CreateUser(ctx, account, "cam-2"); err == nil {
				users.Add(1)
			}
		}()
	}
	wg.Wait()
	if created.Load() != 2 {
		t.Fatalf("6 concurrent key creations on two nodes made %d keys; a user has at most 2", created.Load())
	}
	if users.Load() != 1 {
		t.Fatalf("the same user was created %d times", users.Load())
	}
	within(t, "both nodes list 2 keys", func() bool {
		return len(nodeA.ListAccessKeys(account, "cam-1")) == 2 && len(nodeB.ListAccessKeys(account, "cam-1")) == 2
	})
}
