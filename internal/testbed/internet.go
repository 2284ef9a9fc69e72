package testbed

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// Fixed addresses of the private internet. They exist only inside the
// namespaces a test creates.
var (
	// UpstreamAddr is the upstream namespace's address on the uplink.
	UpstreamAddr = netip.MustParseAddr("10.77.0.1")
	// HostAddr is the host namespace's address on the uplink.
	HostAddr = netip.MustParseAddr("10.77.0.2")
	// UpstreamAddr6 and HostAddr6 are their IPv6 counterparts.
	UpstreamAddr6 = netip.MustParseAddr("fd77::1")
	HostAddr6     = netip.MustParseAddr("fd77::2")
	// ServerAddr is a "public" server address on the upstream's loopback,
	// reached through the host's default route.
	ServerAddr  = netip.MustParseAddr("198.51.100.80")
	ServerAddr6 = netip.MustParseAddr("fd77:80::80")
)

// Ports of the upstream's servers (on every upstream address).
const (
	HTTPPort    = 8080 // HTTP/1.1, answers "hello from upstream\n"; /bytes/N answers N bytes
	EchoPort    = 7    // TCP and UDP echo
	HTTPSPort   = 443  // the HTTP server over TLS 1.3 (HTTP/2 by ALPN, else HTTP/1.1), its self-signed certificate for www.example.test and the server addresses in Internet.CACert
	DNSPort     = 53   // UDP and TCP DNS for the zone in Internet.Zone
	ClosedPort  = 9    // nothing listens: TCP gets RST
	HTTPBody    = "hello from upstream\n"
	StubDNSAddr = "127.0.0.53" // the loopback resolver of InternetConfig.LoopbackResolver
)

// InternetConfig selects the variant of the host namespace. The zero value
// is a plain server: resolv.conf points at the upstream's DNS, forwarding
// enabled, IPv6 on, uplink named "uplink0".
type InternetConfig struct {
	// UplinkName is the host's uplink device name (default "uplink0").
	UplinkName string
	// LoopbackResolver gives the host a stub resolver on 127.0.0.53 (UDP and
	// TCP) that forwards to the upstream, as systemd-resolved does.
	LoopbackResolver bool
	// ForwardDrop adds a Docker/ufw-like `table ip filter` whose FORWARD
	// chain has policy drop.
	ForwardDrop bool
	// NoIPForward leaves net.ipv4.ip_forward at 0 in the host.
	NoIPForward bool
	// NoIPv6 disables IPv6 in the host namespace.
	NoIPv6 bool
	// Zone adds names (FQDN without trailing dot -> address) to the DNS zone.
	Zone map[string]netip.Addr
}

// Internet is a running private internet: host namespace H, upstream
// namespace U joined by a veth, servers in U.
type Internet struct {
	H, U *NS
	// UplinkH is the host's uplink device; UplinkU the upstream's end.
	UplinkH, UplinkU string
	// Zone is what the upstream's DNS server answers (A/AAAA); other names
	// get NXDOMAIN. CNAMEs maps alias -> target.
	Zone   map[string][]netip.Addr
	CNAMEs map[string]string
	// CACert is a PEM file, readable by any user, of the certificate the
	// TLS server (HTTPSPort) presents, for curl --cacert.
	CACert string

	mu   sync.Mutex
	seen []Seen
}

// Seen records one request a server of the upstream handled.
type Seen struct {
	Service string // "http", "tcp-echo", "udp-echo", "dns-udp", "dns-tcp"
	Remote  netip.AddrPort
	Detail  string // HTTP path, DNS question, echoed bytes
}

// Seen returns a copy of what the upstream's servers have handled so far.
func (in *Internet) Seen() []Seen {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]Seen(nil), in.seen...)
}

func (in *Internet) record(s Seen) {
	in.mu.Lock()
	in.seen = append(in.seen, s)
	in.mu.Unlock()
}

// NewInternet builds the private internet described in shared/TESTBED.md and
// tears it down when the test ends.
func NewInternet(t testing.TB, cfg *InternetConfig) *Internet {
	t.Helper()
	if cfg == nil {
		cfg = &InternetConfig{}
	}
	in := &Internet{
		H:       NewNS(t),
		U:       NewNS(t),
		UplinkH: cfg.UplinkName,
		UplinkU: "down0",
		Zone: map[string][]netip.Addr{
			"www.example.test":  {ServerAddr, ServerAddr6},
			"api.example.test":  {ServerAddr},
			"echo.example.test": {UpstreamAddr},
			"v6.example.test":   {ServerAddr6},
		},
		CNAMEs: map[string]string{"alias.example.test": "www.example.test"},
	}
	if in.UplinkH == "" {
		in.UplinkH = "uplink0"
	}
	for name, a := range cfg.Zone {
		in.Zone[strings.TrimSuffix(name, ".")] = []netip.Addr{a}
	}
	Veth(t, in.H, in.UplinkH, in.U, in.UplinkU)

	fwd := "1"
	if cfg.NoIPForward {
		fwd = "0"
	}
	in.U.Sh(t, fmt.Sprintf(`
ip addr add %s/24 dev %s
ip -6 addr add %s/64 dev %s nodad
ip addr add %s/32 dev lo
ip -6 addr add %s/128 dev lo nodad
`, UpstreamAddr, in.UplinkU, UpstreamAddr6, in.UplinkU, ServerAddr, ServerAddr6))
	in.H.Sh(t, fmt.Sprintf(`
sysctl -qw net.ipv4.ip_forward=%s
ip addr add %s/24 dev %s
ip route add default via %s dev %s
`, fwd, HostAddr, in.UplinkH, UpstreamAddr, in.UplinkH))
	if cfg.NoIPv6 {
		in.H.Sh(t, "sysctl -qw net.ipv6.conf.all.disable_ipv6=1; sysctl -qw net.ipv6.conf.default.disable_ipv6=1")
	} else {
		in.H.Sh(t, fmt.Sprintf(`
sysctl -qw net.ipv6.conf.all.forwarding=%s
ip -6 addr add %s/64 dev %s nodad
ip -6 route add default via %s dev %s
`, fwd, HostAddr6, in.UplinkH, UpstreamAddr6, in.UplinkH))
	}
	if cfg.ForwardDrop {
		in.H.Sh(t, `nft -f - <<'EOF'
table ip filter {
	chain FORWARD { type filter hook forward priority filter; policy drop; }
}
table ip6 filter {
	chain FORWARD { type filter hook forward priority filter; policy drop; }
}
EOF`)
	}

	in.startServers(t)
	if cfg.LoopbackResolver {
		in.startStub(t)
		in.H.WriteResolvConf(t, "nameserver "+StubDNSAddr+"\noptions edns0 trust-ad\n")
	} else {
		in.H.WriteResolvConf(t, "nameserver "+UpstreamAddr.String()+"\n")
	}
	return in
}

// listen creates listeners inside ns; they stay in ns for their lifetime.
func listen(t testing.TB, ns *NS, network, addr string) (l net.Listener, pc net.PacketConn) {
	t.Helper()
	err := ns.Do(func() error {
		var err error
		if strings.HasPrefix(network, "udp") {
			pc, err = net.ListenPacket(network, addr)
		} else {
			l, err = net.Listen(network, addr)
		}
		return err
	})
	if err != nil {
		t.Fatalf("listen %s %s in %s: %v", network, addr, ns.Name, err)
	}
	t.Cleanup(func() {
		if l != nil {
			l.Close()
		}
		if pc != nil {
			pc.Close()
		}
	})
	return l, pc
}

func addrPort(a net.Addr) netip.AddrPort {
	var ap netip.AddrPort
	switch a := a.(type) {
	case *net.TCPAddr:
		ap = a.AddrPort()
	case *net.UDPAddr:
		ap = a.AddrPort()
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

func (in *Internet) startServers(t testing.TB) {
	// HTTP: one server on all addresses of U.
	hl, _ := listen(t, in.U, "tcp", fmt.Sprintf(":%d", HTTPPort))
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rp, _ := netip.ParseAddrPort(r.RemoteAddr)
			rp = netip.AddrPortFrom(rp.Addr().Unmap(), rp.Port())
			in.record(Seen{Service: "http", Remote: rp, Detail: r.Host + r.URL.Path})
			if n, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/bytes/")); err == nil && n >= 0 {
				// A download of n bytes, for captures under load.
				w.Header().Set("Content-Length", strconv.Itoa(n))
				chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096)
				for n > 0 {
					m := min(n, len(chunk))
					if _, err := w.Write(chunk[:m]); err != nil {
						return
					}
					n -= m
				}
				return
			}
			io.WriteString(w, HTTPBody)
		}),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go srv.Serve(hl)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})

	// The same over TLS: a TLS library's key log must decrypt it. It
	// speaks HTTP/2 to a client that offers it (ALPN), HTTP/1.1 else.
	tl, _ := listen(t, in.U, "tcp", fmt.Sprintf(":%d", HTTPSPort))
	cert := selfSigned(t)
	in.CACert = writeCert(t, cert)
	tsrv := &http.Server{
		Handler:           srv.Handler,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13},
		ReadHeaderTimeout: 10 * time.Second,
	}
	go tsrv.ServeTLS(tl, "", "")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		tsrv.Shutdown(ctx)
	})

	// TCP echo.
	el, _ := listen(t, in.U, "tcp", fmt.Sprintf(":%d", EchoPort))
	go acceptLoop(el, func(c net.Conn) {
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		buf := make([]byte, 64<<10)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				in.record(Seen{Service: "tcp-echo", Remote: addrPort(c.RemoteAddr()), Detail: string(buf[:n])})
				if _, err := c.Write(buf[:n]); err != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	})

	// UDP echo.
	_, up := listen(t, in.U, "udp", fmt.Sprintf(":%d", EchoPort))
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, from, err := up.ReadFrom(buf)
			if err != nil {
				return
			}
			in.record(Seen{Service: "udp-echo", Remote: addrPort(from), Detail: string(buf[:n])})
			up.WriteTo(buf[:n], from)
		}
	}()

	// DNS over UDP and TCP.
	_, dp := listen(t, in.U, "udp", fmt.Sprintf(":%d", DNSPort))
	go func() {
		buf := make([]byte, 4096)
		for {
			n, from, err := dp.ReadFrom(buf)
			if err != nil {
				return
			}
			resp, q := in.answer(buf[:n])
			in.record(Seen{Service: "dns-udp", Remote: addrPort(from), Detail: q})
			if resp != nil {
				dp.WriteTo(resp, from)
			}
		}
	}()
	dl, _ := listen(t, in.U, "tcp", fmt.Sprintf(":%d", DNSPort))
	go acceptLoop(dl, func(c net.Conn) {
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		for {
			var l [2]byte
			if _, err := io.ReadFull(c, l[:]); err != nil {
				return
			}
			msg := make([]byte, binary.BigEndian.Uint16(l[:]))
			if _, err := io.ReadFull(c, msg); err != nil {
				return
			}
			resp, q := in.answer(msg)
			in.record(Seen{Service: "dns-tcp", Remote: addrPort(c.RemoteAddr()), Detail: q})
			if resp == nil {
				return
			}
			out := binary.BigEndian.AppendUint16(nil, uint16(len(resp)))
			if _, err := c.Write(append(out, resp...)); err != nil {
				return
			}
		}
	})
}

// selfSigned makes a certificate for www.example.test and the server
// addresses, signed by its own key.
func selfSigned(t testing.TB) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "www.example.test"},
		DNSNames:     []string{"www.example.test"},
		IPAddresses:  []net.IP{ServerAddr.AsSlice(), UpstreamAddr.AsSlice()},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// writeCert writes c's certificate as PEM into a file any user may read
// (a traced program may run as nobody), removed at the end of the test.
func writeCert(t testing.TB, c tls.Certificate) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "nsntrace-ca")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	f := filepath.Join(dir, "ca.pem")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]})
	if err := os.WriteFile(f, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil { // MkdirTemp makes it 0700
		t.Fatal(err)
	}
	return f
}

func acceptLoop(l net.Listener, handle func(net.Conn)) {
	for {
		c, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		go handle(c)
	}
}

// answer builds the DNS response to msg and describes the question.
func (in *Internet) answer(msg []byte) ([]byte, string) {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil {
		return nil, "bad message"
	}
	q, err := p.Question()
	if err != nil {
		return nil, "no question"
	}
	name := strings.TrimSuffix(strings.ToLower(q.Name.String()), ".")
	desc := fmt.Sprintf("%s %s", name, q.Type)
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true})
	b.EnableCompression()
	target := name
	var cname string
	if c, ok := in.CNAMEs[name]; ok {
		cname, target = c, c
	}
	addrs, known := in.Zone[target]
	if !known {
		b = dnsmessage.NewBuilder(nil, dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired, RecursionAvailable: true, RCode: dnsmessage.RCodeNameError})
	}
	b.StartQuestions()
	b.Question(q)
	b.StartAnswers()
	if known {
		if cname != "" {
			b.CNAMEResource(dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60},
				dnsmessage.CNAMEResource{CNAME: dnsmessage.MustNewName(cname + ".")})
		}
		rn := dnsmessage.MustNewName(target + ".")
		for _, a := range addrs {
			hdr := dnsmessage.ResourceHeader{Name: rn, Class: dnsmessage.ClassINET, TTL: 60}
			switch {
			case a.Is4() && q.Type == dnsmessage.TypeA:
				b.AResource(hdr, dnsmessage.AResource{A: a.As4()})
			case a.Is6() && q.Type == dnsmessage.TypeAAAA:
				b.AAAAResource(hdr, dnsmessage.AAAAResource{AAAA: a.As16()})
			}
		}
	}
	out, err := b.Finish()
	if err != nil {
		return nil, desc
	}
	return out, desc
}

// startStub runs a systemd-resolved-like stub on 127.0.0.53:53 (UDP and
// TCP) in H that forwards each query to the upstream's DNS server.
func (in *Internet) startStub(t testing.TB) {
	// TCP: each connection is relayed byte for byte to the upstream's TCP
	// DNS, from a socket made in H.
	tl, _ := listen(t, in.H, "tcp", StubDNSAddr+":53")
	go acceptLoop(tl, func(c net.Conn) {
		defer c.Close()
		var up net.Conn
		if err := in.H.Do(func() (err error) {
			up, err = net.DialTimeout("tcp", netip.AddrPortFrom(UpstreamAddr, DNSPort).String(), 10*time.Second)
			return err
		}); err != nil {
			return
		}
		defer up.Close()
		deadline := time.Now().Add(30 * time.Second)
		c.SetDeadline(deadline)
		up.SetDeadline(deadline)
		go func() {
			io.Copy(up, c)
			up.(*net.TCPConn).CloseWrite()
		}()
		io.Copy(c, up)
	})
	_, sp := listen(t, in.H, "udp", StubDNSAddr+":53")
	// The forwarding socket must live in H too: create it there once.
	_, fwd := listen(t, in.H, "udp", ":0")
	upstream := &net.UDPAddr{IP: UpstreamAddr.AsSlice(), Port: DNSPort}
	var mu sync.Mutex
	pending := map[uint16]net.Addr{}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, from, err := sp.ReadFrom(buf)
			if err != nil {
				return
			}
			if n < 2 {
				continue
			}
			mu.Lock()
			pending[binary.BigEndian.Uint16(buf)] = from
			mu.Unlock()
			fwd.WriteTo(buf[:n], upstream)
		}
	}()
	go func() {
		buf := make([]byte, 4096)
		for {
			n, _, err := fwd.ReadFrom(buf)
			if err != nil {
				return
			}
			if n < 2 {
				continue
			}
			mu.Lock()
			to, ok := pending[binary.BigEndian.Uint16(buf)]
			delete(pending, binary.BigEndian.Uint16(buf))
			mu.Unlock()
			if ok {
				sp.WriteTo(buf[:n], to)
			}
		}
	}()
}
