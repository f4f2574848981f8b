package mkv

import (
	"errors"
	"io"
)

const (
	// bufSize is the read-ahead buffer. Element headers and small elements
	// are parsed in place from it; 64 KiB keeps the number of Read calls low
	// on a socket without holding much memory per camera.
	bufSize = 64 << 10
	// allocChunk is how much of a large payload is allocated before its bytes
	// have arrived. Beyond it, the destination grows only as data comes in,
	// so a lying size costs at most about twice the bytes actually sent.
	allocChunk = 256 << 10
	// maxEmptyReads guards against an io.Reader that returns 0, nil forever.
	maxEmptyReads = 100
)

var errBadRead = errors.New("mkv: source reader returned an invalid count")

// bufReader is a minimal bufio.Reader that also tracks the stream offset
// and never blocks for more bytes than the caller asked for.
type bufReader struct {
	src  io.Reader
	buf  []byte
	r, w int   // buffered bytes are buf[r:w]
	off  int64 // stream offset of buf[r]
	err  error // sticky error of src
}

func (b *bufReader) buffered() int { return b.w - b.r }

// fill reads until at least n (≤ len(buf)) bytes are buffered or src fails.
// A single Read may bring more; fill never asks for more than fits.
func (b *bufReader) fill(n int) {
	if len(b.buf)-b.r < n {
		copy(b.buf, b.buf[b.r:b.w])
		b.w -= b.r
		b.r = 0
	}
	empty := 0
	for b.w-b.r < n && b.err == nil {
		m, err := b.src.Read(b.buf[b.w:])
		if m < 0 || m > len(b.buf)-b.w {
			b.err = errBadRead
			break
		}
		b.w += m
		if err != nil {
			b.err = err
			break
		}
		if m > 0 {
			empty = 0
		} else if empty++; empty >= maxEmptyReads {
			b.err = io.ErrNoProgress
		}
	}
}

// peek returns the next n bytes without consuming them. When fewer are
// available it returns what there is together with the source's error.
func (b *bufReader) peek(n int) ([]byte, error) {
	if b.w-b.r < n {
		b.fill(n)
		if b.w-b.r < n {
			return b.buf[b.r:b.w], b.err
		}
	}
	return b.buf[b.r : b.r+n], nil
}

// peekSome returns every buffered byte, reading first when fewer than min
// are buffered.
func (b *bufReader) peekSome(min int) ([]byte, error) {
	if b.w-b.r < min {
		b.fill(min)
		if b.w-b.r < min {
			return b.buf[b.r:b.w], b.err
		}
	}
	return b.buf[b.r:b.w], nil
}

// consume drops n buffered bytes (n ≤ buffered()).
func (b *bufReader) consume(n int) {
	b.r += n
	b.off += int64(n)
}

// discard skips n bytes, streaming them through the buffer.
func (b *bufReader) discard(n int64) error {
	for n > 0 {
		if b.r == b.w {
			b.fill(1)
			if b.r == b.w {
				return b.err
			}
		}
		k := min(int64(b.w-b.r), n)
		b.consume(int(k))
		n -= k
	}
	return nil
}

// readFull fills dst. Large remainders are read straight from src into dst
// to avoid copying them through the buffer twice.
func (b *bufReader) readFull(dst []byte) error {
	k := copy(dst, b.buf[b.r:b.w])
	b.consume(k)
	dst = dst[k:]
	for len(dst) > 0 {
		if b.err != nil {
			return b.err
		}
		if len(dst) >= len(b.buf)/2 {
			return b.readDirect(dst)
		}
		b.fill(1)
		k := copy(dst, b.buf[b.r:b.w])
		b.consume(k)
		dst = dst[k:]
	}
	return nil
}

// readDirect fills dst from src, bypassing the buffer. Unlike io.ReadFull
// it gives up on a source that keeps returning 0, nil.
func (b *bufReader) readDirect(dst []byte) error {
	empty := 0
	for len(dst) > 0 {
		m, err := b.src.Read(dst)
		if m < 0 || m > len(dst) {
			b.err = errBadRead
			return b.err
		}
		b.off += int64(m)
		dst = dst[m:]
		if err != nil {
			if len(dst) == 0 && err == io.EOF {
				b.err = err // all bytes arrived; the next read reports the end
				return nil
			}
			b.err = err
			return err
		}
		if m > 0 {
			empty = 0
		} else if empty++; empty >= maxEmptyReads {
			b.err = io.ErrNoProgress
			return b.err
		}
	}
	return nil
}

// readPayload reads size bytes into dst[:0] (reusing its capacity) and
// returns the result. It allocates all of size up front only when size is
// small or the bytes are already buffered; otherwise it grows the slice as
// bytes arrive, so a truncated stream that claimed gigabytes fails with
// io.ErrUnexpectedEOF having allocated little.
func (b *bufReader) readPayload(dst []byte, size int64) ([]byte, error) {
	if int64(cap(dst)) >= size || size <= allocChunk || size <= int64(b.buffered()) {
		if int64(cap(dst)) < size {
			dst = make([]byte, size)
		}
		dst = dst[:size]
		return dst, b.readFull(dst)
	}
	dst = dst[:0]
	for int64(len(dst)) < size {
		if len(dst) == cap(dst) {
			c := min(max(2*int64(cap(dst)), allocChunk), size)
			nd := make([]byte, len(dst), c)
			copy(nd, dst)
			dst = nd
		}
		n := len(dst)
		if err := b.readFull(dst[n:cap(dst)]); err != nil {
			return nil, err
		}
		dst = dst[:cap(dst)]
	}
	return dst, nil
}
