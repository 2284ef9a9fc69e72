package nft

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// forwardDir holds, per network namespace, the runs that enabled forwarding
// and the values to restore.
const forwardDir = "/run/nsntrace/forward"

var sysctls = []struct{ name, path string }{
	{"ipv4", "/proc/sys/net/ipv4/ip_forward"},
	{"ipv6", "/proc/sys/net/ipv6/conf/all/forwarding"},
}

// forwarding is one run's claim on IP forwarding.
type forwarding struct {
	dir  string
	pid  int
	sysf []*os.File // the sysctl files, opened in our namespace
}

// nsDir is the record directory of the current network namespace.
func nsDir() (string, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		return "", os.NewSyscallError("stat netns", err)
	}
	return filepath.Join(forwardDir, strconv.FormatUint(st.Ino, 10)), nil
}

// lockDir creates dir and takes a flock on it. The last run removes the
// directory under the lock, so a locker checks that what it locked is still
// the directory at that path, and tries again otherwise.
func lockDir(dir string) (func(), error) {
	for {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("create %s: %w", dir, err)
		}
		f, err := os.Open(dir)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return nil, err
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
			f.Close()
			return nil, os.NewSyscallError("flock", err)
		}
		fi, err1 := f.Stat()
		di, err2 := os.Stat(dir)
		if err1 == nil && err2 == nil && os.SameFile(fi, di) {
			return func() { f.Close() }, nil
		}
		f.Close()
	}
}

// enableForwarding turns IPv4 (and, with v6, IPv6) forwarding on if it is
// off, remembering the original value for the last run to restore.
func enableForwarding(v6 bool) (*forwarding, error) {
	dir, err := nsDir()
	if err != nil {
		return nil, err
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	fw := &forwarding{dir: dir, pid: os.Getpid()}
	for i, s := range sysctls {
		if i == 1 && !v6 {
			continue
		}
		f, err := os.OpenFile(s.path, os.O_RDWR, 0)
		if err != nil {
			if i == 1 && errors.Is(err, os.ErrNotExist) {
				continue // IPv6 disabled on this host
			}
			fw.close()
			return nil, fmt.Errorf("open %s: %w", s.path, err)
		}
		fw.sysf = append(fw.sysf, f)
		cur, err := readValue(f)
		if err != nil {
			fw.close()
			return nil, err
		}
		orig := filepath.Join(dir, "orig-"+s.name)
		if cur == "0" {
			if _, err := os.Stat(orig); errors.Is(err, os.ErrNotExist) {
				if err := os.WriteFile(orig, []byte(cur), 0o644); err != nil {
					fw.close()
					return nil, fmt.Errorf("record forwarding setting: %w", err)
				}
			}
			if _, err := f.WriteAt([]byte("1"), 0); err != nil {
				fw.close()
				return nil, fmt.Errorf("enable IP forwarding (%s): %w", s.path, err)
			}
		}
	}
	if err := os.WriteFile(filepath.Join(dir, strconv.Itoa(fw.pid)), nil, 0o644); err != nil {
		fw.close()
		return nil, fmt.Errorf("record run: %w", err)
	}
	return fw, nil
}

func readValue(f *os.File) (string, error) {
	b := make([]byte, 16)
	n, err := f.ReadAt(b, 0)
	if n == 0 && err != nil {
		return "", fmt.Errorf("read %s: %w", f.Name(), err)
	}
	return strings.TrimSpace(string(b[:n])), nil
}

func (fw *forwarding) close() {
	for _, f := range fw.sysf {
		f.Close()
	}
}

// release forgets this run and restores the original values when no other
// run of the namespace is left.
func (fw *forwarding) release() error {
	defer fw.close()
	unlock, err := lockDir(fw.dir)
	if err != nil {
		return err
	}
	defer unlock()
	os.Remove(filepath.Join(fw.dir, strconv.Itoa(fw.pid)))
	return restoreIfIdle(fw.dir, fw.sysf)
}

// restoreIfIdle restores saved values when no live run is recorded in dir.
// files, when given, are the sysctl files to write (opened in dir's
// namespace); otherwise they are opened by path.
func restoreIfIdle(dir string, files []*os.File) error {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("read %s: %w", dir, err)
	}
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			if alive(pid) {
				return nil
			}
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	var errs []error
	for _, s := range sysctls {
		orig := filepath.Join(dir, "orig-"+s.name)
		v, err := os.ReadFile(orig)
		if err != nil {
			continue
		}
		var f *os.File
		for _, sf := range files {
			if sf.Name() == s.path {
				f = sf
			}
		}
		if f == nil {
			if f, err = os.OpenFile(s.path, os.O_WRONLY, 0); err != nil {
				errs = append(errs, fmt.Errorf("restore %s: %w", s.path, err))
				continue
			}
			defer f.Close()
		}
		if _, err := f.WriteAt(v, 0); err != nil {
			errs = append(errs, fmt.Errorf("restore %s: %w", s.path, err))
			continue
		}
		os.Remove(orig)
	}
	if len(errs) == 0 {
		os.Remove(dir) // only succeeds when empty: nothing of ours is left
	}
	return errors.Join(errs...)
}

// sweepForwarding restores forwarding of the current namespace if only dead
// runs had enabled it.
func sweepForwarding() error {
	dir, err := nsDir()
	if err != nil {
		return err
	}
	if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return err
	}
	defer unlock()
	return restoreIfIdle(dir, nil)
}
