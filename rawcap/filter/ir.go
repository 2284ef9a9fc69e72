package filter

import (
	"fmt"
	"strings"

	"golang.org/x/net/bpf"
)

// Classic BPF opcode parts (linux/filter.h, bpf_common.h).
const (
	clsLD   = 0x00
	clsLDX  = 0x01
	clsST   = 0x02
	clsSTX  = 0x03
	clsALU  = 0x04
	clsJMP  = 0x05
	clsRET  = 0x06
	clsMISC = 0x07

	szW = 0x00
	szH = 0x08
	szB = 0x10

	mdIMM = 0x00
	mdABS = 0x20
	mdIND = 0x40
	mdMEM = 0x60
	mdLEN = 0x80
	mdMSH = 0xa0

	aluADD = 0x00
	aluSUB = 0x10
	aluMUL = 0x20
	aluDIV = 0x30
	aluOR  = 0x40
	aluAND = 0x50
	aluLSH = 0x60
	aluRSH = 0x70
	aluNEG = 0x80
	aluMOD = 0x90
	aluXOR = 0xa0

	jmpJA   = 0x00
	jmpJEQ  = 0x10
	jmpJGT  = 0x20
	jmpJGE  = 0x30
	jmpJSET = 0x40

	srcK = 0x00
	srcX = 0x08

	retK = 0x00
	retA = 0x10

	miscTAX = 0x00
	miscTXA = 0x80

	// Linux ancillary data offsets (SKF_AD_OFF + SKF_AD_*).
	skfAdOff            = 0xfffff000
	skfAdProtocol       = skfAdOff + 0
	skfAdPktType        = skfAdOff + 4
	skfAdIfIndex        = skfAdOff + 8
	skfAdVlanTag        = skfAdOff + 44
	skfAdVlanTagPresent = skfAdOff + 48

	memWords = 16 // BPF_MEMWORDS
	maxInsns = 4096
)

func ins(op uint16, k uint32) bpf.RawInstruction { return bpf.RawInstruction{Op: op, K: k} }

// foldALU computes the ALU operation in op on constants a and b, for the
// code generator and the optimiser alike. Shifts by 32 or more give 0, as
// libpcap folds them; a division or modulus by zero, or an operation it does
// not know, reports false.
func foldALU(op uint16, a, b uint32) (uint32, bool) {
	switch op & 0xf0 {
	case aluADD:
		return a + b, true
	case aluSUB:
		return a - b, true
	case aluMUL:
		return a * b, true
	case aluDIV:
		if b == 0 {
			return 0, false
		}
		return a / b, true
	case aluMOD:
		if b == 0 {
			return 0, false
		}
		return a % b, true
	case aluOR:
		return a | b, true
	case aluAND:
		return a & b, true
	case aluXOR:
		return a ^ b, true
	case aluLSH:
		if b >= 32 {
			return 0, true
		}
		return a << b, true
	case aluRSH:
		if b >= 32 {
			return 0, true
		}
		return a >> b, true
	case aluNEG:
		return -a, true
	}
	return 0, false
}

// evalJump is the outcome of the conditional jump op (with its class bits)
// comparing a with k.
func evalJump(op uint16, a, k uint32) bool {
	switch op {
	case clsJMP | jmpJEQ:
		return a == k
	case clsJMP | jmpJGT:
		return a > k
	case clsJMP | jmpJGE:
		return a >= k
	case clsJMP | jmpJSET:
		return a&k != 0
	}
	return false
}

// cond is the boolean intermediate representation: primitives become
// trees of tests joined by and/or/not, in the order libpcap evaluates them.
type cond interface{ isCond() }

type cAnd struct{ a, b cond }
type cOr struct{ a, b cond }
type cNot struct{ a cond }
type cConst bool

// cAbort ends the program with a reject, whatever the enclosing and/or/not,
// as a load beyond the packet does. It stands for loads at offsets of 2 GiB
// and more, which the kernel would not read as packet offsets.
type cAbort struct{}

// cTest runs code (which leaves the value in A) and then one conditional
// jump; op is the jump code (class bits included), k its constant.
type cTest struct {
	code []bpf.RawInstruction
	op   uint16
	k    uint32
}

func (cAnd) isCond()   {}
func (cOr) isCond()    {}
func (cNot) isCond()   {}
func (cConst) isCond() {}
func (cAbort) isCond() {}
func (*cTest) isCond() {}

func and(a, b cond) cond {
	if a == nil {
		return b
	}
	if b == nil {
		return a
	}
	return cAnd{a, b}
}

func or(a, b cond) cond {
	if a == nil {
		return b
	}
	if b == nil {
		return a
	}
	return cOr{a, b}
}

func not(a cond) cond { return cNot{a} }

// condString renders a cond for tests and debugging.
func condString(c cond) string {
	switch c := c.(type) {
	case cAnd:
		return "(" + condString(c.a) + " && " + condString(c.b) + ")"
	case cOr:
		return "(" + condString(c.a) + " || " + condString(c.b) + ")"
	case cNot:
		return "!" + condString(c.a)
	case cConst:
		return fmt.Sprint(bool(c))
	case cAbort:
		return "abort"
	case *cTest:
		var b strings.Builder
		b.WriteString("{")
		for _, in := range c.code {
			b.WriteString(disasmOne(in, -1))
			b.WriteString("; ")
		}
		b.WriteString(disasmOne(bpf.RawInstruction{Op: c.op, K: c.k}, -1))
		b.WriteString("}")
		return b.String()
	}
	return "?"
}

// block is a node of the control-flow DAG: straight-line code followed by
// either a return or a conditional jump.
type block struct {
	id     int
	orig   []bpf.RawInstruction // the code as generated, self-contained
	code   []bpf.RawInstruction // orig without loads made redundant by predecessors
	isRet  bool
	retVal uint32
	op     uint16 // conditional jump code
	k      uint32
	jt, jf *block
	alias  *block // placeholder resolved to another block
}

type graph struct {
	blocks []*block
	accept *block
	reject *block
}

func (g *graph) newBlock() *block {
	b := &block{id: len(g.blocks)}
	g.blocks = append(g.blocks, b)
	return b
}

func resolve(b *block) *block {
	for b.alias != nil {
		b = b.alias
	}
	return b
}

// lower turns c into blocks that jump to t when c holds and to f otherwise,
// returning the entry block.
func (g *graph) lower(c cond, t, f *block) *block {
	switch c := c.(type) {
	case cConst:
		if c {
			return t
		}
		return f
	case cAbort:
		return g.reject
	case cNot:
		return g.lower(c.a, f, t)
	case cAnd:
		ph := g.newBlock()
		entry := g.lower(c.a, ph, f)
		ph.alias = g.lower(c.b, t, f)
		return entry
	case cOr:
		ph := g.newBlock()
		entry := g.lower(c.a, t, ph)
		ph.alias = g.lower(c.b, t, f)
		return entry
	case *cTest:
		b := g.newBlock()
		b.orig = c.code
		b.op, b.k = c.op, c.k
		b.jt, b.jf = t, f
		return b
	}
	panic("filter: unknown cond")
}

// build lowers the whole program: prologue code runs first, then c.
func build(prologue []bpf.RawInstruction, c cond, snaplen uint32) (*graph, *block) {
	g := &graph{}
	g.accept = g.newBlock()
	g.accept.isRet, g.accept.retVal = true, snaplen
	g.reject = g.newBlock()
	g.reject.isRet, g.reject.retVal = true, 0
	entry := g.lower(c, g.accept, g.reject)
	if len(prologue) > 0 {
		// The prologue becomes an always-taken test; it is folded into the
		// entry block when the program is laid out.
		p := g.newBlock()
		p.orig = append([]bpf.RawInstruction(nil), prologue...)
		p.op = clsJMP | jmpJA
		p.jt, p.jf = entry, entry
		entry = p
	}
	return g, entry
}
