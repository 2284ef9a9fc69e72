package filter

import (
	"errors"
	"fmt"
	"strings"
)

// ErrRejectsAll is returned (wrapped) by Compile when the expression can
// never match a packet, as libpcap refuses such filters too.
var ErrRejectsAll = errors.New("filter: expression rejects all packets")

// ErrUnsupported is matched (errors.Is) by every error that refuses a
// pcap-filter(7) primitive this compiler deliberately does not implement.
var ErrUnsupported = errors.New("filter: primitive not supported")

// SyntaxError reports an expression that cannot be compiled, with the byte
// offset in the expression where the problem was found.
type SyntaxError struct {
	Pos  int    // byte offset into Expr
	Msg  string // what is wrong, e.g. `unexpected ")"`
	Expr string // the whole expression

	unsupported bool
}

// Error returns a one-line description.
func (e *SyntaxError) Error() string {
	if e.unsupported {
		return "filter: " + e.Msg
	}
	return fmt.Sprintf("filter: %s (at offset %d)", e.Msg, e.Pos)
}

// Is makes errors.Is(err, ErrUnsupported) true for refused primitives.
func (e *SyntaxError) Is(target error) bool {
	return target == ErrUnsupported && e.unsupported
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
	return e.Expr + "\n" + strings.Repeat(" ", pos) + "^"
}
