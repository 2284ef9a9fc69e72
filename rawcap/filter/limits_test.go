package filter

import (
	"errors"
	"strings"
	"testing"
)

// TestLimits checks that expressions beyond MaxLen or MaxDepth are refused
// before parsing, with an error that says the limit, and that the largest
// allowed depth still compiles.
func TestLimits(t *testing.T) {
	nest := func(open, inner, close string, n int) string {
		return strings.Repeat(open, n) + inner + strings.Repeat(close, n)
	}
	tests := []struct {
		name, expr, want string
	}{
		{"parentheses", nest("(", "tcp", ")", 20000),
			`filter: parentheses and brackets nest more than 256 deep, the limit (at offset 256)`},
		{"id parentheses", "port " + nest("(", "80", ")", MaxDepth+1),
			`filter: parentheses and brackets nest more than 256 deep, the limit (at offset 261)`},
		{"brackets", nest("ip[", "0", "]", MaxDepth+1) + " = 1",
			`filter: parentheses and brackets nest more than 256 deep, the limit (at offset 770)`},
		{"length", strings.Repeat("tcp or ", 100<<10/7) + "tcp",
			`filter: expression too large: 102399 bytes, more than the limit of 65536`},
	}
	for _, tt := range tests {
		prog, err := Compile(tt.expr, 0)
		if !errors.Is(err, ErrTooLarge) || prog != nil {
			t.Errorf("%s: got %v, want ErrTooLarge", tt.name, err)
			continue
		}
		if err.Error() != tt.want {
			t.Errorf("%s:\n got %s\nwant %s", tt.name, err, tt.want)
		}
		if errors.Is(err, ErrUnsupported) || errors.Is(err, ErrRejectsAll) {
			t.Errorf("%s: %v matches the wrong sentinel", tt.name, err)
		}
	}

	if _, err := Compile(nest("(", "tcp", ")", MaxDepth), 0); err != nil {
		t.Errorf("depth %d: %v", MaxDepth, err)
	}
	// Closing groups frees depth: many groups side by side are fine.
	if _, err := Compile(strings.Repeat(nest("(", "tcp", ")", MaxDepth)+" or ", 3)+"udp", 0); err != nil {
		t.Errorf("groups side by side: %v", err)
	}
}

// TestUnexpectedRune checks that a non-ASCII character is named as itself,
// not as the Latin-1 reading of its first byte, and that the caret sits
// under the character even after other non-ASCII text.
func TestUnexpectedRune(t *testing.T) {
	tests := []struct{ expr, want, caret string }{
		{"host müller", `filter: syntax error: unexpected character 'ü' (at offset 6)`, "host müller\n      ^"},
		{"€", `filter: syntax error: unexpected character '€' (at offset 0)`, "€\n^"},
		{"tcp and \\ä $", `filter: syntax error: unexpected character '$' (at offset 12)`, "tcp and \\ä $\n           ^"},
	}
	for _, tt := range tests {
		_, err := Compile(tt.expr, 0)
		var se *SyntaxError
		if !errors.As(err, &se) {
			t.Errorf("Compile(%q) = %v, want *SyntaxError", tt.expr, err)
			continue
		}
		if err.Error() != tt.want {
			t.Errorf("Compile(%q)\n got %s\nwant %s", tt.expr, err, tt.want)
		}
		if se.Caret() != tt.caret {
			t.Errorf("Compile(%q) caret\n got %q\nwant %q", tt.expr, se.Caret(), tt.caret)
		}
	}
}

// BenchmarkCompileTooDeep shows that refusing a deeply nested expression
// costs a scan, not a parse.
func BenchmarkCompileTooDeep(b *testing.B) {
	expr := strings.Repeat("(", 20000) + "tcp" + strings.Repeat(")", 20000)
	for b.Loop() {
		if _, err := Compile(expr, 0); !errors.Is(err, ErrTooLarge) {
			b.Fatal(err)
		}
	}
}
