package filter

import (
	"fmt"

	"golang.org/x/net/bpf"
)

// arith is an arithmetic expression as the parser reads it, before code
// generation: constants are folded and loads are generated in order, as
// libpcap's gen_arth, gen_load and gen_relation do.
type arith interface{ isArith() }

// aNum is a constant.
type aNum struct{ v uint32 }

// aLen is `len`, the packet's length.
type aLen struct{}

// aLoad is `proto[idx:size]`, size bytes at idx in proto's header.
type aLoad struct {
	proto pqual
	idx   arith
	size  int
	pos   int
}

// aBin is `l op r`; op is the ALU operation.
type aBin struct {
	op   uint16
	l, r arith
	pos  int
}

// aNeg is `-x`.
type aNeg struct{ x arith }

func (aNum) isArith()  {}
func (aLen) isArith()  {}
func (aLoad) isArith() {}
func (aBin) isArith()  {}
func (aNeg) isArith()  {}

// fold evaluates constant subexpressions, refusing what libpcap refuses.
func (c *compiler) fold(a arith) (arith, error) {
	switch a := a.(type) {
	case aBin:
		// libpcap looks at the first instruction of the right operand's
		// code, which for ip[0] is the index load "ld #0", so it refuses
		// `x / ip[0]` and `x << ip[40]` too. Do the same.
		if k, ok := firstImm(a.r); ok {
			switch {
			case a.op == aluDIV && k == 0:
				return nil, c.errAt(a.pos, "division by zero")
			case a.op == aluMOD && k == 0:
				return nil, c.errAt(a.pos, "modulus by zero")
			case (a.op == aluLSH || a.op == aluRSH) && k > 31:
				return nil, c.errAt(a.pos, "shift by more than 31 bits")
			}
		}
		l, err := c.fold(a.l)
		if err != nil {
			return nil, err
		}
		r, err := c.fold(a.r)
		if err != nil {
			return nil, err
		}
		rn, rok := r.(aNum)
		if rok {
			if a.op == aluDIV && rn.v == 0 {
				return nil, c.errAt(a.pos, "division by zero")
			}
			if a.op == aluMOD && rn.v == 0 {
				return nil, c.errAt(a.pos, "modulus by zero")
			}
		}
		if ln, ok := l.(aNum); ok && rok {
			v, _ := foldALU(a.op, ln.v, rn.v)
			return aNum{v}, nil
		}
		return aBin{op: a.op, l: l, r: r, pos: a.pos}, nil
	case aNeg:
		x, err := c.fold(a.x)
		if err != nil {
			return nil, err
		}
		if n, ok := x.(aNum); ok {
			return aNum{-n.v}, nil
		}
		return aNeg{x}, nil
	case aLoad:
		idx, err := c.fold(a.idx)
		if err != nil {
			return nil, err
		}
		a.idx = idx
		return a, nil
	}
	return a, nil
}

// firstImm is the constant libpcap's code for a starts by loading, if any.
func firstImm(a arith) (uint32, bool) {
	switch a := a.(type) {
	case aNum:
		return a.v, true
	case aLoad:
		return firstImm(a.idx)
	case aBin:
		return firstImm(a.l)
	case aNeg:
		return firstImm(a.x)
	}
	return 0, false
}

func (c *compiler) allocScratch(pos int) (uint32, error) {
	for i := 1; i < memWords; i++ {
		if !c.scratch[i] {
			c.scratch[i] = true
			return uint32(i), nil
		}
	}
	return 0, c.errAt(pos, "expression too complicated")
}

func (c *compiler) freeScratch(r uint32) { c.scratch[r] = false }

// genArith emits code leaving a in A, and the protocol checks that must
// hold for the loads in it to mean anything (libpcap gen_load).
func (c *compiler) genArith(a arith) ([]bpf.RawInstruction, cond, error) {
	switch a := a.(type) {
	case aNum:
		return []bpf.RawInstruction{ins(clsLD|szW|mdIMM, a.v)}, nil, nil
	case aLen:
		return []bpf.RawInstruction{ins(clsLD|szW|mdLEN, 0)}, nil, nil
	case aNeg:
		code, chk, err := c.genArith(a.x)
		if err != nil {
			return nil, nil, err
		}
		return append(code, ins(clsALU|aluNEG, 0)), chk, nil
	case aBin:
		if rn, ok := a.r.(aNum); ok {
			code, chk, err := c.genArith(a.l)
			if err != nil {
				return nil, nil, err
			}
			if (a.op == aluLSH || a.op == aluRSH) && rn.v > 31 {
				// Only a folded constant gets here (see fold). libpcap
				// folds such shifts to 0, and the kernel refuses the
				// instruction, so shift every bit out explicitly.
				return append(code, ins(clsALU|aluAND|srcK, 0)), chk, nil
			}
			return append(code, ins(clsALU|a.op|srcK, rn.v)), chk, nil
		}
		rcode, rchk, err := c.genArith(a.r)
		if err != nil {
			return nil, nil, err
		}
		reg, err := c.allocScratch(a.pos)
		if err != nil {
			return nil, nil, err
		}
		defer c.freeScratch(reg)
		lcode, lchk, err := c.genArith(a.l)
		if err != nil {
			return nil, nil, err
		}
		code := append(rcode, ins(clsST, reg))
		code = append(code, lcode...)
		code = append(code, ins(clsLDX|szW|mdMEM, reg), ins(clsALU|a.op|srcX, 0))
		// libpcap (gen_arth) keeps only the left operand's protocol
		// checks: in `26 + udp[0] = 5` the udp[0] load is made on any
		// packet. Users' filters were tested against that behaviour.
		_ = rchk
		return code, lchk, nil
	case aLoad:
		return c.genLoad(a)
	}
	return nil, nil, fmt.Errorf("filter: internal error: unknown arithmetic node")
}

func (c *compiler) genLoad(a aLoad) ([]bpf.RawInstruction, cond, error) {
	var idxCode []bpf.RawInstruction
	var idxChk cond
	k, constIdx := a.idx.(aNum)
	if !constIdx {
		var err error
		idxCode, idxChk, err = c.genArith(a.idx)
		if err != nil {
			return nil, nil, err
		}
	}
	op := loadOp(a.size, mdIND)
	// rel emits a load at base (+ variable link offset) + index. Offsets
	// wrap around 2^32 as in libpcap, so ip[-3] is the byte at 11.
	rel := func(base uint32, variable bool) []bpf.RawInstruction {
		if constIdx {
			if variable {
				return []bpf.RawInstruction{ins(clsLDX|szW|mdMEM, vlanReg), ins(op, base+k.v)}
			}
			if base+k.v >= 1<<31 {
				// No packet is that long, and the kernel reads such
				// offsets as ancillary or header-relative ones; the
				// relation becomes a reject (see cAbort) after its
				// protocol checks.
				c.abort = true
			}
			return []bpf.RawInstruction{ins(loadOp(a.size, mdABS), base+k.v)}
		}
		code := append([]bpf.RawInstruction(nil), idxCode...)
		if variable {
			code = append(code, ins(clsLDX|szW|mdMEM, vlanReg), ins(clsALU|aluADD|srcX, 0))
		}
		return append(code, ins(clsMISC|miscTAX, 0), ins(op, base))
	}
	switch a.proto {
	case pLink:
		return rel(0, false), idxChk, nil
	case pIP, pARP, pRARP, pIP6:
		chk, err := c.abbrev(a.proto, a.pos)
		if err != nil {
			return nil, nil, err
		}
		return rel(14+c.vlanConst, c.vlanVar), and(idxChk, chk), nil
	case pICMP6:
		chk := and(c.linkType(etherIPv6), c.cmpNet(6, 1, protoICMPv6))
		return rel(14+40+c.vlanConst, c.vlanVar), and(idxChk, chk), nil
	case pTCP, pUDP, pSCTP, pICMP, pIGMP, pIGRP, pPIM, pVRRP, pCARP:
		pchk, err := c.abbrev(a.proto, a.pos)
		if err != nil {
			return nil, nil, err
		}
		chk := and(c.linkType(etherIP), and(idxChk, and(pchk, c.ipFragOK())))
		base := 14 + c.vlanConst
		var code []bpf.RawInstruction
		switch {
		case constIdx:
			code = append(c.loadIPHdrLen(), ins(op, base+k.v))
		case c.vlanVar:
			reg, err := c.allocScratch(a.pos)
			if err != nil {
				return nil, nil, err
			}
			c.freeScratch(reg)
			code = append(idxCode, ins(clsST, reg))
			code = append(code, c.loadIPHdrLen()...)
			code = append(code, ins(clsLD|szW|mdMEM, reg), ins(clsALU|aluADD|srcX, 0), ins(clsMISC|miscTAX, 0), ins(op, base))
		default:
			code = append(idxCode, c.loadIPHdrLen()...)
			code = append(code, ins(clsALU|aluADD|srcX, 0), ins(clsMISC|miscTAX, 0), ins(op, base))
		}
		return code, chk, nil
	}
	return nil, nil, c.errAt(a.pos, "unsupported index operation")
}

// relation compiles `l op r` (libpcap gen_relation): the protocol checks
// of both sides, then one test.
func (c *compiler) relation(op tokKind, l, r arith) (cond, error) {
	c.abort = false
	l, err := c.fold(l)
	if err != nil {
		return nil, err
	}
	r, err = c.fold(r)
	if err != nil {
		return nil, err
	}
	var jop uint16
	negate := false
	switch op {
	case tGt:
		jop = jmpJGT
	case tGe:
		jop = jmpJGE
	case tEq:
		jop = jmpJEQ
	case tNeq:
		jop, negate = jmpJEQ, true
	case tLt:
		jop, negate = jmpJGE, true
	case tLe:
		jop, negate = jmpJGT, true
	}
	ln, lok := l.(aNum)
	rn, rok := r.(aNum)
	var t cond
	var chk cond
	switch {
	case lok && rok:
		t = cConst(evalJump(clsJMP|jop, ln.v, rn.v))
	case rok:
		code, lchk, err := c.genArith(l)
		if err != nil {
			return nil, err
		}
		chk = lchk
		t = &cTest{code: code, op: clsJMP | jop | srcK, k: rn.v}
	default:
		rcode, rchk, err := c.genArith(r)
		if err != nil {
			return nil, err
		}
		reg, err := c.allocScratch(0)
		if err != nil {
			return nil, err
		}
		lcode, lchk, err := c.genArith(l)
		c.freeScratch(reg)
		if err != nil {
			return nil, err
		}
		code := append(rcode, ins(clsST, reg))
		code = append(code, lcode...)
		code = append(code, ins(clsLDX|szW|mdMEM, reg))
		chk = and(lchk, rchk)
		t = &cTest{code: code, op: clsJMP | jop | srcX}
	}
	if negate {
		t = not(t)
	}
	if c.abort {
		c.abort = false
		t = cAbort{}
	}
	return and(chk, t), nil
}
