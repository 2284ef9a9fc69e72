package pcapng

import (
	"io"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// vecState is the iovec array of the vectored writes, kept between
// batches so that a batch costs no allocation.
type vecState struct {
	iov []unix.Iovec
}

// init makes room for n segments.
func (v *vecState) init(n int) { v.iov = make([]unix.Iovec, 0, n) }

// writeVectored writes every byte of iov, in order, and returns how many
// reached w. On an *os.File it uses writev(2), so that packet data
// referenced in place reaches the kernel without a copy into the buffer;
// elsewhere it writes the pieces one by one. Only an *os.File itself
// qualifies, not any syscall.Conn: a type that embeds one may have a
// Write of its own that must not be bypassed. It leaves the slices of iov
// as they were.
func (v *vecState) writeVectored(w io.Writer, iov [][]byte) (int64, error) {
	f, ok := w.(*os.File)
	if !ok {
		return writeEach(w, iov)
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return writeEach(w, iov)
	}
	var (
		total int64
		werr  error
		i     int // first segment not written whole
		off   int // bytes of iov[i] already written
	)
	cerr := rc.Write(func(fd uintptr) bool {
		for i < len(iov) {
			vec := v.iov[:0]
			for j, b := range iov[i:] {
				if j == 0 {
					b = b[off:]
				}
				if len(b) == 0 {
					continue
				}
				iv := unix.Iovec{Base: &b[0]}
				iv.SetLen(len(b)) // Len is 32 bits wide on 32-bit CPUs
				vec = append(vec, iv)
			}
			v.iov = vec
			if len(vec) == 0 {
				return true
			}
			// writev(2) takes the address of the iovec array; its
			// elements point into memory the caller keeps alive.
			r, _, e := unix.Syscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&vec[0])), uintptr(len(vec)))
			n := int(r)
			switch {
			case e == unix.EINTR:
				continue
			case e == unix.EAGAIN:
				return false // wait in the poller until fd takes more
			case e != 0:
				werr = os.NewSyscallError("writev", e)
				return true
			case n == 0:
				werr = io.ErrShortWrite
				return true
			}
			total += int64(n)
			for n > 0 && i < len(iov) {
				k := min(n, len(iov[i])-off)
				n -= k
				off += k
				if off == len(iov[i]) {
					i, off = i+1, 0
				}
			}
			for i < len(iov) && len(iov[i]) == 0 {
				i++
			}
		}
		return true
	})
	clear(v.iov[:cap(v.iov)]) // keep no pointer into the caller's memory
	if werr == nil {
		werr = cerr
	}
	return total, werr
}
