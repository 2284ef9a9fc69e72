package dnsrelay

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// Config tunes a Relay. The zero value of a field means its default.
type Config struct {
	// Upstreams are the resolvers queries are forwarded to, tried in
	// order (required).
	Upstreams []netip.AddrPort
	// Timeout is how long one upstream gets to answer a UDP query, or to
	// accept a TCP connection, before the next is tried (default 2 s).
	Timeout time.Duration
	// IdleTimeout ends a relayed TCP connection on which nothing moved
	// for this long (default 10 s, as resolvers keep TCP short).
	IdleTimeout time.Duration
	// MaxInflight bounds concurrent UDP queries (default 256); queries
	// beyond it are dropped, and the client retries as after a loss.
	MaxInflight int
	// Interface, when set, restricts the relay's sockets to packets that
	// arrive on this device (SO_BINDTODEVICE): a query to the relay's
	// address coming in over any other interface finds no socket, so the
	// relay is no resolver for the uplink, for other traces or for the
	// host's own loopback.
	Interface string
	// Client, when valid, is the only source address served; queries from
	// any other address are dropped (UDP) or closed unanswered (TCP).
	Client netip.Addr
	// Check, if set, is asked about each question of a query before the
	// query goes upstream (tcp says how it came); if it returns false for
	// one, the query never leaves and the client gets REFUSED. It is
	// called from several goroutines at once.
	Check func(q dnsmessage.Question, tcp bool) bool
	// Answer, if set, gets each upstream answer before the client does,
	// so that what it learns is in force when the client acts on the
	// answer; if it fails, the client gets SERVFAIL instead. It is called
	// from several goroutines at once.
	Answer func(msg []byte) error
}

// Relay forwards DNS over UDP and TCP from one local address to upstream
// resolvers.
type Relay struct {
	cfg  Config
	udp  *net.UDPConn
	tcp  *net.TCPListener
	sem  chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	open map[io.Closer]struct{} // upstream and client sockets in use
	done bool

	closeOnce sync.Once
	closeErr  error
}

var _ io.Closer = (*Relay)(nil)

// Listen starts a relay on addr, UDP and TCP. A zero port means
// DefaultPort; ListenAny lets the kernel choose one.
func Listen(addr netip.AddrPort, cfg *Config) (*Relay, error) {
	if addr.Port() == 0 {
		addr = netip.AddrPortFrom(addr.Addr(), DefaultPort)
	}
	return listen(addr, cfg)
}

// ListenAny is Listen on a kernel-chosen port, the same for UDP and TCP;
// Addr reports it.
func ListenAny(addr netip.Addr, cfg *Config) (*Relay, error) {
	return listen(netip.AddrPortFrom(addr, 0), cfg)
}

func listen(addr netip.AddrPort, cfg *Config) (_ *Relay, err error) {
	c := Config{}
	if cfg != nil {
		c = *cfg
	}
	if len(c.Upstreams) == 0 {
		return nil, errors.New("start dns relay: no upstream resolvers")
	}
	if c.Timeout <= 0 {
		c.Timeout = 2 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 10 * time.Second
	}
	if c.MaxInflight <= 0 {
		c.MaxInflight = 256
	}
	// r, not a named result: an error return sets that to nil before
	// the deferred close below reads it.
	r := &Relay{cfg: c, sem: make(chan struct{}, c.MaxInflight), open: map[io.Closer]struct{}{}}
	lc := net.ListenConfig{Control: c.bindToDevice}
	pc, err := lc.ListenPacket(context.Background(), "udp", addr.String())
	if err != nil {
		return nil, fmt.Errorf("start dns relay on %s/udp: %w", addr, err)
	}
	r.udp = pc.(*net.UDPConn)
	defer func() {
		if err != nil {
			r.udp.Close()
		}
	}()
	// The TCP listener takes the port UDP got, so both serve one address.
	taddr := netip.AddrPortFrom(addr.Addr(), uint16(r.udp.LocalAddr().(*net.UDPAddr).Port))
	l, err := lc.Listen(context.Background(), "tcp", taddr.String())
	if err != nil {
		return nil, fmt.Errorf("start dns relay on %s/tcp: %w", taddr, err)
	}
	r.tcp = l.(*net.TCPListener)
	r.wg.Add(2)
	go r.serveUDP()
	go r.serveTCP()
	return r, nil
}

// serves reports whether the relay answers a client at a.
func (r *Relay) serves(a netip.Addr) bool {
	return !r.cfg.Client.IsValid() || a.Unmap() == r.cfg.Client.Unmap()
}

// Addr is the address the relay serves (UDP and TCP).
func (r *Relay) Addr() netip.AddrPort {
	return r.udp.LocalAddr().(*net.UDPAddr).AddrPort()
}

// Close stops the relay, ends relayed connections and queries in flight,
// and waits for its goroutines. It is idempotent.
func (r *Relay) Close() error {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.done = true
		for c := range r.open {
			c.Close() // unblocks its goroutine; the error is of no interest
		}
		r.mu.Unlock()
		err1 := r.udp.Close()
		err2 := r.tcp.Close()
		r.wg.Wait()
		if err := errors.Join(err1, err2); err != nil {
			r.closeErr = fmt.Errorf("close dns relay: %w", err)
		}
	})
	return r.closeErr
}

// track registers c for Close; it returns false (and closes c) when the
// relay is already closing.
func (r *Relay) track(c io.Closer) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.done {
		c.Close()
		return false
	}
	r.open[c] = struct{}{}
	return true
}

func (r *Relay) untrack(c io.Closer) {
	r.mu.Lock()
	delete(r.open, c)
	r.mu.Unlock()
	c.Close()
}

func (r *Relay) serveUDP() {
	defer r.wg.Done()
	buf := make([]byte, 65535)
	for {
		n, from, err := r.udp.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // e.g. ICMP errors reported on the socket
		}
		if n < 12 || !r.serves(from.Addr()) { // not a query, or not our client's
			continue
		}
		select {
		case r.sem <- struct{}{}:
		default:
			continue
		}
		q := append([]byte(nil), buf[:n]...)
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer func() { <-r.sem }()
			if resp := r.serveQuery(q, false); resp != nil {
				// A lost reply is a lost datagram: the client retries.
				r.udp.WriteToUDPAddrPort(resp, from)
			}
		}()
	}
}

// serveQuery answers a query that came over UDP (or TCP): REFUSED if
// Check refuses a question, else the upstreams' answer once Answer took
// it.
func (r *Relay) serveQuery(q []byte, tcp bool) []byte {
	if !r.allowed(q, tcp) {
		return reply(q, dnsmessage.RCodeRefused)
	}
	resp := r.exchangeUDP(q)
	return r.answered(q, resp)
}

// allowed asks Check about each question of q; a query that does not
// parse is the upstream's to answer.
func (r *Relay) allowed(q []byte, tcp bool) bool {
	if r.cfg.Check == nil {
		return true
	}
	var p dnsmessage.Parser
	if _, err := p.Start(q); err != nil {
		return true
	}
	qs, err := p.AllQuestions()
	if err != nil {
		return true
	}
	for _, qq := range qs {
		if !r.cfg.Check(qq, tcp) {
			return false
		}
	}
	return true
}

// answered hands an upstream answer to Answer and returns what the
// client gets: the answer, or SERVFAIL when Answer failed.
func (r *Relay) answered(q, resp []byte) []byte {
	if r.cfg.Answer == nil || resp == nil {
		return resp
	}
	if err := r.cfg.Answer(resp); err != nil {
		return reply(q, dnsmessage.RCodeServerFailure)
	}
	return resp
}

// exchangeUDP asks the upstreams in turn and returns the first answer
// carrying the query's ID, or a SERVFAIL when none answered.
func (r *Relay) exchangeUDP(q []byte) []byte {
	id := binary.BigEndian.Uint16(q)
	buf := make([]byte, 65535)
	for _, up := range r.cfg.Upstreams {
		c, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(up))
		if err != nil {
			continue
		}
		if !r.track(c) {
			return nil
		}
		resp := func() []byte {
			defer r.untrack(c)
			c.SetDeadline(time.Now().Add(r.cfg.Timeout))
			if _, err := c.Write(q); err != nil {
				return nil
			}
			for {
				n, err := c.Read(buf)
				if err != nil {
					return nil
				}
				if n >= 12 && binary.BigEndian.Uint16(buf) == id {
					return append([]byte(nil), buf[:n]...)
				}
			}
		}()
		if resp != nil {
			return resp
		}
	}
	return servFail(q)
}

// servFail turns a query into a SERVFAIL answer, so that the client moves
// on at once instead of waiting for its own timeout.
func servFail(q []byte) []byte { return reply(q, dnsmessage.RCodeServerFailure) }

// reply turns a query into an answer with rcode and no records.
func reply(q []byte, rcode dnsmessage.RCode) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(q)
	if err != nil || h.Response {
		return nil
	}
	qs, err := p.AllQuestions()
	if err != nil {
		return nil
	}
	b := dnsmessage.NewBuilder(nil, dnsmessage.Header{
		ID: h.ID, Response: true, OpCode: h.OpCode, RecursionDesired: h.RecursionDesired,
		RecursionAvailable: true, RCode: rcode,
	})
	if err := b.StartQuestions(); err != nil {
		return nil
	}
	for _, qq := range qs {
		if err := b.Question(qq); err != nil {
			return nil
		}
	}
	out, err := b.Finish()
	if err != nil {
		return nil
	}
	return out
}

func (r *Relay) serveTCP() {
	defer r.wg.Done()
	for {
		c, err := r.tcp.AcceptTCP()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if !r.serves(c.RemoteAddr().(*net.TCPAddr).AddrPort().Addr()) {
			c.Close() // not our client: no answer
			continue
		}
		if !r.track(c) {
			return
		}
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			defer r.untrack(c)
			r.relayTCP(c)
		}()
	}
}

// relayTCP connects the client to the first upstream that accepts, and
// copies both ways until either side closes or the connection idles.
// DNS over TCP is plain length-prefixed messages, so a byte-stream copy
// relays it faithfully, pipelined queries included.
func (r *Relay) relayTCP(client *net.TCPConn) {
	var up net.Conn
	for _, a := range r.cfg.Upstreams {
		c, err := net.DialTimeout("tcp", a.String(), r.cfg.Timeout)
		if err == nil {
			up = c
			break
		}
	}
	if up == nil {
		return
	}
	if !r.track(up) {
		return
	}
	defer r.untrack(up)
	if r.cfg.Check != nil || r.cfg.Answer != nil {
		r.relayTCPMessages(client, up)
		return
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.copyIdle(up, client)
		up.(*net.TCPConn).CloseWrite() // pass the client's end of queries on
	}()
	r.copyIdle(client, up)
	client.CloseWrite()
	// The client has every answer the upstream will give: end the other
	// copy too (shutdown(2) SHUT_RD makes its blocked read return EOF).
	client.CloseRead()
	wg.Wait()
}

// copyIdle copies src to dst, giving up when src is silent for IdleTimeout.
func (r *Relay) copyIdle(dst io.Writer, src net.Conn) {
	buf := make([]byte, 16<<10)
	for {
		src.SetReadDeadline(time.Now().Add(r.cfg.IdleTimeout))
		n, err := src.Read(buf)
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// relayTCPMessages relays DNS over TCP message by message, for Check and
// Answer: a refused query is answered by the relay and never goes
// upstream; an answer reaches the client only after Answer took it.
// Pipelined queries stay pipelined.
func (r *Relay) relayTCPMessages(client *net.TCPConn, up net.Conn) {
	var mu sync.Mutex // the client's writes
	write := func(msg []byte) error {
		mu.Lock()
		defer mu.Unlock()
		client.SetWriteDeadline(time.Now().Add(r.cfg.IdleTimeout))
		_, err := client.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(msg))), msg...))
		return err
	}
	// A SERVFAIL for a failed Answer is made from the answer itself:
	// it carries its query's ID and question.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer client.CloseRead() // no more answers: end the query loop too
		for {
			msg, err := r.readMsg(up)
			if err != nil {
				return
			}
			if out := r.answered(asQuery(msg), msg); out == nil || write(out) != nil {
				return
			}
		}
	}()
	for {
		q, err := r.readMsg(client)
		if err != nil {
			break
		}
		if !r.allowed(q, true) {
			if out := reply(q, dnsmessage.RCodeRefused); out == nil || write(out) != nil {
				break
			}
			continue
		}
		up.SetWriteDeadline(time.Now().Add(r.cfg.IdleTimeout))
		if _, err := up.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(q))), q...)); err != nil {
			break
		}
	}
	up.(*net.TCPConn).CloseWrite()
	wg.Wait()
	client.CloseWrite()
}

// readMsg reads one length-prefixed DNS message, giving up when c is
// silent for IdleTimeout.
func (r *Relay) readMsg(c net.Conn) ([]byte, error) {
	c.SetReadDeadline(time.Now().Add(r.cfg.IdleTimeout))
	var l [2]byte
	if _, err := io.ReadFull(c, l[:]); err != nil {
		return nil, err
	}
	msg := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(c, msg); err != nil {
		return nil, err
	}
	return msg, nil
}

// asQuery turns an answer back into its query (header flags and
// question), so that reply can answer it otherwise.
func asQuery(msg []byte) []byte {
	q := append([]byte(nil), msg...)
	if len(q) >= 3 {
		q[2] &^= 0x80 // QR
	}
	return q
}
