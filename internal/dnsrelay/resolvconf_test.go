package dnsrelay

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func addrs(ss ...string) []netip.Addr {
	var out []netip.Addr
	for _, s := range ss {
		out = append(out, netip.MustParseAddr(s))
	}
	return out
}

func TestParseResolvConf(t *testing.T) {
	const systemd = `# This is /run/systemd/resolve/stub-resolv.conf managed by man:systemd-resolved(8).
nameserver 127.0.0.53
options edns0 trust-ad
search corp.example lab.example
`
	tests := []struct {
		name       string
		in         string
		want       ResolvConf
		needsRelay bool
	}{
		{"systemd-resolved stub", systemd, ResolvConf{
			Nameservers: addrs("127.0.0.53"),
			Search:      []string{"corp.example", "lab.example"},
			Options:     []string{"edns0", "trust-ad"},
		}, true},
		{"plain server", "nameserver 10.0.0.2\nnameserver 2001:db8::53\n", ResolvConf{
			Nameservers: addrs("10.0.0.2", "2001:db8::53"),
		}, false},
		{"ipv6 loopback", "nameserver ::1\n", ResolvConf{Nameservers: addrs("::1")}, true},
		{"link-local with zone", "nameserver fe80::1%eth0\n", ResolvConf{Nameservers: addrs("fe80::1%eth0")}, true},
		{"mixed: one unreachable is enough", "nameserver 10.0.0.2\nnameserver 127.0.0.1\n", ResolvConf{
			Nameservers: addrs("10.0.0.2", "127.0.0.1"),
		}, true},
		{"empty file means the local server", "# nothing here\n", ResolvConf{}, true},
		{"comments, junk and the last search wins", `
nameserver 10.1.1.1 # office
; old style comment
nameserver not-an-address
nameserver
search a.example
domain b.example
options ndots:2
options rotate
bogus line
`, ResolvConf{
			Nameservers: addrs("10.1.1.1"),
			Search:      []string{"b.example"},
			Options:     []string{"ndots:2", "rotate"},
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := ParseResolvConf([]byte(tc.in))
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("ParseResolvConf:\n got %+v\nwant %+v", got, tc.want)
			}
			if got.NeedsRelay() != tc.needsRelay {
				t.Fatalf("NeedsRelay() = %v, want %v", got.NeedsRelay(), tc.needsRelay)
			}
		})
	}
}

func TestUpstreams(t *testing.T) {
	got := ResolvConf{}.Upstreams()
	want := []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:53")}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("empty resolv.conf: Upstreams() = %v, want %v", got, want)
	}
	got = ParseResolvConf([]byte("nameserver 127.0.0.53\nnameserver ::1\n")).Upstreams()
	want = []netip.AddrPort{netip.MustParseAddrPort("127.0.0.53:53"), netip.MustParseAddrPort("[::1]:53")}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Upstreams() = %v, want %v", got, want)
	}
}

func TestChildResolvConf(t *testing.T) {
	host := ParseResolvConf([]byte("nameserver 127.0.0.53\noptions edns0 trust-ad\nsearch corp.example\n"))
	got := string(ChildResolvConf(host, "relayed to 127.0.0.53\nby nsntrace", netip.MustParseAddr("10.200.0.0")))
	want := "# Written by nsntrace for the traced program: relayed to 127.0.0.53 by nsntrace\n" +
		"nameserver 10.200.0.0\nsearch corp.example\noptions edns0 trust-ad\n"
	if got != want {
		t.Fatalf("ChildResolvConf:\n%s\nwant:\n%s", got, want)
	}
	// What we write must read back as what we meant.
	back := ParseResolvConf([]byte(got))
	if !reflect.DeepEqual(back.Nameservers, addrs("10.200.0.0")) || back.NeedsRelay() {
		t.Fatalf("re-parsed child resolv.conf = %+v", back)
	}

	pub := string(ChildResolvConf(ResolvConf{}, "", PublicResolvers...))
	for _, a := range []string{"9.9.9.9", "1.1.1.1", "8.8.8.8", "208.67.222.222"} {
		if !strings.Contains(pub, "nameserver "+a+"\n") {
			t.Errorf("public resolv.conf lacks %s:\n%s", a, pub)
		}
	}
	if strings.Contains(pub, "search") || strings.Contains(pub, "options") {
		t.Errorf("public resolv.conf has lines the host did not have:\n%s", pub)
	}
}

func FuzzParseResolvConf(f *testing.F) {
	f.Add([]byte("nameserver 127.0.0.53\noptions edns0\nsearch a b\n"))
	f.Add([]byte("nameserver fe80::1%eth0 # x\n;c\ndomain d\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		rc := ParseResolvConf(b)
		// Invariant: writing what we parsed and parsing it again is stable.
		out := ChildResolvConf(rc, "fuzz", rc.Nameservers...)
		back := ParseResolvConf(out)
		if len(back.Nameservers) != len(rc.Nameservers) {
			t.Fatalf("nameservers %v re-parsed as %v", rc.Nameservers, back.Nameservers)
		}
		for i := range back.Nameservers {
			if back.Nameservers[i] != rc.Nameservers[i] {
				t.Fatalf("nameservers %v re-parsed as %v", rc.Nameservers, back.Nameservers)
			}
		}
		if !reflect.DeepEqual(back.Search, rc.Search) && (len(back.Search) != 0 || len(rc.Search) != 0) {
			t.Fatalf("search %q re-parsed as %q", rc.Search, back.Search)
		}
	})
}
