//go:build linux

package sockdiag

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/nsntrace/nsntrace/internal/testbed"
)

// inodeOf is the independent oracle: the inode /proc/self/fd shows for
// the socket of c ("socket:[N]").
func inodeOf(t *testing.T, c syscall.Conn) uint32 {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var link string
	var lerr error
	if err := rc.Control(func(fd uintptr) {
		link, lerr = os.Readlink(fmt.Sprintf("/proc/self/fd/%d", fd))
	}); err != nil {
		t.Fatal(err)
	}
	if lerr != nil {
		t.Fatal(lerr)
	}
	s, ok := strings.CutPrefix(link, "socket:[")
	if !ok || !strings.HasSuffix(s, "]") {
		t.Fatalf("fd link %q is no socket", link)
	}
	n, err := strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 32)
	if err != nil {
		t.Fatal(err)
	}
	return uint32(n)
}

func addrPort(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case *net.TCPAddr:
		return a.AddrPort()
	case *net.UDPAddr:
		return a.AddrPort()
	}
	panic(fmt.Sprintf("address %v", a))
}

// TestLookup makes sockets in a network namespace of its own, and finds
// each one's inode by the connection's two ends, as /proc/self/fd shows
// it: both ends of a TCP connection (IPv4 and IPv6), the listener for a
// SYN from an unknown client (bound to an address or to the wildcard, IPv4
// or dual-stack IPv6), the listener by Listener while it has accepted a
// connection, a connected and an unconnected UDP socket; and nothing for
// a port nobody has, or for a socket in another namespace.
func TestLookup(t *testing.T) {
	ns := testbed.NewNS(t)
	type conns struct {
		closers []interface{ Close() error }
	}
	var cs conns
	t.Cleanup(func() {
		for _, c := range cs.closers {
			c.Close()
		}
	})
	type want struct {
		name          string
		proto         uint8
		local, remote netip.AddrPort
		inode         uint32 // 0: none
	}
	var wants []want
	err := ns.Do(func() error {
		for _, lo := range []string{"127.0.0.1", "[::1]"} {
			ln, err := net.Listen("tcp", lo+":0")
			if err != nil {
				return err
			}
			cs.closers = append(cs.closers, ln)
			cl, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				return err
			}
			cs.closers = append(cs.closers, cl)
			sv, err := ln.Accept()
			if err != nil {
				return err
			}
			cs.closers = append(cs.closers, sv)
			la, ca := addrPort(ln.Addr()), addrPort(cl.LocalAddr())
			stranger := netip.AddrPortFrom(ca.Addr(), 1)
			wants = append(wants,
				want{"tcp client " + lo, ProtoTCP, ca, la, inodeOf(t, cl.(*net.TCPConn))},
				want{"tcp accepted " + lo, ProtoTCP, la, ca, inodeOf(t, sv.(*net.TCPConn))},
				want{"tcp listener " + lo, ProtoTCP, la, stranger, inodeOf(t, ln.(*net.TCPListener))},
				want{"tcp nobody " + lo, ProtoTCP, netip.AddrPortFrom(la.Addr(), 1), ca, 0},
			)
		}
		// Wildcard listeners: IPv4 only, and Go's dual-stack [::]
		// (found by the IPv4 lookup too, as an IPv4 SYN finds it).
		for _, wild := range []string{"0.0.0.0:0", "[::]:0"} {
			network := map[string]string{"0.0.0.0:0": "tcp4", "[::]:0": "tcp"}[wild]
			ln, err := net.Listen(network, wild)
			if err != nil {
				return err
			}
			cs.closers = append(cs.closers, ln)
			port := addrPort(ln.Addr()).Port()
			wants = append(wants, want{"tcp wildcard listener " + wild, ProtoTCP,
				netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port), netip.MustParseAddrPort("127.0.0.2:40000"),
				inodeOf(t, ln.(*net.TCPListener))})
		}
		un, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
		if err != nil {
			return err
		}
		cs.closers = append(cs.closers, un)
		cn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(addrPort(un.LocalAddr())))
		if err != nil {
			return err
		}
		cs.closers = append(cs.closers, cn)
		ua, ca := addrPort(un.LocalAddr()), addrPort(cn.LocalAddr())
		wants = append(wants,
			want{"udp connected", ProtoUDP, ca, ua, inodeOf(t, cn)},
			want{"udp unconnected", ProtoUDP, ua, netip.MustParseAddrPort("127.0.0.9:53"), inodeOf(t, un)},
			want{"udp nobody", ProtoUDP, netip.AddrPortFrom(ua.Addr(), 1), ca, 0},
		)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	f, err := ns.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := Open(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The same sockets from the caller's namespace: none of them.
	here, err := Open(0)
	if err != nil {
		t.Fatal(err)
	}
	defer here.Close()
	for _, w := range wants {
		inode, ok, err := c.Lookup(w.proto, w.local, w.remote)
		if err != nil {
			t.Errorf("%s: %v", w.name, err)
			continue
		}
		if ok != (w.inode != 0) || inode != w.inode {
			t.Errorf("%s: Lookup(%v, %v) = %d, %v; /proc/self/fd says %d", w.name, w.local, w.remote, inode, ok, w.inode)
		}
		if w.inode == 0 || w.local.Port() == 0 {
			continue
		}
		if inode, ok, _ := here.Lookup(w.proto, w.local, w.remote); ok && inode == w.inode {
			t.Errorf("%s: found from another namespace", w.name)
		}
	}
	// The listener, also for a connection it accepted and that is still
	// there: what an inbound SYN reached.
	for _, w := range wants {
		if !strings.HasPrefix(w.name, "tcp listener") {
			continue
		}
		inode, ok, err := c.Listener(w.local)
		if err != nil || !ok || inode != w.inode {
			t.Errorf("Listener(%v) = %d, %v, %v; /proc/self/fd says %d", w.local, inode, ok, err, w.inode)
		}
	}
	if inode, ok, err := c.Listener(netip.MustParseAddrPort("127.0.0.1:1")); ok || err != nil {
		t.Errorf("Listener on a port nobody listens on: %d, %v, %v", inode, ok, err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.Lookup(ProtoTCP, wants[0].local, wants[0].remote); err == nil {
		t.Error("Lookup after Close: no error")
	}
}

// BenchmarkLookup is the kernel's share of what a new connection costs
// the trace: one exact request and its answer, for a connected TCP socket
// in a namespace of its own.
func BenchmarkLookup(b *testing.B) {
	ns := testbed.NewNS(b)
	var local, remote netip.AddrPort
	var closers []interface{ Close() error }
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	if err := ns.Do(func() error {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			return err
		}
		closers = append(closers, ln)
		c, err := net.Dial("tcp4", ln.Addr().String())
		if err != nil {
			return err
		}
		closers = append(closers, c)
		local, remote = addrPort(c.LocalAddr()), addrPort(c.RemoteAddr())
		return nil
	}); err != nil {
		b.Fatal(err)
	}
	f, err := ns.Open()
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	c, err := Open(int(f.Fd()))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	for b.Loop() {
		if _, ok, err := c.Lookup(ProtoTCP, local, remote); !ok || err != nil {
			b.Fatalf("lookup: %v %v", ok, err)
		}
	}
}
