package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"

	"github.com/nsntrace/nsntrace/child"
	"github.com/nsntrace/nsntrace/nft"
	"github.com/nsntrace/nsntrace/rawcap/filter"
)

// version is set at build time (make build: -X main.version=...).
var version = "dev"

func main() {
	// A re-executed child becomes the traced program's init here and
	// never returns.
	child.MaybeRun()
	// A re-executed table reaper (kernels without owned nft tables)
	// waits for this run to end here and never returns.
	nft.MaybeReap()
	oneP()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// oneP runs nsntrace's goroutines on one P (GOMAXPROCS=1) unless the user
// set GOMAXPROCS. Its work is one goroutine's: the capture reads the
// ring, accounts, names and writes each packet in turn, and the rest
// (signals, the DNS relay, the watcher) wakes rarely. With a P per CPU
// every wake-up of a parked goroutine also woke an idle P's thread to
// spin for work that was not there. Measured with make bench -alt
// against a build with a P per CPU: under a published nginx loaded with a
// connection per request, nsntrace's own CPU a request fell from 9.9 to
// 8.1 µs with one P in 5 interleaved runs (9.7 to 6.5 in 3; keep-alive 2.4
// to 2.0), and the engine's steady cost a 64-byte packet from 167 to 159
// ns with no drops (table 1): nothing waited for the second P.
func oneP() {
	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(1)
	}
}

// run is nsntrace without os.Exit: it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	o, err := parse(args, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "nsntrace: %v\nRun 'nsntrace --help' for usage.\n", err)
		return exitFailure
	}
	switch {
	case !o.ran: // -h
		return 0
	case o.version:
		fmt.Fprintln(stdout, "nsntrace", version)
		return 0
	case o.set["gen-docs"]:
		if err := genDocsFunc(o.genDocs); err != nil {
			fmt.Fprintln(stderr, "nsntrace:", err)
			return exitFailure
		}
		return 0
	case o.set["compile-filter"]:
		return compileFilter(o.compileFilter, o.snapLen, stdout, stderr)
	case o.cleanup:
		return cleanup(o, stderr)
	case o.set["interface"]:
		return captureInterface(o, stdout, stderr)
	}
	return trace(o, stdout, stderr)
}

// compileFilter prints the BPF program for expr as `tcpdump -ddd` does,
// for people debugging a filter: 0 on success, exitFailure with the error.
func compileFilter(expr string, snapLen int, stdout, stderr io.Writer) int {
	prog, err := filter.Compile(expr, uint32(snapLen))
	if err != nil {
		fmt.Fprintln(stderr, "nsntrace:", filterError(err))
		return exitFailure
	}
	fmt.Fprint(stdout, filter.FormatDDD(prog))
	return 0
}

// filterError explains a filter that does not compile, pointing at the
// place when the compiler knows it.
func filterError(err error) string {
	// The filter package's errors start with its name, as Go errors do;
	// "bad filter: filter: ..." would say it twice.
	msg := strings.TrimPrefix(err.Error(), "filter: ")
	var se *filter.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("bad filter: %s\n%s", msg, se.Caret())
	}
	return "bad filter: " + msg
}
