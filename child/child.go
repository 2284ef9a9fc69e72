package child

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// envChild marks a process as a re-executed nsntrace child. Only Start sets
// it, in the child's own environment; the program gets Config.Env without it.
const envChild = "_NSNTRACE_CHILD"

// Config describes the program to run in the new namespaces.
type Config struct {
	// Path is the absolute path of the program, already resolved by the
	// caller (exec.LookPath).
	Path string
	// Args holds the program's argv, including argv[0].
	Args []string
	// Env is the program's environment. With User set, HOME, USER and
	// LOGNAME are replaced by the user's.
	Env []string
	// Dir is the working directory of the program; "" keeps the caller's.
	// It is entered as root, before the switch to User.
	Dir string
	// Stdin, Stdout and Stderr become the program's fds 0, 1 and 2. Unlike
	// os/exec, nil means the caller's own os.Stdin, os.Stdout, os.Stderr.
	Stdin, Stdout, Stderr *os.File
	// User, if not nil, is who the program runs as, without capabilities,
	// even when its uid is 0. Nil keeps root with all capabilities.
	User *User
	// ResolvConf, if not nil, is the content of a private file that covers
	// /etc/resolv.conf in the child's mount namespace only (mode 0644). A
	// symbolic link at /etc/resolv.conf is covered itself, not its target,
	// so that the target is left alone and a dangling link works too.
	ResolvConf []byte
	// KeyLog, if not empty, is the absolute path of a FIFO made for the
	// program's TLS key log (SSLKEYLOGFILE): its directory is covered by a
	// private tmpfs in the child's mount namespace holding only the FIFO,
	// which everyone may write and only root read. Process.KeyLog opens
	// it from outside.
	KeyLog string
	// WaitAll keeps the child until every process of the program's PID
	// namespace is gone, daemons it left running included. Otherwise,
	// when the program itself ends, what it left running gets SIGTERM,
	// then SIGKILL after Grace.
	WaitAll bool
	// Grace is how long processes the program left running have between
	// SIGTERM and SIGKILL (default DefaultGrace).
	Grace time.Duration
}

// DefaultGrace is Config.Grace's default.
const DefaultGrace = 2 * time.Second

// User is an account the program runs as.
type User struct {
	Uid, Gid uint32
	// Groups are the supplementary groups; empty means none.
	Groups []uint32
	// Name and Home become USER/LOGNAME and HOME.
	Name, Home string
}

// ErrUnknownUser is returned (wrapped) by LookupUser for a name or UID that
// the user database does not know.
var ErrUnknownUser = errors.New("unknown user")

// LookupUser finds a user by name or by numeric UID in the user database
// (/etc/passwd, /etc/group with CGO_ENABLED=0). A numeric UID that the
// database does not know is still a user, as for chown(1) and setpriv(1):
// its gid is the same number (not 0, root's group, nor 65534, whose files
// it would share), it has no supplementary groups, and its home is /.
func LookupUser(nameOrUID string) (*User, error) {
	if nameOrUID == "" {
		return nil, errors.New("empty user name")
	}
	var (
		u   *user.User
		err error
	)
	id, perr := strconv.ParseUint(nameOrUID, 10, 32)
	if perr == nil {
		if id == math.MaxUint32 {
			// (uid_t)-1 means "unchanged" to setresuid(2).
			return nil, fmt.Errorf("%w %q: %d is not a valid UID", ErrUnknownUser, nameOrUID, id)
		}
		u, err = user.LookupId(nameOrUID)
	} else {
		u, err = user.Lookup(nameOrUID)
	}
	if err != nil {
		var unknownName user.UnknownUserError
		var unknownID user.UnknownUserIdError
		if perr == nil && errors.As(err, &unknownID) {
			return &User{Uid: uint32(id), Gid: uint32(id), Groups: []uint32{}, Name: nameOrUID, Home: "/"}, nil
		}
		if errors.As(err, &unknownName) || errors.As(err, &unknownID) {
			return nil, fmt.Errorf("%w %q", ErrUnknownUser, nameOrUID)
		}
		return nil, fmt.Errorf("look up user %q: %w", nameOrUID, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("look up user %q: uid %q: %w", nameOrUID, u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("look up user %q: gid %q: %w", nameOrUID, u.Gid, err)
	}
	ids, err := u.GroupIds()
	if errors.Is(err, fs.ErrNotExist) {
		// No /etc/group (a minimal image): no supplementary groups,
		// as for initgroups(3) with an empty group database.
		ids, err = nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("look up groups of user %q: %w", nameOrUID, err)
	}
	groups := make([]uint32, 0, len(ids))
	for _, s := range ids {
		g, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return nil, fmt.Errorf("look up groups of user %q: gid %q: %w", nameOrUID, s, err)
		}
		groups = append(groups, uint32(g))
	}
	home := u.HomeDir
	if home == "" {
		home = "/"
	}
	return &User{Uid: uint32(uid), Gid: uint32(gid), Groups: groups, Name: u.Username, Home: home}, nil
}

// Status is how the program ended.
type Status struct {
	// Code is the program's exit code when it exited normally.
	Code int
	// Signal is the signal that killed the program, or 0.
	Signal syscall.Signal
	// ExecError is set when the program could not be started at all. It
	// is an *os.PathError whose Err is the errno, so errors.Is works with
	// os.ErrNotExist and os.ErrPermission.
	ExecError error
	// Stopped counts the processes the program left running when it
	// ended, which then got SIGTERM (never with Config.WaitAll); Killed
	// counts those of them still there after the grace period, which got
	// SIGKILL.
	Stopped, Killed int
}

// Exit codes in the convention of env(1), timeout(1) and `docker run`,
// for what is not the program's own status.
const (
	// ExitFailure is the tracer's own failure: usage, set-up, capture;
	// the init exits with it too when it cannot do its part.
	ExitFailure = 125
	// ExitCannotExecute: the program exists but cannot be executed.
	ExitCannotExecute = 126
	// ExitNotFound: the program was not found.
	ExitNotFound = 127
)

// ExitCode maps the status to the exit code convention of env(1),
// timeout(1) and docker: the program's own code, 128+N if it was killed by
// signal N, 127 if it was not found, 126 if it could not be executed.
func (s Status) ExitCode() int {
	switch {
	case s.ExecError != nil:
		if errors.Is(s.ExecError, os.ErrNotExist) {
			return ExitNotFound
		}
		return ExitCannotExecute
	case s.Signal != 0:
		return 128 + int(s.Signal)
	default:
		return s.Code
	}
}

// String describes the status for a person.
func (s Status) String() string {
	switch {
	case s.ExecError != nil:
		return s.ExecError.Error()
	case s.Signal != 0:
		return "killed by signal " + strconv.Itoa(int(s.Signal)) + " (" + s.Signal.String() + ")"
	default:
		return "exit status " + strconv.Itoa(s.Code)
	}
}

// programEnv returns env as the program gets it: without our marker and,
// for a user, with HOME, USER and LOGNAME set to theirs.
func programEnv(env []string, u *User) []string {
	drop := map[string]bool{envChild: true}
	if u != nil {
		drop["HOME"], drop["USER"], drop["LOGNAME"] = true, true, true
	}
	out := make([]string, 0, len(env)+3)
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		if !drop[k] {
			out = append(out, kv)
		}
	}
	if u != nil {
		out = append(out, "HOME="+u.Home, "USER="+u.Name, "LOGNAME="+u.Name)
	}
	return out
}

// message is one JSON object on the socket between parent and init.
//
//	parent -> init: "config", then "go" (Release), then any "signal"
//	init -> parent: "ready" or "error"; after "go": "started" or
//	                "exec-error" (or "error"); "exit" when the program
//	                ends; "done" when the namespace is empty
type message struct {
	Type string `json:"type"`

	// "config"
	Path       string   `json:"path,omitempty"`
	Args       []string `json:"args,omitempty"`
	Env        []string `json:"env,omitempty"`
	User       *User    `json:"user,omitempty"`
	ResolvConf []byte   `json:"resolv_conf,omitempty"`
	KeyLog     string   `json:"key_log,omitempty"`
	WaitAll    bool     `json:"wait_all,omitempty"`
	GraceMS    int64    `json:"grace_ms,omitempty"`

	// "started": the program's pid inside the namespace
	Pid int `json:"pid,omitempty"`

	// "error", "exec-error": what failed and the errno (0 if none)
	Op    string `json:"op,omitempty"`
	Errno int    `json:"errno,omitempty"`
	Err   string `json:"err,omitempty"`

	// "exit": exit code, or the signal that killed the program;
	// "signal": the signal to forward
	Code   int `json:"code,omitempty"`
	Signal int `json:"signal,omitempty"`
	// "done": processes the program left running that were stopped, and
	// how many of them had to be killed
	Stopped int `json:"stopped,omitempty"`
	Killed  int `json:"killed,omitempty"`
}

// Message types.
const (
	msgConfig    = "config"
	msgReady     = "ready"
	msgError     = "error"
	msgGo        = "go"
	msgStarted   = "started"
	msgExecError = "exec-error"
	msgSignal    = "signal"
	msgExit      = "exit"
	msgDone      = "done"
)

// errorMessage encodes a failed operation for the other side.
func errorMessage(typ, op string, err error) message {
	m := message{Type: typ, Op: op, Err: err.Error()}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		m.Errno = int(errno)
	}
	return m
}

// remoteError is a failure reported by the init. It unwraps to the errno
// when there was one, so errors.Is(err, os.ErrPermission) works.
type remoteError struct {
	op    string
	errno syscall.Errno
	text  string
}

func (e *remoteError) Error() string {
	if e.errno != 0 {
		return e.op + ": " + e.errno.Error()
	}
	return e.op + ": " + e.text
}

func (e *remoteError) Unwrap() error {
	if e.errno != 0 {
		return e.errno
	}
	return nil
}

// err decodes an "error" or "exec-error" message.
func (m *message) err() error {
	return &remoteError{op: m.Op, errno: syscall.Errno(m.Errno), text: m.Err}
}
