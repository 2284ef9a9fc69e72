package pcapng

import (
	"fmt"
	"io"
)

// slack is the room kept above the flush threshold, so that a block of up
// to this size always fits in one piece after the buffer was flushed: a
// full 262144-byte packet with a 64 KiB comment included.
const slack = 384 << 10

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
}

func newBufWriter(w io.Writer, limit int) bufWriter {
	return bufWriter{w: w, limit: limit, buf: make([]byte, 0, limit+slack)}
}

// flush writes all pending bytes.
func (b *bufWriter) flush() error {
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
	b.buf = b.buf[:0]
	if err != nil {
		b.err = fmt.Errorf("write capture: %w", err)
	}
	return b.err
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

// maybeFlush flushes once a full batch is pending.
func (b *bufWriter) maybeFlush() error {
	if len(b.buf) >= b.limit {
		return b.flush()
	}
	return nil
}

// write appends p, flushing full batches on the way: a block larger than
// the buffer is written in pieces of at least limit bytes.
func (b *bufWriter) write(p []byte) error {
	for len(p) > 0 {
		if b.err != nil {
			return b.err
		}
		l := len(b.buf)
		n := copy(b.buf[l:cap(b.buf)], p)
		b.buf = b.buf[:l+n]
		p = p[n:]
		if err := b.maybeFlush(); err != nil {
			return err
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
