package pcapng

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/nsntrace/nsntrace/internal/testbed"
)

// TestDiskFull writes into a 64 KiB tmpfs until it is full: the writer
// reports ENOSPC, keeps reporting it from every later call, and what
// stays on the disk is a clean capture: the writer cut it back to its last
// complete block, so gopacket and tshark read it to a normal end.
//
// The tmpfs is mounted in a mount namespace of its own, on a thread that
// is never returned to the scheduler, so the host never sees the mount and
// it vanishes with the thread.
func TestDiskFull(t *testing.T) {
	testbed.RequirePrivileged(t)
	for _, c := range []struct {
		name   string
		format Format
		buffer int
		ref    bool // WritePacketRef: the failing write is a writev
	}{
		{"pcapng default buffer", FormatPcapNG, 0, false},
		{"pcapng small buffer", FormatPcapNG, 4096, false},
		{"pcap small buffer", FormatPcap, 4096, false},
		{"pcapng by reference", FormatPcapNG, 0, true},
		{"pcapng small buffer by reference", FormatPcapNG, 4096, true},
		{"pcap by reference", FormatPcap, 0, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			res := make(chan diskFullResult, 1)
			go func() {
				// Never unlocked: the thread's mount namespace differs
				// from every other thread's, so it must die with this
				// goroutine.
				runtime.LockOSThread()
				res <- diskFull(dir, c.format, c.buffer, c.ref)
			}()
			r := <-res
			if r.err != nil {
				t.Fatal(r.err)
			}
			if !errors.Is(r.writeErr, syscall.ENOSPC) {
				t.Fatalf("write error %v, want ENOSPC", r.writeErr)
			}
			t.Logf("%d packets accepted, then: %v; %d bytes on disk", r.accepted, r.writeErr, len(r.file))
			for i, err := range r.later {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Errorf("call %d after the failure returned %v, want the sticky ENOSPC", i, err)
				}
			}
			if len(r.file) == 0 {
				t.Fatal("nothing reached the disk")
			}
			got := readClean(t, c.format, r.file)
			if len(got) == 0 || len(got) > r.accepted {
				t.Fatalf("%d complete packets on disk, %d accepted", len(got), r.accepted)
			}
			for i, data := range got {
				if !bytes.Equal(data, diskFullPacket(i)) {
					t.Fatalf("packet %d on disk differs from the one written", i)
				}
			}
			path := filepath.Join(t.TempDir(), "cut")
			if err := os.WriteFile(path, r.file, 0o644); err != nil {
				t.Fatal(err)
			}
			oracle(t, "tshark", "-n", "-r", path) // nothing on stderr: not cut short
		})
	}
}

type diskFullResult struct {
	accepted int     // packets WritePacket took before the error
	writeErr error   // the first error
	later    []error // what later calls returned
	file     []byte  // what reached the disk
	err      error   // the test's own set-up failed
}

// diskFullPacket is large enough for WritePacketRef to reference it.
func diskFullPacket(i int) []byte {
	return bytes.Repeat([]byte{byte(i), byte(i >> 8), 0xa5}, 500)
}

// diskFull runs on a locked thread in a mount namespace of its own (see
// mountTmpfs), with a small tmpfs on dir, and writes a capture into it
// until the writer fails.
func diskFull(dir string, format Format, buffer int, ref bool) (r diskFullResult) {
	if r.err = mountTmpfs(dir, "size=64k,mode=0700"); r.err != nil {
		return r
	}
	f, err := os.Create(filepath.Join(dir, "capture"))
	if err != nil {
		r.err = err
		return r
	}
	defer f.Close()
	w, err := NewWriter(f, &Config{Format: format, BufferSize: buffer, Comments: []string{"disk full test"}})
	if err != nil {
		r.err = err
		return r
	}
	if _, err := w.AddInterface(Interface{LinkType: LinkTypeEthernet, Name: "full0"}); err != nil {
		r.writeErr = err
	}
	for r.writeErr == nil {
		if r.accepted > 10000 {
			r.err = fmt.Errorf("no error after %d packets on a 64 KiB file system", r.accepted)
			return r
		}
		p := Packet{Timestamp: int64(r.accepted), Data: diskFullPacket(r.accepted), Direction: DirectionInbound}
		write := w.WritePacket
		if ref {
			write = w.WritePacketRef
		}
		if r.writeErr = write(&p); r.writeErr == nil {
			r.accepted++
		}
	}
	p := Packet{Data: diskFullPacket(0)}
	r.later = append(r.later, w.WritePacket(&p), w.Flush(), w.WriteStats(0, Stats{}), w.Close(), w.Close())
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		r.err = err
		return r
	}
	r.file, r.err = io.ReadAll(f)
	return r
}

// mountTmpfs, on a locked thread that is never unlocked, moves the thread
// into a new mount namespace and mounts a tmpfs with options on dir
// there: the host never sees the mount, and it vanishes with the thread.
func mountTmpfs(dir, options string) error {
	if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
		return os.NewSyscallError("unshare", err)
	}
	// Private propagation first: otherwise the tmpfs would appear in the
	// host's mount namespace too.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return os.NewSyscallError("mount private /", err)
	}
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, options); err != nil {
		return os.NewSyscallError("mount tmpfs", err)
	}
	return nil
}
