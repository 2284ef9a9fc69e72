package dnsrelay

import (
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/nsntrace/nsntrace/internal/testbed"
)

// The relay makes its upstream sockets in the namespace of whatever thread
// runs it, so its tests run in a helper process started inside a throwaway
// network namespace (TestRelay re-executes this test binary there); nothing
// of them touches the root namespace.
const helperEnv = "DNSRELAY_TEST_IN_NETNS"

func TestRelay(t *testing.T) {
	ns := testbed.NewNS(t)
	ns.Run(t, "ip", "addr", "add", "10.53.0.1/32", "dev", "lo")
	cmd := ns.Command(os.Args[0], "-test.run=^TestRelayInNetNS$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"=1")
	out, err := cmd.CombinedOutput()
	t.Logf("helper process in %s:\n%s", ns.Name, out)
	if err != nil {
		t.Fatalf("relay tests in a namespace failed: %v", err)
	}
	if !strings.Contains(string(out), "--- PASS: TestRelayInNetNS") {
		t.Fatal("helper process did not run the relay tests")
	}
}

// fakeUpstream is a DNS server answering every A question with 192.0.2.1
// and recording what it saw; over TCP it answers pipelined queries.
type fakeUpstream struct {
	mu      sync.Mutex
	queries []string
	silent  bool // swallow UDP queries (for the SERVFAIL test)
}

func (f *fakeUpstream) answer(q []byte) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil {
		return nil
	}
	qq, err := p.Question()
	if err != nil {
		return nil
	}
	f.mu.Lock()
	f.queries = append(f.queries, qq.Name.String())
	silent := f.silent
	f.mu.Unlock()
	if silent {
		return nil
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, RecursionAvailable: true})
	b.StartQuestions()
	b.Question(qq)
	b.StartAnswers()
	b.AResource(dnsmessage.ResourceHeader{Name: qq.Name, Class: dnsmessage.ClassINET, TTL: 5},
		dnsmessage.AResource{A: [4]byte{192, 0, 2, 1}})
	out, _ := b.Finish()
	return out
}

func (f *fakeUpstream) serve(t *testing.T, addr string) {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close(); l.Close() })
	go func() {
		buf := make([]byte, 4096)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if resp := f.answer(buf[:n]); resp != nil {
				pc.WriteTo(resp, from)
			}
		}
	}()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				for {
					var lb [2]byte
					if _, err := io.ReadFull(c, lb[:]); err != nil {
						return
					}
					msg := make([]byte, binary.BigEndian.Uint16(lb[:]))
					if _, err := io.ReadFull(c, msg); err != nil {
						return
					}
					resp := f.answer(msg)
					c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(resp))), resp...))
				}
			}()
		}
	}()
}

func query(id uint16, name string) []byte {
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: id, RecursionDesired: true})
	b.StartQuestions()
	b.Question(dnsmessage.Question{Name: dnsmessage.MustNewName(name), Type: dnsmessage.TypeA, Class: dnsmessage.ClassINET})
	out, err := b.Finish()
	if err != nil {
		panic(err)
	}
	return out
}

func parseAnswer(t *testing.T, msg []byte) (dnsmessage.Header, []netip.Addr) {
	t.Helper()
	var m dnsmessage.Message
	if err := m.Unpack(msg); err != nil {
		t.Fatalf("unpack answer: %v", err)
	}
	var out []netip.Addr
	for _, a := range m.Answers {
		if r, ok := a.Body.(*dnsmessage.AResource); ok {
			out = append(out, netip.AddrFrom4(r.A))
		}
	}
	return m.Header, out
}

func TestRelayInNetNS(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("runs only as TestRelay's helper process inside a throwaway namespace")
	}
	up := &fakeUpstream{}
	up.serve(t, "127.0.0.53:53")
	// The first upstream is dead (nothing listens there): the relay must
	// move on to the second.
	r, err := ListenAny(netip.MustParseAddr("10.53.0.1"), &Config{
		Upstreams: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.54:53"), netip.MustParseAddrPort("127.0.0.53:53")},
		Timeout:   500 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	raddr := r.Addr()
	if raddr.Addr() != netip.MustParseAddr("10.53.0.1") || raddr.Port() == 0 {
		t.Fatalf("Addr() = %v", raddr)
	}

	t.Run("udp", func(t *testing.T) {
		// Concurrent clients using the same query ID must each get their
		// own answer.
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for i := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(raddr))
				if err != nil {
					errs <- err
					return
				}
				defer c.Close()
				name := fmt.Sprintf("host%d.example.", i)
				c.Write(query(0x4242, name))
				c.SetDeadline(time.Now().Add(5 * time.Second))
				buf := make([]byte, 4096)
				n, err := c.Read(buf)
				if err != nil {
					errs <- fmt.Errorf("%s: %w", name, err)
					return
				}
				var m dnsmessage.Message
				if err := m.Unpack(buf[:n]); err != nil {
					errs <- err
					return
				}
				if m.ID != 0x4242 || len(m.Questions) != 1 || m.Questions[0].Name.String() != name || len(m.Answers) != 1 {
					errs <- fmt.Errorf("%s: wrong answer %+v", name, m)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
	})

	t.Run("tcp pipelined", func(t *testing.T) {
		c, err := net.Dial("tcp", raddr.String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(5 * time.Second))
		var batch []byte
		for i := range 3 {
			q := query(uint16(100+i), fmt.Sprintf("t%d.example.", i))
			batch = binary.BigEndian.AppendUint16(batch, uint16(len(q)))
			batch = append(batch, q...)
		}
		if _, err := c.Write(batch); err != nil {
			t.Fatal(err)
		}
		for i := range 3 {
			var lb [2]byte
			if _, err := io.ReadFull(c, lb[:]); err != nil {
				t.Fatalf("answer %d: %v", i, err)
			}
			msg := make([]byte, binary.BigEndian.Uint16(lb[:]))
			if _, err := io.ReadFull(c, msg); err != nil {
				t.Fatalf("answer %d: %v", i, err)
			}
			h, as := parseAnswer(t, msg)
			if h.ID != uint16(100+i) || len(as) != 1 || as[0] != netip.MustParseAddr("192.0.2.1") {
				t.Fatalf("answer %d: id %d, addresses %v", i, h.ID, as)
			}
		}
	})

	t.Run("servfail when no upstream answers", func(t *testing.T) {
		up.mu.Lock()
		up.silent = true
		up.mu.Unlock()
		defer func() { up.mu.Lock(); up.silent = false; up.mu.Unlock() }()
		c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(raddr))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write(query(7, "lost.example."))
		c.SetDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 4096)
		n, err := c.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		h, as := parseAnswer(t, buf[:n])
		if h.ID != 7 || h.RCode != dnsmessage.RCodeServerFailure || len(as) != 0 {
			t.Fatalf("got %+v with %v, want SERVFAIL for id 7", h, as)
		}
	})

	t.Run("check and answer hooks", func(t *testing.T) { testHooks(t, up) })

	t.Run("close", func(t *testing.T) {
		// An idle TCP client must not keep Close waiting.
		c, err := net.Dial("tcp", raddr.String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		time.Sleep(100 * time.Millisecond) // let the relay accept and dial upstream
		if err := r.Close(); err != nil {
			t.Fatal(err)
		}
		if err := r.Close(); err != nil {
			t.Fatalf("second Close: %v", err)
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("relayed connection still open after Close")
		}
		if _, err := net.DialTimeout("tcp", raddr.String(), time.Second); err == nil {
			t.Fatal("relay still accepts after Close")
		}
	})
}

func TestListenErrors(t *testing.T) {
	if _, err := Listen(netip.MustParseAddrPort("127.0.0.1:53"), nil); err == nil || !strings.Contains(err.Error(), "no upstream") {
		t.Fatalf("Listen without upstreams: %v", err)
	}

	// The UDP port is free but a TCP listener holds it: Listen must
	// report that, not panic in its own clean-up. No packet is sent.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	busy := l.Addr().(*net.TCPAddr).AddrPort()
	cfg := &Config{Upstreams: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:53")}}
	r, err := Listen(busy, cfg)
	if err == nil {
		r.Close()
		t.Fatalf("Listen on %s, whose TCP port is taken, succeeded", busy)
	}
	if !strings.Contains(err.Error(), "/tcp") {
		t.Fatalf("Listen on a busy TCP port: %v", err)
	}
}

// Namespaces of TestRelayOnlyItsClient, passed to its helper process.
const (
	clientNSEnv   = "DNSRELAY_TEST_CLIENT_NS"
	strangerNSEnv = "DNSRELAY_TEST_STRANGER_NS"
)

// TestRelayOnlyItsClient: a relay restricted to one interface and one
// client address answers that client, and nobody else who can reach its
// address: not another address on the same link, not a host behind
// another interface, not its own namespace's loopback.
//
//	[client ns C]  r0c <-> r0  [relay ns R]  r1 <-> r1s  [stranger ns S]
//	10.54.0.2, .3           10.54.0.1      10.55.0.1        10.55.0.2
func TestRelayOnlyItsClient(t *testing.T) {
	r, c, s := testbed.NewNS(t), testbed.NewNS(t), testbed.NewNS(t)
	testbed.Veth(t, r, "r0", c, "r0c")
	testbed.Veth(t, r, "r1", s, "r1s")
	r.Sh(t, "ip addr add 10.54.0.1/24 dev r0; ip addr add 10.55.0.1/24 dev r1; sysctl -qw net.ipv4.ip_forward=1")
	c.Sh(t, "ip addr add 10.54.0.2/24 dev r0c; ip addr add 10.54.0.3/24 dev r0c")
	s.Sh(t, "ip addr add 10.55.0.2/24 dev r1s; ip route add 10.54.0.0/24 via 10.55.0.1")
	cmd := r.Command(os.Args[0], "-test.run=^TestRelayOnlyItsClientInNetNS$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"=1", clientNSEnv+"="+c.Name, strangerNSEnv+"="+s.Name)
	out, err := cmd.CombinedOutput()
	t.Logf("helper process in %s:\n%s", r.Name, out)
	if err != nil {
		t.Fatalf("relay tests in a namespace failed: %v", err)
	}
	if !strings.Contains(string(out), "--- PASS: TestRelayOnlyItsClientInNetNS") {
		t.Fatal("helper process did not run the relay tests")
	}
}

// ask sends one query over UDP and one over TCP from src (in ns, nil: the
// current one) to relay and reports which got an answer. A refused or
// unanswered query counts as none; the deadline only bounds the wait.
func ask(t *testing.T, ns *testbed.NS, src, relay netip.AddrPort) (udp, tcp bool) {
	t.Helper()
	do := func(fn func() error) error { return fn() }
	if ns != nil {
		do = ns.Do
	}
	err := do(func() error {
		uc, err := net.DialUDP("udp", net.UDPAddrFromAddrPort(src), net.UDPAddrFromAddrPort(relay))
		if err != nil {
			return err
		}
		defer uc.Close()
		uc.SetDeadline(time.Now().Add(2 * time.Second))
		if _, err := uc.Write(query(1, "who.example.")); err != nil {
			return err
		}
		buf := make([]byte, 4096)
		if n, err := uc.Read(buf); err == nil && n >= 12 {
			udp = true
		}
		d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(src), Timeout: 2 * time.Second}
		tc, err := d.Dial("tcp", relay.String())
		if err != nil {
			return nil // refused: no answer
		}
		defer tc.Close()
		tc.SetDeadline(time.Now().Add(2 * time.Second))
		q := query(2, "who.example.")
		tc.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(q))), q...))
		var lb [2]byte
		if _, err := io.ReadFull(tc, lb[:]); err == nil {
			tcp = true
		}
		return nil
	})
	if err != nil {
		t.Fatalf("query %s from %s: %v", relay, src, err)
	}
	return udp, tcp
}

func TestRelayOnlyItsClientInNetNS(t *testing.T) {
	if os.Getenv(helperEnv) != "1" || os.Getenv(clientNSEnv) == "" {
		t.Skip("runs only as TestRelayOnlyItsClient's helper process inside a throwaway namespace")
	}
	c, s := &testbed.NS{Name: os.Getenv(clientNSEnv)}, &testbed.NS{Name: os.Getenv(strangerNSEnv)}
	up := &fakeUpstream{}
	up.serve(t, "127.0.0.53:53")
	r, err := ListenAny(netip.MustParseAddr("10.54.0.1"), &Config{
		Upstreams: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.53:53")},
		Interface: "r0",
		Client:    netip.MustParseAddr("10.54.0.2"),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	for _, q := range []struct {
		who  string
		ns   *testbed.NS
		src  string
		want bool
	}{
		{"the client", c, "10.54.0.2:0", true},
		{"another address on the client's link", c, "10.54.0.3:0", false},
		{"a host behind another interface", s, "10.55.0.2:0", false},
		{"the relay's own namespace", nil, "10.55.0.1:0", false},
	} {
		udp, tcp := ask(t, q.ns, netip.MustParseAddrPort(q.src), r.Addr())
		if udp != q.want || tcp != q.want {
			t.Errorf("%s (%s): answered over UDP %v, over TCP %v; want %v", q.who, q.src, udp, tcp, q.want)
		}
	}
}

// testHooks: Check refuses a query before it leaves (REFUSED, the
// upstream never sees it), Answer gets every answer before the client
// does, and a failing Answer turns it into SERVFAIL; over UDP and over
// pipelined TCP.
func testHooks(t *testing.T, up *fakeUpstream) {
	var mu sync.Mutex
	answered := map[string]bool{}
	var tcpChecks int
	r, err := ListenAny(netip.MustParseAddr("10.53.0.1"), &Config{
		Upstreams: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.53:53")},
		Check: func(q dnsmessage.Question, tcp bool) bool {
			mu.Lock()
			defer mu.Unlock()
			if tcp {
				tcpChecks++
			}
			return !strings.HasPrefix(q.Name.String(), "evil")
		},
		Answer: func(msg []byte) error {
			var p dnsmessage.Parser
			if _, err := p.Start(msg); err != nil {
				return err
			}
			q, err := p.Question()
			if err != nil {
				return err
			}
			if strings.HasPrefix(q.Name.String(), "fail") {
				return fmt.Errorf("no room")
			}
			time.Sleep(20 * time.Millisecond) // a client that got the answer first would see no record
			mu.Lock()
			answered[q.Name.String()] = true
			mu.Unlock()
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	want := func(msg []byte, id uint16, rcode dnsmessage.RCode, name string) {
		t.Helper()
		h, as := parseAnswer(t, msg)
		mu.Lock()
		seen := answered[name]
		mu.Unlock()
		if h.ID != id || h.RCode != rcode || rcode == dnsmessage.RCodeSuccess && (len(as) != 1 || !seen) {
			t.Errorf("%s: id %d rcode %v addresses %v (Answer had it: %v); want id %d rcode %v", name, h.ID, h.RCode, as, seen, id, rcode)
		}
	}
	c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(r.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 4096)
	for i, tc := range []struct {
		name  string
		rcode dnsmessage.RCode
	}{{"good.example.", dnsmessage.RCodeSuccess}, {"evil.example.", dnsmessage.RCodeRefused}, {"fail.example.", dnsmessage.RCodeServerFailure}} {
		c.Write(query(uint16(200+i), tc.name))
		c.SetDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("%s over UDP: %v", tc.name, err)
		}
		want(buf[:n], uint16(200+i), tc.rcode, tc.name)
	}

	tc, err := net.Dial("tcp", r.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer tc.Close()
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	names := []string{"good2.example.", "evil2.example.", "good3.example."}
	var batch []byte
	for i, n := range names {
		q := query(uint16(300+i), n)
		batch = append(binary.BigEndian.AppendUint16(batch, uint16(len(q))), q...)
	}
	if _, err := tc.Write(batch); err != nil {
		t.Fatal(err)
	}
	got := map[uint16][]byte{}
	for range names {
		var lb [2]byte
		if _, err := io.ReadFull(tc, lb[:]); err != nil {
			t.Fatal(err)
		}
		msg := make([]byte, binary.BigEndian.Uint16(lb[:]))
		if _, err := io.ReadFull(tc, msg); err != nil {
			t.Fatal(err)
		}
		got[binary.BigEndian.Uint16(msg)] = msg
	}
	want(got[300], 300, dnsmessage.RCodeSuccess, names[0])
	want(got[301], 301, dnsmessage.RCodeRefused, names[1])
	want(got[302], 302, dnsmessage.RCodeSuccess, names[2])
	up.mu.Lock()
	defer up.mu.Unlock()
	for _, q := range up.queries {
		if strings.HasPrefix(q, "evil") {
			t.Errorf("the upstream saw the refused query %s", q)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if tcpChecks != 3 {
		t.Errorf("Check saw %d questions over TCP, want 3", tcpChecks)
	}
}
