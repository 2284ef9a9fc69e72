//go:build linux

package main

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestOutputFIFO: a FIFO is opened once, so its reader gets the whole
// capture; it used to be opened twice, the second open waiting forever
// for a reader after the first one's had seen the end of file.
func TestOutputFIFO(t *testing.T) {
	t.Parallel()
	e := newE2E(t, nil)
	fifo := filepath.Join(e.dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	got := make(chan []byte, 1)
	go func() {
		// Read until the writer is gone for good: the old second open
		// would have found no reader and blocked.
		f, err := os.Open(fifo)
		if err != nil {
			got <- nil
			return
		}
		defer f.Close()
		b, _ := io.ReadAll(f)
		got <- b
	}()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", e.in.H.Name, e.bin, "-o", fifo, "sh", "-c", "exit 5")
	out, err := cmd.CombinedOutput()
	if code := exitCode(t, err); code != 5 || ctx.Err() != nil {
		t.Fatalf("-o FIFO: exit %d (timed out: %v): %s", code, ctx.Err() != nil, out)
	}
	b := <-got
	file := filepath.Join(e.dir, "from-fifo.pcapng")
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if c := readISB(t, file); c.blocks != 1 {
		t.Errorf("the FIFO's reader got %d bytes without a complete capture: %+v", len(b), c)
	}
	tsharkOK(t, file)
	e.clean("")
}

// TestOutputKeptOnFailedStart: a program that cannot be executed leaves an
// existing output file as it was (it used to be truncated), and a
// successful run replaces it, leaving no temporary file.
func TestOutputKeptOnFailedStart(t *testing.T) {
	t.Parallel()
	e := newE2E(t, nil)
	file := filepath.Join(e.dir, "keep.pcapng")
	old := []byte("an older capture\n")
	if err := os.WriteFile(file, old, 0o644); err != nil {
		t.Fatal(err)
	}
	// The program is there and executable; only execve(2) finds that its
	// interpreter is missing, after the output was created.
	noInterp := filepath.Join(e.dir, "no-interpreter")
	if err := os.WriteFile(noInterp, []byte("#!/nonexistent/interpreter\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	r := e.trace("keep.pcapng", noInterp)
	if r.code != 127 {
		t.Fatalf("exit %d, want 127", r.code)
	}
	if b, err := os.ReadFile(file); err != nil || !bytes.Equal(b, old) {
		t.Errorf("a failed start changed the existing output: %q, %v", b, err)
	}
	// Through a link, as a user's "latest" link would be.
	link := filepath.Join(e.dir, "latest.pcapng")
	if err := os.Symlink(file, link); err != nil {
		t.Fatal(err)
	}
	r = e.trace("latest.pcapng", "sh", "-c", "exit 0")
	if r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	if fi, err := os.Lstat(link); err != nil || fi.Mode()&os.ModeSymlink == 0 {
		t.Errorf("the link was replaced: %v", err)
	}
	if c := readISB(t, file); c.blocks != 1 {
		t.Errorf("the file behind the link is not the new capture: %+v", c)
	}
	ents, _ := os.ReadDir(e.dir)
	for _, d := range ents {
		if strings.Contains(d.Name(), ".nsntrace-") {
			t.Errorf("left behind: %s", d.Name())
		}
	}
	e.clean("")
}

// TestOutputFull: a file that cannot be written is reported as incomplete,
// never as "written to".
func TestOutputFull(t *testing.T) {
	t.Parallel()
	e := newE2E(t, nil)
	r := e.trace("unused", "-o", "/dev/full", "sh", "-c", "exit 0")
	if r.code != exitFailure || strings.Contains(r.stderr, "written to") || !strings.Contains(r.stderr, "/dev/full is incomplete") {
		t.Errorf("-o /dev/full: exit %d, messages:\n%s", r.code, r.stderr)
	}
	e.clean("")
}

// TestInterfaceRemoved: when the trace's veth is deleted while the
// program runs, the end says the trace is incomplete.
func TestInterfaceRemoved(t *testing.T) {
	t.Parallel()
	e := newE2E(t, nil)
	started, goOn := filepath.Join(e.dir, "started"), filepath.Join(e.dir, "go-on")
	done := make(chan result, 1)
	go func() {
		done <- e.trace("removed.pcapng", helper("touch", started, "wait", goOn, "exit", "0")...)
	}()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(started); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the program never started")
		}
	}
	for _, l := range strings.Split(strings.TrimSpace(e.in.H.Run(t, "ip", "-br", "link")), "\n") {
		name, _, _ := strings.Cut(strings.Fields(l)[0], "@")
		if name != "lo" && name != e.in.UplinkH {
			e.in.H.Run(t, "ip", "link", "del", name)
		}
	}
	if err := os.WriteFile(goOn, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if !strings.Contains(r.stderr, "was removed or taken down while the program ran: the trace is incomplete") {
		t.Errorf("exit %d, no word of the lost interface:\n%s", r.code, r.stderr)
	}
	e.clean("")
}
