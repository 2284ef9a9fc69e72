package filter

import "fmt"

// The parser follows libpcap's grammar (grammar.y) and, like libpcap's
// actions, generates code while it reads, left to right, so that `vlan`
// moves the offsets of everything after it. The parser itself emits no
// instructions: it hands each primitive to the compiler's generators
// (gen.go) and each comparison, as an arith tree, to relation (arith.go).
//
//	expr  := term { (and|or) (term | id) }     and/or: equal precedence, left to right
//	term  := not term | rterm
//	rterm := head id | ( expr ) | pname | arith relop arith | other
//	head  := [pname] [dir] [host|net|port|portrange|proto]   (at least one of the last two)
//	id    := not id | ( id { (and|or) id } ) | NUM | NAME | IPv4[/len | mask IPv4] | IPv6[/len] | MAC
//
// An id after and/or inherits the qualifiers of the term before it, so
// `port 80 or 443` is `port 80 or port 443`.
type parser struct {
	c    *compiler
	toks []token
	i    int
}

// noQual is what a term other than `head id` (a comparison, `tcp`, `less
// 100`, ...) leaves for a following bare id to inherit: nothing, so
// `tcp or 80` is an error (libpcap's noQual).
var noQual = qual{}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) peekAt(n int) token {
	if p.i+n < len(p.toks) {
		return p.toks[p.i+n]
	}
	return p.toks[len(p.toks)-1]
}
func (p *parser) next() token {
	t := p.toks[p.i]
	if p.i < len(p.toks)-1 {
		p.i++
	}
	return t
}

func (p *parser) isKw(t token, words ...string) bool {
	if t.kind != tKw {
		return false
	}
	for _, w := range words {
		if t.text == w {
			return true
		}
	}
	return false
}

func (p *parser) unexpected(t token) error {
	if t.kind == tKw && !keywords[t.text] {
		return p.unsupported(t)
	}
	if t.kind == tEOF {
		return p.c.errAt(t.pos, "syntax error: unexpected end of expression")
	}
	return p.c.errAt(t.pos, "syntax error: unexpected %s", t)
}

func (p *parser) unsupported(t token) error {
	return &SyntaxError{Pos: t.pos, Msg: fmt.Sprintf("%q is not supported", t.text), Expr: p.c.expr, unsupported: true}
}

func (p *parser) expect(k tokKind, what string) error {
	t := p.peek()
	if t.kind != k {
		if t.kind == tKw && !keywords[t.text] {
			return p.unsupported(t)
		}
		if t.kind == tEOF {
			return p.c.errAt(t.pos, "syntax error: expected %s at end of expression", what)
		}
		return p.c.errAt(t.pos, "syntax error: expected %s, found %s", what, t)
	}
	p.next()
	return nil
}

func (p *parser) program() (cond, error) {
	if p.peek().kind == tEOF {
		return cConst(true), nil
	}
	c, _, err := p.expr(noQual)
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		if t.kind == tRParen {
			return nil, p.c.errAt(t.pos, "syntax error: unbalanced \")\"")
		}
		return nil, p.unexpected(t)
	}
	return c, nil
}

func (p *parser) expr(q qual) (cond, qual, error) {
	c, q, err := p.termOrID(q, false)
	if err != nil {
		return nil, q, err
	}
	for {
		t := p.peek()
		if t.kind != tAnd && t.kind != tOr {
			return c, q, nil
		}
		p.next()
		r, q2, err := p.termOrID(q, true)
		if err != nil {
			return nil, q, err
		}
		if t.kind == tAnd {
			c = and(c, r)
		} else {
			c = or(c, r)
		}
		q = q2
	}
}

// termOrID parses a term, or (after and/or) an id using q.
func (p *parser) termOrID(q qual, allowID bool) (cond, qual, error) {
	if p.peek().kind == tNot {
		p.next()
		c, q2, err := p.termOrID(q, allowID)
		if err != nil {
			return nil, q, err
		}
		return not(c), q2, nil
	}
	if allowID && p.startsID() {
		c, err := p.id(q)
		return c, q, err
	}
	return p.rterm(q)
}

// startsID tells an id from a term where the grammar allows both.
func (p *parser) startsID() bool {
	n := 0
	for {
		t := p.peekAt(n)
		switch t.kind {
		case tNot:
			n++
			continue
		case tLParen:
			n++
			continue
		case tID, tHID, tHID6, tEID:
			return true
		case tNum:
			// A number may be an id (`port 80 or (443)`) or start a
			// comparison (`tcp or ((54)) <= ip[0]`); like bison, decide on
			// what follows it and its closing parentheses.
			n++
			for p.peekAt(n).kind == tRParen {
				n++
			}
			switch p.peekAt(n).kind {
			case tAnd, tOr, tEOF:
				return true
			}
			_, isOp := binPrec[p.peekAt(n).kind]
			return !isOp && !isRelop(p.peekAt(n).kind) && !noPrec(p.peekAt(n).kind)
		}
		return false
	}
}

func (p *parser) id(q qual) (cond, error) {
	t := p.next()
	switch t.kind {
	case tNot:
		c, err := p.id(q)
		if err != nil {
			return nil, err
		}
		return not(c), nil
	case tLParen:
		// libpcap's pid starts with a name, address, `not` or a number,
		// possibly parenthesised, never with a parenthesised list:
		// `host ((a or b) or c)` is a syntax error there too.
		if p.peek().kind == tLParen {
			n := 0
			for p.peekAt(n).kind == tLParen {
				n++
			}
			if p.peekAt(n).kind != tNum {
				return nil, p.c.errAt(p.peek().pos, "syntax error: unexpected \"(\"")
			}
		}
		c, err := p.id(q)
		if err != nil {
			return nil, err
		}
		for {
			op := p.peek()
			if op.kind != tAnd && op.kind != tOr {
				break
			}
			p.next()
			r, err := p.id(q)
			if err != nil {
				return nil, err
			}
			if op.kind == tAnd {
				c = and(c, r)
			} else {
				c = or(c, r)
			}
		}
		if err := p.expect(tRParen, "\")\""); err != nil {
			return nil, err
		}
		return c, nil
	case tNum:
		return p.c.ncode("", t.num, q, t.pos)
	case tID:
		return p.c.scode(t.text, q, t.pos)
	case tHID:
		if p.peek().kind == tSlash {
			p.next()
			n := p.peek()
			if err := p.expect(tNum, "a prefix length"); err != nil {
				return nil, err
			}
			return p.c.mcode(t.text, "", n.num, q, t.pos)
		}
		if p.isKw(p.peek(), "mask") {
			p.next()
			m := p.peek()
			if err := p.expect(tHID, "a netmask"); err != nil {
				return nil, err
			}
			return p.c.mcode(t.text, m.text, 0, q, t.pos)
		}
		if q.ok {
			switch q.addr {
			case aPort:
				return nil, p.c.errAt(t.pos, "'port' modifier applied to ip host")
			case aPortrange:
				return nil, p.c.errAt(t.pos, "'portrange' modifier applied to ip host")
			case aProto:
				return nil, p.c.errAt(t.pos, "'proto' modifier applied to ip host")
			}
		}
		return p.c.ncode(t.text, 0, q, t.pos)
	case tHID6:
		if p.peek().kind == tSlash {
			p.next()
			n := p.peek()
			if err := p.expect(tNum, "a prefix length"); err != nil {
				return nil, err
			}
			return p.c.mcode6(t.text, n.num, q, t.pos)
		}
		return p.c.mcode6(t.text, 128, q, t.pos)
	case tEID:
		return p.c.ecode(t.text, q, t.pos)
	}
	if t.kind == tKw && !keywords[t.text] {
		return nil, p.unsupported(t)
	}
	if t.kind == tEOF {
		return nil, p.c.errAt(t.pos, "syntax error: expected a host, network, port or protocol at end of expression")
	}
	return nil, p.c.errAt(t.pos, "syntax error: expected a host, network, port or protocol, found %s", t)
}

func isPname(t token) bool {
	if t.kind != tKw {
		return false
	}
	_, ok := pqualNames[t.text]
	return ok
}

var unsupportedPnames = map[string]bool{
	"fddi": true, "tr": true, "wlan": true, "radio": true, "atalk": true, "aarp": true,
	"decnet": true, "lat": true, "sca": true, "moprc": true, "mopdl": true, "iso": true,
	"esis": true, "es-is": true, "isis": true, "is-is": true, "l1": true, "l2": true,
	"iih": true, "lsp": true, "snp": true, "csnp": true, "psnp": true, "clnp": true,
	"stp": true, "ipx": true, "netbeui": true,
}

func (p *parser) rterm(q qual) (cond, qual, error) {
	t := p.peek()
	switch {
	case t.kind == tLParen:
		if p.isRelation() {
			c, err := p.relation()
			return c, noQual, err
		}
		p.next()
		c, _, err := p.expr(q)
		if err != nil {
			return nil, q, err
		}
		if err := p.expect(tRParen, "\")\""); err != nil {
			return nil, q, err
		}
		return c, q, nil
	case t.kind == tNum || t.kind == tMinus || p.isKw(t, "len", "length"):
		c, err := p.relation()
		return c, noQual, err
	case t.kind == tKw && unsupportedPnames[t.text]:
		return nil, q, p.unsupported(t)
	case isPname(t):
		nt := p.peekAt(1)
		switch {
		case nt.kind == tLBrack:
			c, err := p.relation()
			return c, noQual, err
		case p.isKw(nt, "src", "dst", "host", "net", "port", "portrange", "proto", "protochain", "gateway"):
			return p.head()
		case p.isKw(nt, "broadcast", "multicast"):
			p.next()
			p.next()
			c, err := p.bcast(pqualNames[t.text], nt)
			return c, noQual, err
		}
		p.next()
		c, err := p.c.abbrev(pqualNames[t.text], t.pos)
		return c, noQual, err
	case p.isKw(t, "src", "dst", "host", "net", "port", "portrange", "proto", "protochain", "gateway"):
		return p.head()
	case p.isKw(t, "broadcast", "multicast"):
		p.next()
		c, err := p.bcast(pDefault, t)
		return c, noQual, err
	case p.isKw(t, "less", "greater"):
		p.next()
		n := p.peek()
		if err := p.expect(tNum, "a number"); err != nil {
			return nil, q, err
		}
		if t.text == "less" {
			return p.c.less(n.num), noQual, nil
		}
		return p.c.greater(n.num), noQual, nil
	case p.isKw(t, "byte"):
		p.next()
		idx := p.peek()
		if err := p.expect(tNum, "a byte offset"); err != nil {
			return nil, q, err
		}
		op := p.next()
		switch op.kind {
		case tAmp, tPipe:
			// libpcap compiles these without loading the byte, so they
			// test whatever the accumulator held; nothing to be
			// compatible with.
			return nil, q, &SyntaxError{Pos: t.pos, Expr: p.c.expr, unsupported: true,
				Msg: fmt.Sprintf("\"byte %d %s\" is not supported (libpcap never loads the byte); write ether[%d] %s %d != 0", idx.num, op.text, idx.num, op.text, p.peek().num)}
		case tLt, tGt, tEq:
		default:
			return nil, q, p.c.errAt(op.pos, "syntax error: expected one of & | < > = after \"byte %d\"", idx.num)
		}
		v := p.peek()
		if err := p.expect(tNum, "a number"); err != nil {
			return nil, q, err
		}
		return p.c.byteOp(idx.num, op.kind, v.num), noQual, nil
	case p.isKw(t, "inbound", "outbound"):
		p.next()
		return p.c.direction(t.text == "outbound"), noQual, nil
	case p.isKw(t, "vlan"):
		p.next()
		var id uint32
		has := false
		if p.peek().kind == tNum {
			id, has = p.next().num, true
		} else if p.peek().kind == tLParen && p.peekAt(1).kind == tNum && p.peekAt(2).kind == tRParen {
			p.next()
			id, has = p.next().num, true
			p.next()
		}
		c, err := p.c.vlan(id, has, t.pos)
		return c, noQual, err
	}
	return nil, q, p.unexpected(t)
}

func (p *parser) bcast(pq pqual, t token) (cond, error) {
	if t.text == "broadcast" {
		return p.c.broadcast(pq, t.pos)
	}
	return p.c.multicast(pq, t.pos)
}

// head parses `[pname] [dir] [type]` and the id that follows.
func (p *parser) head() (cond, qual, error) {
	q := qual{ok: true}
	start := p.peek()
	if isPname(start) {
		q.proto = pqualNames[p.next().text]
	}
	if t := p.peek(); p.isKw(t, "src", "dst") {
		p.next()
		q.dir = dSrc
		if t.text == "dst" {
			q.dir = dDst
		}
		if op := p.peek(); (op.kind == tOr || op.kind == tAnd) && p.isKw(p.peekAt(1), "src", "dst") && p.peekAt(1).text != t.text {
			p.next()
			p.next()
			q.dir = dOr
			if op.kind == tAnd {
				q.dir = dAnd
			}
		}
	}
	t := p.peek()
	switch {
	case p.isKw(t, "host"):
		q.addr = aHost
	case p.isKw(t, "net"):
		q.addr = aNet
	case p.isKw(t, "port"):
		q.addr = aPort
	case p.isKw(t, "portrange"):
		q.addr = aPortrange
	case p.isKw(t, "proto"):
		if q.dir != dDefault {
			return nil, q, p.c.errAt(t.pos, "syntax error: unexpected \"proto\" after a direction")
		}
		q.addr = aProto
	case p.isKw(t, "protochain", "gateway"):
		return nil, q, p.unsupported(t)
	}
	if q.addr != aDefault {
		p.next()
	} else if q.dir == dDefault {
		return nil, q, p.unexpected(t)
	}
	c, err := p.id(q)
	return c, q, err
}

// Arithmetic. libpcap's precedence, lowest first: | & (<< >>) (+ -)
// (* /) unary-. `^` and `%` have no precedence in libpcap's grammar (see
// noPrec).
var binPrec = map[tokKind]int{tPipe: 1, tAmp: 2, tLsh: 3, tRsh: 3, tPlus: 4, tMinus: 4, tStar: 5, tSlash: 5}

// noPrec are the operators libpcap's grammar declares no precedence for:
// bison always shifts them, so their right operand is the rest of the
// arithmetic expression, even after a unary minus (-a % b is -(a % b)).
func noPrec(k tokKind) bool { return k == tCaret || k == tPercent }

var binOp = map[tokKind]uint16{tPipe: aluOR, tAmp: aluAND, tLsh: aluLSH, tRsh: aluRSH, tPlus: aluADD,
	tMinus: aluSUB, tStar: aluMUL, tSlash: aluDIV, tPercent: aluMOD, tCaret: aluXOR}

func isRelop(k tokKind) bool {
	switch k {
	case tGt, tGe, tEq, tNeq, tLt, tLe:
		return true
	}
	return false
}

// isRelation looks ahead (without generating code) for `arith relop`.
func (p *parser) isRelation() bool {
	save := p.i
	defer func() { p.i = save }()
	if _, err := p.arith(0); err != nil {
		return false
	}
	return isRelop(p.peek().kind)
}

func (p *parser) arith(minPrec int) (arith, error) {
	l, err := p.unary()
	if err != nil {
		return nil, err
	}
	for {
		t := p.peek()
		if noPrec(t.kind) {
			p.next()
			r, err := p.arith(0)
			if err != nil {
				return nil, err
			}
			l = aBin{op: binOp[t.kind], l: l, r: r, pos: t.pos}
			continue
		}
		prec, ok := binPrec[t.kind]
		if !ok || prec < minPrec {
			return l, nil
		}
		p.next()
		r, err := p.arith(prec + 1)
		if err != nil {
			return nil, err
		}
		l = aBin{op: binOp[t.kind], l: l, r: r, pos: t.pos}
	}
}

func (p *parser) unary() (arith, error) {
	t := p.next()
	switch {
	case t.kind == tMinus:
		x, err := p.unary()
		if err != nil {
			return nil, err
		}
		if op := p.peek(); noPrec(op.kind) {
			p.next()
			r, err := p.arith(0)
			if err != nil {
				return nil, err
			}
			x = aBin{op: binOp[op.kind], l: x, r: r, pos: op.pos}
		}
		return aNeg{x}, nil
	case t.kind == tNum:
		return aNum{t.num}, nil
	case p.isKw(t, "len", "length"):
		return aLen{}, nil
	case t.kind == tLParen:
		x, err := p.arith(0)
		if err != nil {
			return nil, err
		}
		if err := p.expect(tRParen, "\")\""); err != nil {
			return nil, err
		}
		return x, nil
	case t.kind == tKw && unsupportedPnames[t.text]:
		return nil, p.unsupported(t)
	case isPname(t):
		if err := p.expect(tLBrack, "\"[\""); err != nil {
			return nil, err
		}
		idx, err := p.arith(0)
		if err != nil {
			return nil, err
		}
		size := 1
		if p.peek().kind == tColon {
			p.next()
			n := p.peek()
			if err := p.expect(tNum, "a size"); err != nil {
				return nil, err
			}
			if n.num != 1 && n.num != 2 && n.num != 4 {
				return nil, p.c.errAt(n.pos, "data size must be 1, 2, or 4")
			}
			size = int(n.num)
		}
		if err := p.expect(tRBrack, "\"]\""); err != nil {
			return nil, err
		}
		return aLoad{proto: pqualNames[t.text], idx: idx, size: size, pos: t.pos}, nil
	}
	if t.kind == tKw && !keywords[t.text] {
		return nil, p.unsupported(t)
	}
	if t.kind == tEOF {
		return nil, p.c.errAt(t.pos, "syntax error: expected a value at end of expression")
	}
	return nil, p.c.errAt(t.pos, "syntax error: expected a value, found %s", t)
}

func (p *parser) relation() (cond, error) {
	l, err := p.arith(0)
	if err != nil {
		return nil, err
	}
	op := p.next()
	if !isRelop(op.kind) {
		if op.kind == tEOF {
			return nil, p.c.errAt(op.pos, "syntax error: expected a comparison at end of expression")
		}
		return nil, p.c.errAt(op.pos, "syntax error: expected a comparison, found %s", op)
	}
	r, err := p.arith(0)
	if err != nil {
		return nil, err
	}
	return p.c.relation(op.kind, l, r)
}
