package filter

import (
	"fmt"
	"strings"
	"testing"
)

func TestLex(t *testing.T) {
	tests := []struct {
		expr string
		want string // kind:text for each token
	}{
		{"tcp port 80", "kw:tcp kw:port num:80"},
		{"tcp[tcpflags] & tcp-syn != 0", "kw:tcp [ num:tcpflags ] & num:tcp-syn != num:0"},
		{"len-14 > 20", "id:len-14 > num:20"},
		{"len - 14 > 20", "kw:len - num:14 > num:20"},
		{"ip[2:2]", "kw:ip [ num:2 : num:2 ]"},
		{"host ::1", "kw:host hid6:::1"},
		{"net fe80::/10", "kw:net hid6:fe80:: / num:10"},
		{"ether host 1:2:3:4:5:6", "kw:ether kw:host eid:1:2:3:4:5:6"},
		{"ether host 0102.0304.0506", "kw:ether kw:host eid:0102.0304.0506"},
		{"net 10.1.2", "kw:net hid:10.1.2"},
		{"proto \\udp", "kw:proto id:udp"},
		{"a&&b||!c", "id:a and id:b or not id:c"},
		{"not tcp and udp or icmp", "not kw:tcp and kw:udp or kw:icmp"},
		{"1==1 and 2>=1 and 1<=2 and 1<<2 and 4>>1", "num:1 = num:1 and num:2 >= num:1 and num:1 <= num:2 and num:1 << num:2 and num:4 >> num:1"},
		{"port http-alt", "kw:port id:http-alt"},
		{"host www.example.test", "kw:host id:www.example.test"},
	}
	for _, tt := range tests {
		toks, err := lex(tt.expr)
		if err != nil {
			t.Errorf("lex(%q): %v", tt.expr, err)
			continue
		}
		var got []string
		for _, tok := range toks[:len(toks)-1] {
			got = append(got, tokDesc(tok))
		}
		if g := strings.Join(got, " "); g != tt.want {
			t.Errorf("lex(%q)\n got %s\nwant %s", tt.expr, g, tt.want)
		}
	}
}

func tokDesc(t token) string {
	switch t.kind {
	case tNum:
		return "num:" + t.text
	case tHID:
		return "hid:" + t.text
	case tHID6:
		return "hid6:" + t.text
	case tEID:
		return "eid:" + t.text
	case tID:
		return "id:" + t.text
	case tKw:
		return "kw:" + t.text
	case tAnd:
		return "and"
	case tOr:
		return "or"
	case tNot:
		return "not"
	case tEq:
		return "="
	}
	return t.text
}

func TestLexNumbers(t *testing.T) {
	for s, want := range map[string]uint32{"0": 0, "10": 10, "0x1f": 31, "0X10": 16, "010": 8, "4294967295": 0xffffffff, "tcp-ack": 0x10, "icmp6-echoreply": 129} {
		toks, err := lex(s)
		if err != nil || toks[0].kind != tNum || toks[0].num != want {
			t.Errorf("lex(%q) = %+v, %v; want number %d", s, toks, err, want)
		}
	}
	// Out of range or malformed numbers are not numbers.
	for _, s := range []string{"4294967296", "08", "0x"} {
		toks, err := lex(s)
		if err == nil && toks[0].kind == tNum {
			t.Errorf("lex(%q) = number %d, want no number", s, toks[0].num)
		}
	}
}

func TestLexErrors(t *testing.T) {
	for _, s := range []string{"tcp $", "host 1.2.3.4 # x", "\\", "port 80 @"} {
		if _, err := lex(s); err == nil {
			t.Errorf("lex(%q) succeeded, want error", s)
		} else if _, ok := err.(*SyntaxError); !ok {
			t.Errorf("lex(%q) error %T, want *SyntaxError", s, err)
		}
	}
}

func ExampleSyntaxError_Caret() {
	_, err := Compile("tcp or or udp", 0)
	if se, ok := err.(*SyntaxError); ok {
		fmt.Println(se.Error())
		fmt.Println(se.Caret())
	}
	// Output:
	// filter: syntax error: unexpected "or" (at offset 7)
	// tcp or or udp
	//        ^
}
