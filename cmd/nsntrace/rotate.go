package main

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// rotation is when a capture moves on to a new file, and how the files
// are named: tcpdump's -C, -G and -W. Its zero value is one file.
type rotation struct {
	size  int64         // -C: a new file once the current one holds more bytes
	every time.Duration // -G: a new file once the current one is this old
	files int           // -W: a ring of this many names; with -G alone, the last file
}

// on reports whether the capture may go to more than one file.
func (r rotation) on() bool { return r.size > 0 || r.every > 0 }

// lastFile is how many files a capture makes before it ends by itself
// (tcpdump: -W with -G and without -C), or 0 for no such end.
func (r rotation) lastFile() int {
	if r.every > 0 && r.size == 0 {
		return r.files
	}
	return 0
}

// name is the name of file n (0 is the first) of a capture to base, as
// tcpdump names them: without -W the first is base itself and the next
// base1, base2, ...; with -W N the numbers go round from 0 to N-1,
// zero-padded to the width of N-1, and with -W 1 the one name is base.
// Unlike tcpdump's -G, base is not a strftime(3) pattern: time-rotated
// files are numbered too, rather than written over each other.
func (r rotation) name(base string, n int) string {
	if r.files == 0 {
		if n == 0 {
			return base
		}
		return base + strconv.Itoa(n)
	}
	width := len(strconv.Itoa(r.files - 1))
	if r.files == 1 {
		return base
	}
	return fmt.Sprintf("%s%0*d", base, width, n%r.files)
}

// parseFileSize parses -C's SIZE as tcpdump does: a whole number of
// millions of bytes, or of 1024 (k), 1024² (M) or 1024³ (G) bytes with a
// suffix.
func parseFileSize(s string) (int64, error) {
	unit := int64(1_000_000)
	num := s
	if n := len(s); n > 0 {
		switch s[n-1] {
		case 'k', 'K':
			unit, num = 1<<10, s[:n-1]
		case 'm', 'M':
			unit, num = 1<<20, s[:n-1]
		case 'g', 'G':
			unit, num = 1<<30, s[:n-1]
		}
	}
	if num == "" || strings.TrimLeft(num, "0123456789") != "" {
		return 0, errors.New("must be a whole number of millions of bytes, or of kibibytes, mebibytes or gibibytes with a suffix k, M or G")
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v > (1<<62)/unit {
		return 0, errors.New("too large")
	}
	if v == 0 {
		return 0, errors.New("must be at least 1")
	}
	return v * unit, nil
}
