package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsntrace/nsntrace/internal/summary"
)

// reporter prints nsntrace's messages on stderr: progress unless -q,
// errors always, and a live one-line counter when stderr is a terminal.
type reporter struct {
	w     io.Writer
	quiet bool
	tty   bool

	mu      sync.Mutex
	counter bool // the counter line is on screen
	stop    chan struct{}
	done    chan struct{}
}

func newReporter(w io.Writer, quiet bool) *reporter {
	r := &reporter{w: w, quiet: quiet}
	if f, ok := w.(*os.File); ok && !quiet {
		_, err := unix.IoctlGetTermios(int(f.Fd()), ioctlGetTermios)
		r.tty = err == nil
	}
	return r
}

// infof prints a progress message (not with -q).
func (r *reporter) infof(format string, args ...any) {
	if r.quiet {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.clearLocked()
	fmt.Fprintf(r.w, format+"\n", args...)
}

// printf prints a message asked for (SIGUSR1), even with -q.
func (r *reporter) printf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.clearLocked()
	fmt.Fprintf(r.w, "nsntrace: "+format+"\n", args...)
}

// errorf prints an error, always.
func (r *reporter) errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.clearLocked()
	fmt.Fprintf(r.w, "nsntrace: "+format+"\n", args...)
}

func (r *reporter) clearLocked() {
	if r.counter {
		io.WriteString(r.w, "\r\x1b[K")
		r.counter = false
	}
}

// startCounter shows packets and bytes as they are captured, on a
// terminal only; stopCounter removes the line again.
func (r *reporter) startCounter(packets, bytes func() uint64) {
	if !r.tty || r.stop != nil {
		return
	}
	r.stop, r.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(r.done)
		t := time.NewTicker(500 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-r.stop:
				return
			case <-t.C:
			}
			r.mu.Lock()
			fmt.Fprintf(r.w, "\r\x1b[K%d packets, %s", packets(), formatBytes(bytes()))
			r.counter = true
			r.mu.Unlock()
		}
	}()
}

func (r *reporter) stopCounter() {
	if r.stop == nil {
		return
	}
	close(r.stop)
	<-r.done
	r.stop = nil
	r.mu.Lock()
	r.clearLocked()
	r.mu.Unlock()
}

// formatBytes is how nsntrace writes byte counts, the summary's way.
func formatBytes(n uint64) string { return summary.FormatBytes(n) }

func plural(n uint64, one, many string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, one)
	}
	return fmt.Sprintf("%d %s", n, many)
}
