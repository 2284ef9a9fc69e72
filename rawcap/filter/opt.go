package filter

import (
	"container/heap"
	"encoding/binary"
	"fmt"

	"golang.org/x/net/bpf"
)

// The optimiser works on the block DAG produced by lower. It keeps the
// packet loads of every test that still decides something on its path (so
// truncated packets are rejected where libpcap rejects them) and removes:
//   - loads whose value is already in the register on every incoming path;
//   - tests whose two outcomes lead to the same place (their loads stay
//     unless they lead only to a reject);
//   - tests whose outcome is implied by earlier tests of the same value on
//     every path to them (jump threading), which is how `ip and arp` is
//     seen to reject everything.

// val numbers a value the machine can hold (value numbering, as in
// libpcap's optimiser): registers that hold the same number hold the same
// value on every packet. Numbers are only meaningful within one run of the
// analysis.
type val int32

// noVal is the absent operand of a unary operation; no register holds it.
const noVal val = 0

// valKind says how a value is computed.
type valKind uint8

const (
	vUnknown valKind = iota // a merge of different values, or uninitialised memory
	vConst                  // the constant k
	vLen                    // the packet length
	vLoad                   // the packet bytes at k, op the size bits
	vLoadX                  // the packet bytes at a+k, op the size bits, a not a constant
	vMSH                    // 4*([k]&0xf), the IPv4 header length
	vALU                    // a op b, op the ALU operation; b is noVal for neg
)

// valExpr is how a value is computed from constants and other values:
// equal expressions get the same number.
type valExpr struct {
	kind valKind
	op   uint16
	k    uint32
	a, b val
}

// state is the symbolic content of the machine: the value number each
// register holds.
type state struct {
	a, x val
	m    [memWords]val
}

type analysis struct {
	g     *graph
	order []*block
	preds map[*block][]*block
	out   map[*block]*state
	facts map[*block]factSet
	exprs []valExpr       // exprs[v] is how v is computed
	vals  map[valExpr]val // the number of each known expression
}

// resetVals forgets all value numbers; noVal keeps slot 0.
func (an *analysis) resetVals() {
	an.exprs = append(an.exprs[:0], valExpr{})
	an.vals = map[valExpr]val{}
}

// number returns the value computed by e, the same for equal expressions.
func (an *analysis) number(e valExpr) val {
	if v, ok := an.vals[e]; ok {
		return v
	}
	v := val(len(an.exprs))
	an.exprs = append(an.exprs, e)
	an.vals[e] = v
	return v
}

// unknown returns a value equal to no other.
func (an *analysis) unknown() val {
	an.exprs = append(an.exprs, valExpr{kind: vUnknown})
	return val(len(an.exprs) - 1)
}

func (an *analysis) constant(k uint32) val { return an.number(valExpr{kind: vConst, k: k}) }

func (an *analysis) constOf(v val) (uint32, bool) {
	e := an.exprs[v]
	return e.k, e.kind == vConst
}

// loadSize is the size bits of a load, an invalid size counting as a word
// as the kernel's checker would refuse it anyway.
func loadSize(op uint16) uint16 {
	switch op & 0x18 {
	case szB, szH:
		return op & 0x18
	}
	return szW
}

// step applies one instruction to s: every register it writes gets the
// number of the value it now holds, a fresh unknown where the instruction
// is one the generator never emits.
func (an *analysis) step(s *state, in bpf.RawInstruction) {
	k := in.K
	switch in.Op & 0x07 {
	case clsLD:
		switch in.Op & 0xe0 {
		case mdIMM:
			s.a = an.constant(k)
		case mdABS:
			s.a = an.number(valExpr{kind: vLoad, op: loadSize(in.Op), k: k})
		case mdIND:
			if c, ok := an.constOf(s.x); ok && uint64(c)+uint64(k) < skfAdOff {
				s.a = an.number(valExpr{kind: vLoad, op: loadSize(in.Op), k: c + k})
			} else {
				s.a = an.number(valExpr{kind: vLoadX, op: loadSize(in.Op), k: k, a: s.x})
			}
		case mdMEM:
			s.a = s.m[k%memWords]
		case mdLEN:
			s.a = an.number(valExpr{kind: vLen})
		default:
			s.a = an.unknown()
		}
	case clsLDX:
		switch in.Op & 0xe0 {
		case mdIMM:
			s.x = an.constant(k)
		case mdMEM:
			s.x = s.m[k%memWords]
		case mdLEN:
			s.x = an.number(valExpr{kind: vLen})
		case mdMSH:
			s.x = an.number(valExpr{kind: vMSH, k: k})
		default:
			s.x = an.unknown()
		}
	case clsST:
		s.m[k%memWords] = s.a
	case clsSTX:
		s.m[k%memWords] = s.x
	case clsALU:
		op := in.Op & 0xf0
		rhs := noVal
		if op != aluNEG {
			if in.Op&srcX != 0 {
				rhs = s.x
			} else {
				rhs = an.constant(k)
			}
		}
		ca, okA := an.constOf(s.a)
		cb, okB := an.constOf(rhs)
		if op == aluNEG {
			cb, okB = 0, true
		}
		if okA && okB {
			if v, ok := foldALU(in.Op, ca, cb); ok {
				s.a = an.constant(v)
				return
			}
		}
		s.a = an.number(valExpr{kind: vALU, op: op, a: s.a, b: rhs})
	case clsMISC:
		if in.Op&0xf8 == miscTXA {
			s.a = s.x
		} else {
			s.x = s.a
		}
	}
}

// noop reports whether in leaves s unchanged (a repeated load).
func (an *analysis) noop(s *state, in bpf.RawInstruction) bool {
	switch in.Op & 0x07 {
	case clsLD, clsLDX, clsMISC, clsST, clsSTX:
	default:
		return false
	}
	t := *s
	an.step(&t, in)
	return t == *s
}

func (g *graph) reachable(entry *block) []*block {
	seen := map[*block]bool{}
	var out []*block
	var walk func(b *block)
	walk = func(b *block) {
		if seen[b] {
			return
		}
		seen[b] = true
		out = append(out, b)
		if b.isRet {
			return
		}
		walk(b.jt)
		if b.op != clsJMP|jmpJA {
			walk(b.jf)
		}
	}
	walk(entry)
	return out
}

func succs(b *block) []*block {
	if b.isRet {
		return nil
	}
	if b.op == clsJMP|jmpJA {
		return []*block{b.jt}
	}
	if b.jt == b.jf {
		return []*block{b.jt}
	}
	return []*block{b.jt, b.jf}
}

// normalise resolves placeholders and bypasses empty unconditional blocks.
func normalise(entry *block, all []*block) *block {
	skip := func(b *block) *block {
		// A chain of skips visits each block at most once.
		for i := 0; i < len(all)+1; i++ {
			b = resolve(b)
			// Loads that lead only to a reject can only reject: drop
			// them. Other loads of a test that no longer matters stay: a
			// load beyond a truncated packet rejects it in libpcap's
			// generated code, and libpcap's optimiser removes such loads
			// only sometimes, depending on its pass order.
			if !b.isRet && b.op == clsJMP|jmpJA && b.jt.isRet && b.jt.retVal == 0 && !hasStore(b.orig) {
				b = b.jt
				continue
			}
			return b
		}
		return b
	}
	for changed := true; changed; {
		changed = false
		for _, b := range all {
			if b.jt != nil {
				if t := skip(b.jt); t != b.jt {
					b.jt, changed = t, true
				}
			}
			if b.jf != nil {
				if f := skip(b.jf); f != b.jf {
					b.jf, changed = f, true
				}
			}
			if !b.isRet && b.op != clsJMP|jmpJA && b.jt == b.jf {
				// Both outcomes lead to the same place: keep the loads
				// (they may reject a truncated packet) but drop the test.
				b.op = clsJMP | jmpJA
				changed = true
			}
		}
	}
	return skip(entry)
}

// topo orders the reachable blocks so that every jump goes forward,
// keeping creation order where it can and returns last.
func topo(entry *block, blocks []*block) []*block {
	indeg := map[*block]int{}
	for _, b := range blocks {
		for _, s := range succs(b) {
			indeg[s]++
		}
	}
	ready := &blockHeap{entry}
	var out []*block
	for ready.Len() > 0 {
		b := heap.Pop(ready).(*block)
		out = append(out, b)
		for _, s := range succs(b) {
			indeg[s]--
			if indeg[s] == 0 {
				heap.Push(ready, s)
			}
		}
	}
	return out
}

// blockHeap pops blocks in creation order, returns last.
type blockHeap []*block

func prio(b *block) int {
	if b.isRet {
		return 1<<30 + b.id
	}
	return b.id
}

func (h blockHeap) Len() int           { return len(h) }
func (h blockHeap) Less(i, j int) bool { return prio(h[i]) < prio(h[j]) }
func (h blockHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *blockHeap) Push(x any)        { *h = append(*h, x.(*block)) }
func (h *blockHeap) Pop() any {
	old := *h
	b := old[len(old)-1]
	*h = old[:len(old)-1]
	return b
}

func (an *analysis) run(entry *block) {
	an.resetVals()
	blocks := an.g.reachable(entry)
	an.order = topo(entry, blocks)
	an.preds = map[*block][]*block{}
	for _, b := range an.order {
		for _, s := range succs(b) {
			an.preds[s] = append(an.preds[s], b)
		}
	}
	an.out = map[*block]*state{}
	for _, b := range an.order {
		var st state
		ps := an.preds[b]
		if b == entry {
			st.a = an.constant(0)
			st.x = st.a
			for i := range st.m {
				st.m[i] = an.unknown()
			}
		} else {
			st = *an.out[ps[0]]
			for _, p := range ps[1:] {
				o := an.out[p]
				if o.a != st.a {
					st.a = an.unknown()
				}
				if o.x != st.x {
					st.x = an.unknown()
				}
				for i := range st.m {
					if o.m[i] != st.m[i] {
						st.m[i] = an.unknown()
					}
				}
			}
		}
		// Drop instructions that change nothing.
		kept := make([]bpf.RawInstruction, 0, len(b.orig))
		for _, i := range b.orig {
			if an.noop(&st, i) {
				continue
			}
			an.step(&st, i)
			kept = append(kept, i)
		}
		b.code = kept
		out := st
		an.out[b] = &out
	}
	// Facts that hold on entry to each block: the outcomes of tests
	// taken on every path to it.
	an.facts = map[*block]factSet{}
	for _, b := range an.order {
		ps := an.preds[b]
		if b == entry {
			an.facts[b] = factSet{}
			continue
		}
		var fs factSet
		for i, p := range ps {
			pf := an.facts[p].with(an.edgeFacts(p, b)...)
			if i == 0 {
				fs = pf
			} else {
				fs = fs.intersect(pf)
			}
		}
		an.facts[b] = fs
	}
}

// factSet maps a value to what tests established about it.
type factSet map[val][]fact

// maxFacts bounds what is remembered per value, so that long chains such
// as `host a or b or c ...` stay linear. An equality, which decides
// everything, replaces all other facts.
const maxFacts = 8

func (fs factSet) with(add ...keyedFact) factSet {
	out := make(factSet, len(fs)+len(add))
	for k, v := range fs {
		out[k] = v
	}
	out.add(add...)
	return out
}

// add records facts in place.
func (out factSet) add(add ...keyedFact) {
	for _, f := range add {
		old := out[f.v]
		if len(old) == 1 && old[0].op == clsJMP|jmpJEQ && old[0].outcome {
			continue // already known exactly
		}
		if f.f.op == clsJMP|jmpJEQ && f.f.outcome {
			out[f.v] = []fact{f.f}
			continue
		}
		if len(old) >= maxFacts {
			old = old[len(old)-maxFacts+1:]
		}
		out[f.v] = append(old[:len(old):len(old)], f.f)
	}
}

func (fs factSet) intersect(o factSet) factSet {
	out := factSet{}
	for k, v := range fs {
		ov, ok := o[k]
		if !ok {
			continue
		}
		var keep []fact
		for _, f := range v {
			for _, g := range ov {
				if f == g {
					keep = append(keep, f)
					break
				}
			}
		}
		if len(keep) > 0 {
			out[k] = keep
		}
	}
	return out
}

type keyedFact struct {
	v val
	f fact
}

// edgeFacts is what the test at the end of p establishes on its way to s.
func (an *analysis) edgeFacts(p, s *block) []keyedFact {
	if p.isRet || p.op == clsJMP|jmpJA || p.op&srcX != 0 || p.jt == p.jf {
		return nil
	}
	v := an.out[p].a
	return []keyedFact{{v, fact{p.op, p.k, s == p.jt}}}
}

type fact struct {
	op      uint16
	k       uint32
	outcome bool
}

// decide works out the outcome of the test (op, k) on a value v known to
// satisfy facts, or reports that it cannot.
func (an *analysis) decide(v val, facts []fact, op uint16, k uint32) (bool, bool) {
	if c, ok := an.constOf(v); ok {
		return evalJump(op, c, k), true
	}
	for _, f := range facts {
		if f.op == clsJMP|jmpJEQ && f.outcome {
			return evalJump(op, f.k, k), true
		}
	}
	for _, f := range facts {
		fk := uint64(f.k)
		kk := uint64(k)
		switch op {
		case clsJMP | jmpJEQ:
			switch {
			case f.op == clsJMP|jmpJEQ && !f.outcome && fk == kk:
				return false, true
			case f.op == clsJMP|jmpJGT && f.outcome && kk <= fk:
				return false, true
			case f.op == clsJMP|jmpJGE && f.outcome && kk < fk:
				return false, true
			case f.op == clsJMP|jmpJGT && !f.outcome && kk > fk:
				return false, true
			case f.op == clsJMP|jmpJGE && !f.outcome && kk >= fk:
				return false, true
			case f.op == clsJMP|jmpJSET && !f.outcome && kk&fk != 0:
				return false, true
			}
		case clsJMP | jmpJGT:
			switch {
			case f.op == clsJMP|jmpJGT && f.outcome && fk >= kk:
				return true, true
			case f.op == clsJMP|jmpJGE && f.outcome && fk > kk:
				return true, true
			case f.op == clsJMP|jmpJGT && !f.outcome && fk <= kk:
				return false, true
			case f.op == clsJMP|jmpJGE && !f.outcome && fk <= kk+1:
				return false, true
			}
		case clsJMP | jmpJGE:
			switch {
			case f.op == clsJMP|jmpJGE && f.outcome && fk >= kk:
				return true, true
			case f.op == clsJMP|jmpJGT && f.outcome && fk+1 >= kk:
				return true, true
			case f.op == clsJMP|jmpJGE && !f.outcome && fk <= kk:
				return false, true
			case f.op == clsJMP|jmpJGT && !f.outcome && fk < kk:
				return false, true
			}
		case clsJMP | jmpJSET:
			switch {
			case f.op == clsJMP|jmpJSET && f.outcome && fk&kk == fk:
				return true, true
			case f.op == clsJMP|jmpJSET && !f.outcome && kk&fk == kk:
				return false, true
			}
		}
	}
	return false, false
}

// thread retargets edges whose destination test is already decided by the
// tests on the way there (jump threading). A block is skipped only if it
// stores nothing: every block's code computes its value from scratch, so
// the blocks after it do not depend on it.
func (an *analysis) thread() bool {
	changed := false
	for _, b := range an.order {
		if b.isRet {
			continue
		}
		exit := an.out[b]
		outcomes := []bool{true, false}
		if b.op == clsJMP|jmpJA {
			outcomes = outcomes[:1] // jt only
		}
		for _, outcome := range outcomes {
			target := b.jf
			if outcome {
				target = b.jt
			}
			fs := an.facts[b].with(an.edgeFacts(b, target)...)
			dst := target
			for steps := 0; steps < len(an.order); steps++ {
				if dst.isRet || dst.op == clsJMP|jmpJA || dst.op&srcX != 0 || hasStore(dst.orig) {
					break
				}
				st := *exit
				for _, i := range dst.orig {
					an.step(&st, i)
				}
				r, ok := an.decide(st.a, fs[st.a], dst.op, dst.k)
				if !ok {
					break
				}
				fs.add(keyedFact{st.a, fact{dst.op, dst.k, r}})
				if r {
					dst = dst.jt
				} else {
					dst = dst.jf
				}
			}
			if dst != target {
				if outcome {
					b.jt = dst
				} else {
					b.jf = dst
				}
				changed = true
			}
		}
	}
	return changed
}

// hasStore reports whether code writes scratch memory that other blocks
// read: the VLAN offset word. Arithmetic temporaries are written and read
// within one block.
func hasStore(code []bpf.RawInstruction) bool {
	for _, i := range code {
		if c := i.Op & 0x07; (c == clsST || c == clsSTX) && i.K == vlanReg {
			return true
		}
	}
	return false
}

// blockKey is what makes two blocks interchangeable: the same code, the
// same exit and the same successors.
type blockKey struct {
	isRet  bool
	retVal uint32
	op     uint16
	k      uint32
	jt, jf *block
	code   string // orig, each instruction's op and k in binary
}

func keyOf(b *block, buf []byte) (blockKey, []byte) {
	key := blockKey{isRet: b.isRet, retVal: b.retVal, op: b.op, k: b.k}
	if !b.isRet {
		key.jt, key.jf = b.jt, b.jf
	}
	buf = buf[:0]
	for _, in := range b.orig {
		buf = binary.LittleEndian.AppendUint16(buf, in.Op)
		buf = binary.LittleEndian.AppendUint32(buf, in.K)
	}
	key.code = string(buf)
	return key, buf
}

// intern merges blocks with the same code, test and successors (libpcap's
// intern_blocks). A block's original code computes everything it uses, so
// two such blocks behave the same wherever they are entered from.
func intern(entry *block, order []*block) (*block, bool) {
	canon := map[*block]*block{}
	seen := map[blockKey]*block{}
	changed := false
	var buf []byte
	for i := len(order) - 1; i >= 0; i-- {
		b := order[i]
		if !b.isRet {
			if c, ok := canon[b.jt]; ok && c != b.jt {
				b.jt, changed = c, true
			}
			if c, ok := canon[b.jf]; ok && c != b.jf {
				b.jf, changed = c, true
			}
		}
		var key blockKey
		key, buf = keyOf(b, buf)
		if o, ok := seen[key]; ok {
			canon[b] = o
			continue
		}
		seen[key] = b
		canon[b] = b
	}
	return canon[entry], changed
}

// pullup moves a test up an or-chain (isOr: tests joined by their false
// branches, all true branches going to the same block) or an and-chain,
// next to the test of the same value, as libpcap's or_pullup and
// and_pullup do. On complete packets the order of an or-chain does not
// matter; on truncated ones it decides which load fails first, and
// following libpcap keeps `host a or b` on a 30-byte frame in step with
// tcpdump. Only chains of blocks with a single predecessor and no shared
// stores are touched, so no other path sees the change.
func (an *analysis) pullup(b *block, isOr bool) bool {
	ps := an.preds[b]
	if len(ps) == 0 {
		return false
	}
	val := an.out[ps[0]].a
	for _, p := range ps[1:] {
		if an.out[p].a != val {
			return false
		}
	}
	exit := func(x *block) *block { // where the chain leaves
		if isOr {
			return x.jt
		}
		return x.jf
	}
	next := func(x *block) *block {
		if isOr {
			return x.jf
		}
		return x.jt
	}
	setNext := func(x, to *block) {
		if isOr {
			x.jf = to
		} else {
			x.jt = to
		}
	}
	ok := func(x *block) bool {
		return !x.isRet && x.op != clsJMP|jmpJA && x.jt != x.jf && exit(x) == exit(b) && !hasStore(x.orig)
	}
	var prev *block // block before diff in the chain; nil at the top
	diff := b
	for {
		if !ok(diff) || (diff != b && len(an.preds[diff]) != 1) {
			return false
		}
		if an.out[diff].a != val {
			break
		}
		prev, diff = diff, next(diff)
	}
	prevSame, same := diff, next(diff)
	for {
		if !ok(same) || len(an.preds[same]) != 1 {
			return false
		}
		if an.out[same].a == val {
			break
		}
		prevSame, same = same, next(same)
	}
	setNext(prevSame, next(same))
	setNext(same, diff)
	if prev != nil {
		setNext(prev, same)
		return true
	}
	for _, p := range ps {
		if p.jt == b {
			p.jt = same
		}
		if p.jf == b {
			p.jf = same
		}
	}
	return true
}

// Bounds on the optimiser's loops. The passes reach a fixed point by
// themselves; the bounds cap the time a pathological graph can take.
const (
	// maxSettleRounds caps thread-and-merge rounds; the tests' filters settle within 6.
	maxSettleRounds = 50
	// maxPullups caps chain reorderings; of the tests only TestLongJumps's 150-host chain hits it.
	maxPullups = 64
	// maxPullupBlocks: a graph this big is near maxInsns, where quadratic pull-ups stop paying.
	maxPullupBlocks = 3000
	// maxLayoutPasses: each pass adds a trampoline, 2 at most per jump, so 2*maxInsns+1 suffice.
	maxLayoutPasses = 10000
)

// optimise runs the passes to a fixed point and returns the block order.
func optimise(g *graph, entry *block) (*block, []*block) {
	entry = normalise(entry, g.blocks)
	an := &analysis{g: g}
	pullups := 0
	for round := 0; round < maxSettleRounds+maxPullups; round++ {
		an.run(entry)
		threaded := an.thread()
		entry = normalise(entry, g.blocks)
		var merged bool
		entry, merged = intern(entry, topo(entry, g.reachable(entry)))
		entry = normalise(entry, g.blocks)
		if threaded || merged {
			continue
		}
		pulled := false
		if pullups < maxPullups && len(an.order) < maxPullupBlocks {
			an.run(entry)
			for i := len(an.order) - 1; i >= 0 && !pulled; i-- {
				b := an.order[i]
				if b == entry {
					continue
				}
				pulled = an.pullup(b, true) || an.pullup(b, false)
			}
		}
		if !pulled {
			break
		}
		pullups++
		entry = normalise(entry, g.blocks)
	}
	an.run(entry)
	return entry, an.order
}

// edge is one outgoing branch of a conditional block: its jt branch when
// jt is true, else its jf branch.
type edge struct {
	from *block
	jt   bool
}

// maxJump is the longest conditional jump: jt and jf are single bytes.
const maxJump = 255

// layout linearises the ordered blocks into instructions, inserting `ja`
// trampolines where a conditional jump would exceed maxJump.
func layout(order []*block) ([]bpf.RawInstruction, error) {
	type item struct {
		b      *block
		tramp  *block // for a trampoline: the real target
		trampT bool   // trampoline serves the jt edge of owner
		owner  *block
	}
	needT := map[*block]bool{}
	needF := map[*block]bool{}
	for iter := 0; ; iter++ {
		if iter > maxLayoutPasses {
			return nil, fmt.Errorf("filter: cannot lay out program")
		}
		var items []item
		for _, b := range order {
			items = append(items, item{b: b})
			if needT[b] {
				items = append(items, item{tramp: b.jt, trampT: true, owner: b})
			}
			if needF[b] {
				items = append(items, item{tramp: b.jf, owner: b})
			}
		}
		// sizes
		pos := make([]int, len(items)+1)
		blockPos := map[*block]int{}
		trampPos := map[edge]int{}
		size := func(idx int) int {
			it := items[idx]
			if it.tramp != nil {
				return 1
			}
			b := it.b
			n := len(b.code)
			if b.isRet {
				return n + 1
			}
			if b.op == clsJMP|jmpJA {
				if idx+1 < len(items) && items[idx+1].b == b.jt {
					return n
				}
				return n + 1
			}
			return n + 1
		}
		for i := range items {
			pos[i+1] = pos[i] + size(i)
			if items[i].tramp == nil {
				blockPos[items[i].b] = pos[i]
			} else {
				trampPos[edge{items[i].owner, items[i].trampT}] = pos[i]
			}
		}
		total := pos[len(items)]
		if total > maxInsns {
			return nil, fmt.Errorf("filter: program needs %d instructions, more than the kernel's limit of %d", total, maxInsns)
		}
		grew := false
		for i, it := range items {
			if it.tramp != nil || it.b.isRet || it.b.op == clsJMP|jmpJA {
				continue
			}
			b := it.b
			jpos := pos[i] + len(b.code)
			if !needT[b] && blockPos[b.jt]-jpos-1 > maxJump {
				needT[b] = true
				grew = true
			}
			if !needF[b] && blockPos[b.jf]-jpos-1 > maxJump {
				needF[b] = true
				grew = true
			}
		}
		if grew {
			continue
		}
		prog := make([]bpf.RawInstruction, 0, total)
		for i, it := range items {
			if it.tramp != nil {
				prog = append(prog, ins(clsJMP|jmpJA, uint32(blockPos[it.tramp]-pos[i]-1)))
				continue
			}
			b := it.b
			prog = append(prog, b.code...)
			jpos := len(prog)
			switch {
			case b.isRet:
				prog = append(prog, ins(clsRET|retK, b.retVal))
			case b.op == clsJMP|jmpJA:
				if size(i) > len(b.code) {
					prog = append(prog, ins(clsJMP|jmpJA, uint32(blockPos[b.jt]-jpos-1)))
				}
			default:
				tt := blockPos[b.jt]
				if needT[b] {
					tt = trampPos[edge{b, true}]
				}
				ff := blockPos[b.jf]
				if needF[b] {
					ff = trampPos[edge{b, false}]
				}
				prog = append(prog, bpf.RawInstruction{Op: b.op, Jt: uint8(tt - jpos - 1), Jf: uint8(ff - jpos - 1), K: b.k})
			}
		}
		return prog, nil
	}
}
