package archive_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/archive/localfs"
	"github.com/kinema/kinema/internal/archive/sqlindex"
	"github.com/kinema/kinema/internal/stream"
)

type rig struct {
	dir   string
	idx   *sqlindex.Index
	media *localfs.Store
	a     *archive.Archive
	stop  context.CancelFunc
	done  chan struct{}
}

func open(t *testing.T, dir string, segBytes int64) *rig {
	t.Helper()
	ctx := context.Background()
	idx, err := sqlindex.Open(ctx, filepath.Join(dir, "index.db"))
	if err != nil {
		t.Fatal(err)
	}
	media, err := localfs.Open(filepath.Join(dir, "media"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := archive.Open(ctx, idx, media, archive.Options{SegmentBytes: segBytes})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	r := &rig{dir: dir, idx: idx, media: media, a: a, stop: cancel, done: make(chan struct{})}
	go func() { defer close(r.done); a.Run(runCtx) }()
	t.Cleanup(r.close)
	return r
}

func (r *rig) close() {
	if r.stop == nil {
		return
	}
	r.stop()
	<-r.done
	r.media.Close()
	r.idx.Close()
	r.stop = nil
}

func (r *rig) stream(t *testing.T, name string, hours int) *stream.Stream {
	t.Helper()
	s := &stream.Stream{Account: "000000000000", Region: "us-east-1", Name: name, Version: "v1",
		Status: stream.StatusActive, Created: time.Now(), RetentionHours: hours, StorageTier: "HOT"}
	if err := r.idx.CreateStream(context.Background(), s, nil); err != nil {
		t.Fatal(err)
	}
	return s
}

func (r *rig) persist(t *testing.T, s *stream.Stream, serverMs int64, data []byte) *stream.Fragment {
	t.Helper()
	ctx := context.Background()
	n, err := r.a.NextFragmentNumber(ctx)
	if err != nil {
		t.Fatal(err)
	}
	f := &stream.Fragment{Number: n, StreamID: s.ID, ProducerMs: serverMs, ServerMs: serverMs, DurationMs: 1000,
		Tags: []stream.Tag{{Name: "k", Value: fmt.Sprint(n)}}}
	if err := r.a.Persist(ctx, f, data); err != nil {
		t.Fatal(err)
	}
	return f
}

// Many concurrent writers: every fragment comes back byte for byte, in one
// or few group commits, and segments roll over at their size limit.
func TestConcurrentPersistReadBack(t *testing.T) {
	r := open(t, t.TempDir(), 64<<10)
	ctx := context.Background()
	streams := make([]*stream.Stream, 20)
	for i := range streams {
		streams[i] = r.stream(t, fmt.Sprintf("cam-%d", i), 1)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	written := map[stream.FragmentNumber][]byte{}
	for i, s := range streams {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 10; j++ {
				data := bytes.Repeat([]byte{byte(i), byte(j)}, 2000+i*10)
				f := r.persist(t, s, time.Now().UnixMilli(), data)
				mu.Lock()
				written[f.Number] = data
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, s := range streams {
		frags, err := r.idx.FragmentsAfter(ctx, s.ID, 0, 100)
		if err != nil || len(frags) != 10 {
			t.Fatalf("stream %s: %d fragments, %v", s.Name, len(frags), err)
		}
		for _, f := range frags {
			got, err := r.a.Read(ctx, &f)
			if err != nil || !bytes.Equal(got, written[f.Number]) {
				t.Fatalf("fragment %d: %v", f.Number, err)
			}
			if len(f.Tags) != 1 || f.Tags[0].Value != fmt.Sprint(f.Number) {
				t.Fatalf("tags %v", f.Tags)
			}
		}
	}
	// A batch always lands in one segment, so how many segments 1.2 MB makes
	// depends on batching; more than one proves the rollover.
	segs, _ := r.idx.Segments(ctx)
	if len(segs) < 2 {
		t.Fatalf("%d segments for 1.2 MB at 64 KB each: no rollover", len(segs))
	}
}

// Bytes written past the committed end (a batch that never reached the
// index) and segment files the index never knew are gone after reopening;
// committed fragments are intact.
func TestRecoveryCutsUncommittedTail(t *testing.T) {
	dir := t.TempDir()
	r := open(t, dir, 1<<30)
	s := r.stream(t, "cam", 1)
	f := r.persist(t, s, time.Now().UnixMilli(), []byte("committed fragment"))
	r.close()

	// Simulate a crash between the segment fsync and the index commit.
	segPath := findSegment(t, dir, f.Location.SegmentID)
	fh, _ := os.OpenFile(segPath, os.O_WRONLY|os.O_APPEND, 0)
	fh.Write(bytes.Repeat([]byte("x"), 5000))
	fh.Close()
	orphan := filepath.Join(filepath.Dir(segPath), fmt.Sprintf("%016x.kseg", 999))
	os.WriteFile(orphan, []byte("never indexed"), 0o640)

	r = open(t, dir, 1<<30)
	fi, _ := os.Stat(segPath)
	if fi.Size() != f.Location.Offset+f.Location.Length {
		t.Fatalf("segment is %d bytes after recovery, committed end is %d", fi.Size(), f.Location.Offset+f.Location.Length)
	}
	if _, err := os.Stat(orphan); !os.IsNotExist(err) {
		t.Fatal("unreferenced segment survived recovery")
	}
	got, err := r.a.Read(context.Background(), f)
	if err != nil || string(got) != "committed fragment" {
		t.Fatalf("read after recovery: %q %v", got, err)
	}
	// Numbers are never reused after a restart.
	n, _ := r.a.NextFragmentNumber(context.Background())
	if n <= f.Number {
		t.Fatalf("fragment number %d reissued after %d", n, f.Number)
	}
}

func findSegment(t *testing.T, dir string, id int64) string {
	t.Helper()
	matches, _ := filepath.Glob(filepath.Join(dir, "media", "*", fmt.Sprintf("%016x.kseg", id)))
	if len(matches) != 1 {
		t.Fatalf("segment %d not found", id)
	}
	return matches[0]
}

func diskBlocks(t *testing.T, path string) int64 {
	t.Helper()
	var total int64
	filepath.WalkDir(path, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			fi, _ := d.Info()
			total += fileBlocks(fi)
		}
		return nil
	})
	return total
}

// Retention: expired fragments leave the index, their space is punched out
// of shared segments at once, emptied segments are deleted, and fragments
// within retention (of this and other streams) stay readable.
func TestRetentionAndDeletionReclaimSpace(t *testing.T) {
	dir := t.TempDir()
	r := open(t, dir, 1<<20)
	ctx := context.Background()
	short := r.stream(t, "short", 1)
	long := r.stream(t, "long", 48)
	gone := r.stream(t, "gone", 48)
	now := time.Now()
	old := now.Add(-3 * time.Hour).UnixMilli()
	data := bytes.Repeat([]byte{7}, 64<<10)
	var keep []*stream.Fragment
	for i := 0; i < 40; i++ {
		r.persist(t, short, old+int64(i), data) // expired
		keep = append(keep, r.persist(t, long, old+int64(i), data))
		r.persist(t, gone, now.UnixMilli(), data)
	}
	fresh := r.persist(t, short, now.UnixMilli(), data)
	if err := r.idx.DeleteStream(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := r.idx.StreamByName(ctx, "000000000000", "gone"); err != archive.ErrNotFound {
		t.Fatalf("deleted stream still found: %v", err)
	}
	before := diskBlocks(t, filepath.Join(dir, "media"))
	j := archive.NewJanitor(r.a, time.Hour)
	j.Now = func() time.Time { return now }
	if err := j.Pass(ctx); err != nil {
		t.Fatal(err)
	}
	after := diskBlocks(t, filepath.Join(dir, "media"))
	if left, _ := r.idx.FragmentsAfter(ctx, short.ID, 0, 100); len(left) != 1 || left[0].Number != fresh.Number {
		t.Fatalf("short stream kept %d fragments, want only the fresh one", len(left))
	}
	if left, _ := r.idx.FragmentsAfter(ctx, gone.ID, 0, 100); len(left) != 0 {
		t.Fatalf("deleted stream kept %d fragments", len(left))
	}
	for _, f := range keep {
		if b, err := r.a.Read(ctx, f); err != nil || !bytes.Equal(b, data) {
			t.Fatalf("fragment within retention unreadable: %v", err)
		}
	}
	freed := before - after
	if want := int64(75 * len(data)); freed < want {
		t.Fatalf("freed %d bytes of disk, want at least %d (80 expired or deleted fragments)", freed, want)
	}
	if rs, _ := r.idx.Reclaims(ctx, 10); len(rs) != 0 {
		t.Fatalf("%d reclaims left over", len(rs))
	}
	t.Logf("janitor freed %.1f MB of %.1f MB", float64(freed)/1e6, float64(before)/1e6)
}

// WatchTriggers fires after a commit that wrote outbox rows, and only
// then: untagged and plain-tagged fragments neither write a row nor wake
// the consumers.
func TestWatchTriggers(t *testing.T) {
	r := open(t, t.TempDir(), 1<<20)
	s := r.stream(t, "cam", 1)
	w1, w2 := r.a.WatchTriggers(), r.a.WatchTriggers()
	ctx := context.Background()
	persist := func(tags ...stream.Tag) {
		n, _ := r.a.NextFragmentNumber(ctx)
		f := &stream.Fragment{Number: n, StreamID: s.ID, ProducerMs: 1, ServerMs: 1, Tags: tags}
		if err := r.a.Persist(ctx, f, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	persist()
	persist(stream.Tag{Name: "plain", Value: "1"})
	select {
	case <-w1:
		t.Fatal("woken by fragments without triggers")
	case <-time.After(50 * time.Millisecond):
	}
	if es, _ := r.idx.PendingOutbox(ctx, archive.TriggerNotification, 0, 10); len(es) != 0 {
		t.Fatalf("untagged fragments wrote outbox rows: %+v", es)
	}
	persist(stream.Tag{Name: stream.TagNotification})
	for _, w := range []<-chan struct{}{w1, w2} {
		select {
		case <-w:
		case <-time.After(5 * time.Second):
			t.Fatal("a watcher was not woken by a triggered commit")
		}
	}
	if es, _ := r.idx.PendingOutbox(ctx, archive.TriggerNotification, 0, 10); len(es) != 1 {
		t.Fatalf("outbox rows %+v", es)
	}
}
