package filter_test

// The differential test: libpcap (tcpdump -ddd) and our compiler must
// accept and reject exactly the same packets, for every expression of
// testdata/diff/expressions.txt over a deterministic corpus of crafted
// packets, both programs run by internal/bpfvm with the kernel's semantics.

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/gopacket/gopacket"
	"github.com/gopacket/gopacket/layers"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/nsntrace/nsntrace/internal/bpfvm"
	"github.com/nsntrace/nsntrace/internal/testbed"
	"github.com/nsntrace/nsntrace/rawcap/filter"
)

// diffPacket is a frame as an AF_PACKET socket filter sees it: for a tagged
// frame on a live socket the kernel has stripped the outer tag into
// metadata (vlanp, tci).
type diffPacket struct {
	data    []byte
	vlanp   bool
	tci     uint16
	pkttype uint32
	desc    string
}

func (p diffPacket) meta() bpfvm.Meta {
	return bpfvm.Meta{PktType: p.pkttype, VLANPresent: p.vlanp, VLANTCI: p.tci}
}

// libpcap returns tcpdump's program for expr; optimised unless noOpt. For
// vlan expressions only a live handle gives the code a Linux socket runs
// (test the stripped tag first), so those are compiled against lo of a
// fresh network namespace (unshare -n): tcpdump -d opens the device but
// captures nothing.
func libpcap(t *testing.T, expr string, noOpt bool) ([]bpf.RawInstruction, error) {
	args := []string{"-ddd", "-y", "EN10MB", "--", expr}
	live := needsLive(expr)
	if live {
		args = []string{"-ddd", "-i", "lo", "--", expr}
	}
	if noOpt {
		args = append([]string{"-O"}, args...)
	}
	newCmd := func() *exec.Cmd { return exec.Command("tcpdump", args...) }
	if live {
		q := make([]string, len(args))
		for i, a := range args {
			q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
		}
		newCmd = func() *exec.Cmd {
			return exec.Command("unshare", "-n", "sh", "-c", "ip link set lo up && exec tcpdump "+strings.Join(q, " "))
		}
	}
	out, stderr, err := testbed.Output(t, newCmd)
	if err != nil {
		return nil, fmt.Errorf("%v: %s", err, strings.TrimSpace(string(stderr)))
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	var prog []bpf.RawInstruction
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != 4 {
			return nil, fmt.Errorf("tcpdump -ddd: odd line %q", l)
		}
		op, _ := strconv.ParseUint(f[0], 10, 16)
		jt, _ := strconv.ParseUint(f[1], 10, 8)
		jf, _ := strconv.ParseUint(f[2], 10, 8)
		k, _ := strconv.ParseUint(f[3], 10, 32)
		prog = append(prog, bpf.RawInstruction{Op: uint16(op), Jt: uint8(jt), Jf: uint8(jf), K: uint32(k)})
	}
	return prog, nil
}

// needsLive reports whether libpcap's program for expr must come from a
// live handle (see libpcap).
func needsLive(expr string) bool { return strings.Contains(expr, "vlan") }

func readExpressions(t *testing.T) []string {
	f, err := os.Open("testdata/diff/expressions.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

func TestDifferentialLibpcap(t *testing.T) {
	// The vlan expressions need a live handle in a fresh namespace
	// (unshare -n, root). Emulated (make test-cpus), the test creates no
	// namespace: it compares the others, tcpdump itself being a native
	// program, and leaves the vlan ones to the native run.
	emulated := testbed.Emulated() != ""
	if !emulated {
		testbed.RequirePrivileged(t)
		testbed.RequireTool(t, "unshare")
	}
	testbed.RequireTool(t, "tcpdump")
	exprs := readExpressions(t)
	if emulated {
		all := len(exprs)
		exprs = slices.DeleteFunc(exprs, needsLive)
		t.Logf("emulated (%s): %d vlan expressions left to the native run", testbed.Emulated(), all-len(exprs))
	}
	ps := diffCorpus()
	if len(exprs) < 150 || len(ps) < 150 {
		t.Fatalf("corpus too small: %d expressions, %d packets", len(exprs), len(ps))
	}
	type ref struct {
		opt, noOpt       []bpf.RawInstruction
		optErr, noOptErr error
	}
	refs := make([]ref, len(exprs))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i, e := range exprs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			refs[i].opt, refs[i].optErr = libpcap(t, e, false)
			refs[i].noOpt, refs[i].noOptErr = libpcap(t, e, true)
		}()
	}
	wg.Wait()
	compared, refused, pairs := 0, 0, 0
	for i, e := range exprs {
		r := refs[i]
		ours, err := filter.Compile(e, 262144)
		libOK := r.optErr == nil || r.noOptErr == nil
		switch {
		case err != nil && !libOK:
			continue // both refuse
		case err != nil && errors.Is(err, filter.ErrRejectsAll):
			// libpcap compiles it; its program must indeed reject all.
			prog := r.opt
			if prog == nil {
				prog = r.noOpt
			}
			for _, p := range ps {
				if bpfvm.Run(prog, p.data, p.meta()) != 0 {
					t.Errorf("%q: we refuse it as matching nothing, but libpcap's program accepts %s % x", e, p.desc, p.data)
					break
				}
			}
			refused++
			continue
		case err != nil && errors.Is(err, filter.ErrUnsupported):
			refused++ // deliberately refused, never approximated
			continue
		case err != nil:
			t.Errorf("%q: libpcap compiles it, we fail: %v", e, err)
			continue
		case !libOK:
			t.Errorf("%q: libpcap refuses it (%v), we compile it", e, r.optErr)
			continue
		}
		if verr := filter.Validate(ours); verr != nil {
			t.Errorf("%q: our program fails Validate: %v", e, verr)
		}
		compared++
		bad := 0
		for _, p := range ps {
			pairs++
			m := p.meta()
			got := bpfvm.Run(ours, p.data, m) != 0
			// libpcap's optimiser and its unoptimised code disagree on some
			// truncated frames (it drops or reorders loads that can only
			// reject); we match libpcap when we agree with either.
			agree := false
			for _, prog := range [][]bpf.RawInstruction{r.opt, r.noOpt} {
				if prog != nil && (bpfvm.Run(prog, p.data, m) != 0) == got {
					agree = true
				}
			}
			if !agree {
				if bad < 3 {
					t.Errorf("%q on %s (len %d, vlan %v/%d, type %d): ours %v, libpcap %v\n% x", e, p.desc, len(p.data), p.vlanp, p.tci, p.pkttype, got, !got, p.data)
				}
				bad++
			}
		}
	}
	t.Logf("%d expressions (%d compared, %d refused by design), %d packets, %d pairs", len(exprs), compared, refused, len(ps), pairs)
	if compared < 150 {
		t.Errorf("only %d expressions compared, want at least 150", compared)
	}
}

func diffSer(ls ...gopacket.SerializableLayer) []byte {
	buf := gopacket.NewSerializeBuffer()
	if err := gopacket.SerializeLayers(buf, gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: false}, ls...); err != nil {
		panic(err)
	}
	return append([]byte(nil), buf.Bytes()...)
}

var diffMacA = net.HardwareAddr{1, 2, 3, 4, 5, 6}
var diffMacB = net.HardwareAddr{0x0a, 0, 0, 0, 0, 0x0b}
var diffBcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
var diffMcast = net.HardwareAddr{0x01, 0, 0x5e, 0, 0, 1}

func diffCorpus() []diffPacket {
	var ps []diffPacket
	add := func(desc string, b []byte) { ps = append(ps, diffPacket{data: b, desc: desc}) }
	v4 := []net.IP{net.IPv4(1, 2, 3, 4), net.IPv4(10, 0, 0, 1), net.IPv4(192, 168, 1, 1), net.IPv4(255, 255, 255, 255), net.IPv4(224, 0, 0, 1), net.IPv4(10, 1, 2, 3), net.IPv4(0, 0, 0, 0), net.IPv4(127, 0, 0, 1), net.IPv4(0, 0, 0, 80)}
	v6 := []net.IP{net.ParseIP("fe80::1"), net.ParseIP("::1"), net.ParseIP("2001:db8::5"), net.ParseIP("ff02::1")}
	ports := []uint16{80, 443, 53, 10, 15, 20, 21, 22, 8080, 65535, 0}
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 60; i++ {
		src, dst := v4[r.Intn(len(v4))], v4[r.Intn(len(v4))]
		eth := &layers.Ethernet{SrcMAC: diffMacA, DstMAC: diffMacB, EthernetType: layers.EthernetTypeIPv4}
		switch r.Intn(4) {
		case 0:
			eth.DstMAC = diffBcast
		case 1:
			eth.DstMAC = diffMcast
		case 2:
			eth.SrcMAC, eth.DstMAC = diffMacB, diffMacA
		}
		ip := &layers.IPv4{Version: 4, IHL: 5, TTL: 64, SrcIP: src, DstIP: dst}
		if r.Intn(3) == 0 {
			ip.Options = []layers.IPv4Option{{OptionType: 1}, {OptionType: 1}, {OptionType: 1}, {OptionType: 0}}
		}
		if r.Intn(5) == 0 {
			ip.FragOffset = uint16(r.Intn(3))
			ip.Flags = layers.IPv4MoreFragments
		}
		sp, dp := ports[r.Intn(len(ports))], ports[r.Intn(len(ports))]
		var b []byte
		switch r.Intn(6) {
		case 0, 1:
			ip.Protocol = layers.IPProtocolTCP
			t := &layers.TCP{SrcPort: layers.TCPPort(sp), DstPort: layers.TCPPort(dp), DataOffset: 5, Window: 100}
			t.SYN = r.Intn(2) == 0
			t.ACK = r.Intn(2) == 0
			t.FIN = r.Intn(4) == 0
			t.RST = r.Intn(4) == 0
			t.PSH = r.Intn(3) == 0
			t.URG = r.Intn(5) == 0
			t.ECE = r.Intn(5) == 0
			t.CWR = r.Intn(5) == 0
			b = diffSer(eth, ip, t, gopacket.Payload([]byte("hello")))
		case 2:
			ip.Protocol = layers.IPProtocolUDP
			b = diffSer(eth, ip, &layers.UDP{SrcPort: layers.UDPPort(sp), DstPort: layers.UDPPort(dp)}, gopacket.Payload([]byte("xyzw")))
		case 3:
			ip.Protocol = layers.IPProtocolSCTP
			b = diffSer(eth, ip, gopacket.Payload([]byte{byte(sp >> 8), byte(sp), byte(dp >> 8), byte(dp), 0, 0, 0, 0, 0, 0, 0, 0}))
		case 4:
			ip.Protocol = layers.IPProtocolICMPv4
			b = diffSer(eth, ip, &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(uint8([]int{0, 3, 8, 11}[r.Intn(4)]), 0)}, gopacket.Payload([]byte("ping")))
		case 5:
			ip.Protocol = layers.IPProtocolIGMP
			b = diffSer(eth, ip, gopacket.Payload([]byte{0x11, 0, 0, 0, 224, 0, 0, 1}))
		}
		add("v4", b)
	}
	for i := 0; i < 40; i++ {
		src, dst := v6[r.Intn(len(v6))], v6[r.Intn(len(v6))]
		eth := &layers.Ethernet{SrcMAC: diffMacA, DstMAC: diffMacB, EthernetType: layers.EthernetTypeIPv6}
		if r.Intn(3) == 0 {
			eth.DstMAC = net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}
		}
		ip := &layers.IPv6{Version: 6, HopLimit: 64, SrcIP: src, DstIP: dst}
		sp, dp := ports[r.Intn(len(ports))], ports[r.Intn(len(ports))]
		var l4 []gopacket.SerializableLayer
		var nh layers.IPProtocol
		switch r.Intn(4) {
		case 0:
			nh = layers.IPProtocolTCP
			l4 = []gopacket.SerializableLayer{&layers.TCP{SrcPort: layers.TCPPort(sp), DstPort: layers.TCPPort(dp), DataOffset: 5, SYN: true}}
		case 1:
			nh = layers.IPProtocolUDP
			l4 = []gopacket.SerializableLayer{&layers.UDP{SrcPort: layers.UDPPort(sp), DstPort: layers.UDPPort(dp)}}
		case 2:
			nh = layers.IPProtocolICMPv6
			l4 = []gopacket.SerializableLayer{gopacket.Payload([]byte{byte([]int{128, 129, 135, 1}[r.Intn(4)]), 0, 0, 0, 1, 2, 3, 4})}
		case 3:
			nh = layers.IPProtocolSCTP
			l4 = []gopacket.SerializableLayer{gopacket.Payload([]byte{byte(sp >> 8), byte(sp), byte(dp >> 8), byte(dp), 0, 0, 0, 0, 0, 0, 0, 0})}
		}
		var b []byte
		switch r.Intn(3) {
		case 0:
			ip.NextHeader = nh
			b = diffSer(append([]gopacket.SerializableLayer{eth, ip}, l4...)...)
		case 1: // fragment header
			ip.NextHeader = layers.IPProtocolIPv6Fragment
			off := uint16(0)
			if r.Intn(2) == 0 {
				off = 8
			}
			frag := gopacket.Payload([]byte{byte(nh), 0, byte(off >> 8), byte(off) | 1, 0, 0, 0, 1})
			b = diffSer(append([]gopacket.SerializableLayer{eth, ip, frag}, l4...)...)
		case 2: // hop-by-hop
			ip.NextHeader = layers.IPProtocolIPv6HopByHop
			hbh := gopacket.Payload([]byte{byte(nh), 0, 1, 4, 0, 0, 0, 0})
			b = diffSer(append([]gopacket.SerializableLayer{eth, ip, hbh}, l4...)...)
		}
		add("v6", b)
	}
	for i := 0; i < 10; i++ {
		op := uint16(1 + r.Intn(2))
		et := layers.EthernetTypeARP
		if r.Intn(2) == 0 {
			et = layers.EthernetType(0x8035)
		}
		arp := &layers.ARP{AddrType: 1, Protocol: 0x800, HwAddressSize: 6, ProtAddressSize: 4, Operation: op,
			SourceHwAddress: diffMacA, SourceProtAddress: v4[r.Intn(len(v4))].To4(), DstHwAddress: diffMacB, DstProtAddress: v4[r.Intn(len(v4))].To4()}
		b := diffSer(&layers.Ethernet{SrcMAC: diffMacA, DstMAC: diffBcast, EthernetType: et}, arp)
		add("arp", b)
	}
	// 802.3 / LLC
	add("llc", append([]byte{1, 2, 3, 4, 5, 6, 0xa, 0, 0, 0, 0, 0xb, 0, 40, 0x42, 0x42, 3}, make([]byte, 40)...))
	add("llc-ipx", append([]byte{1, 2, 3, 4, 5, 6, 0xa, 0, 0, 0, 0, 0xb, 0, 40, 0xe0, 0xe0, 3}, make([]byte, 40)...))
	add("llc-ip", append([]byte{1, 2, 3, 4, 5, 6, 0xa, 0, 0, 0, 0, 0xb, 0, 40, 0x06, 0x06, 3}, make([]byte, 40)...))
	add("snap-atalk", append([]byte{1, 2, 3, 4, 5, 6, 0xa, 0, 0, 0, 0, 0xb, 0, 40, 0xaa, 0xaa, 3, 8, 0, 7, 0x80, 0x9b}, make([]byte, 40)...))
	n := len(ps)
	// VLAN: inline tagged and stripped variants, QinQ
	for i := 0; i < n; i += 3 {
		base := ps[i].data
		vid := uint16([]int{10, 20, 100, 4095}[r.Intn(4)])
		tag := []byte{0x81, 0x00, byte(vid >> 8), byte(vid)}
		inl := append(append(append([]byte(nil), base[:12]...), tag...), base[12:]...)
		ps = append(ps, diffPacket{data: inl, desc: "vlan-inline"})
		ps = append(ps, diffPacket{data: base, vlanp: true, tci: vid | 0x2000, desc: "vlan-stripped"})
		if i%2 == 0 {
			vid2 := uint16([]int{10, 20, 30}[r.Intn(3)])
			tag2 := []byte{0x81, 0x00, byte(vid2 >> 8), byte(vid2)}
			qinq := append(append(append([]byte(nil), base[:12]...), tag2...), base[12:]...)
			ps = append(ps, diffPacket{data: qinq, vlanp: true, tci: vid, desc: "qinq-stripped"})
			outer := []byte{0x88, 0xa8, byte(vid >> 8), byte(vid)}
			q2 := append(append(append([]byte(nil), base[:12]...), outer...), qinq[12:]...)
			ps = append(ps, diffPacket{data: q2, desc: "qinq-inline"})
		}
	}
	// truncations
	m := len(ps)
	for i := 0; i < m; i += 2 {
		d := ps[i].data
		for _, cut := range []int{r.Intn(len(d)), 13, 20, 24, 30, 36, 40, 50, 55} {
			if cut < len(d) {
				q := ps[i]
				q.data = d[:cut]
				q.desc += "-trunc" + strconv.Itoa(cut)
				ps = append(ps, q)
			}
		}
	}
	// directions
	for i := range ps {
		if i%3 == 0 {
			ps[i].pkttype = 4
		}
	}
	return ps
}

// TestKernelAcceptsCorpus attaches every program of the corpus to a real
// AF_PACKET socket (protocol 0, unbound: it receives nothing) inside a
// throwaway network namespace: the kernel's checker is the judge.
func TestKernelAcceptsCorpus(t *testing.T) {
	testbed.RequirePrivileged(t)
	// Read outside Do: a t.Fatal inside it would end Do's goroutine.
	exprs := readExpressions(t)
	ns := testbed.NewNS(t)
	n := 0
	err := ns.Do(func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		for _, e := range exprs {
			prog, err := filter.Compile(e, 262144)
			if err != nil {
				continue
			}
			ins := make([]unix.SockFilter, len(prog))
			for i, p := range prog {
				ins[i] = unix.SockFilter{Code: p.Op, Jt: p.Jt, Jf: p.Jf, K: p.K}
			}
			fp := unix.SockFprog{Len: uint16(len(ins)), Filter: &ins[0]}
			if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &fp); err != nil {
				t.Errorf("%q (%d instructions): the kernel refuses it: %v", e, len(prog), err)
			}
			n++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the kernel accepted %d programs", n)
}
