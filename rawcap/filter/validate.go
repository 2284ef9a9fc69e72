package filter

import (
	"fmt"

	"golang.org/x/net/bpf"
)

// Validate checks prog against the rules the Linux kernel applies when a
// classic BPF program is attached (net/core/filter.c bpf_check_classic and
// check_load_and_stores): 1 to 4096 instructions, only known opcodes, jumps
// forward and inside the program, no division or modulo by constant zero,
// shifts below 32, scratch memory indices below 16 and never read before
// written on some path, and a final return.
func Validate(prog []bpf.RawInstruction) error {
	n := len(prog)
	if n == 0 {
		return fmt.Errorf("filter: validate: empty program")
	}
	if n > maxInsns {
		return fmt.Errorf("filter: validate: %d instructions, more than %d", n, maxInsns)
	}
	for pc, in := range prog {
		if err := validateOne(prog, pc, in); err != nil {
			return fmt.Errorf("filter: validate: instruction %d (%s): %w", pc, disasmOne(in, pc), err)
		}
	}
	if last := prog[n-1]; last.Op&0x07 != clsRET {
		return fmt.Errorf("filter: validate: program does not end in ret")
	}
	// Scratch memory: the set of words written on every path reaching pc.
	// Jumps only go forward, so one pass in order suffices.
	const all = uint16(1<<memWords - 1)
	known := make([]uint16, n+1)
	reached := make([]bool, n+1)
	for i := range known {
		known[i] = all
	}
	known[0], reached[0] = 0, true
	flow := func(to int, set uint16) {
		if !reached[to] {
			reached[to], known[to] = true, set
			return
		}
		known[to] &= set
	}
	for pc, in := range prog {
		if !reached[pc] {
			continue
		}
		set := known[pc]
		switch in.Op & 0x07 {
		case clsLD, clsLDX:
			if in.Op&0xe0 == mdMEM && set&(1<<in.K) == 0 {
				return fmt.Errorf("filter: validate: instruction %d (%s) reads scratch memory M[%d] that may be uninitialised", pc, disasmOne(in, pc), in.K)
			}
		case clsST, clsSTX:
			set |= 1 << in.K
		}
		switch in.Op & 0x07 {
		case clsRET:
		case clsJMP:
			if in.Op&0xf0 == jmpJA {
				flow(pc+1+int(in.K), set)
			} else {
				flow(pc+1+int(in.Jt), set)
				flow(pc+1+int(in.Jf), set)
			}
		default:
			flow(pc+1, set)
		}
	}
	return nil
}

func validateOne(prog []bpf.RawInstruction, pc int, in bpf.RawInstruction) error {
	n := len(prog)
	switch in.Op & 0x07 {
	case clsLD:
		switch in.Op & 0xe0 {
		case mdIMM, mdLEN:
			if in.Op&0x18 != szW {
				return fmt.Errorf("bad opcode %#x", in.Op)
			}
		case mdABS, mdIND:
			if in.Op&0x18 == 0x18 {
				return fmt.Errorf("bad size in opcode %#x", in.Op)
			}
			// The kernel refuses ancillary offsets it does not know.
			if in.Op&0xe0 == mdABS && in.K >= skfAdOff && (in.K-skfAdOff > 60 || in.K%4 != 0) {
				return fmt.Errorf("unknown ancillary load %#x", in.K)
			}
		case mdMEM:
			if in.Op&0x18 != szW {
				return fmt.Errorf("bad opcode %#x", in.Op)
			}
			if in.K >= memWords {
				return fmt.Errorf("scratch index %d out of range", in.K)
			}
		default:
			return fmt.Errorf("bad opcode %#x", in.Op)
		}
	case clsLDX:
		switch in.Op {
		case clsLDX | szW | mdIMM, clsLDX | szW | mdLEN, clsLDX | szB | mdMSH:
		case clsLDX | szW | mdMEM:
			if in.K >= memWords {
				return fmt.Errorf("scratch index %d out of range", in.K)
			}
		default:
			return fmt.Errorf("bad opcode %#x", in.Op)
		}
	case clsST, clsSTX:
		if in.Op&^0x07 != 0 {
			return fmt.Errorf("bad opcode %#x", in.Op)
		}
		if in.K >= memWords {
			return fmt.Errorf("scratch index %d out of range", in.K)
		}
	case clsALU:
		op := in.Op & 0xf0
		if in.Op&^0xf8 != clsALU || op > aluXOR {
			return fmt.Errorf("bad opcode %#x", in.Op)
		}
		if op == aluNEG {
			if in.Op&srcX != 0 {
				return fmt.Errorf("bad opcode %#x", in.Op)
			}
			break
		}
		if in.Op&srcX == 0 {
			if (op == aluDIV || op == aluMOD) && in.K == 0 {
				return fmt.Errorf("division by zero")
			}
			if (op == aluLSH || op == aluRSH) && in.K >= 32 {
				return fmt.Errorf("shift by %d", in.K)
			}
		}
	case clsJMP:
		op := in.Op & 0xf0
		if in.Op&^0xf8 != clsJMP || op > jmpJSET {
			return fmt.Errorf("bad opcode %#x", in.Op)
		}
		if op == jmpJA {
			if in.Op != clsJMP|jmpJA {
				return fmt.Errorf("bad opcode %#x", in.Op)
			}
			if uint64(pc)+1+uint64(in.K) >= uint64(n) {
				return fmt.Errorf("jump out of range")
			}
			break
		}
		if pc+1+int(in.Jt) >= n || pc+1+int(in.Jf) >= n {
			return fmt.Errorf("jump out of range")
		}
	case clsRET:
		switch in.Op {
		case clsRET | retK, clsRET | retA:
		default:
			return fmt.Errorf("bad opcode %#x", in.Op)
		}
	case clsMISC:
		if in.Op != clsMISC|miscTAX && in.Op != clsMISC|miscTXA {
			return fmt.Errorf("bad opcode %#x", in.Op)
		}
	}
	return nil
}
