package filter

import (
	"fmt"

	"golang.org/x/net/bpf"

	"github.com/nsntrace/nsntrace/pcapng"
)

// Compile translates a pcap-filter(7) expression into a classic BPF program
// for an Ethernet (DLT_EN10MB) AF_PACKET socket on Linux. Packets it
// accepts are returned with snaplen bytes (0 means pcapng.DefaultSnapLen). The
// empty expression accepts everything.
//
// Host names are resolved once, now, with the Go resolver. Errors are a
// *SyntaxError (with the position in expr), an error matching
// ErrUnsupported for primitives this compiler refuses, one matching
// ErrTooLarge for an expression over MaxLen or MaxDepth, or ErrRejectsAll
// when the expression can never match.
func Compile(expr string, snaplen uint32) ([]bpf.RawInstruction, error) {
	if snaplen == 0 {
		snaplen = pcapng.DefaultSnapLen
	}
	if len(expr) > MaxLen {
		return nil, fmt.Errorf("%w: %d bytes, more than the limit of %d", ErrTooLarge, len(expr), MaxLen)
	}
	toks, err := lex(expr)
	if err != nil {
		if se, ok := err.(*SyntaxError); ok {
			se.Expr = expr
		}
		return nil, err
	}
	c := &compiler{expr: expr}
	p := &parser{c: c, toks: toks}
	tree, err := p.program()
	if err != nil {
		return nil, err
	}
	var prologue []bpf.RawInstruction
	if c.vlanVar {
		// The variable part of the link offsets starts at 0 on every path,
		// whether or not the `vlan` that sets it is evaluated.
		prologue = []bpf.RawInstruction{ins(clsLD|szW|mdIMM, 0), ins(clsST, vlanReg)}
	}
	g, entry := build(prologue, tree, snaplen)
	entry, order := optimise(g, entry)
	accepts := false
	for _, b := range order {
		if b == g.accept {
			accepts = true
		}
	}
	if !accepts {
		return nil, ErrRejectsAll
	}
	prog, err := layout(order)
	if err != nil {
		return nil, err
	}
	if err := Validate(prog); err != nil {
		return nil, fmt.Errorf("filter: internal error compiling %q: %w", expr, err)
	}
	return prog, nil
}
