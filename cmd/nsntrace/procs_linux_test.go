//go:build linux

package main

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/net/bpf"

	"github.com/nsntrace/nsntrace/internal/bpfvm"
	"github.com/nsntrace/nsntrace/internal/sockdiag"
	"github.com/nsntrace/nsntrace/internal/summary"
	"github.com/nsntrace/nsntrace/internal/testbed"
	"github.com/nsntrace/nsntrace/rawcap"
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

// TestShedBusyUDP: datagrams of known UDP conversations beyond
// udpRepeatLimit within udpWindow make the watcher shed UDP for udpShed,
// then take it back; a shed soon after the last lasts twice as long. Each
// swap goes through the kernel (rawcap's TestWatcherSetFilter shows the
// filters take effect).
func TestShedBusyUDP(t *testing.T) {
	p := watchingProcs(t)
	now := time.Now()
	burst := func(n int) {
		p.mu.Lock()
		defer p.mu.Unlock()
		for i := 0; i < n; i++ {
			now = now.Add(udpWindow / udpRepeatLimit / 2)
			p.repeated(&p.udpSeen, udpRepeatLimit, now)
		}
	}
	// A steady flow at half the limit never sheds.
	p.mu.Lock()
	for i := 0; i < 5*udpRepeatLimit; i++ {
		now = now.Add(2 * udpWindow / udpRepeatLimit)
		p.repeated(&p.udpSeen, udpRepeatLimit, now)
	}
	p.mu.Unlock()
	if p.sheds != 0 {
		t.Fatalf("a flow at half the limit shed UDP %d times", p.sheds)
	}
	burst(3 * udpRepeatLimit)
	if p.sheds != 1 || p.restore == nil || p.shed != udpShed {
		t.Fatalf("after a burst: %d sheds, shed %v, restore pending %v", p.sheds, p.shed, p.restore != nil)
	}
	burst(udpRepeatLimit) // the socket's queue draining: no second shed
	if p.sheds != 1 {
		t.Fatalf("shed again while shed: %d", p.sheds)
	}
	p.restore.Stop()
	p.unshed() // as the timer would
	if p.restore != nil || p.err != nil {
		t.Fatalf("unshed: restore pending %v, err %v", p.restore != nil, p.err)
	}
	now = p.shedEnd.Add(udpShed / 2)
	burst(3 * udpRepeatLimit)
	if p.sheds != 2 || p.shed != 2*udpShed {
		t.Fatalf("a shed right after the last: %d sheds, shed %v, want 2 and %v", p.sheds, p.shed, 2*udpShed)
	}
}

// TestShedBusyInbound: more than inboundRepeatLimit SYNs within
// udpWindow coming to a port whose listener's process is known make the
// watcher shed them; as many SYNs to a port not known, or exactly the
// limit, do not. The SYNs go through watched as the watcher hands them
// over (PACKET_OUTGOING on the host's end).
func TestShedBusyInbound(t *testing.T) {
	server := netip.MustParseAddrPort("10.0.0.2:80")
	nginx := summary.Process{Pid: 7, Comm: "nginx"}
	syn := func(port int) *rawcap.Packet {
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: layers.IPProtocolTCP, SrcIP: net.IPv4(10, 77, 0, 1), DstIP: server.Addr().AsSlice()}
		tcp := &layers.TCP{SrcPort: layers.TCPPort(port), DstPort: layers.TCPPort(server.Port()), SYN: true, Window: 1000}
		return &rawcap.Packet{Data: serialize(t, ip, tcp, layers.EthernetTypeIPv4), Type: rawcap.PacketOutgoing, Timestamp: time.Now().UnixNano()}
	}
	for _, c := range []struct {
		name  string
		known bool
		n     int
		sheds int
	}{
		{"known port, at the limit", true, inboundRepeatLimit, 0},
		{"known port, over the limit", true, inboundRepeatLimit + 1, 1},
		{"unknown port, over the limit", false, inboundRepeatLimit + 1, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := watchingProcs(t)
			p.known, p.served = map[connKey]answer{}, map[netip.AddrPort]described{}
			if c.known {
				p.served[server] = described{nginx, time.Now()}
			} else {
				p.budgetStart, p.lookups, p.spent = time.Now(), lookupFree, lookupBudget // no netlink
			}
			for i := 0; i < c.n; i++ {
				if err := p.watched(syn(40000 + i)); err != nil {
					t.Fatal(err)
				}
			}
			if !c.known {
				// Over budget, the watcher is quieted instead: count
				// what decides a shed, not the sheds.
				if p.inSeen.n != 0 {
					t.Fatalf("%d SYNs to a port not known: %d counted towards a shed", c.n, p.inSeen.n)
				}
				return
			}
			if p.sheds != c.sheds || (p.restore != nil) != (c.sheds > 0) {
				t.Fatalf("%d SYNs: %d sheds, restore pending %v, want %d", c.n, p.sheds, p.restore != nil, c.sheds)
			}
			k := connKey{summary.ProtoTCP, server, netip.MustParseAddrPort("10.77.0.1:40000"), true}
			if a := p.known[k]; !a.ok || a.p != nginx {
				t.Errorf("first SYN's answer %+v, want %+v", a, nginx)
			}
		})
	}
}

// TestLookupBudget: the first lookupFree lookups of a window always run;
// beyond them, once lookups have spent lookupBudget in the window, the
// rest of the window's connections are left unknown and the watcher is
// quieted; the next window has a budget again.
func TestLookupBudget(t *testing.T) {
	p := watchingProcs(t)
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if !p.withinBudget(now) {
		t.Fatal("no budget at the start")
	}
	p.spent = lookupBudget
	for i := 1; i < lookupFree; i++ {
		if !p.withinBudget(now.Add(time.Millisecond)) {
			t.Fatalf("lookup %d of the window refused: the first %d are free", i+1, lookupFree)
		}
	}
	if p.withinBudget(now.Add(lookupWindow/2)) || p.overBudget != 1 || p.sheds != 1 || p.restore == nil {
		t.Fatalf("over budget: a lookup allowed, or %d left out, %d sheds, restore pending %v", p.overBudget, p.sheds, p.restore != nil)
	}
	if !p.withinBudget(now.Add(2 * lookupWindow)) {
		t.Fatal("no budget in the next window")
	}
}

// watchingProcs is a procs with its filters and a watcher, bound to
// nothing, in a namespace of the test's own: what shedding works on.
func watchingProcs(t *testing.T) *procs {
	t.Helper()
	testbed.RequirePrivileged(t)
	f, err := testbed.NewNS(t).Open()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := &procs{}
	if err := p.compileFilters(); err != nil {
		t.Fatal(err)
	}
	if p.watch, err = rawcap.NewWatcher(&rawcap.Config{NetNS: int(f.Fd()), SnapLen: watchSnapLen, Filter: p.full}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// TestDescribeRecent: a process is described from /proc once, then from
// memory for describeTTL (so it is still named just after it exited, as
// the trade-off says), and read again after that.
func TestDescribeRecent(t *testing.T) {
	root, err := os.OpenRoot("/proc")
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	p := &procs{proc: root, descs: map[int]described{}}
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	// Between exec setting the new name and setting up the arguments,
	// /proc/PID/cmdline reads empty: wait for the arguments.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		if b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline"); len(b) > 0 {
			break
		}
	}
	now := time.Now()
	pr, ok := p.describeRecent(pid, now)
	if !ok || pr.Comm != "sleep" || pr.Cmdline != "sleep 60" || pr.Pid != pid {
		t.Fatalf("describeRecent(%d) = %+v, %v", pid, pr, ok)
	}
	cmd.Process.Kill()
	cmd.Wait()
	if pr, ok := p.describeRecent(pid, now.Add(describeTTL/2)); !ok || pr.Comm != "sleep" {
		t.Errorf("within describeTTL: %+v, %v, want the remembered sleep", pr, ok)
	}
	if pr, ok := p.describeRecent(pid, now.Add(describeTTL)); ok {
		t.Errorf("after describeTTL, of a process gone: %+v, want none", pr)
	}
	if _, ok := p.descs[pid]; ok {
		t.Errorf("a process gone is still remembered")
	}
}

// TestWatchFilters: each of the watcher's filters, run as the kernel
// would on the host's end of the veth (what the program sends is
// PACKET_HOST there, what it receives PACKET_OUTGOING), keeps the SYNs of
// either side over IPv4 and IPv6 and never another TCP segment, and UDP
// as the filter says. Frames come from gopacket.
func TestWatchFilters(t *testing.T) {
	p := &procs{}
	if err := p.compileFilters(); err != nil {
		t.Fatal(err)
	}
	type frame struct {
		name string
		data []byte
		// full, shed and quiet: kept by each filter, either way; but
		// shed keeps no SYN coming to the program.
		full, shed, quiet bool
	}
	v4 := func(l4 gopacket.SerializableLayer, proto layers.IPProtocol) []byte {
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, Protocol: proto, SrcIP: net.IPv4(10, 0, 0, 2), DstIP: net.IPv4(10, 0, 0, 1)}
		return serialize(t, ip, l4, layers.EthernetTypeIPv4)
	}
	v6 := func(l4 gopacket.SerializableLayer, proto layers.IPProtocol) []byte {
		ip := &layers.IPv6{Version: 6, HopLimit: 64, NextHeader: proto, SrcIP: net.ParseIP("fd00::2"), DstIP: net.ParseIP("fd00::1")}
		return serialize(t, ip, l4, layers.EthernetTypeIPv6)
	}
	tcp := func(syn, ack bool) *layers.TCP {
		return &layers.TCP{SrcPort: 40000, DstPort: 80, SYN: syn, ACK: ack, Window: 1000}
	}
	udp := func(port layers.UDPPort) *layers.UDP { return &layers.UDP{SrcPort: 40000, DstPort: port} }
	frames := []frame{
		{"IPv4 SYN", v4(tcp(true, false), layers.IPProtocolTCP), true, true, false},
		{"IPv6 SYN", v6(tcp(true, false), layers.IPProtocolTCP), true, true, false},
		{"IPv4 SYN-ACK", v4(tcp(true, true), layers.IPProtocolTCP), false, false, false},
		{"IPv6 SYN-ACK", v6(tcp(true, true), layers.IPProtocolTCP), false, false, false},
		{"IPv4 ACK", v4(tcp(false, true), layers.IPProtocolTCP), false, false, false},
		{"IPv6 ACK", v6(tcp(false, true), layers.IPProtocolTCP), false, false, false},
		{"IPv4 UDP", v4(udp(9), layers.IPProtocolUDP), true, false, false},
		{"IPv6 UDP", v6(udp(9), layers.IPProtocolUDP), true, false, false},
		{"IPv4 DNS", v4(udp(53), layers.IPProtocolUDP), true, true, true},
		{"IPv6 DNS", v6(udp(53), layers.IPProtocolUDP), true, true, true},
	}
	for _, f := range frames {
		for _, pt := range []rawcap.PacketType{rawcap.PacketHost, rawcap.PacketOutgoing} {
			m := bpfvm.Meta{PktType: uint32(pt), Protocol: binary.BigEndian.Uint16(f.data[12:])}
			sent := pt == rawcap.PacketHost
			for _, c := range []struct {
				name string
				prog []bpf.RawInstruction
				want bool
			}{{"full", p.full, f.full}, {"shed", p.shedProg, f.shed}, {"quiet", p.quietProg, f.quiet}} {
				want := c.want
				if c.name == "shed" && strings.Contains(f.name, "SYN") && !sent {
					want = false
				}
				if got := bpfvm.Run(c.prog, f.data, m) != 0; got != want {
					t.Errorf("%s filter, %s, sent by the program %v: kept %v, want %v", c.name, f.name, sent, got, want)
				}
			}
		}
	}
}

// serialize is an Ethernet frame of ip and l4, with checksums and lengths.
func serialize(t *testing.T, ip gopacket.NetworkLayer, l4 gopacket.SerializableLayer, et layers.EthernetType) []byte {
	t.Helper()
	if c, ok := l4.(interface {
		SetNetworkLayerForChecksum(gopacket.NetworkLayer) error
	}); ok {
		c.SetNetworkLayerForChecksum(ip)
	}
	eth := &layers.Ethernet{SrcMAC: net.HardwareAddr{2, 0, 0, 0, 0, 2}, DstMAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, EthernetType: et}
	buf := gopacket.NewSerializeBuffer()
	err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true},
		eth, ip.(gopacket.SerializableLayer), l4, gopacket.Payload("x"))
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestServedRemembered: an inbound TCP connection to an address and port
// whose listener's process a lookup found within describeTTL gets that
// process without asking the kernel again; after describeTTL, or for an
// outbound connection from the same address, the kernel is asked (here
// the budget is spent, so the answer is unknown rather than a netlink
// round trip).
func TestServedRemembered(t *testing.T) {
	local := netip.MustParseAddrPort("10.0.0.2:80")
	remote := netip.MustParseAddrPort("10.0.0.1:40000")
	nginx := summary.Process{Pid: 7, Comm: "nginx", Cmdline: "nginx: worker process"}
	now := time.Now()
	p := &procs{served: map[netip.AddrPort]described{local: {nginx, now}}}
	spend := func() { p.budgetStart, p.lookups, p.spent = time.Now(), lookupFree, lookupBudget }
	spend()
	in := connKey{summary.ProtoTCP, local, remote, true}
	if a := p.lookup(in); !a.ok || a.p != nginx {
		t.Errorf("inbound within describeTTL: %+v, want %+v", a, nginx)
	}
	for _, k := range []connKey{{summary.ProtoTCP, local, remote, false}, {summary.ProtoUDP, local, remote, true}} {
		spend()
		if a := p.lookup(k); a.ok {
			t.Errorf("%+v: %+v from what an inbound TCP lookup found", k, a)
		}
	}
	p.served[local] = described{nginx, now.Add(-describeTTL)}
	spend()
	if a := p.lookup(in); a.ok {
		t.Errorf("inbound after describeTTL: %+v, want the kernel asked", a)
	}
}

// TestLookupLater: a connection made just after a scan, while the next
// scan is not yet due (a scan took long: a loaded machine), is looked up
// again once it is, and named; it was left unknown for good before, which
// lost curl's connection when curl and wget connected at once under load.
func TestLookupLater(t *testing.T) {
	testbed.RequirePrivileged(t)
	ns := testbed.NewNS(t)
	var closers []net.Conn
	t.Cleanup(func() {
		for _, c := range closers {
			c.Close()
		}
	})
	var ln net.Listener
	dial := func() connKey {
		t.Helper()
		var k connKey
		if err := ns.Do(func() error {
			if ln == nil {
				var err error
				if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
					return err
				}
				t.Cleanup(func() { ln.Close() })
			}
			c, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				return err
			}
			closers = append(closers, c)
			k = connKey{summary.ProtoTCP, c.LocalAddr().(*net.TCPAddr).AddrPort(), c.RemoteAddr().(*net.TCPAddr).AddrPort(), false}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return k
	}
	f, err := ns.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	diag, err := sockdiag.Open(int(f.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	root, err := os.OpenRoot("/proc")
	if err != nil {
		t.Fatal(err)
	}
	p := &procs{diag: diag, proc: root, owners: map[uint32]int{}, known: map[connKey]answer{}, descs: map[int]described{}, served: map[netip.AddrPort]described{}}
	t.Cleanup(func() { p.Close() })
	me := os.Getpid()
	p.mu.Lock()
	first := p.lookup(dial())
	p.mu.Unlock()
	if !first.ok || first.p.Pid != me {
		t.Fatalf("first connection: %+v, want pid %d (a scan)", first, me)
	}
	second := dial()
	p.mu.Lock()
	p.scanned, p.scanCost = time.Now(), 20*time.Millisecond // the next scan due in 80 ms
	a := p.lookup(second)
	p.remember(second, a)
	p.mu.Unlock()
	if !a.later {
		t.Fatalf("second connection, before the next scan is due: %+v, want an answer later", a)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		p.mu.Lock()
		a = p.known[second]
		p.mu.Unlock()
		if a.ok || time.Now().After(deadline) {
			break
		}
	}
	if !a.ok || a.p.Pid != me {
		t.Fatalf("second connection, once the scan was due: %+v, want pid %d", a, me)
	}
}
