package filter

import (
	"strings"
	"testing"

	"golang.org/x/net/bpf"
)

func TestValidate(t *testing.T) {
	r := func(op uint16, jt, jf uint8, k uint32) bpf.RawInstruction {
		return bpf.RawInstruction{Op: op, Jt: jt, Jf: jf, K: k}
	}
	ret := r(clsRET|retK, 0, 0, 1)
	bad := []struct {
		name string
		prog []bpf.RawInstruction
		want string
	}{
		{"empty", nil, "empty program"},
		{"no final ret", []bpf.RawInstruction{ret, r(clsLD|szW|mdIMM, 0, 0, 1)}, "does not end in ret"},
		{"jump past end", []bpf.RawInstruction{r(clsJMP|jmpJEQ, 1, 0, 0), ret}, "jump out of range"},
		{"ja past end", []bpf.RawInstruction{r(clsJMP|jmpJA, 0, 0, 1), ret}, "jump out of range"},
		{"huge ja", []bpf.RawInstruction{r(clsJMP|jmpJA, 0, 0, 0xffffffff), ret}, "jump out of range"},
		{"div by zero", []bpf.RawInstruction{r(clsALU|aluDIV|srcK, 0, 0, 0), ret}, "division by zero"},
		{"mod by zero", []bpf.RawInstruction{r(clsALU|aluMOD|srcK, 0, 0, 0), ret}, "division by zero"},
		{"shift 32", []bpf.RawInstruction{r(clsALU|aluLSH|srcK, 0, 0, 32), ret}, "shift by 32"},
		{"scratch index", []bpf.RawInstruction{r(clsST, 0, 0, 16), ret}, "out of range"},
		{"uninitialised scratch", []bpf.RawInstruction{r(clsLD|szW|mdMEM, 0, 0, 3), ret}, "M[3] that may be uninitialised"},
		{"scratch set on one path only", []bpf.RawInstruction{
			r(clsJMP|jmpJEQ, 0, 1, 0),
			r(clsST, 0, 0, 2),
			r(clsLDX|szW|mdMEM, 0, 0, 2),
			ret,
		}, "M[2] that may be uninitialised"},
		{"unknown ancillary", []bpf.RawInstruction{r(clsLD|szW|mdABS, 0, 0, skfAdOff+64), ret}, "unknown ancillary"},
		{"bad class bits", []bpf.RawInstruction{r(clsLD|0x18|mdABS, 0, 0, 0), ret}, "bad size"},
		{"bad ldx", []bpf.RawInstruction{r(clsLDX|szH|mdABS, 0, 0, 0), ret}, "bad opcode"},
		{"bad alu", []bpf.RawInstruction{r(clsALU|0xf0, 0, 0, 0), ret}, "bad opcode"},
		{"bad jump", []bpf.RawInstruction{r(clsJMP|0x50, 0, 0, 0), ret}, "bad opcode"},
		{"bad ret", []bpf.RawInstruction{r(clsRET|0x18, 0, 0, 0)}, "bad opcode"},
		{"too long", append(make([]bpf.RawInstruction, maxInsns), ret), "more than 4096"},
	}
	for _, tt := range bad {
		err := Validate(tt.prog)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: Validate = %v, want error containing %q", tt.name, err, tt.want)
		}
	}
	good := [][]bpf.RawInstruction{
		{ret},
		{r(clsLD|szW|mdIMM, 0, 0, 7), r(clsST, 0, 0, 15), r(clsLDX|szW|mdMEM, 0, 0, 15), r(clsRET|retA, 0, 0, 0)},
		{r(clsJMP|jmpJEQ, 0, 1, 0), r(clsST, 0, 0, 2), r(clsST, 0, 0, 2), r(clsLD|szW|mdMEM, 0, 0, 2), ret},
		{r(clsLD|szB|mdABS, 0, 0, skfAdVlanTagPresent), r(clsLD|szH|mdABS, 0, 0, skfAdPktType), ret},
		append(make([]bpf.RawInstruction, maxInsns-1), ret),
	}
	for i, prog := range good {
		if err := Validate(prog); err != nil {
			t.Errorf("good program %d: %v", i, err)
		}
	}
}
