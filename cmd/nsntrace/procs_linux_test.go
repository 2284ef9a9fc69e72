//go:build linux

package main

import (
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestSocketInode(t *testing.T) {
	for _, c := range []struct {
		link  string
		inode uint32
		ok    bool
	}{
		{"socket:[7108494]", 7108494, true},
		{"socket:[4294967295]", 4294967295, true},
		{"socket:[4294967296]", 0, false},
		{"socket:[]", 0, false},
		{"socket:[12", 0, false},
		{"pipe:[12]", 0, false},
		{"/dev/null", 0, false},
		{"anon_inode:[eventfd]", 0, false},
	} {
		inode, ok := socketInode([]byte(c.link))
		if ok != c.ok || ok && inode != c.inode {
			t.Errorf("socketInode(%q) = %d, %v; want %d, %v", c.link, inode, ok, c.inode, c.ok)
		}
	}
}

func TestCmdlineText(t *testing.T) {
	long := strings.Repeat("x", maxCmdline-1) + "é" // the cut falls inside é
	for _, c := range []struct{ in, want string }{
		{"curl\x00-s\x00http://a/\x00", "curl -s http://a/"},
		{"", ""},
		{"\x00\x00", ""},
		{"sh\x00-c\x00a b\x00", "sh -c a b"}, // the spaces of an argument are not told apart
		{long + "\x00", strings.Repeat("x", maxCmdline-1) + "..."},
	} {
		if got := cmdlineText([]byte(c.in)); got != c.want {
			t.Errorf("cmdlineText(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

// FuzzSocketInode: any link text reads without panic, and what it reads
// as a socket is "socket:[digits]" holding that number; any bytes make a
// command line of valid UTF-8 within the bound.
func FuzzSocketInode(f *testing.F) {
	for _, s := range []string{"socket:[1]", "socket:[]", "pipe:[3]", "socket:[99999999999]"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got := cmdlineText(b); !utf8.ValidString(got) || len(got) > maxCmdline+len("...") {
			t.Fatalf("cmdlineText(%q) = %q", b, got)
		}
		inode, ok := socketInode(b)
		if !ok {
			return
		}
		s := string(b)
		digits, found := strings.CutPrefix(s, "socket:[")
		digits, closed := strings.CutSuffix(digits, "]")
		n, err := strconv.ParseUint(digits, 10, 32)
		if !found || !closed || err != nil || uint32(n) != inode {
			t.Fatalf("socketInode(%q) = %d", s, inode)
		}
	})
}
