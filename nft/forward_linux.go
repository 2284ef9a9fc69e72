package nft

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/nsntrace/nsntrace/internal/rundir"
)

// forwardDir holds, per network namespace, the runs that enabled forwarding
// and the values to restore: forwardDir/DEV-INO-COOKIE/PID-START for each
// run, and orig-ipv4, orig-ipv6 beside them.
//
// A namespace's inode number is reused once the namespace is freed (nsfs
// numbers come from an IDA), so the inode alone would hand a dead
// namespace's records to a new one. The netns cookie (SO_NETNS_COOKIE,
// Linux 5.14) comes from a 64-bit counter and is never reused, so a
// record names exactly one namespace; on older kernels it is 0 and the
// inode is all there is. A run likewise is its pid and its start time
// (/proc/PID/stat field 22), which a recycled pid does not share.
var forwardDir = rundir.Path("forward")

// legacyForwardDir is where older versions kept the same records; sweeps
// read it too, so that what a crashed older run turned on is restored.
var legacyForwardDir = filepath.Join(rundir.Legacy, "forward")

var sysctls = []struct{ name, path string }{
	{"ipv4", "/proc/sys/net/ipv4/ip_forward"},
	{"ipv6", "/proc/sys/net/ipv6/conf/all/forwarding"},
}

// forwarding is one run's claim on IP forwarding.
type forwarding struct {
	dir  string
	run  string     // PID-START
	sysf []*os.File // the sysctl files, opened in our namespace
}

// netnsID names a network namespace for the life of the system: the nsfs
// device and inode, and the netns cookie (0 before Linux 5.14).
type netnsID struct{ dev, ino, cookie uint64 }

func (id netnsID) String() string { return fmt.Sprintf("%d-%d-%d", id.dev, id.ino, id.cookie) }

// parseNetnsID parses a record directory's name; ok is false for anything
// else, such as the bare inode numbers of older nsntrace versions.
func parseNetnsID(s string) (id netnsID, ok bool) {
	f := strings.Split(s, "-")
	if len(f) != 3 {
		return id, false
	}
	var err [3]error
	id.dev, err[0] = strconv.ParseUint(f[0], 10, 64)
	id.ino, err[1] = strconv.ParseUint(f[1], 10, 64)
	id.cookie, err[2] = strconv.ParseUint(f[2], 10, 64)
	return id, errors.Join(err[:]...) == nil
}

// currentNetns identifies the calling thread's network namespace.
func currentNetns() (netnsID, error) {
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		return netnsID{}, os.NewSyscallError("stat netns", err)
	}
	id := netnsID{dev: uint64(st.Dev), ino: uint64(st.Ino)} // 32 bits wide on some CPUs
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return netnsID{}, os.NewSyscallError("socket", err)
	}
	defer unix.Close(fd)
	id.cookie, err = unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
	if err != nil && !errors.Is(err, unix.ENOPROTOOPT) { // ENOPROTOOPT: before 5.14
		return netnsID{}, os.NewSyscallError("getsockopt SO_NETNS_COOKIE", err)
	}
	return id, nil
}

// nsDir is the record directory of the current network namespace.
func nsDir() (string, netnsID, error) {
	id, err := currentNetns()
	if err != nil {
		return "", id, err
	}
	return filepath.Join(forwardDir, id.String()), id, nil
}

// startTime is a process's start time in clock ticks since boot
// (proc(5): /proc/PID/stat field 22).
func startTime(pid int) (string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return "", err
	}
	// The command name (field 2) may hold spaces and parentheses.
	var f []string
	if i := bytes.LastIndexByte(b, ')'); i >= 0 {
		f = strings.Fields(string(b[i+1:]))
	}
	if len(f) < 20 {
		return "", fmt.Errorf("parse /proc/%d/stat", pid)
	}
	return f[19], nil
}

// runName is the record name of process pid: PID-START.
func runName(pid int) (string, error) {
	st, err := startTime(pid)
	if err != nil {
		return "", fmt.Errorf("read start time of process %d: %w", pid, err)
	}
	return strconv.Itoa(pid) + "-" + st, nil
}

// runAlive reports whether the run a record names is still running; ok is
// false when name is no run record.
func runAlive(name string) (alive, ok bool) {
	p, st, found := strings.Cut(name, "-")
	pid, err := strconv.Atoi(p)
	if !found || err != nil || pid <= 0 {
		return false, false
	}
	cur, err := startTime(pid)
	return err == nil && cur == st, true
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
	dir, _, err := nsDir()
	if err != nil {
		return nil, err
	}
	run, err := runName(os.Getpid())
	if err != nil {
		return nil, err
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	fw := &forwarding{dir: dir, run: run}
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
	if err := os.WriteFile(filepath.Join(dir, fw.run), nil, 0o644); err != nil {
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
	os.Remove(filepath.Join(fw.dir, fw.run))
	_, err = restoreIfIdle(fw.dir, fw.sysf)
	return err
}

// restoreIfIdle restores saved values when no live run is recorded in dir,
// and says which it restored. files, when given, are the sysctl files to
// write (opened in dir's namespace); otherwise they are opened by path.
func restoreIfIdle(dir string, files []*os.File) ([]string, error) {
	if live, err := forgetDead(dir); err != nil || live {
		return nil, err
	}
	var restored []string
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
		restored = append(restored, fmt.Sprintf("%s=%s", s.path, v))
	}
	if len(errs) == 0 {
		os.Remove(dir) // only succeeds when empty: nothing of ours is left
	}
	return restored, errors.Join(errs...)
}

// forgetDead removes the records of runs that are gone from dir and
// reports whether a live one is left.
func forgetDead(dir string) (bool, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false, fmt.Errorf("read %s: %w", dir, err)
	}
	live := false
	for _, e := range ents {
		if alive, ok := runAlive(e.Name()); ok && alive {
			live = true
		} else if ok {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
	return live, nil
}

// sweepForwarding restores forwarding of the current namespace if only dead
// runs had enabled it, and removes the records of namespaces that no longer
// exist. It says what it did.
func sweepForwarding() ([]string, error) {
	own, id, err := nsDir()
	if err != nil {
		return nil, err
	}
	var done []string
	var errs []error
	for _, top := range []string{forwardDir, legacyForwardDir} {
		ents, err := os.ReadDir(top)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("read %s: %w", top, err))
			continue
		}
		for _, e := range ents {
			dir := filepath.Join(top, e.Name())
			var did []string
			var err error
			if e.Name() == filepath.Base(own) {
				did, err = sweepOwn(dir)
			} else {
				did, err = sweepOther(dir, id)
			}
			done = append(done, did...)
			errs = append(errs, err)
		}
	}
	return done, errors.Join(errs...)
}

// sweepOwn restores what dead runs of the current namespace turned on.
func sweepOwn(dir string) ([]string, error) {
	unlock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	restored, err := restoreIfIdle(dir, nil)
	var did []string
	for _, r := range restored {
		did = append(did, fmt.Sprintf("restored %s, which crashed runs had changed", r))
	}
	return did, err
}

// sweepOther removes the records in dir, of another namespace than ours
// (cur), when no recorded run is alive and the namespace is gone: either a
// namespace that is not the recorded one now has its inode, or none is
// found with it. A namespace that is still there keeps its records for its
// own runs to restore. A directory of an older nsntrace version (named by
// the inode alone) with our inode cannot be told from a dead namespace's,
// so it is removed, without restoring, once its runs are gone.
func sweepOther(dir string, cur netnsID) ([]string, error) {
	id, ok := parseNetnsID(filepath.Base(dir))
	legacy := false
	if !ok {
		ino, err := strconv.ParseUint(filepath.Base(dir), 10, 64)
		if err != nil {
			return nil, nil // not ours
		}
		id, legacy = netnsID{ino: ino}, true
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if live, err := legacyOrForget(dir, legacy); err != nil || live {
		return nil, err
	}
	// Our inode but not our record: the recorded namespace is gone (two
	// live namespaces never share an inode).
	ours := id.ino == cur.ino && (legacy || id.dev == cur.dev)
	if !ours && netnsExists(id.ino) {
		return nil, nil
	}
	orig, _ := os.ReadFile(filepath.Join(dir, "orig-ipv4"))
	if err := os.RemoveAll(dir); err != nil {
		return nil, fmt.Errorf("remove stale forwarding record: %w", err)
	}
	what := fmt.Sprintf("removed the forwarding record %s of network namespace net:[%d], which no longer exists", dir, id.ino)
	if legacy {
		what = fmt.Sprintf("removed the forwarding record %s of an older nsntrace, whose runs are gone", dir)
	}
	if len(orig) > 0 {
		what += fmt.Sprintf(" (its saved ip_forward=%s was not applied to any namespace)", strings.TrimSpace(string(orig)))
	}
	return []string{what}, nil
}

// legacyOrForget is forgetDead for dir, where records of older versions
// (legacy) are bare pids.
func legacyOrForget(dir string, legacy bool) (bool, error) {
	if !legacy {
		return forgetDead(dir)
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return false, fmt.Errorf("read %s: %w", dir, err)
	}
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil && alive(pid) {
			return true, nil
		}
	}
	return false, nil
}

// netnsExists reports whether a network namespace with inode ino can be
// found: as a process's namespace, or mounted (ip netns add) where we see
// it. One held only by an open fd, or mounted in another mount namespace,
// is not found.
func netnsExists(ino uint64) bool {
	want := fmt.Sprintf("net:[%d]", ino)
	if b, err := os.ReadFile("/proc/self/mountinfo"); err == nil && bytes.Contains(b, []byte(want)) {
		return true
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return true // cannot tell: keep the record
	}
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		if l, err := os.Readlink("/proc/" + e.Name() + "/ns/net"); err == nil && l == want {
			return true
		}
	}
	return false
}
