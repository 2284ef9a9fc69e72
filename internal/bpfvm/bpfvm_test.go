package bpfvm

import (
	"testing"

	"golang.org/x/net/bpf"
)

func asm(t *testing.T, ins ...bpf.Instruction) []bpf.RawInstruction {
	t.Helper()
	p, err := bpf.Assemble(ins)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestRun(t *testing.T) {
	pkt := []byte{0, 1, 2, 3, 0x45, 5, 6, 7}
	tests := []struct {
		name string
		prog []bpf.RawInstruction
		m    Meta
		want uint32
	}{
		{"ret k", asm(t, bpf.RetConstant{Val: 9}), Meta{}, 9},
		{"ld half, jeq", asm(t, bpf.LoadAbsolute{Off: 2, Size: 2}, bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0x0203, SkipFalse: 1}, bpf.RetConstant{Val: 1}, bpf.RetConstant{Val: 0}), Meta{}, 1},
		{"out of range rejects", asm(t, bpf.LoadAbsolute{Off: 6, Size: 4}, bpf.RetConstant{Val: 1}), Meta{}, 0},
		{"msh", asm(t, bpf.LoadMemShift{Off: 4}, bpf.TXA{}, bpf.RetA{}), Meta{}, 20},
		{"ind", asm(t, bpf.LoadConstant{Dst: bpf.RegX, Val: 1}, bpf.LoadIndirect{Off: 2, Size: 1}, bpf.RetA{}), Meta{}, 3},
		{"div by zero rejects", asm(t, bpf.LoadConstant{Dst: bpf.RegA, Val: 4}, bpf.ALUOpX{Op: bpf.ALUOpDiv}, bpf.RetConstant{Val: 1}), Meta{}, 0},
		{"scratch", asm(t, bpf.LoadConstant{Dst: bpf.RegA, Val: 7}, bpf.StoreScratch{Src: bpf.RegA, N: 3}, bpf.LoadConstant{Dst: bpf.RegA, Val: 0}, bpf.LoadScratch{Dst: bpf.RegA, N: 3}, bpf.RetA{}), Meta{}, 7},
		{"len", asm(t, bpf.LoadExtension{Num: bpf.ExtLen}, bpf.RetA{}), Meta{}, 8},
		{"pkttype", asm(t, bpf.LoadExtension{Num: bpf.ExtType}, bpf.RetA{}), Meta{PktType: 4}, 4},
		{"vlan present", asm(t, bpf.LoadExtension{Num: bpf.ExtVLANTagPresent}, bpf.RetA{}), Meta{VLANPresent: true}, 1},
		{"vlan tag", asm(t, bpf.LoadExtension{Num: bpf.ExtVLANTag}, bpf.RetA{}), Meta{VLANTCI: 100}, 100},
		{"falls off", []bpf.RawInstruction{{Op: 0x00, K: 1}}, Meta{}, 0},
	}
	for _, tc := range tests {
		if got := Run(tc.prog, pkt, tc.m); got != tc.want {
			t.Errorf("%s: Run = %d, want %d", tc.name, got, tc.want)
		}
	}
}
