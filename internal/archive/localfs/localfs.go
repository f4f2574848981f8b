// Package localfs is the embedded Media store: fragment bytes in append-only
// segment files on local disk, shared by every stream. A segment holds many
// fragments back to back, each behind a small record header (magic, stream,
// fragment number, length, CRC-32C) so a file can be checked or scanned
// without the index. Space of expired fragments is returned with
// fallocate(PUNCH_HOLE) long before the whole segment can be unlinked.
package localfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/kinema/kinema/internal/archive"
	"github.com/kinema/kinema/internal/archive/segrec"
	"github.com/kinema/kinema/internal/stream"
)

// RecordHeaderSize is the size of the header before each fragment's bytes
// (the record format is segrec's, shared with the other stores).
const RecordHeaderSize = segrec.HeaderSize

// Store implements archive.Media under one directory.
type Store struct {
	dir string

	mu       sync.Mutex
	writers  map[int64]*os.File // segments open for append (normally one)
	readers  map[int64]*os.File
	readLRU  []int64
	maxOpen  int
	punchBad bool // the file system cannot punch holes
}

var _ archive.Media = (*Store)(nil)

// Open prepares dir for segment files.
func Open(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	return &Store{dir: dir, writers: map[int64]*os.File{}, readers: map[int64]*os.File{}, maxOpen: 256}, nil
}

// path spreads segments over subdirectories of 1024 files.
func (s *Store) path(id int64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%05x", id>>10), fmt.Sprintf("%016x.kseg", id))
}

func (s *Store) writer(id int64) (*os.File, error) {
	if f := s.writers[id]; f != nil {
		return f, nil
	}
	p := s.path(id)
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, err
	}
	// The new directory entry must be durable before anything in the file is
	// acknowledged; fsync the directory once per segment, not per write.
	if err := syncDir(dir); err != nil {
		f.Close()
		return nil, err
	}
	// Only the newest segment is written to; close older writers.
	for old, of := range s.writers {
		of.Close()
		delete(s.writers, old)
	}
	s.writers[id] = f
	return f, nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Append writes the records and fdatasyncs the segment once for all of them.
func (s *Store) Append(ctx context.Context, segmentID int64, recs []archive.Record) ([]stream.Location, int64, error) {
	s.mu.Lock()
	f, err := s.writer(segmentID)
	s.mu.Unlock()
	if err != nil {
		return nil, 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	off := fi.Size()
	locs := make([]stream.Location, len(recs))
	for i, r := range recs {
		hdr := segrec.Header(r)
		if _, err := f.Write(hdr[:]); err != nil {
			return nil, 0, err
		}
		if _, err := f.Write(r.Data); err != nil {
			return nil, 0, err
		}
		locs[i] = stream.Location{SegmentID: segmentID, Offset: off + RecordHeaderSize, Length: int64(len(r.Data))}
		off += RecordHeaderSize + int64(len(r.Data))
	}
	if err := syscall.Fdatasync(int(f.Fd())); err != nil {
		return nil, 0, err
	}
	return locs, off, nil
}

func (s *Store) reader(id int64) (*os.File, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f := s.readers[id]; f != nil {
		return f, nil
	}
	f, err := os.Open(s.path(id))
	if err != nil {
		return nil, err
	}
	if len(s.readLRU) >= s.maxOpen {
		old := s.readLRU[0]
		s.readLRU = s.readLRU[1:]
		// A concurrent ReadAt may still hold it; it is closed by the GC's
		// finalizer only after that read ends, so drop it instead of Close.
		delete(s.readers, old)
	}
	s.readers[id] = f
	s.readLRU = append(s.readLRU, id)
	return f, nil
}

// ErrCorrupt is returned when stored bytes fail their checksum.
var ErrCorrupt = segrec.ErrCorrupt

// ReadAt reads one fragment's bytes and checks them against the record header.
func (s *Store) ReadAt(ctx context.Context, loc stream.Location) ([]byte, error) {
	if err := segrec.CheckLocation(loc); err != nil {
		return nil, err
	}
	f, err := s.reader(loc.SegmentID)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, RecordHeaderSize+loc.Length)
	if _, err := f.ReadAt(buf, loc.Offset-RecordHeaderSize); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, ErrCorrupt
		}
		return nil, err
	}
	return segrec.Check(buf, loc.Length)
}

// Free punches holes over the records of the given data ranges.
func (s *Store) Free(ctx context.Context, segmentID int64, ranges [][2]int64) error {
	s.mu.Lock()
	bad := s.punchBad
	s.mu.Unlock()
	if bad {
		return nil // space comes back when the whole segment is removed
	}
	f, err := os.OpenFile(s.path(segmentID), os.O_WRONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	const punchHole, keepSize = 0x02, 0x01
	for _, r := range segrec.RecordSpans(ranges) {
		err := syscall.Fallocate(int(f.Fd()), punchHole|keepSize, r[0], r[1]-r[0])
		if errors.Is(err, syscall.EOPNOTSUPP) {
			s.mu.Lock()
			s.punchBad = true
			s.mu.Unlock()
			return nil
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Truncate cuts a segment back to size and makes that durable.
func (s *Store) Truncate(ctx context.Context, segmentID int64, size int64) error {
	s.mu.Lock()
	if f := s.writers[segmentID]; f != nil {
		f.Close()
		delete(s.writers, segmentID)
	}
	s.mu.Unlock()
	f, err := os.OpenFile(s.path(segmentID), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Truncate(size); err != nil {
		return err
	}
	return f.Sync()
}

// Remove deletes a segment file.
func (s *Store) Remove(ctx context.Context, segmentID int64) error {
	s.mu.Lock()
	if f := s.writers[segmentID]; f != nil {
		f.Close()
		delete(s.writers, segmentID)
	}
	if f := s.readers[segmentID]; f != nil {
		delete(s.readers, segmentID)
		for i, id := range s.readLRU {
			if id == segmentID {
				s.readLRU = append(s.readLRU[:i], s.readLRU[i+1:]...)
				break
			}
		}
	}
	s.mu.Unlock()
	err := os.Remove(s.path(segmentID))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// List returns the ids of the segment files present.
func (s *Store) List(ctx context.Context) ([]int64, error) {
	var ids []int64
	err := filepath.WalkDir(s.dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() || !strings.HasSuffix(name, ".kseg") {
			return nil
		}
		id, err := strconv.ParseInt(strings.TrimSuffix(name, ".kseg"), 16, 64)
		if err == nil {
			ids = append(ids, id)
		}
		return nil
	})
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids, err
}

// DiskUsage sums the disk blocks of the files under dir (punched holes do
// not count), for a store that may belong to another process.
func DiskUsage(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			total += st.Blocks * 512
		} else {
			total += fi.Size()
		}
		return nil
	})
	return total, err
}

// Ping checks that the segment directory is there (readiness).
func (s *Store) Ping(ctx context.Context) error {
	_, err := os.Stat(s.dir)
	return err
}

// Close closes every open file.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for id, f := range s.writers {
		errs = append(errs, f.Close())
		delete(s.writers, id)
	}
	for id, f := range s.readers {
		errs = append(errs, f.Close())
		delete(s.readers, id)
	}
	s.readLRU = nil
	return errors.Join(errs...)
}
