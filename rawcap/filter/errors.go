package filter

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ErrRejectsAll is returned (wrapped) by Compile when the expression can
// never match a packet, as libpcap refuses such filters too.
var ErrRejectsAll = errors.New("filter: expression rejects all packets")

// ErrUnsupported is matched (errors.Is) by every error that refuses a
// pcap-filter(7) primitive this compiler deliberately does not implement.
var ErrUnsupported = errors.New("filter: primitive not supported")

// ErrTooLarge is matched (errors.Is) by every error that refuses an
// expression longer than MaxLen bytes or nested deeper than MaxDepth.
var ErrTooLarge = errors.New("filter: expression too large")

// Limits on an expression, checked before any parsing. libpcap has none,
// but parsing nested groups costs time that grows with the square of the
// depth, and no real filter comes near either: the longest still fit the
// kernel's 4096 instructions, a few KiB.
const (
	// MaxLen is the longest expression Compile accepts, in bytes.
	MaxLen = 64 << 10
	// MaxDepth is how deep parentheses and brackets may nest.
	MaxDepth = 256
)

// SyntaxError reports an expression that cannot be compiled, with the byte
// offset in the expression where the problem was found.
type SyntaxError struct {
	Pos  int    // byte offset into Expr
	Msg  string // what is wrong, e.g. `unexpected ")"`
	Expr string // the whole expression

	unsupported bool
	tooLarge    bool
}

// Error returns a one-line description.
func (e *SyntaxError) Error() string {
	if e.unsupported {
		return "filter: " + e.Msg
	}
	return fmt.Sprintf("filter: %s (at offset %d)", e.Msg, e.Pos)
}

// Is makes errors.Is(err, ErrUnsupported) true for refused primitives, and
// errors.Is(err, ErrTooLarge) for expressions over a limit.
func (e *SyntaxError) Is(target error) bool {
	return target == ErrUnsupported && e.unsupported || target == ErrTooLarge && e.tooLarge
}

// Caret returns the expression and, on the next line, a caret under the
// offending position, for showing to a person.
func (e *SyntaxError) Caret() string {
	pos := e.Pos
	if pos < 0 {
		pos = 0
	}
	if pos > len(e.Expr) {
		pos = len(e.Expr)
	}
	// One space per character, not per byte, so the caret sits under a
	// character that follows non-ASCII text.
	return e.Expr + "\n" + strings.Repeat(" ", utf8.RuneCountInString(e.Expr[:pos])) + "^"
}
