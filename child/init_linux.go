package child

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// initFD is where Start puts the init's end of the socket (ExtraFiles[0]).
const initFD = 3

// MaybeRun returns at once unless this process is a child re-executed by
// Start; then it becomes the init of the new namespaces, runs the program
// and exits with it, never returning. Call it first thing in main (and in
// TestMain), before anything opens files or starts goroutines that matter.
func MaybeRun() {
	if _, ok := os.LookupEnv(envChild); !ok {
		return
	}
	if err := os.Unsetenv(envChild); err != nil {
		os.Exit(ExitFailure)
	}
	if os.Getpid() != 1 {
		fmt.Fprintf(os.Stderr, "nsntrace: %s is set, but this process was not started as an nsntrace child\n", envChild)
		os.Exit(ExitFailure)
	}
	os.Exit(runInit())
}

// Exit codes of the init itself; the parent learns the details over the
// socket, these only matter if that is gone.
const (
	initExitOK    = 0
	initExitError = ExitFailure
)

// initConn is the init's side of the socket.
type initConn struct {
	conn *net.UnixConn
	enc  *json.Encoder
	dec  *json.Decoder
}

func (c *initConn) send(m message) error { return c.enc.Encode(&m) }

// fail reports a failed step to the parent and returns the init's exit code.
func (c *initConn) fail(op string, err error) int {
	_ = c.send(errorMessage(msgError, op, err)) // best effort: the parent may be gone
	return initExitError
}

func runInit() int {
	// Signals: SIGCHLD drives the reaper; the rest are forwarded or
	// dropped (see the package doc). Subscribing first means no SIGCHLD
	// is missed, and a terminal's SIGINT during set-up does not end us
	// (the parent decides then). Notify, not Ignore: ignored signals
	// would stay ignored in the program.
	sigc := make(chan os.Signal, 32)
	signal.Notify(sigc, unix.SIGCHLD, unix.SIGTERM, unix.SIGUSR1, unix.SIGUSR2,
		unix.SIGINT, unix.SIGQUIT, unix.SIGHUP)

	// Every fd the parent let us inherit besides 0-2 and the socket
	// (non-CLOEXEC fds of the parent) must not reach the program.
	if err := cloexecFrom(initFD + 1); err != nil {
		return initExitError
	}
	f := os.NewFile(initFD, "nsntrace-child")
	fc, err := net.FileConn(f) // a CLOEXEC dup
	f.Close()
	if err != nil {
		return initExitError
	}
	uc, ok := fc.(*net.UnixConn)
	if !ok {
		return initExitError
	}
	c := &initConn{conn: uc, enc: json.NewEncoder(uc), dec: json.NewDecoder(uc)}

	var cfg message
	if err := c.dec.Decode(&cfg); err != nil || cfg.Type != msgConfig {
		return initExitError // the parent is gone or is not ours
	}
	if op, err := setupMounts(cfg.ResolvConf, cfg.KeyLog); err != nil {
		return c.fail(op, err)
	}

	if err := c.send(message{Type: msgReady}); err != nil {
		return initExitError
	}
	var m message
	if err := c.dec.Decode(&m); err != nil || m.Type != msgGo {
		// The parent closed the socket or died before Release: the run
		// is off. Exiting kills nothing, there is nothing yet.
		return initExitError
	}

	pid, err := startProgram(&cfg)
	if err != nil {
		_ = c.send(errorMessage(msgExecError, "exec "+cfg.Path, err)) // best effort: we exit either way
		return initExitOK
	}
	if err := c.send(message{Type: msgStarted, Pid: pid}); err != nil {
		// The parent is gone; our exit takes the program with it.
		return initExitError
	}

	msgc := make(chan message)
	go func() {
		defer close(msgc)
		for {
			var m message
			if err := c.dec.Decode(&m); err != nil {
				return
			}
			msgc <- m
		}
	}()

	sv := &supervisor{program: pid, waitAll: cfg.WaitAll, grace: time.Duration(cfg.GraceMS) * time.Millisecond}
	for {
		select {
		case s := <-sigc:
			switch s {
			case unix.SIGCHLD:
				exit, done := sv.reaped()
				if exit != nil {
					// At once: if the parent ends the run before what
					// the program left running is gone, the program's
					// status is known.
					_ = c.send(*exit) // best effort: the parent may be gone
				}
				if done != nil {
					_ = c.send(*done) // best effort: the parent may be gone; we end anyway
					return initExitOK
				}
			case unix.SIGTERM, unix.SIGUSR1, unix.SIGUSR2:
				sv.forward(s.(syscall.Signal))
			default:
				// SIGINT, SIGQUIT, SIGHUP: a terminal sends them to the
				// whole foreground process group, program included.
			}
		case <-sv.timer:
			sv.killAll()
		case m, ok := <-msgc:
			if !ok {
				// The parent is gone (or closed us): end the run.
				return initExitError
			}
			if m.Type == msgSignal && m.Signal > 0 {
				sv.forward(syscall.Signal(m.Signal))
			}
		}
	}
}

// supervisor follows the program and what it leaves running, as the init
// of their PID namespace: orphans become its children, and kill(-1, sig)
// reaches every process of the namespace but the init itself.
type supervisor struct {
	program int
	waitAll bool
	grace   time.Duration

	exit  *message         // the program's end, once it has ended
	done  message          // what happened to what it left running
	timer <-chan time.Time // the grace period of what it left running
}

// reaped reaps what has exited. It returns the program's exit message
// once, when the program has ended, and the done message when the run is
// over: the program has ended and no process is left.
func (sv *supervisor) reaped() (exit, done *message) {
	ws, ended, none := reap(sv.program)
	if ended && sv.exit == nil {
		sv.exit = &message{Type: msgExit}
		if ws.Signaled() {
			sv.exit.Signal = int(ws.Signal())
		} else {
			sv.exit.Code = ws.ExitStatus()
		}
		exit = sv.exit
		sv.done.Type = msgDone
		if !none && !sv.waitAll {
			// The trace ends with the program: what it left running
			// gets SIGTERM and the grace period, as on ctrl-c.
			sv.done.Stopped = max(countProcesses(), 1)
			_ = unix.Kill(-1, unix.SIGTERM) // ESRCH: they are gone already
			sv.timer = time.After(sv.grace)
		}
	}
	if sv.exit != nil && none {
		return exit, &sv.done
	}
	return exit, nil
}

// killAll ends the grace period: what is still there gets SIGKILL.
func (sv *supervisor) killAll() {
	sv.timer = nil
	sv.done.Killed = countProcesses()
	_ = unix.Kill(-1, unix.SIGKILL) // ESRCH: they are gone already
}

// forward passes a signal on to the program, or, once it has ended, to
// everything it left running (with --wait-all, or during the grace
// period).
func (sv *supervisor) forward(sig syscall.Signal) {
	if sv.exit == nil {
		_ = unix.Kill(sv.program, sig) // the program may be exiting already
		return
	}
	_ = unix.Kill(-1, sig) // ESRCH: nothing is left
}

// countProcesses counts the processes of our PID namespace besides
// ourselves, from the /proc that setupMounts mounted for it.
func countProcesses() int {
	d, err := os.Open("/proc")
	if err != nil {
		return 0
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return 0
	}
	n := 0
	for _, name := range names {
		if pid, err := strconv.Atoi(name); err == nil && pid != 1 {
			n++
		}
	}
	return n
}

// reap collects every exited child (orphans of the namespace included). It
// reports the program's status once it is among them, and none when no
// child is left at all: every process of the namespace descends from us,
// so then the namespace holds nobody else.
func reap(program int) (ws unix.WaitStatus, done, none bool) {
	for {
		var s unix.WaitStatus
		pid, err := unix.Wait4(-1, &s, unix.WNOHANG, nil)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if errors.Is(err, unix.ECHILD) {
			return ws, done, true
		}
		if err != nil || pid <= 0 {
			return ws, done, false
		}
		if pid == program {
			ws, done = s, true
		}
	}
}

// startProgram forks and execs the program with its credentials; exec
// errors come back precisely (syscall.ForkExec reports them from the
// child). Only fds 0, 1 and 2 are passed: everything else of ours is
// CLOEXEC.
func startProgram(cfg *message) (int, error) {
	sys := &syscall.SysProcAttr{
		// Redundant with the PID namespace (our exit kills it), but it
		// also covers the window before the first reap.
		Pdeathsig: syscall.SIGKILL,
	}
	u := cfg.User
	if u != nil {
		// setuid from 0 to non-zero clears the permitted, effective and
		// ambient capability sets (capabilities(7)), and setgroups with
		// an empty list drops root's groups.
		groups := u.Groups
		if groups == nil {
			groups = []uint32{}
		}
		sys.Credential = &syscall.Credential{Uid: u.Uid, Gid: u.Gid, Groups: groups}
	}
	attr := &syscall.ProcAttr{Env: cfg.Env, Files: []uintptr{0, 1, 2}, Sys: sys}
	forkExec := syscall.ForkExec
	if u != nil && u.Uid == 0 {
		forkExec = forkExecWithoutCaps
	}
	pid, err := forkExec(cfg.Path, cfg.Args, attr)
	if errors.Is(err, syscall.ENOEXEC) && isScript(cfg.Path) {
		// A text file without #!: execvp(3), env(1), timeout(1) and the
		// shells run it with /bin/sh, argv as execvp builds it.
		argv := append([]string{shellPath, cfg.Path}, cfg.Args[1:]...)
		if spid, serr := forkExec(shellPath, argv, attr); serr == nil {
			return spid, nil
		}
		// No /bin/sh (a minimal image): the program's own error says more.
	}
	return pid, err
}

// shellPath runs scripts without #!, as _PATH_BSHELL for execvp(3).
const shellPath = "/bin/sh"

// isScript applies bash's test for a file execve refused with ENOEXEC:
// text, unless it is ELF or its first line (within 80 bytes) holds a NUL.
// Binaries for another machine then stay "exec format error" instead of
// being fed to the shell.
func isScript(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	b := make([]byte, 80)
	n, _ := io.ReadFull(f, b) // a short file is read whole; an error reads as empty
	b = b[:n]
	if bytes.HasPrefix(b, []byte("\x7fELF")) {
		return false
	}
	if i := bytes.IndexByte(b, '\n'); i >= 0 {
		b = b[:i]
	}
	return bytes.IndexByte(b, 0) < 0
}

// forkExecWithoutCaps starts a program whose uid is 0 with no capabilities.
// setuid(0) keeps them, and execve gives a root process
// P' = (P(inheritable) & F(inheritable)) | (F(permitted) & bounding) | ambient
// with F full (security/commoncap.c, handle_privileged_root), so the forking
// thread first empties its bounding, ambient and inheritable sets, which
// the child inherits; its effective set stays, for setgroups and setgid.
//
// Capability sets are per thread, and that thread can never get its
// bounding set back, so it is locked and kept, never returned to the
// runtime: its exit would also fire the program's PR_SET_PDEATHSIG.
func forkExecWithoutCaps(path string, argv []string, attr *syscall.ProcAttr) (int, error) {
	type started struct {
		pid int
		err error
	}
	c := make(chan started, 1)
	go func() {
		runtime.LockOSThread()
		if err := dropInheritableCaps(); err != nil {
			c <- started{0, err}
			select {} // the thread may be changed: keep it locked and alive
		}
		pid, err := syscall.ForkExec(path, argv, attr)
		c <- started{pid, err}
		select {}
	}()
	s := <-c
	return s.pid, s.err
}

// dropInheritableCaps empties the calling thread's bounding, ambient and
// inheritable capability sets.
func dropInheritableCaps() error {
	last, err := lastCap()
	if err != nil {
		return err
	}
	for c := 0; c <= last; c++ {
		if err := unix.Prctl(unix.PR_CAPBSET_DROP, uintptr(c), 0, 0, 0); err != nil {
			return os.NewSyscallError("prctl PR_CAPBSET_DROP", err)
		}
	}
	if err := unix.Prctl(unix.PR_CAP_AMBIENT, unix.PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0); err != nil && !errors.Is(err, unix.EINVAL) {
		// EINVAL: a kernel before 4.3 has no ambient set to clear.
		return os.NewSyscallError("prctl PR_CAP_AMBIENT_CLEAR_ALL", err)
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return os.NewSyscallError("capget", err)
	}
	data[0].Inheritable, data[1].Inheritable = 0, 0
	if err := unix.Capset(&hdr, &data[0]); err != nil {
		return os.NewSyscallError("capset", err)
	}
	return nil
}

// lastCap is the highest capability the kernel knows.
func lastCap() (int, error) {
	b, err := os.ReadFile("/proc/sys/kernel/cap_last_cap")
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, fmt.Errorf("read /proc/sys/kernel/cap_last_cap: %w", err)
	}
	return n, nil
}

// cloexecFrom marks every open fd >= from close-on-exec. (close_range(2)
// with CLOSE_RANGE_CLOEXEC does it in one call on Linux >= 5.11; /proc
// works everywhere and this runs once.)
func cloexecFrom(from int) error {
	if err := unix.CloseRange(uint(from), ^uint(0), unix.CLOSE_RANGE_CLOEXEC); err == nil {
		return nil
	}
	d, err := os.Open("/proc/self/fd")
	if err != nil {
		return err
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return err
	}
	for _, n := range names {
		fd, err := strconv.Atoi(n)
		if err != nil || fd < from || fd == int(d.Fd()) {
			continue
		}
		unix.CloseOnExec(fd)
	}
	return nil
}

// setupMounts makes the mount namespace private, covers /etc/resolv.conf
// and makes the key log FIFO if asked, and mounts a /proc of the new PID
// namespace. It returns the failed step for the error message.
func setupMounts(resolvConf []byte, keyLog string) (string, error) {
	// Nothing we mount may propagate back to the host's namespace.
	if err := makeMountsPrivate(); err != nil {
		return "make mounts private", err
	}
	if resolvConf != nil {
		if err := coverResolvConf(resolvConf); err != nil {
			return "cover /etc/resolv.conf", err
		}
	}
	if keyLog != "" {
		if err := makeKeyLog(keyLog); err != nil {
			return "make the TLS key log " + keyLog, err
		}
	}
	if err := mountProc(); err != nil {
		return "mount /proc", err
	}
	return "", nil
}

// makeKeyLog covers the directory of path with a small private tmpfs and
// makes the FIFO path in it: writable by everyone (the program may run as
// any user), readable by root only (the parent, through /proc/PID/root).
func makeKeyLog(path string) error {
	if err := unix.Mount("tmpfs", filepath.Dir(path), "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC,
		"mode=0755,size=16k,nr_inodes=4"); err != nil {
		return fmt.Errorf("mount tmpfs: %w", os.NewSyscallError("mount", err))
	}
	if err := unix.Mkfifo(path, 0o600); err != nil {
		return &os.PathError{Op: "mkfifo", Path: path, Err: err}
	}
	// Mkfifo honours the umask; Chmod does not.
	return os.Chmod(path, 0o622)
}

// makeMountsPrivate makes every mount of our new mount namespace private,
// so that nothing mounted here reaches the host's namespace.
//
// In a chroot whose root directory is not itself a mount point (a root
// file system unpacked into a directory), mount(2) refuses to change the
// propagation of "/" (EINVAL: fs/namespace.c do_change_type wants the root
// of a mount), and the mount that holds our root is not even visible in
// /proc/self/mountinfo. Then the init, which owns this mount namespace,
// climbs to the namespace's root for a moment, as chroot(2) allows a
// process whose working directory lies outside its root, makes the whole
// tree private from there and returns to its root and working directory.
// This changes only our namespace's copies of the mounts.
func makeMountsPrivate() error {
	err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, "")
	if err == nil {
		return nil
	}
	if !errors.Is(err, unix.EINVAL) {
		return os.NewSyscallError("mount", err)
	}
	return fromNamespaceRoot(func() error {
		return os.NewSyscallError("mount", unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""))
	})
}

// fromNamespaceRoot runs fn with the mount namespace's root as our root and
// working directory, then restores both. If they cannot be restored, the
// init must not go on: the error says so, and it exits.
func fromNamespaceRoot(fn func() error) error {
	root, err := unix.Open("/", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: "/", Err: err}
	}
	defer unix.Close(root)
	cwd, err := unix.Open(".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: ".", Err: err}
	}
	defer unix.Close(cwd)

	// A root below the old one puts the old one outside it; from there
	// ".." leads up to the top of the namespace's mount tree, where ".."
	// is "." again (fs/namei.c follow_dotdot).
	if err := unix.Chroot("/proc"); err != nil {
		return os.NewSyscallError("chroot", err)
	}
	if err := unix.Fchdir(root); err != nil {
		return os.NewSyscallError("fchdir", err)
	}
	for i := 0; ; i++ {
		var dot, dotdot unix.Stat_t
		if err := unix.Stat(".", &dot); err != nil {
			return os.NewSyscallError("stat", err)
		}
		if err := unix.Stat("..", &dotdot); err != nil {
			return os.NewSyscallError("stat", err)
		}
		if dot.Dev == dotdot.Dev && dot.Ino == dotdot.Ino {
			break
		}
		if i == 4096 {
			return errors.New("find the mount namespace's root: too deep")
		}
		if err := unix.Chdir(".."); err != nil {
			return os.NewSyscallError("chdir", err)
		}
	}
	if err := unix.Chroot("."); err != nil {
		return os.NewSyscallError("chroot", err)
	}
	ferr := fn()
	if err := unix.Fchdir(root); err != nil {
		return fmt.Errorf("return to our root: %w", os.NewSyscallError("fchdir", err))
	}
	if err := unix.Chroot("."); err != nil {
		return fmt.Errorf("return to our root: %w", os.NewSyscallError("chroot", err))
	}
	if err := unix.Fchdir(cwd); err != nil {
		return fmt.Errorf("return to our working directory: %w", os.NewSyscallError("fchdir", err))
	}
	return ferr
}

func mountProc() error {
	return os.NewSyscallError("mount", unix.Mount("proc", "/proc", "proc",
		unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""))
}

// resolvConfPath is the file that ResolvConf covers.
const resolvConfPath = "/etc/resolv.conf"

// coverResolvConf bind-mounts a private file with content over
// /etc/resolv.conf without following a symbolic link there: the link itself
// is covered, so a link to systemd-resolved's stub file (or a dangling one)
// works and its target is untouched. It must run before mountProc.
//
// A bind source must be a linked file on a mount of this namespace (memfd
// and O_TMPFILE files are refused), and nothing of the host may be written.
// So the file lives on a tmpfs mounted over /proc for a moment; the bind
// goes from and to /proc/self/fd magic links (O_PATH|O_NOFOLLOW keeps the
// link itself), which needs a proc mounted on top for that moment. Both are
// unmounted afterwards; the bind mount keeps the tmpfs alive. This works on
// any kernel, unlike fsopen(2)/move_mount(2) (Linux >= 5.2).
func coverResolvConf(content []byte) error {
	target, err := unix.Open(resolvConfPath, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: resolvConfPath, Err: err}
	}
	defer unix.Close(target)

	// No clean-up on failure: the init then exits, and its mount
	// namespace goes with it.
	if err := unix.Mount("tmpfs", "/proc", "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC,
		"mode=0755,size=64k,nr_inodes=16"); err != nil {
		return fmt.Errorf("mount tmpfs: %w", os.NewSyscallError("mount", err))
	}
	const file = "/proc/resolv.conf"
	if err := os.WriteFile(file, content, 0o644); err != nil {
		return err
	}
	// WriteFile honours the umask; the -u user must be able to read it.
	if err := os.Chmod(file, 0o644); err != nil {
		return err
	}
	src, err := unix.Open(file, unix.O_PATH|unix.O_CLOEXEC, 0)
	if err != nil {
		return &os.PathError{Op: "open", Path: file, Err: err}
	}
	defer unix.Close(src)
	if err := mountProc(); err != nil {
		return err
	}
	if err := unix.Mount("/proc/self/fd/"+strconv.Itoa(src), "/proc/self/fd/"+strconv.Itoa(target),
		"", unix.MS_BIND, ""); err != nil {
		return fmt.Errorf("bind mount: %w", os.NewSyscallError("mount", err))
	}
	if err := unix.Unmount("/proc", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("unmount proc: %w", os.NewSyscallError("umount2", err))
	}
	if err := unix.Unmount("/proc", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("unmount tmpfs: %w", os.NewSyscallError("umount2", err))
	}
	return nil
}
