package pcapng

import (
	"io"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// vecState is the iovec array of the vectored writes, kept between
// batches so that a batch costs no allocation, and how the writes reach
// the kernel.
type vecState struct {
	iov []unix.Iovec
	// raw says that the file's writes cannot wait for a device: they
	// go to memory (tmpfs, ramfs) or nowhere (/dev/null). Those are made
	// without telling the Go scheduler (RawSyscall): a write it is told
	// of wakes the runtime's monitor thread (sysmon) from the deep sleep
	// it falls into while the capture waits for the ring, and sysmon then
	// polls every 20 µs for a millisecond: 6-7 ns a packet under a
	// flood, and half of nsntrace's context switches while it traced a
	// busy nginx (make bench, table 6). The scheduler cannot stop a
	// goroutine in a raw call, so a garbage collection waits for the
	// write: a write to memory takes a fraction of a millisecond. Every
	// other file (a disk, a pipe, a socket, which may take any time) is
	// written as usual.
	raw bool
}

// classify sets raw for w: an *os.File that is /dev/null, or a regular
// file on tmpfs or ramfs.
func (v *vecState) classify(w io.Writer) {
	v.raw = false
	f, ok := w.(*os.File)
	if !ok {
		return
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return
	}
	rc.Control(func(fd uintptr) {
		var st unix.Stat_t
		if unix.Fstat(int(fd), &st) != nil {
			return
		}
		switch st.Mode & unix.S_IFMT {
		case unix.S_IFCHR:
			v.raw = unix.Major(uint64(st.Rdev)) == 1 && unix.Minor(uint64(st.Rdev)) == 3 // /dev/null
		case unix.S_IFREG:
			var fs unix.Statfs_t
			if unix.Fstatfs(int(fd), &fs) != nil {
				return
			}
			v.raw = int64(fs.Type) == unix.TMPFS_MAGIC || int64(fs.Type) == unix.RAMFS_MAGIC
		}
	})
}

// write writes p to w, as w.Write, or with raw write(2)s where classify
// found them safe.
func (v *vecState) write(w io.Writer, p []byte) (int, error) {
	if !v.raw || len(p) == 0 {
		return w.Write(p)
	}
	f := w.(*os.File)
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, err
	}
	var (
		n    int
		werr error
	)
	cerr := rc.Write(func(fd uintptr) bool {
		for n < len(p) {
			r, _, e := unix.RawSyscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[n])), uintptr(len(p)-n))
			switch {
			case e == unix.EINTR:
				continue
			case e != 0:
				werr = &os.PathError{Op: "write", Path: f.Name(), Err: e} // as f.Write says it
				return true
			case r == 0:
				werr = io.ErrShortWrite
				return true
			}
			n += int(r)
		}
		return true
	})
	if werr == nil {
		werr = cerr
	}
	return n, werr
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
			call := unix.Syscall
			if v.raw {
				call = unix.RawSyscall
			}
			r, _, e := call(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&vec[0])), uintptr(len(vec)))
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
