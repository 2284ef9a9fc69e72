package testbed

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The helpers below read the kernel's own view of processes (/proc of the
// test's PID namespace) to prove that a run leaves no process behind.

// PIDNamespace returns the PID namespace of a process as readlink shows it
// ("pid:[4026532…]").
func PIDNamespace(pid int) (string, error) {
	return os.Readlink("/proc/" + strconv.Itoa(pid) + "/ns/pid")
}

// LiveInPIDNamespace lists the pids of the processes in the PID namespace
// ns (as PIDNamespace returns it) that have not exited; zombies waiting to
// be reaped do not count.
func LiveInPIDNamespace(t testing.TB, ns string) []int {
	t.Helper()
	var pids []int
	for _, pid := range allPids(t) {
		if l, err := PIDNamespace(pid); err != nil || l != ns {
			continue
		}
		if st, err := ProcState(pid); err == nil && st != "Z" && st != "X" {
			pids = append(pids, pid)
		}
	}
	return pids
}

// Children lists the processes whose parent is pid.
func Children(t testing.TB, pid int) []int {
	t.Helper()
	var kids []int
	for _, p := range allPids(t) {
		if f, err := procStat(p); err == nil && len(f) > 1 && f[1] == strconv.Itoa(pid) {
			kids = append(kids, p)
		}
	}
	return kids
}

// ProcState returns the state letter of a process (R, S, D, Z, ...) from
// /proc/PID/stat; an error wrapping os.ErrNotExist once it has been reaped.
func ProcState(pid int) (string, error) {
	f, err := procStat(pid)
	if err != nil {
		return "", err
	}
	return f[0], nil
}

// procStat returns the fields of /proc/PID/stat after the command name,
// which may itself contain spaces and parentheses.
func procStat(pid int) ([]string, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return nil, err
	}
	i := strings.LastIndexByte(string(b), ')')
	f := strings.Fields(string(b[i+1:]))
	if i < 0 || len(f) < 2 {
		return nil, fmt.Errorf("parse /proc/%d/stat: %q", pid, b)
	}
	return f, nil
}

// allPids lists /proc, failing the test if it cannot see itself there (a
// /proc that shows nothing would make every "nothing left" check pass).
func allPids(t testing.TB) []int {
	t.Helper()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, pid)
		}
	}
	if !slices.Contains(pids, os.Getpid()) {
		t.Fatalf("/proc does not list this process (%d): not a /proc of our PID namespace", os.Getpid())
	}
	return pids
}
