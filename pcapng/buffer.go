package pcapng

import (
	"fmt"
	"io"
	"os"
)

// slack is the room kept above the flush threshold, so that a block of up
// to this size always fits in one piece after the buffer was flushed: a
// full 262144-byte packet with a 64 KiB comment included.
const slack = 384 << 10

// truncater is what an *os.File offers to cut a failed capture back to its
// last complete block.
type truncater interface {
	io.Seeker
	Stat() (os.FileInfo, error)
	Truncate(size int64) error
}

// bufWriter collects blocks and hands them to w in batches of at least
// limit bytes. It keeps len(buf) < limit between operations, so every block
// up to slack bytes is appended in one piece without a bounds dance.
type bufWriter struct {
	w     io.Writer
	buf   []byte // pending bytes; cap(buf) = limit + slack
	limit int
	// err is the first error of w, returned by every later call; after a
	// clean Close it is errClosed.
	err      error
	closed   bool
	closeErr error

	// When w is a regular file we write at its end, a failed write is
	// followed by a truncation to the last complete block, so the file
	// stays a clean capture (see cut).
	trunc    truncater
	base     int64 // file offset where the capture starts
	sent     int64 // bytes handed to w
	complete int64 // bytes handed to w that end at a block boundary
	blocks   func(b []byte, offset int64) int
}

// newBufWriter returns a buffer on w; blocks reports how many leading bytes
// of b, which starts at the given offset of the capture on a block
// boundary, form complete blocks.
func newBufWriter(w io.Writer, limit int, blocks func(b []byte, offset int64) int) bufWriter {
	b := bufWriter{w: w, limit: limit, buf: make([]byte, 0, limit+slack), blocks: blocks}
	if t, ok := w.(truncater); ok {
		// Only when we append to a regular file: then every byte after
		// base is ours to cut, even with O_APPEND.
		fi, err := t.Stat()
		off, serr := t.Seek(0, io.SeekCurrent)
		if err == nil && serr == nil && fi.Mode().IsRegular() && off == fi.Size() {
			b.trunc, b.base = t, off
		}
	}
	return b
}

// flush writes all pending bytes; atBoundary says whether they end at a
// block boundary.
func (b *bufWriter) flush(atBoundary bool) error {
	if b.err != nil {
		return b.err
	}
	if len(b.buf) == 0 {
		return nil
	}
	n, err := b.w.Write(b.buf)
	if err == nil && n < len(b.buf) {
		err = io.ErrShortWrite
	}
	if err != nil {
		b.err = fmt.Errorf("write capture: %w", err)
		b.cut(n)
		b.buf = b.buf[:0]
		return b.err
	}
	startsAtBoundary := b.sent == b.complete
	b.sent += int64(n)
	if atBoundary {
		b.complete = b.sent
	} else if startsAtBoundary {
		b.complete += int64(b.blocks(b.buf, b.complete))
	}
	b.buf = b.buf[:0]
	return nil
}

// cut truncates the file after a write that took only n bytes of the
// buffer, to the end of the last block that reached it whole. Readers
// then see a clean capture rather than one cut short in mid-block.
func (b *bufWriter) cut(n int) {
	if b.trunc == nil {
		return
	}
	keep := b.complete
	if b.sent == b.complete && n > 0 {
		keep += int64(b.blocks(b.buf[:n], b.sent))
	}
	// Best effort: the write error, which the caller gets, says what
	// matters; a file that cannot be truncated keeps its cut-short tail,
	// which readers stop at.
	_ = b.trunc.Truncate(b.base + keep)
}

// grow returns the next n bytes of the buffer, or nil when they do not fit
// in its capacity. The caller fills every byte (the buffer is reused).
func (b *bufWriter) grow(n int) []byte {
	l := len(b.buf)
	if n > cap(b.buf)-l {
		return nil
	}
	b.buf = b.buf[:l+n]
	return b.buf[l : l+n : l+n]
}

// maybeFlush flushes once a full batch is pending; it is called only
// between blocks.
func (b *bufWriter) maybeFlush() error {
	if len(b.buf) >= b.limit {
		return b.flush(true)
	}
	return nil
}

// write appends p, flushing full batches on the way: a block larger than
// the buffer is written in pieces of at least limit bytes. last says
// whether p ends a block.
func (b *bufWriter) write(p []byte, last bool) error {
	for len(p) > 0 {
		if b.err != nil {
			return b.err
		}
		l := len(b.buf)
		n := copy(b.buf[l:cap(b.buf)], p)
		b.buf = b.buf[:l+n]
		p = p[n:]
		if len(b.buf) >= b.limit {
			if err := b.flush(last && len(p) == 0); err != nil {
				return err
			}
		}
	}
	return b.err
}

// close marks the writer closed after the caller wrote its last blocks and
// flushed. Later calls return the first write error, or errClosed.
func (b *bufWriter) close(flushErr error) error {
	if b.closed {
		return b.closeErr
	}
	b.closed = true
	b.closeErr = flushErr
	if b.err == nil {
		b.err = errClosed
	}
	return b.closeErr
}

// ngBlocks is the blocks function of pcapng: every block starts with its
// type and total length.
func ngBlocks(b []byte, _ int64) int {
	off := 0
	for len(b)-off >= 8 {
		n := int(le.Uint32(b[off+4:]))
		if n < 12 || n > len(b)-off {
			break
		}
		off += n
	}
	return off
}

// pcapBlocks is the blocks function of classic pcap: a 24-byte file
// header at offset 0, then records of a 16-byte header and the data.
func pcapBlocks(b []byte, offset int64) int {
	off := 0
	if offset == 0 {
		if len(b) < 24 {
			return 0
		}
		off = 24
	}
	for len(b)-off >= 16 {
		n := 16 + int(le.Uint32(b[off+8:]))
		if n > len(b)-off {
			break
		}
		off += n
	}
	return off
}
