package child

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/nsntrace/nsntrace/internal/kfeature"
)

var _ io.Closer = (*Process)(nil)

// Process is a started child: the init of the new namespaces, holding the
// program back until Release.
type Process struct {
	cmd   *exec.Cmd
	path  string
	netns *os.File

	conn *net.UnixConn
	enc  *json.Encoder
	wmu  sync.Mutex // serialises writes to enc

	initDone chan struct{} // closed once the init is reaped
	initErr  error         // cmd.Wait's result, valid after initDone

	eof chan struct{} // closed when the reader has seen the end of the socket

	mu        sync.Mutex
	released  bool
	killed    bool
	started   chan struct{} // closed on "started" or "exec-error"
	startMsg  *message      // valid once started is closed
	exitMsg   *message      // the "exit" message, if any
	doneMsg   *message      // the "done" message, if any
	readErr   error         // why the reader stopped (io.EOF normally)
	waitOnce  sync.Once
	status    Status
	waitErr   error
	closeOnce sync.Once
	closeErr  error
}

// Start re-executes /proc/self/exe in new network, mount and PID
// namespaces and returns once the child is ready: its mounts are in place
// and its network namespace can be configured through NetNS. The program
// runs only after Release. The binary must call MaybeRun first thing in
// main (or TestMain).
//
// The caller must end a started Process with Wait or Close; Close kills it
// if it still runs.
func Start(cfg *Config) (_ *Process, err error) {
	if cfg == nil {
		return nil, errors.New("start child: no config")
	}
	if !filepath.IsAbs(cfg.Path) {
		return nil, fmt.Errorf("start child: program path %q is not absolute", cfg.Path)
	}
	if len(cfg.Args) == 0 {
		return nil, errors.New("start child: no argv[0]")
	}

	grace := cfg.Grace
	if grace <= 0 {
		grace = DefaultGrace
	}

	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("start child: %w", os.NewSyscallError("socketpair", err))
	}
	ours := os.NewFile(uintptr(fds[0]), "nsntrace-child")
	theirs := os.NewFile(uintptr(fds[1]), "nsntrace-child-init")
	// The init holds its own copy of theirs after the fork; ours must go,
	// or we would never see the end of the socket when the init dies.
	defer theirs.Close()
	fc, err := net.FileConn(ours) // dups ours (CLOEXEC)
	ours.Close()
	if err != nil {
		return nil, fmt.Errorf("start child: %w", kfeature.Namespaces(err, "/proc"))
	}
	conn := fc.(*net.UnixConn)
	defer func() {
		if err != nil {
			conn.Close()
		}
	}()

	stdin, stdout, stderr := cfg.Stdin, cfg.Stdout, cfg.Stderr
	if stdin == nil {
		stdin = os.Stdin
	}
	if stdout == nil {
		stdout = os.Stdout
	}
	if stderr == nil {
		stderr = os.Stderr
	}
	// p, not a named result: an error return sets that to nil while the
	// goroutine below and the deferred clean-ups still use it.
	p := &Process{
		path:     cfg.Path,
		conn:     conn,
		enc:      json.NewEncoder(conn),
		initDone: make(chan struct{}),
		eof:      make(chan struct{}),
		started:  make(chan struct{}),
		cmd: &exec.Cmd{
			// /proc/self/exe is this very binary even if its file has
			// been replaced or removed since we started.
			Path:       "/proc/self/exe",
			Args:       []string{os.Args[0]},
			Env:        []string{envChild + "=1"},
			Dir:        cfg.Dir,
			Stdin:      stdin,
			Stdout:     stdout,
			Stderr:     stderr,
			ExtraFiles: []*os.File{theirs}, // fd 3
			SysProcAttr: &syscall.SysProcAttr{
				Cloneflags: unix.CLONE_NEWNET | unix.CLONE_NEWNS | unix.CLONE_NEWPID,
				Pdeathsig:  syscall.SIGKILL,
			},
		},
	}

	// PR_SET_PDEATHSIG fires when the *thread* that forked the child
	// exits, not the process (golang/go#27505). Fork from a goroutine
	// locked to its thread that stays alive until the init is reaped, so
	// the runtime can never retire that thread under a running child.
	forked := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		if err := p.cmd.Start(); err != nil {
			forked <- err
			return
		}
		forked <- nil
		p.initErr = p.cmd.Wait()
		close(p.initDone)
	}()
	if err := <-forked; err != nil {
		return nil, fmt.Errorf("start child: %w", kfeature.Namespaces(err, "/proc"))
	}
	defer func() {
		if err != nil {
			_ = p.cmd.Process.Kill() // best effort: it may have died already
			<-p.initDone
		}
	}()

	// Open the namespace while the init is alive and not yet reaped, so
	// the pid cannot have been reused.
	p.netns, err = os.Open("/proc/" + strconv.Itoa(p.cmd.Process.Pid) + "/ns/net")
	if err != nil {
		return nil, fmt.Errorf("start child: open network namespace: %w", err)
	}
	defer func() {
		if err != nil {
			p.netns.Close()
		}
	}()

	if err := p.send(message{
		Type:       msgConfig,
		Path:       cfg.Path,
		Args:       cfg.Args,
		Env:        programEnv(cfg.Env, cfg.User),
		User:       cfg.User,
		ResolvConf: cfg.ResolvConf,
		KeyLog:     cfg.KeyLog,
		WaitAll:    cfg.WaitAll,
		GraceMS:    grace.Milliseconds(),
	}); err != nil {
		return nil, fmt.Errorf("start child: send config: %w", p.deathCause(err))
	}
	dec := json.NewDecoder(conn)
	var m message
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("start child: %w", p.deathCause(err))
	}
	switch m.Type {
	case msgReady:
	case msgError:
		return nil, fmt.Errorf("start child: %w", m.err())
	default:
		return nil, fmt.Errorf("start child: unexpected message %q", m.Type)
	}
	go p.read(dec)
	return p, nil
}

// deathCause explains a socket error: when the init has died, its exit is
// the real cause.
func (p *Process) deathCause(err error) error {
	if !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) &&
		!errors.Is(err, syscall.EPIPE) && !errors.Is(err, syscall.ECONNRESET) {
		return err
	}
	<-p.initDone
	if p.initErr != nil {
		return fmt.Errorf("child died: %w", p.initErr)
	}
	return errors.New("child exited unexpectedly")
}

// read collects the init's messages until the socket ends.
func (p *Process) read(dec *json.Decoder) {
	for {
		var m message
		if err := dec.Decode(&m); err != nil {
			p.mu.Lock()
			p.readErr = err
			p.mu.Unlock()
			close(p.eof)
			return
		}
		p.mu.Lock()
		switch m.Type {
		case msgStarted, msgExecError, msgError:
			if p.startMsg == nil {
				p.startMsg = &m
				close(p.started)
			}
		case msgExit:
			p.exitMsg = &m
		case msgDone:
			p.doneMsg = &m
		}
		p.mu.Unlock()
	}
}

func (p *Process) send(m message) error {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	return p.enc.Encode(&m)
}

// Pid returns the host pid of the child (the init of the new PID
// namespace).
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// NetNS returns the child's network namespace (opened O_CLOEXEC from
// /proc/PID/ns/net while the child was known to be alive). The Process owns
// the file: the caller must not close it; it stays valid until Close.
func (p *Process) NetNS() (*os.File, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.netns == nil {
		return nil, fmt.Errorf("child network namespace: %w", os.ErrClosed)
	}
	return p.netns, nil
}

// KeyLog opens the FIFO of Config.KeyLog, through the child's root
// (/proc/PID/root), for reading without blocking. It is opened for
// reading only, so that poll(2) says when no writer has it open (POLLHUP):
// then no key line can be on its way. The caller owns the file.
func (p *Process) KeyLog(path string) (*os.File, error) {
	f, err := os.OpenFile(fmt.Sprintf("/proc/%d/root%s", p.Pid(), path), os.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open the TLS key log: %w", err)
	}
	return f, nil
}

// Release lets the child exec the program, and returns once the program
// has started or failed to (Wait then reports the failure in
// Status.ExecError). It returns an error if the child is gone or Release
// was called before.
func (p *Process) Release() error {
	p.mu.Lock()
	if p.released {
		p.mu.Unlock()
		return errors.New("release child: already released")
	}
	p.released = true
	p.mu.Unlock()

	if err := p.send(message{Type: msgGo}); err != nil {
		return fmt.Errorf("release child: %w", p.deathCause(err))
	}
	select {
	case <-p.started:
	case <-p.eof:
		// The reader may have seen "started" just before the end.
		select {
		case <-p.started:
		default:
			return fmt.Errorf("release child: %w", p.deathCause(io.EOF))
		}
	}
	p.mu.Lock()
	m := p.startMsg
	p.mu.Unlock()
	if m.Type == msgError {
		return fmt.Errorf("release child: %w", m.err())
	}
	return nil
}

// Signal forwards sig to the program through the init. SIGKILL is Kill.
// It fails before Release, and with os.ErrProcessDone once the program has
// ended.
func (p *Process) Signal(sig os.Signal) error {
	s, ok := sig.(syscall.Signal)
	if !ok {
		return fmt.Errorf("signal child: unsupported signal %v", sig)
	}
	if s == syscall.SIGKILL {
		return p.Kill()
	}
	p.mu.Lock()
	// Until "done", a signal still reaches what the program left running.
	running := p.startMsg != nil && p.startMsg.Type == msgStarted && p.doneMsg == nil
	p.mu.Unlock()
	if !running {
		select {
		case <-p.started:
			return fmt.Errorf("signal child: %w", os.ErrProcessDone)
		default:
			return errors.New("signal child: program not started")
		}
	}
	select {
	case <-p.eof:
		return fmt.Errorf("signal child: %w", os.ErrProcessDone)
	default:
	}
	if err := p.send(message{Type: msgSignal, Signal: int(s)}); err != nil {
		if errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) {
			return fmt.Errorf("signal child: %w", os.ErrProcessDone)
		}
		return fmt.Errorf("signal child: %w", err)
	}
	return nil
}

// Kill sends SIGKILL to the init; the kernel then kills every process of
// its PID namespace. Killing a child that has already ended is not an
// error.
func (p *Process) Kill() error {
	p.mu.Lock()
	p.killed = true
	p.mu.Unlock()
	if err := p.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill child: %w", err)
	}
	return nil
}

// Wait waits until the program has ended and every process of its PID
// namespace is gone, and returns how the program ended. After Kill, a
// program that had not reported its own end is reported as killed by
// SIGKILL. An error means the child died without telling (or never got to
// the program). Before Release, Wait waits until the child is killed.
func (p *Process) Wait() (Status, error) {
	p.waitOnce.Do(func() {
		<-p.eof
		<-p.initDone
		p.status, p.waitErr = p.result()
	})
	return p.status, p.waitErr
}

func (p *Process) result() (Status, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if m := p.exitMsg; m != nil {
		st := Status{Code: m.Code, Signal: syscall.Signal(m.Signal)}
		if d := p.doneMsg; d != nil {
			st.Stopped, st.Killed = d.Stopped, d.Killed
		}
		return st, nil
	}
	if m := p.startMsg; m != nil && m.Type == msgExecError {
		var err error = errors.New(m.Err)
		if m.Errno != 0 {
			err = syscall.Errno(m.Errno)
		}
		return Status{ExecError: &os.PathError{Op: "exec", Path: p.path, Err: err}}, nil
	}
	if p.killed {
		return Status{Signal: syscall.SIGKILL}, nil
	}
	if m := p.startMsg; m != nil && m.Type == msgError {
		return Status{}, fmt.Errorf("wait child: %w", m.err())
	}
	if p.initErr != nil {
		return Status{}, fmt.Errorf("wait child: child died before the program ended: %w", p.initErr)
	}
	return Status{}, errors.New("wait child: child exited before the program ended")
}

// Close kills the child if it still runs, waits for it, and releases the
// socket and the namespace handle. It is idempotent.
func (p *Process) Close() error {
	p.closeOnce.Do(func() {
		select {
		case <-p.initDone:
		default:
			p.closeErr = p.Kill()
			<-p.initDone
		}
		if err := p.conn.Close(); err != nil && p.closeErr == nil {
			p.closeErr = fmt.Errorf("close child socket: %w", err)
		}
		p.mu.Lock()
		if p.netns != nil {
			if err := p.netns.Close(); err != nil && p.closeErr == nil {
				p.closeErr = fmt.Errorf("close child network namespace: %w", err)
			}
			p.netns = nil
		}
		p.mu.Unlock()
	})
	return p.closeErr
}
