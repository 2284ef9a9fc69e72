package rawcap

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"

	"github.com/nsntrace/nsntrace/internal/testbed"
	"github.com/nsntrace/nsntrace/rawcap/filter"
)

// pair is two test namespaces joined by a veth a0 <-> b0.
type pair struct {
	a, b       *testbed.NS
	bFd        *os.File
	aIdx, bIdx int
	bMAC       net.HardwareAddr
}

func newPair(t *testing.T) *pair {
	t.Helper()
	p := &pair{a: testbed.NewNS(t), b: testbed.NewNS(t)}
	testbed.Veth(t, p.a, "a0", p.b, "b0")
	// No IPv6 chatter (router solicitations) in counted captures.
	p.a.Run(t, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
	p.b.Run(t, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
	f, err := p.b.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	p.bFd = f
	p.a.Do(func() error { i, err := net.InterfaceByName("a0"); p.aIdx = i.Index; return err })
	p.b.Do(func() error {
		i, err := net.InterfaceByName("b0")
		p.bIdx, p.bMAC = i.Index, i.HardwareAddr
		return err
	})
	return p
}

func (p *pair) open(t *testing.T, cfg *Config) *Ring {
	t.Helper()
	if cfg == nil {
		cfg = &Config{}
	}
	cfg.NetNS = int(p.bFd.Fd())
	r, err := Open(p.bIdx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// rawSocket opens a packet socket in ns for sending out of dev, closed
// when the test ends, and returns it with dev's index.
func rawSocket(t *testing.T, ns *testbed.NS, dev string) (fd, idx int) {
	t.Helper()
	err := ns.Do(func() error {
		i, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		idx = i.Index
		fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd, idx
}

// sender returns a function sending raw frames out of dev in ns.
func sender(t *testing.T, ns *testbed.NS, dev string) func([]byte) {
	t.Helper()
	fd, idx := rawSocket(t, ns, dev)
	sa := &unix.SockaddrLinklayer{Ifindex: idx}
	return func(f []byte) {
		for {
			err := unix.Sendto(fd, f, 0, sa)
			if err == unix.ENOBUFS || err == unix.EAGAIN {
				time.Sleep(time.Millisecond)
				continue
			}
			if err != nil {
				t.Errorf("send: %v", err)
			}
			return
		}
	}
}

// udpFrame builds an Ethernet/IPv4/UDP frame with dst port dport and seq.
func udpFrame(dst net.HardwareAddr, dport uint16, seq int, size int) []byte {
	f := make([]byte, size)
	copy(f, dst)
	copy(f[6:], []byte{2, 0, 0, 0, 0, 1})
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(size-14))
	ip[8], ip[9] = 64, 17
	copy(ip[12:], []byte{10, 1, 0, 1, 10, 1, 0, 2})
	binary.BigEndian.PutUint16(ip[20:], 4000)
	binary.BigEndian.PutUint16(ip[22:], dport)
	binary.BigEndian.PutUint16(ip[24:], uint16(size-34))
	binary.BigEndian.PutUint32(ip[28:], uint32(seq))
	return f
}

func collect(t *testing.T, r *Ring, ctx context.Context) chan []Packet {
	t.Helper()
	out := make(chan []Packet, 1)
	go func() {
		var got []Packet
		err := r.Run(ctx, func(p *Packet) error { got = append(got, p.Clone()); return nil })
		if err != nil {
			t.Errorf("Run: %v", err)
		}
		out <- got
	}()
	return out
}

func TestCaptureBothDirections(t *testing.T) {
	testbed.RequirePrivileged(t)
	p := newPair(t)
	r := p.open(t, &Config{BlockTimeout: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	out := collect(t, r, ctx)
	fromA := sender(t, p.a, "a0")
	fromB := sender(t, p.b, "b0")
	const n = 500
	var want [][]byte
	wantType := []PacketType{}
	other := net.HardwareAddr{2, 0, 0, 0, 0, 0x99}
	for i := 0; i < n; i++ {
		var f []byte
		switch i % 3 {
		case 0:
			f = udpFrame(p.bMAC, 9, i, 60+i%200)
			fromA(f)
			wantType = append(wantType, PacketHost)
		case 1:
			f = udpFrame(other, 9, i, 100)
			fromA(f)
			wantType = append(wantType, PacketOtherHost)
		case 2:
			f = udpFrame(other, 9, i, 1514)
			fromB(f)
			wantType = append(wantType, PacketOutgoing)
		}
		want = append(want, f)
	}
	cancel()
	got := <-out
	if len(got) != n {
		t.Fatalf("captured %d packets, want %d", len(got), n)
	}
	for i := range got {
		if !bytes.Equal(got[i].Data, want[i]) || got[i].Length != len(want[i]) {
			t.Fatalf("packet %d differs: got %d bytes, want %d", i, len(got[i].Data), len(want[i]))
		}
		if got[i].Type != wantType[i] {
			t.Errorf("packet %d: type %d, want %d", i, got[i].Type, wantType[i])
		}
		if got[i].IfIndex != p.bIdx {
			t.Errorf("packet %d: ifindex %d, want %d", i, got[i].IfIndex, p.bIdx)
		}
		if i > 0 && got[i].Timestamp < got[i-1].Timestamp {
			t.Errorf("timestamps not monotonic at %d", i)
		}
	}
	st, err := r.Stats()
	if err != nil || st.Packets != n || st.Drops != 0 {
		t.Errorf("Stats = %+v, %v; want %d packets, 0 drops", st, err, n)
	}
}

func TestVLANTagsPutBack(t *testing.T) {
	testbed.RequirePrivileged(t)
	p := newPair(t)
	r := p.open(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	out := collect(t, r, ctx)
	send := sender(t, p.a, "a0")
	tag := func(tpid uint16, tci uint16, f []byte) []byte {
		return append(append(append([]byte{}, f[:12]...), byte(tpid>>8), byte(tpid), byte(tci>>8), byte(tci)), f[12:]...)
	}
	base := udpFrame(p.bMAC, 9, 1, 80)
	frames := [][]byte{
		tag(0x8100, 100, base),                   // 802.1Q VID 100
		tag(0x8100, 0x6000, base),                // priority tag: VID 0, PCP 3
		tag(0x88a8, 200, tag(0x8100, 300, base)), // QinQ
		tag(0x8100, 10, tag(0x8100, 20, base)),   // double 802.1Q
	}
	for _, f := range frames {
		send(f)
	}
	time.Sleep(50 * time.Millisecond)
	cancel()
	got := <-out
	if len(got) != len(frames) {
		t.Fatalf("captured %d, want %d", len(got), len(frames))
	}
	for i := range frames {
		if !bytes.Equal(got[i].Data, frames[i]) || got[i].Length != len(frames[i]) {
			t.Errorf("frame %d:\n got % x\nwant % x", i, got[i].Data, frames[i])
		}
	}
}

func TestFilterBeforeBind(t *testing.T) {
	testbed.RequirePrivileged(t)
	p := newPair(t)
	send := sender(t, p.a, "a0")
	// A flood of frames the filter rejects runs while the ring opens.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		f := udpFrame(p.bMAC, 7, 0, 60)
		for {
			select {
			case <-stop:
				return
			default:
				send(f)
			}
		}
	}()
	prog, err := bpf.Assemble([]bpf.Instruction{
		bpf.LoadAbsolute{Off: 12, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 0x0800, SkipTrue: 3},
		bpf.LoadAbsolute{Off: 36, Size: 2},
		bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 9, SkipTrue: 1},
		bpf.RetConstant{Val: 262144},
		bpf.RetConstant{Val: 0},
	})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	r := p.open(t, &Config{Filter: prog})
	ctx, cancel := context.WithCancel(context.Background())
	out := collect(t, r, ctx)
	for i := 0; i < 50; i++ {
		send(udpFrame(p.bMAC, 9, i, 60))
	}
	close(stop)
	<-done
	cancel()
	got := <-out
	if len(got) != 50 {
		t.Fatalf("captured %d, want only the 50 accepted frames", len(got))
	}
	for _, g := range got {
		if binary.BigEndian.Uint16(g.Data[36:]) != 9 {
			t.Fatalf("filter let through % x", g.Data)
		}
	}
}

// TestStopDelivesOpenBlock: with a retire timeout far in the future, the
// packets sit in a block the kernel has not retired; stopping must still
// deliver them all, promptly.
func TestStopDelivesOpenBlock(t *testing.T) {
	testbed.RequirePrivileged(t)
	p := newPair(t)
	r := p.open(t, &Config{BlockTimeout: 60 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	out := collect(t, r, ctx)
	send := sender(t, p.a, "a0")
	const n = 37
	for i := 0; i < n; i++ {
		send(udpFrame(p.bMAC, 9, i, 200))
	}
	cancel()
	select {
	case got := <-out:
		if len(got) != n {
			t.Fatalf("captured %d after stop, want %d", len(got), n)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

func TestStopWhileBlocked(t *testing.T) {
	testbed.RequirePrivileged(t)
	p := newPair(t)
	r := p.open(t, nil)
	ctx, cancel := context.WithCancel(context.Background())
	out := collect(t, r, ctx)
	time.Sleep(100 * time.Millisecond) // the reader parks in the poller
	cancel()
	select {
	case got := <-out:
		if len(got) != 0 {
			t.Errorf("captured %d packets from an idle link", len(got))
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
}

// TestWake: on an idle link the reader is parked in the poller; Wake
// gets its done callback called, from its own goroutine, and the capture
// goes on: a later stop still delivers what came after.
func TestWake(t *testing.T) {
	testbed.RequirePrivileged(t)
	p := newPair(t)
	r := p.open(t, &Config{BlockTimeout: 60 * time.Second})
	woke := make(chan struct{}, 4)
	var got int
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		errc <- r.RunBlocks(ctx, func(*Packet) error { got++; return nil }, func() error {
			woke <- struct{}{}
			return nil
		})
	}()
	for i := 0; i < 2; i++ {
		time.Sleep(100 * time.Millisecond) // the reader parks
		r.Wake()
		select {
		case <-woke:
		case <-time.After(10 * time.Second):
			t.Fatalf("wake %d: done was not called", i)
		}
	}
	send := sender(t, p.a, "a0")
	for i := 0; i < 5; i++ {
		send(udpFrame(p.bMAC, 9, i, 200))
	}
	cancel()
	select {
	case err := <-errc:
		if err != nil || got != 5 {
			t.Fatalf("after two wakes: %d packets, %v; want 5", got, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("RunBlocks did not return after cancel")
	}
}

// TestDropsCounted fills a small ring nobody reads. With a long block
// timeout the kernel's queue stays frozen on a block it has not reopened
// when the capture stops: that block's old count must not deliver its
// packets twice.
func TestDropsCounted(t *testing.T) {
	testbed.RequirePrivileged(t)
	for _, tov := range []time.Duration{time.Millisecond, time.Minute} {
		p := newPair(t)
		page := os.Getpagesize()
		r := p.open(t, &Config{BlockSize: page, RingSize: 2 * page, BlockTimeout: tov})
		send := sender(t, p.a, "a0")
		const n = 300
		for i := 0; i < n; i++ { // nobody reads: the ring fills and drops
			send(udpFrame(p.bMAC, 9, i, 1000))
		}
		time.Sleep(20 * time.Millisecond)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		got := 0
		if err := r.Run(ctx, func(*Packet) error { got++; return nil }); err != nil {
			t.Fatal(err)
		}
		st, err := r.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if st.Drops == 0 || uint64(got)+st.Drops != n || st.Packets != n {
			t.Fatalf("timeout %v: captured %d + dropped %d != sent %d (stats %+v)", tov, got, st.Drops, n, st)
		}
	}
}

// streamCaptured sends n chunks of size bytes over TCP from p.a to
// server (an address of p.b, on network tcp or tcp6) while r captures,
// and returns the largest packet's length and the bytes kept of it, and
// the largest packet kept whole.
func streamCaptured(t *testing.T, p *pair, r *Ring, network, server string, n, size int) (length, kept, whole int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- r.Run(ctx, func(pk *Packet) error {
			if pk.Length > length {
				length, kept = pk.Length, len(pk.Data)
			}
			if len(pk.Data) == pk.Length && pk.Length > whole {
				whole = pk.Length
			}
			return nil
		})
	}()
	var l net.Listener
	if err := p.b.Do(func() (err error) { l, err = net.Listen(network, server); return }); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err == nil {
			io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	var c net.Conn
	if err := p.a.Do(func() (err error) { c, err = net.Dial(network, server); return }); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n; i++ {
		c.Write(bytes.Repeat([]byte{'x'}, size))
	}
	c.Close()
	time.Sleep(100 * time.Millisecond)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	return length, kept, whole
}

func TestGSOPacketWhole(t *testing.T) {
	testbed.RequirePrivileged(t)
	p := newPair(t)
	p.a.Sh(t, "ip addr add 10.5.0.1/24 dev a0")
	p.b.Sh(t, "ip addr add 10.5.0.2/24 dev b0")
	r := p.open(t, nil)
	_, _, maxLen := streamCaptured(t, p, r, "tcp", "10.5.0.2:5001", 20, 60<<10)
	if maxLen <= 1514 {
		t.Fatalf("largest whole packet %d bytes: no GSO-sized packet captured whole", maxLen)
	}
	t.Logf("largest packet captured whole: %d bytes", maxLen)
}

// TestBigTCPClamped: a packet larger than a block can hold (BIG TCP over
// IPv6, GSO packets of up to 300000 bytes) is kept, clamped by the kernel
// to what the 256 KiB block holds: at most frameOverhead bytes short of
// the snap length, with its true length recorded.
func TestBigTCPClamped(t *testing.T) {
	testbed.RequirePrivileged(t)
	p := newPair(t)
	for _, c := range []struct {
		ns        *testbed.NS
		dev, addr string
	}{{p.a, "a0", "fd05::1"}, {p.b, "b0", "fd05::2"}} {
		c.ns.Sh(t, "sysctl -qw net.ipv6.conf."+c.dev+".disable_ipv6=0 net.ipv6.conf."+c.dev+".accept_dad=0")
		c.ns.Sh(t, "ip addr add "+c.addr+"/64 dev "+c.dev+" nodad")
	}
	if out, err := p.a.Command("ip", "link", "set", "a0", "gso_max_size", "300000").CombinedOutput(); err != nil {
		t.Skipf("this kernel takes no GSO size over 64 KiB (BIG TCP, Linux 5.19): %v: %s", err, out)
	}
	r := p.open(t, nil) // the defaults: 256 KiB blocks, snap length 262144
	length, kept, _ := streamCaptured(t, p, r, "tcp6", "[fd05::2]:5001", 40, 1<<20)
	t.Logf("largest packet: %d bytes, %d of them kept", length, kept)
	if length <= 262144 {
		t.Fatalf("no packet over 256 KiB went by (largest %d bytes), though the kernel took a GSO size of 300000", length)
	}
	if kept < 262144-frameOverhead || kept >= length {
		t.Errorf("a %d-byte packet kept %d bytes: want it clamped to within %d bytes of the snap length", length, kept, frameOverhead)
	}
}

func countLines(t *testing.T, path string) int {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(b), "\n")
}

func TestNoLeaks(t *testing.T) {
	testbed.RequirePrivileged(t)
	p := newPair(t)
	// fds returns the open fds with what they point at: a leak is an fd
	// present afterwards that was not there before (other tests' sockets
	// closing meanwhile only shrink the set).
	fds := func() map[string]string {
		e, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, d := range e {
			m[d.Name()], _ = os.Readlink("/proc/self/fd/" + d.Name())
		}
		return m
	}
	fd0, maps0 := fds(), countLines(t, "/proc/self/maps")
	for i := 0; i < 5; i++ {
		r, err := Open(p.bIdx, &Config{NetNS: int(p.bFd.Fd()), RingSize: 4 << 20})
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if err := r.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
	}
	// A failing Open leaks nothing either.
	if _, err := Open(1<<30, &Config{NetNS: int(p.bFd.Fd()), RingSize: 4 << 20}); err == nil {
		t.Fatal("Open of a missing interface succeeded")
	}
	for fd, target := range fds() {
		if fd0[fd] != target && strings.HasPrefix(target, "socket:") {
			t.Errorf("fd %s (%s) leaked", fd, target)
		}
	}
	if maps1 := countLines(t, "/proc/self/maps"); maps1 > maps0+2 {
		t.Fatalf("maps %d -> %d: a ring mapping leaked", maps0, maps1)
	}
}

// TestDeviceGoneBeforeStop: a veth dies with its peer's namespace, often
// before the capture stops; what the ring holds must still be delivered.
func TestDeviceGoneBeforeStop(t *testing.T) {
	testbed.RequirePrivileged(t)
	p := newPair(t)
	r := p.open(t, &Config{BlockTimeout: 60 * time.Second})
	ctx, cancel := context.WithCancel(context.Background())
	out := collect(t, r, ctx)
	send := sender(t, p.a, "a0")
	const n = 25
	for i := 0; i < n; i++ {
		send(udpFrame(p.bMAC, 9, i, 300))
	}
	p.b.Run(t, "ip", "link", "del", "b0")
	cancel()
	if got := <-out; len(got) != n {
		t.Fatalf("captured %d after the device went away, want %d", len(got), n)
	}
}

// TestCompiledFiltersLive runs programs of our filter compiler on a real
// socket: tagged frames reach the filter with the outer tag stripped into
// metadata, as the compiler's vlan code expects.
func TestCompiledFiltersLive(t *testing.T) {
	testbed.RequirePrivileged(t)
	p := newPair(t)
	send := sender(t, p.a, "a0")
	tag := func(vid uint16, f []byte) []byte {
		return append(append(append([]byte{}, f[:12]...), 0x81, 0x00, byte(vid>>8), byte(vid)), f[12:]...)
	}
	icmp := udpFrame(p.bMAC, 0, 0, 60)
	icmp[23] = 1 // IPv4 protocol ICMP
	icmp[34] = 8 // echo request
	frames := map[string][]byte{
		"A": tag(100, udpFrame(p.bMAC, 9, 1, 80)),
		"B": tag(200, udpFrame(p.bMAC, 9, 2, 80)),
		"C": udpFrame(p.bMAC, 53, 3, 80),
		"D": icmp,
	}
	for expr, want := range map[string]string{
		"vlan 100":         "A",
		"vlan":             "AB",
		"vlan 200 and udp": "B",
		"udp port 53":      "C",
		"icmp":             "D",
		"udp and not vlan": "C",
		// libpcap shifts later offsets even after "not vlan", so
		// "not vlan and udp" reads the UDP check 4 bytes late: nothing.
		"not vlan and udp": "",
	} {
		prog, err := filter.Compile(expr, 262144)
		if err != nil {
			t.Fatalf("%q: %v", expr, err)
		}
		r := p.open(t, &Config{Filter: prog, BlockTimeout: 10 * time.Millisecond})
		ctx, cancel := context.WithCancel(context.Background())
		out := collect(t, r, ctx)
		for _, k := range []string{"A", "B", "C", "D"} {
			send(frames[k])
		}
		time.Sleep(30 * time.Millisecond)
		cancel()
		got := ""
		for _, pk := range <-out {
			for _, k := range []string{"A", "B", "C", "D"} {
				if bytes.Equal(pk.Data, frames[k]) {
					got += k
				}
			}
		}
		if got != want {
			t.Errorf("%q accepted %q, want %q", expr, got, want)
		}
		r.Close()
	}
}

func netInterfaceIndex(name string) (int, error) {
	i, err := net.InterfaceByName(name)
	if err != nil {
		return 0, err
	}
	return i.Index, nil
}

// TestRunBlocksKeepsData: RunBlocks calls done once per block, before the
// block goes back to the kernel, and until then the Data of InRing packets
// stays as it was delivered, while the kernel keeps filling other blocks.
// A packet whose VLAN tag was put back is not InRing.
func TestRunBlocksKeepsData(t *testing.T) {
	testbed.RequirePrivileged(t)
	p := newPair(t)
	r := p.open(t, &Config{BlockSize: 16 << 10, RingSize: 8 * 16 << 10, BlockTimeout: 5 * time.Millisecond})
	type kept struct{ ref, copy []byte }
	var (
		held    []kept
		got     [][]byte
		blocks  int
		badRing int
		seen    atomic.Int64
	)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		errc <- r.RunBlocks(ctx, func(pk *Packet) error {
			tagged := len(pk.Data) >= 14 && binary.BigEndian.Uint16(pk.Data[12:]) == 0x8100
			if pk.InRing == tagged {
				badRing++
			}
			got = append(got, append([]byte(nil), pk.Data...))
			seen.Add(1)
			if pk.InRing {
				held = append(held, kept{pk.Data, append([]byte(nil), pk.Data...)})
			}
			return nil
		}, func() error {
			blocks++
			for i, k := range held {
				if !bytes.Equal(k.ref, k.copy) {
					return fmt.Errorf("packet %d of the block changed before the block was released", i)
				}
			}
			held = held[:0]
			return nil
		})
	}()
	send := sender(t, p.a, "a0")
	var frames [][]byte
	for i := 0; i < 400; i++ {
		f := udpFrame(p.bMAC, 9, i, 100+(i*37)%1400)
		if i%5 == 0 {
			f = append(append(append([]byte{}, f[:12]...), 0x81, 0, 0, byte(i)), f[12:]...)
		}
		frames = append(frames, f)
		send(f)
		if i%50 == 49 {
			// Let the blocks retire (by timeout) while others fill, and
			// wait for the reader: 50 frames fill about a third of the
			// ring, so a reader the scheduler starves (a loaded CI
			// machine) would otherwise turn this into a drop test.
			waitSeen(t, &seen, i+1)
		}
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if len(got) != len(frames) {
		t.Fatalf("captured %d, want %d", len(got), len(frames))
	}
	for i := range frames {
		if !bytes.Equal(got[i], frames[i]) {
			t.Fatalf("frame %d differs", i)
		}
	}
	if badRing > 0 {
		t.Errorf("%d packets with the wrong InRing (tagged ones are rebuilt in scratch memory)", badRing)
	}
	if blocks < 8 {
		t.Errorf("done called %d times for 400 packets in 16 KiB blocks", blocks)
	}
	t.Logf("%d packets in %d blocks", len(got), blocks)
}

// waitSeen waits until the reader has handed over n packets; a block
// carrying the last of them retires on the block timeout.
func waitSeen(t *testing.T, seen *atomic.Int64, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for seen.Load() < int64(n) {
		if time.Now().After(deadline) {
			t.Fatalf("the reader handed over %d packets in 10 s, want %d", seen.Load(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestStopWhileDeviceGoesAway stops captures while their device is being
// deleted under a flood: the kernel then unhooks the socket itself
// without waiting for packets still being written into the ring, and the
// drain must neither fail nor deliver a half-written packet.
func TestStopWhileDeviceGoesAway(t *testing.T) {
	testbed.RequirePrivileged(t)
	for iter := 0; iter < 25; iter++ {
		p := newPair(t)
		r := p.open(t, &Config{BlockTimeout: 60 * time.Second})
		frame := udpFrame(p.bMAC, 9, 1, 200)
		fd, idx := rawSocket(t, p.a, "a0")
		stopSend := make(chan struct{})
		sent := make(chan struct{})
		go func() {
			defer close(sent)
			to := &unix.SockaddrLinklayer{Ifindex: idx, Halen: 6}
			for {
				select {
				case <-stopSend:
					return
				default:
				}
				if err := unix.Sendto(fd, frame, 0, to); err != nil {
					return // the device is gone
				}
			}
		}()
		var bad int
		ctx, cancel := context.WithCancel(context.Background())
		errc := make(chan error, 1)
		go func() {
			errc <- r.Run(ctx, func(pk *Packet) error {
				if !bytes.Equal(pk.Data, frame) {
					bad++
				}
				return nil
			})
		}()
		time.Sleep(5 * time.Millisecond)
		del := make(chan []byte, 1)
		go func() {
			out, _ := exec.Command("ip", "netns", "exec", p.b.Name, "ip", "link", "del", "b0").CombinedOutput()
			del <- out
		}()
		time.Sleep(time.Duration(iter%5) * 300 * time.Microsecond)
		cancel()
		err := <-errc
		close(stopSend)
		<-sent
		<-del
		if err != nil {
			t.Fatalf("iteration %d: stop while the device went away: %v", iter, err)
		}
		if bad > 0 {
			t.Fatalf("iteration %d: %d packets delivered that were not the frame sent", iter, bad)
		}
	}
}

// TestStopHearsNoOtherInterface floods a second interface of the capture's
// namespace while captures of the first stop: nothing from the second may
// reach a capture, before, during or after the drain, and the kernel's
// counters must add up to what was delivered. Unhooking with bind(2) and
// protocol 0 re-hooked the socket for ETH_P_ALL on every interface
// (packet_bind: sll_protocol ? : po->num), which this test catches.
func TestStopHearsNoOtherInterface(t *testing.T) {
	testbed.RequirePrivileged(t)
	p := newPair(t)
	testbed.Veth(t, p.a, "d0", p.b, "c0")
	var cMAC net.HardwareAddr
	if err := p.b.Do(func() error {
		i, err := net.InterfaceByName("c0")
		if err == nil {
			cMAC = i.HardwareAddr
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	fd, idx := rawSocket(t, p.a, "d0")
	// The flood on c0 runs for the whole test.
	stopFlood := make(chan struct{})
	flooding := make(chan struct{})
	go func() {
		defer close(flooding)
		frame := udpFrame(cMAC, 7, 0, 120)
		to := &unix.SockaddrLinklayer{Ifindex: idx, Halen: 6}
		for {
			select {
			case <-stopFlood:
				return
			default:
			}
			unix.Sendto(fd, frame, 0, to) // ENOBUFS under the flood: keep going
		}
	}()
	defer func() { close(stopFlood); <-flooding }()

	send := sender(t, p.a, "a0")
	for iter := 0; iter < 30; iter++ {
		r := p.open(t, &Config{BlockTimeout: time.Duration(1+iter%3*20) * time.Millisecond})
		ctx, cancel := context.WithCancel(context.Background())
		var got, foreign int
		errc := make(chan error, 1)
		go func() {
			errc <- r.Run(ctx, func(pk *Packet) error {
				got++
				if pk.IfIndex != p.bIdx || binary.BigEndian.Uint16(pk.Data[36:]) != 9 {
					foreign++
				}
				return nil
			})
		}()
		const n = 20
		for i := 0; i < n; i++ {
			send(udpFrame(p.bMAC, 9, i, 200))
		}
		time.Sleep(time.Duration(iter%4) * time.Millisecond)
		cancel()
		if err := <-errc; err != nil {
			t.Fatalf("iteration %d: Run: %v", iter, err)
		}
		st, err := r.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if foreign > 0 {
			t.Fatalf("iteration %d: %d of %d packets delivered came from another interface", iter, foreign, got)
		}
		if got != n {
			t.Errorf("iteration %d: delivered %d packets, want %d", iter, got, n)
		}
		// Statistics read after the stop: what the kernel accepted is
		// what was delivered plus what it dropped.
		if st.Packets != uint64(got)+st.Drops {
			t.Errorf("iteration %d: kernel accepted %d, delivered %d + dropped %d", iter, st.Packets, got, st.Drops)
		}
		// Nothing may arrive after the stop either.
		time.Sleep(5 * time.Millisecond)
		st2, err := r.Stats()
		if err != nil {
			t.Fatal(err)
		}
		if st2.Packets != st.Packets {
			t.Errorf("iteration %d: the stopped ring still accepted %d packets", iter, st2.Packets-st.Packets)
		}
		r.Close()
	}
}
