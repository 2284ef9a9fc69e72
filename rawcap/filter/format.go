package filter

import (
	"fmt"
	"strings"

	"golang.org/x/net/bpf"
)

// FormatDDD prints prog as `tcpdump -ddd` does: the instruction count on
// the first line, then one "code jt jf k" line per instruction, all in
// decimal. `nsntrace --compile-filter EXPR` prints it; nothing in nsntrace
// reads it back (`-f` takes an expression, never a program file), so it is
// for people and for comparing with tcpdump.
func FormatDDD(prog []bpf.RawInstruction) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d\n", len(prog))
	for _, in := range prog {
		fmt.Fprintf(&b, "%d %d %d %d\n", in.Op, in.Jt, in.Jf, in.K)
	}
	return b.String()
}

// Disassemble prints prog in the readable style of `tcpdump -d`, one
// numbered instruction per line with absolute jump targets.
func Disassemble(prog []bpf.RawInstruction) string {
	var b strings.Builder
	for n, in := range prog {
		b.WriteString(disasmOne(in, n))
		b.WriteByte('\n')
	}
	return b.String()
}

var ancNames = map[uint32]string{
	skfAdOff + 0: "proto", skfAdOff + 4: "type", skfAdOff + 8: "ifidx", skfAdOff + 12: "nla",
	skfAdOff + 16: "nlan", skfAdOff + 20: "mark", skfAdOff + 24: "queue", skfAdOff + 28: "hatype",
	skfAdOff + 32: "rxhash", skfAdOff + 36: "cpu", skfAdOff + 44: "vlan_tci",
	skfAdOff + 48: "vlanp", skfAdOff + 52: "poff", skfAdOff + 56: "rand", skfAdOff + 60: "vlan_tpid",
}

// disasmOne renders one instruction; n < 0 omits the "(nnn)" prefix and
// prints jump offsets relative instead of absolute.
func disasmOne(in bpf.RawInstruction, n int) string {
	op, arg := "", ""
	k := in.K
	absK := func() string {
		if name, ok := ancNames[k]; ok {
			return "[" + name + "]"
		}
		return fmt.Sprintf("[%d]", int32(k))
	}
	sz := map[uint16]string{szW: "", szH: "h", szB: "b"}[in.Op&0x18]
	cond := false
	switch in.Op & 0x07 {
	case clsLD:
		switch in.Op & 0xe0 {
		case mdABS:
			op, arg = "ld"+sz, absK()
		case mdIND:
			op, arg = "ld"+sz, fmt.Sprintf("[x + %d]", int32(k))
		case mdIMM:
			op, arg = "ld", fmt.Sprintf("#0x%x", k)
		case mdLEN:
			op, arg = "ld", "#pktlen"
		case mdMEM:
			op, arg = "ld", fmt.Sprintf("M[%d]", k)
		default:
			op = "unimp"
		}
	case clsLDX:
		switch in.Op & 0xe0 {
		case mdIMM:
			op, arg = "ldx", fmt.Sprintf("#0x%x", k)
		case mdLEN:
			op, arg = "ldx", "#pktlen"
		case mdMEM:
			op, arg = "ldx", fmt.Sprintf("M[%d]", k)
		case mdMSH:
			op, arg = "ldxb", fmt.Sprintf("4*([%d]&0xf)", k)
		default:
			op = "unimp"
		}
	case clsST:
		op, arg = "st", fmt.Sprintf("M[%d]", k)
	case clsSTX:
		op, arg = "stx", fmt.Sprintf("M[%d]", k)
	case clsALU:
		names := map[uint16]string{aluADD: "add", aluSUB: "sub", aluMUL: "mul", aluDIV: "div",
			aluOR: "or", aluAND: "and", aluLSH: "lsh", aluRSH: "rsh", aluNEG: "neg",
			aluMOD: "mod", aluXOR: "xor"}
		op = names[in.Op&0xf0]
		if op == "" {
			op = "unimp"
		}
		switch {
		case in.Op&0xf0 == aluNEG:
		case in.Op&srcX != 0:
			arg = "x"
		case in.Op&0xf0 == aluAND || in.Op&0xf0 == aluOR || in.Op&0xf0 == aluXOR:
			arg = fmt.Sprintf("#0x%x", k)
		default:
			arg = fmt.Sprintf("#%d", int32(k))
		}
	case clsJMP:
		names := map[uint16]string{jmpJA: "ja", jmpJEQ: "jeq", jmpJGT: "jgt", jmpJGE: "jge", jmpJSET: "jset"}
		op = names[in.Op&0xf0]
		if op == "" {
			op = "unimp"
		}
		if in.Op&0xf0 == jmpJA {
			if n >= 0 {
				arg = fmt.Sprintf("%d", n+1+int(int32(k)))
			} else {
				arg = fmt.Sprintf("+%d", k)
			}
		} else {
			cond = true
			if in.Op&srcX != 0 {
				arg = "x"
			} else {
				arg = fmt.Sprintf("#0x%x", k)
			}
		}
	case clsRET:
		op = "ret"
		switch in.Op & 0x18 {
		case retA:
			arg = "a"
		case 0x08:
			arg = "x"
		default:
			arg = fmt.Sprintf("#%d", int32(k))
		}
	case clsMISC:
		if in.Op&0xf8 == miscTXA {
			op = "txa"
		} else {
			op = "tax"
		}
	}
	prefix := ""
	if n >= 0 {
		prefix = fmt.Sprintf("(%03d) ", n)
	}
	if cond {
		jt, jf := int(in.Jt), int(in.Jf)
		if n >= 0 {
			return fmt.Sprintf("%s%-8s %-16s jt %d\tjf %d", prefix, op, arg, n+1+jt, n+1+jf)
		}
		return fmt.Sprintf("%s%-8s %-16s jt +%d jf +%d", prefix, op, arg, jt, jf)
	}
	return fmt.Sprintf("%s%-8s %s", prefix, op, arg)
}
