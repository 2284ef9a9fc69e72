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

	// refs are caller memory queued by writeRef: each goes out after
	// buf[:at] and before the rest of buf. refLen is their total size.
	refs   []ref
	refLen int
	iov    [][]byte // reused to hand buf and refs to the vectored write
	vec    vecState
}

// ref is caller memory that goes out after the first at bytes of buf.
type ref struct {
	at   int
	data []byte
}

// MinRefLen is the smallest packet WritePacketRef keeps a reference to
// rather than copying: below it the copy into the buffer costs less than
// the kernel's extra iovec segment. A caller on a hot path may call
// WritePacket for shorter ones itself and spare a call.
const MinRefLen = refMin

const (
	refMin = 1024
	// maxRefs bounds the references of one batch, so that a vectored write
	// stays within IOV_MAX (1024) segments.
	maxRefs = 500
)

// newBufWriter returns a buffer on w; blocks reports how many leading bytes
// of b, which starts at the given offset of the capture on a block
// boundary, form complete blocks.
func newBufWriter(w io.Writer, limit int, blocks func(b []byte, offset int64) int) bufWriter {
	b := bufWriter{w: w, limit: limit, buf: make([]byte, 0, limit+slack), blocks: blocks}
	b.vec.classify(w)
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
	if len(b.refs) > 0 {
		return b.flushRefs()
	}
	if len(b.buf) == 0 {
		return nil
	}
	n, err := b.vec.write(b.w, b.buf)
	if err == nil && n < len(b.buf) {
		err = io.ErrShortWrite
	}
	if err != nil {
		b.err = fmt.Errorf("write capture: %w", err)
		b.cut(b.buf[:n])
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

// flushRefs writes the buffer with the caller memory it refers to, in one
// vectored write where the underlying writer allows it. References are
// only queued at block boundaries and flushed at one, so the batch ends at
// a block boundary.
func (b *bufWriter) flushRefs() error {
	iov, prev := b.iov[:0], 0
	for _, r := range b.refs {
		if r.at > prev {
			iov = append(iov, b.buf[prev:r.at])
		}
		iov = append(iov, r.data)
		prev = r.at
	}
	if prev < len(b.buf) {
		iov = append(iov, b.buf[prev:])
	}
	total := int64(len(b.buf) + b.refLen)
	n, err := b.vec.writeVectored(b.w, iov)
	if err == nil && n < total {
		err = io.ErrShortWrite
	}
	if err != nil {
		b.err = fmt.Errorf("write capture: %w", err)
		// The error path may allocate: gather what reached the file to
		// find its last whole block.
		var written []byte
		rest := n
		for _, v := range iov {
			if rest <= 0 {
				break
			}
			k := min(int64(len(v)), rest)
			written = append(written, v[:k]...)
			rest -= k
		}
		b.cut(written)
	} else {
		b.sent += n
		b.complete = b.sent
	}
	clear(iov) // drop the references to caller memory
	b.iov = iov[:0]
	clear(b.refs)
	b.refs, b.refLen = b.refs[:0], 0
	b.buf = b.buf[:0]
	return b.err
}

// writeRef queues data to go out at this point of the stream without
// copying it; the caller keeps it unchanged until the next flush, and
// calls it only at a block boundary or inside a block that started after
// the last flush.
func (b *bufWriter) writeRef(data []byte) {
	if b.refs == nil {
		// A batch holds at most maxRefs references with a piece of the
		// buffer before each and one after the last.
		b.refs = make([]ref, 0, maxRefs)
		b.iov = make([][]byte, 0, 2*maxRefs+1)
		b.vec.init(2*maxRefs + 1)
	}
	b.refs = append(b.refs, ref{len(b.buf), data})
	b.refLen += len(data)
}

// full reports whether a batch is due: enough bytes, or as many
// references as one vectored write takes.
func (b *bufWriter) full() bool {
	return len(b.buf)+b.refLen >= b.limit || len(b.refs) >= maxRefs
}

// cut truncates the file after a write that took only the bytes written
// of the batch, to the end of the last block that reached it whole.
// Readers then see a clean capture rather than one cut short in mid-block.
func (b *bufWriter) cut(written []byte) {
	if b.trunc == nil {
		return
	}
	keep := b.complete
	if b.sent == b.complete && len(written) > 0 {
		keep += int64(b.blocks(written, b.sent))
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
	if b.full() {
		return b.flush(true)
	}
	return nil
}

// write appends p, flushing full batches on the way: a block larger than
// the buffer is written in pieces of at least limit bytes. last says
// whether p ends a block. Pending references go out first: the first write
// of a block is at a block boundary, and later ones find none.
func (b *bufWriter) write(p []byte, last bool) error {
	if len(b.refs) > 0 {
		if err := b.flush(true); err != nil {
			return err
		}
	}
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

// writeEach writes the pieces of iov one after the other: the vectored
// write of a writer that has no file descriptor.
func writeEach(w io.Writer, iov [][]byte) (int64, error) {
	var total int64
	for _, v := range iov {
		n, err := w.Write(v)
		total += int64(n)
		if err == nil && n < len(v) {
			err = io.ErrShortWrite
		}
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// Size returns how many bytes the capture holds so far, those not yet
// written out included: its size in the file after the next Flush.
func (b *bufWriter) Size() int64 {
	return b.sent + int64(len(b.buf)) + int64(b.refLen)
}

// Release writes out every packet whose data a WritePacketRef call
// referenced instead of copying, so that the caller may reuse that
// memory. It writes nothing when there is none.
func (b *bufWriter) Release() error {
	if len(b.refs) > 0 {
		return b.flush(true)
	}
	return b.err
}
