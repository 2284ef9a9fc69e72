//go:build linux

package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nsntrace/nsntrace/nft"
)

// udpIdle is how long the forwarder keeps a UDP client's flow without
// traffic, conntrack's default for unreplied UDP.
const udpIdle = 30 * time.Second

// publisher holds the host ports of the run's published ports (-p), from
// before anything else is set up until the run ends: holding them is the
// check that no other program and no other run has them, and keeps it
// so. What the run's DNAT rules do not catch, loopback above all, reaches
// these sockets, and the publisher forwards it to the program.
type publisher struct {
	ports []nft.Port
	tcp   []net.Listener // per port, or nil
	udp   []*net.UDPConn // per port, or nil
	peer  [2]netip.Addr  // the program's IPv4 and IPv6 address
	mu    sync.Mutex
	conns map[io.Closer]bool // open forwarded connections and flows
	done  bool
	wg    sync.WaitGroup
}

// reservePorts binds every published host port. It returns one sentence
// for a port taken or an address the host does not have.
func reservePorts(ports []nft.Port) (_ *publisher, err error) {
	p := &publisher{ports: ports, conns: map[io.Closer]bool{},
		tcp: make([]net.Listener, len(ports)), udp: make([]*net.UDPConn, len(ports))}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	for i, port := range ports {
		addr := ""
		if port.HostAddr.IsValid() {
			addr = port.HostAddr.String()
		}
		// Every address: Go's wildcard socket is dual-stack where the
		// host has IPv6, so an IPv4 or IPv6 holder of the port conflicts.
		hp := net.JoinHostPort(addr, strconv.Itoa(int(port.HostPort)))
		if port.Proto == nft.TCP {
			p.tcp[i], err = net.Listen("tcp", hp)
		} else {
			var pc net.PacketConn
			if pc, err = net.ListenPacket("udp", hp); err == nil {
				p.udp[i] = pc.(*net.UDPConn)
			}
		}
		switch {
		case errors.Is(err, unix.EADDRINUSE):
			return nil, failf(exitFailure, "-p %s: port %d/%s of the host is in use, by another program or published by another run; choose another HOSTPORT", port, port.HostPort, port.Proto)
		case errors.Is(err, unix.EADDRNOTAVAIL):
			return nil, failf(exitFailure, "-p %s: %s is not an address of this host", port, port.HostAddr)
		case err != nil:
			return nil, failf(exitFailure, "-p %s: reserve the host's port: %v", port, err)
		}
	}
	return p, nil
}

// forward starts forwarding what reaches the held ports to the program at
// peer4 and peer6 (zero if the run has no IPv6).
func (p *publisher) forward(peer4, peer6 netip.Addr) {
	p.peer = [2]netip.Addr{peer4, peer6}
	for i, port := range p.ports {
		p.wg.Add(1)
		if l := p.tcp[i]; l != nil {
			go p.serveTCP(l, port.Port)
		} else {
			go p.serveUDP(p.udp[i], port.Port)
		}
	}
}

// target is where a client's traffic goes: the program's IPv6 address for
// an IPv6 client where the run has one, else its IPv4 address.
func (p *publisher) target(client netip.Addr, port uint16) netip.AddrPort {
	if c := client.Unmap(); c.Is6() && p.peer[1].IsValid() {
		return netip.AddrPortFrom(p.peer[1], port)
	}
	return netip.AddrPortFrom(p.peer[0], port)
}

// track records c as open, or closes it and returns false once the
// publisher is closed.
func (p *publisher) track(c io.Closer) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done {
		c.Close()
		return false
	}
	p.conns[c] = true
	return true
}

func (p *publisher) untrack(c io.Closer) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *publisher) serveTCP(l net.Listener, port uint16) {
	defer p.wg.Done()
	for {
		c, err := l.Accept()
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			// Out of fds or a client gone before accept: not the
			// listener's end.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		if !p.track(c) {
			return
		}
		p.wg.Add(1)
		go p.pipeTCP(c.(*net.TCPConn), p.target(c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr(), port))
	}
}

// pipeTCP joins client to a new connection to the program at to, each
// direction half-closed when its sender is done.
func (p *publisher) pipeTCP(client *net.TCPConn, to netip.AddrPort) {
	defer p.wg.Done()
	defer p.untrack(client)
	s, err := net.DialTimeout("tcp", to.String(), 10*time.Second)
	if err != nil {
		return // the client sees its connection closed, as with no server
	}
	server := s.(*net.TCPConn)
	if !p.track(server) {
		return
	}
	defer p.untrack(server)
	up := make(chan struct{})
	go func() {
		defer close(up)
		io.Copy(server, client) // an error ends this direction like EOF
		server.CloseWrite()
	}()
	io.Copy(client, server)
	client.CloseWrite()
	<-up
}

// serveUDP forwards each client's datagrams over a socket of its own
// connected to the program, and the program's answers back, until the
// client is quiet for udpIdle.
func (p *publisher) serveUDP(pc *net.UDPConn, port uint16) {
	defer p.wg.Done()
	var mu sync.Mutex
	flows := map[netip.AddrPort]*net.UDPConn{}
	buf := make([]byte, 65535)
	for {
		n, from, err := pc.ReadFromUDPAddrPort(buf)
		if errors.Is(err, net.ErrClosed) {
			return
		}
		if err != nil {
			continue // an ICMP error reported on the socket
		}
		mu.Lock()
		f := flows[from]
		if f == nil {
			c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(p.target(from.Addr(), port)))
			if err != nil || !p.track(c) {
				mu.Unlock()
				continue
			}
			f = c
			flows[from] = f
			p.wg.Add(1)
			go func() {
				defer p.wg.Done()
				p.answerUDP(pc, f, from)
				mu.Lock()
				delete(flows, from)
				mu.Unlock()
				p.untrack(f)
			}()
		}
		mu.Unlock()
		f.SetReadDeadline(time.Now().Add(udpIdle))
		f.Write(buf[:n]) // lost like any datagram if it fails
	}
}

// answerUDP sends what the program answers on f back to the client, until
// f is idle or closed.
func (p *publisher) answerUDP(pc, f *net.UDPConn, client netip.AddrPort) {
	buf := make([]byte, 65535)
	for {
		n, err := f.Read(buf)
		switch {
		case err == nil:
			pc.WriteToUDPAddrPort(buf[:n], client) // lost like any datagram if it fails
		case isTimeout(err), errors.Is(err, net.ErrClosed):
			return
		}
		// Otherwise ICMP port unreachable from the program, reported
		// once: nobody listens there yet.
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Close stops forwarding, closes every forwarded connection and releases
// the host ports. It is idempotent.
func (p *publisher) Close() error {
	p.mu.Lock()
	p.done = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	for _, l := range p.tcp {
		if l != nil {
			l.Close()
		}
	}
	for _, c := range p.udp {
		if c != nil {
			c.Close()
		}
	}
	p.wg.Wait()
	return nil
}

// describe says what the published ports lead to, for the start message.
func (p *publisher) describe() string {
	if len(p.ports) == 0 {
		return ""
	}
	s := ""
	for i, port := range p.ports {
		if i > 0 {
			s += ", "
		}
		on := "any address"
		if port.HostAddr.IsValid() {
			on = port.HostAddr.String()
		}
		s += fmt.Sprintf("%d/%s on %s -> port %d", port.HostPort, port.Proto, on, port.Port)
	}
	return "Published: " + s + " (through 127.0.0.1 and ::1 the program sees nsntrace's gateway address as the client)."
}
