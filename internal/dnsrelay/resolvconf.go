package dnsrelay

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"strings"
)

// DefaultPort is the DNS port.
const DefaultPort = 53

// PublicResolvers are the nameservers the C nsntrace writes for
// --use-public-dns (Quad9, Cloudflare, Google, OpenDNS), kept for drop-in
// compatibility.
var PublicResolvers = []netip.Addr{
	netip.MustParseAddr("9.9.9.9"),
	netip.MustParseAddr("1.1.1.1"),
	netip.MustParseAddr("8.8.8.8"),
	netip.MustParseAddr("208.67.222.222"),
}

// ResolvConf is the part of a resolv.conf(5) that matters to a traced
// program's resolver.
type ResolvConf struct {
	// Nameservers in file order. Zones (fe80::1%eth0) are kept.
	Nameservers []netip.Addr
	// Search holds the last "search" or "domain" line's domains (the
	// resolver honours only the last one).
	Search []string
	// Options holds the words of every "options" line, in order.
	Options []string
}

// ParseResolvConf parses resolv.conf(5) content. It never fails: like the
// C library's resolver it skips lines it does not understand, including
// nameserver lines whose address does not parse.
func ParseResolvConf(b []byte) ResolvConf {
	var rc ResolvConf
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if i := strings.IndexAny(line, "#;"); i >= 0 {
			line = line[:i]
		}
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		switch f[0] {
		case "nameserver":
			if len(f) < 2 {
				continue
			}
			if a, err := netip.ParseAddr(f[1]); err == nil {
				rc.Nameservers = append(rc.Nameservers, a)
			}
		case "search", "domain":
			rc.Search = append([]string(nil), f[1:]...)
		case "options":
			rc.Options = append(rc.Options, f[1:]...)
		}
	}
	return rc
}

// Servers returns the nameservers the C library would query: the listed
// ones, or 127.0.0.1 when the file lists none (resolv.conf(5): "If no
// nameserver entries are present, the default is to use the name server on
// the local machine").
func (rc ResolvConf) Servers() []netip.Addr {
	if len(rc.Nameservers) == 0 {
		return []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	}
	return rc.Nameservers
}

// unreachable reports whether a nameserver address means nothing inside
// another network namespace: loopback is the namespace's own, and a
// link-local address needs an interface the namespace does not have.
func unreachable(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsLoopback() || a.IsLinkLocalUnicast() || a.IsUnspecified()
}

// NeedsRelay reports whether a program in its own network namespace could
// not reach some of the host's nameservers directly, so that nsntrace must
// relay DNS through the veth gateway.
func (rc ResolvConf) NeedsRelay() bool {
	for _, a := range rc.Servers() {
		if unreachable(a) {
			return true
		}
	}
	return false
}

// Upstreams returns the host's nameservers as relay targets (port 53).
func (rc ResolvConf) Upstreams() []netip.AddrPort {
	var out []netip.AddrPort
	for _, a := range rc.Servers() {
		out = append(out, netip.AddrPortFrom(a, DefaultPort))
	}
	return out
}

// ChildResolvConf returns the resolv.conf for the traced program: the given
// nameservers, with the host's search domains and options kept (so that
// short names and "options edns0" behave as on the host). why is written
// in a comment at the top.
func ChildResolvConf(host ResolvConf, why string, nameservers ...netip.Addr) []byte {
	var b bytes.Buffer
	b.WriteString("# Written by nsntrace for the traced program")
	if why != "" {
		b.WriteString(": ")
		b.WriteString(strings.ReplaceAll(why, "\n", " "))
	}
	b.WriteString("\n")
	for _, a := range nameservers {
		fmt.Fprintf(&b, "nameserver %s\n", a)
	}
	if len(host.Search) > 0 {
		fmt.Fprintf(&b, "search %s\n", strings.Join(host.Search, " "))
	}
	if len(host.Options) > 0 {
		fmt.Fprintf(&b, "options %s\n", strings.Join(host.Options, " "))
	}
	return b.Bytes()
}
