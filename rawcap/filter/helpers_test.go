package filter

import (
	"net/netip"
	"testing"

	"golang.org/x/net/bpf"
)

// condOf parses expr and returns its intermediate form, for comparing
// how two expressions are grouped.
func condOf(t *testing.T, expr string) string {
	t.Helper()
	toks, err := lex(expr)
	if err != nil {
		t.Fatalf("lex %q: %v", expr, err)
	}
	p := &parser{c: &compiler{expr: expr}, toks: toks}
	c, err := p.program()
	if err != nil {
		t.Fatalf("parse %q: %v", expr, err)
	}
	return condString(c)
}

// stubResolver replaces the Go resolver for the duration of a test, so no
// test ever asks a real DNS server.
func stubResolver(t *testing.T, names map[string][]string) {
	t.Helper()
	old := lookupHost
	t.Cleanup(func() { lookupHost = old })
	lookupHost = func(name string) ([]netip.Addr, error) {
		var out []netip.Addr
		for _, s := range names[name] {
			out = append(out, netip.MustParseAddr(s))
		}
		if len(out) == 0 {
			return nil, &testLookupError{name}
		}
		return out, nil
	}
}

type testLookupError struct{ name string }

func (e *testLookupError) Error() string { return "no such host " + e.name }

// vmAccepts runs prog on pkt with x/net/bpf's interpreter (which has no
// ancillary loads; the differential tests cover those) and reports
// whether the packet is accepted.
func vmAccepts(t *testing.T, prog []bpf.RawInstruction, pkt []byte) bool {
	t.Helper()
	insns, ok := bpf.Disassemble(prog)
	if !ok {
		t.Fatalf("cannot disassemble program:\n%s", Disassemble(prog))
	}
	vm, err := bpf.NewVM(insns)
	if err != nil {
		t.Fatalf("load program: %v\n%s", err, Disassemble(prog))
	}
	n, err := vm.Run(pkt)
	if err != nil {
		t.Fatalf("run program: %v", err)
	}
	return n > 0
}

func compileOK(t testing.TB, expr string) []bpf.RawInstruction {
	t.Helper()
	prog, err := Compile(expr, 262144)
	if err != nil {
		t.Fatalf("Compile(%q): %v", expr, err)
	}
	return prog
}
