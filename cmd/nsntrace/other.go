//go:build !linux

package main

import (
	"fmt"
	"io"
	"runtime"
)

func notLinux(stderr io.Writer) int {
	fmt.Fprintf(stderr, "nsntrace: tracing is not implemented on %s: it needs Linux network namespaces\n", runtime.GOOS)
	return exitFailure
}

func trace(_ *options, _, stderr io.Writer) int { return notLinux(stderr) }

func captureInterface(_ *options, _, stderr io.Writer) int { return notLinux(stderr) }

func cleanup(_ *options, stderr io.Writer) int { return notLinux(stderr) }
