package nft

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// envReaper marks a process as a table reaper re-executed by Install; its
// value lists the tables as FAMILY:NAME,...
const envReaper = "_NSNTRACE_NFT_REAPER"

// reaperFD is where the reaper finds its end of the pipe (ExtraFiles[0]).
const reaperFD = 3

// reaper is a copy of this binary that deletes a run's tables when the
// run's end of a pipe closes: on a kernel without NFT_TABLE_F_OWNER, that
// is what still removes them after kill -9.
type reaper struct {
	cmd  *exec.Cmd
	pipe *os.File // our end; the reaper reads EOF once every copy is closed
}

// startReaper re-executes /proc/self/exe as the reaper of tables. It runs
// in our network namespace and in its own process group, so that a
// terminal's ctrl-c (which we handle by cleaning up ourselves) does not
// end it first.
func startReaper(tables []tableRef) (*reaper, error) {
	r, w, err := os.Pipe() // both CLOEXEC: only the reaper gets r, as fd 3
	if err != nil {
		return nil, fmt.Errorf("start the table reaper: %w", err)
	}
	defer r.Close()
	var list []string
	for _, t := range tables {
		list = append(list, strconv.Itoa(int(t.family))+":"+t.name)
	}
	cmd := &exec.Cmd{
		Path:        "/proc/self/exe",
		Args:        []string{os.Args[0]},
		Env:         []string{envReaper + "=" + strings.Join(list, ",")},
		Stderr:      os.Stderr,
		ExtraFiles:  []*os.File{r},
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	if err := cmd.Start(); err != nil {
		w.Close()
		return nil, fmt.Errorf("start the table reaper: %w", err)
	}
	return &reaper{cmd: cmd, pipe: w}, nil
}

// stop closes our end of the pipe and waits for the reaper, which deletes
// what is left of the tables (nothing, after Close) and exits.
func (r *reaper) stop() error {
	r.pipe.Close()
	if err := r.cmd.Wait(); err != nil {
		return fmt.Errorf("table reaper: %w", err)
	}
	return nil
}

// MaybeReap returns at once unless this process is a table reaper started
// by Install; then it waits for its run to end, deletes the run's tables
// and exits, never returning. Call it first thing in main (and in
// TestMain) of every binary that calls Install.
func MaybeReap() {
	v, ok := os.LookupEnv(envReaper)
	if !ok {
		return
	}
	os.Exit(reap(v))
}

func reap(list string) int {
	// The run ends us only by closing the pipe.
	signal.Ignore(unix.SIGINT, unix.SIGTERM, unix.SIGHUP, unix.SIGQUIT, unix.SIGPIPE)
	var tables []tableRef
	for _, s := range strings.Split(list, ",") {
		fam, name, ok := strings.Cut(s, ":")
		n, err := strconv.Atoi(fam)
		if !ok || err != nil || name == "" {
			fmt.Fprintf(os.Stderr, "nsntrace: table reaper: bad table %q\n", s)
			return 125
		}
		tables = append(tables, tableRef{byte(n), name})
	}
	pipe := os.NewFile(reaperFD, "nsntrace-reaper")
	if _, err := io.Copy(io.Discard, pipe); err != nil && !errors.Is(err, io.EOF) {
		// Not the run's end: deleting now could pull its tables from
		// under it. Say so and leave them to Sweep.
		fmt.Fprintf(os.Stderr, "nsntrace: table reaper: %v\n", err)
		return 125
	}
	conn, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		fmt.Fprintf(os.Stderr, "nsntrace: table reaper: dial netfilter netlink: %v\n", err)
		return 125
	}
	defer conn.Close()
	if err := deleteTables(conn, tables); err != nil {
		fmt.Fprintf(os.Stderr, "nsntrace: table reaper: %v\n", err)
		return 125
	}
	return 0
}
