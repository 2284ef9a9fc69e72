//go:build linux

package main

import (
	"fmt"
	"net/netip"
	"os"
	"strings"
	"sync"

	"github.com/nsntrace/nsntrace/child"
	"github.com/nsntrace/nsntrace/internal/dnsrelay"
	"github.com/nsntrace/nsntrace/internal/policy"
	"github.com/nsntrace/nsntrace/nft"
	"github.com/nsntrace/nsntrace/rawcap"
	"github.com/nsntrace/nsntrace/rtnl"
)

// session is the traced program's world on the host: the addresses
// reserved for it, the held-back child in its namespaces, the veth pair
// joining them to the host, the run's nft table, the DNS relay and the
// capture ring bound to the veth. startSession builds it in that order;
// Close undoes whatever was built, in reverse.
type session struct {
	rep  *reporter
	plan rtnl.Plan
	p    *child.Process
	link *rtnl.Link
	ring *rawcap.Ring
	// lo is the ring on the program's own lo, or nil (loopback_linux.go).
	lo *rawcap.Ring
	// keys is the program's TLS key log FIFO (--tls-keys), or nil.
	keys *os.File
	// procs finds the processes behind connections, or is nil if it
	// could not be set up (the start message said so).
	procs *procs
	// dnsNote says how the program resolves names, for the start message.
	dnsNote string

	undo []func()
	// aside are the steps of Close running beside the others (doAside).
	aside sync.WaitGroup
}

// newRing is a ring being allocated, or why it could not be.
type newRing struct {
	r   *rawcap.Ring
	err error
}

// startSession builds the world of a checked run. On error nothing of it
// is left.
func startSession(t *tracer) (_ *session, err error) {
	// s, not a named result: an error return sets that to nil before the
	// deferred Close runs.
	s := &session{rep: t.rep}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	plan, unlock, err := rtnl.Reserve(nil)
	if err != nil {
		return nil, fmt.Errorf("reserve addresses for the trace: %w", err)
	}
	s.plan = plan
	locked := true
	defer func() {
		if locked {
			unlock()
		}
	}()
	ccfg, relayTo := t.childConfig(s)

	// The kernel zeroes a large ring as it allocates it, the slowest step
	// of a start: do it while the child and its veth are being made, and
	// bind it to the veth once that exists.
	ringc := make(chan newRing, 1)
	go func() {
		r, err := rawcap.New(t.ringConfig())
		ringc <- newRing{r, err}
	}()
	s.do(func() { // collects the ring if nothing else did
		if nr, ok := <-ringc; ok && nr.r != nil {
			nr.r.Close()
		}
	})

	if err := s.connect(ccfg); err != nil {
		return nil, err
	}
	if !t.o.noProcesses {
		s.watchProcesses()
	}
	var loc chan newRing
	if t.o.captureLoopback() {
		netns, err := s.p.NetNS()
		if err != nil {
			return nil, fmt.Errorf("open the program's network namespace: %w", err)
		}
		loc = s.openLoopback(t, int(netns.Fd())) // netns is p's, closed after the ring arrived
	}
	unlock()
	locked = false
	if err := s.firewall(t.uplink.Name, t.o.ports, t.eg); err != nil {
		return nil, err
	}
	if relayTo != nil {
		if err := s.relayDNS(relayTo, t.eg); err != nil {
			return nil, err
		}
	}
	nr := <-ringc
	close(ringc)
	if nr.err != nil {
		return nil, fmt.Errorf("open capture on %s: %w", plan.HostIf, nr.err)
	}
	s.ring = nr.r
	s.doAside(func() { s.ring.Close() }) // after Stats; a close error loses nothing
	if err := s.ring.Bind(s.link.HostIndex()); err != nil {
		return nil, fmt.Errorf("open capture on %s: %w", plan.HostIf, err)
	}
	if loc != nil {
		if err := s.bindLoopback(loc); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// do adds a step to Close.
func (s *session) do(f func()) { s.undo = append(s.undo, f) }

// doAside adds a step to Close that runs beside the steps after it, and
// that Close waits for before it returns: closing a packet socket waits
// for an RCU grace period (packet_release, packet_set_ring:
// synchronize_net), 10-30 ms each on the development VM: closed beside
// each other and the rest, the veth's ring, lo's ring and the process
// watcher took "nsntrace true" from 182 to 142 ms of wall time (12
// interleaved runs, medians). Nothing after them needs them closed.
func (s *session) doAside(f func()) {
	s.do(func() {
		s.aside.Add(1)
		go func() {
			defer s.aside.Done()
			f()
		}()
	})
}

// Close tears the world down in reverse: the ring, the relay, the table,
// the veth, and last the child, killed if it is still held back (its
// namespaces go with it). The packet sockets close beside the rest
// (doAside).
func (s *session) Close() {
	for i := len(s.undo) - 1; i >= 0; i-- {
		s.undo[i]()
	}
	s.undo = nil
	s.aside.Wait()
}

// connect starts the held-back child in its namespaces and joins its
// network namespace to the host with the veth pair.
func (s *session) connect(ccfg *child.Config) error {
	p, err := child.Start(ccfg)
	if err != nil {
		return fmt.Errorf("start the program's namespaces: %w", err)
	}
	s.p = p
	s.do(func() { p.Close() }) // kills a held-back child; frees a waited one
	if ccfg.KeyLog != "" {
		if s.keys, err = p.KeyLog(ccfg.KeyLog); err != nil {
			return err
		}
		s.do(func() { s.keys.Close() })
	}
	netns, err := p.NetNS()
	if err != nil {
		return fmt.Errorf("open the program's network namespace: %w", err)
	}
	link, err := rtnl.Setup(s.plan, int(netns.Fd())) // netns is p's: p.Close closes it
	if err != nil {
		return fmt.Errorf("connect the program's namespace: %w", err)
	}

	s.link = link
	s.do(func() {
		if err := link.Close(); err != nil {
			s.rep.errorf("warning: remove veth %s: %v", s.plan.HostIf, err)
		}
	})
	return nil
}

// watchProcesses sets up the lookup of the processes behind connections
// (procs_linux.go). The trace goes on without them rather than not at all.
func (s *session) watchProcesses() {
	netns, err := s.p.NetNS()
	if err == nil {
		s.procs, err = openProcs(int(netns.Fd()), s.p.Pid(), s.link.HostIndex()) // netns is p's
	}
	if err != nil {
		s.procs = nil
		s.rep.errorf("warning: the processes behind connections will be unknown: %v", err)
		return
	}
	pr := s.procs
	s.doAside(func() { pr.Close() }) // nothing written: a close error loses nothing
}

// firewall installs the run's nft table: NAT out of the uplink,
// forwarding for the veth, DNAT to the published ports, and the enforced
// egress policy of eg, if any.
func (s *session) firewall(uplink string, ports []nft.Port, eg *egress) error {
	spec := nft.Spec{
		Subnet:  s.plan.HostAddr.Masked(),
		Subnet6: s.plan.HostAddr6.Masked(),
		Uplink:  uplink,
		Veth:    s.plan.HostIf,
		Peer:    s.plan.PeerAddr.Addr(),
		Peer6:   s.plan.PeerAddr6.Addr(),
		Publish: ports,
	}
	if eg != nil && eg.pol != nil {
		// The relay on the gateway is the program's DNS server.
		eg.pol.AlwaysAllow(policy.Rule{Prefix: netip.PrefixFrom(s.plan.HostAddr.Addr(), 32), Port: dnsrelay.DefaultPort})
		if eg.enforce {
			spec.Egress = egressSpec(eg.pol.Rules())
			spec.Egress.Relay = netip.AddrPortFrom(s.plan.HostAddr.Addr(), dnsrelay.DefaultPort)
		}
	}
	table, err := nft.Install(spec)
	if err != nil {
		return fmt.Errorf("install NAT and forwarding rules: %w", err)
	}
	if spec.Egress != nil {
		eg.grant = func(g policy.Grant) error {
			return table.Grant(g.Addr, g.Port, nft.Proto(g.Proto), g.TTL, g.Live)
		}
	}
	s.do(func() {
		if err := table.Close(); err != nil {
			s.rep.errorf("warning: remove firewall table: %v", err)
		}
	})
	return nil
}

// relayDNS answers the program's queries to the gateway from the host's
// resolvers, which the program cannot reach itself (loopback stubs).
func (s *session) relayDNS(upstreams []netip.AddrPort, eg *egress) error {
	// Only the program, over its own veth: the gateway address is
	// reachable from the uplink and from other traces too.
	cfg := &dnsrelay.Config{
		Upstreams: upstreams,
		Interface: s.plan.HostIf,
		Client:    s.plan.PeerAddr.Addr(),
	}
	if eg != nil {
		cfg.Check, cfg.Answer = eg.check, eg.answer
	}
	relay, err := dnsrelay.Listen(netip.AddrPortFrom(s.plan.HostAddr.Addr(), dnsrelay.DefaultPort), cfg)
	if err != nil {
		return err
	}
	s.do(func() { relay.Close() }) // its sockets only; nothing to report
	return nil
}

// childConfig is how the program is started in session s, and the host
// resolvers to relay its DNS to (nil: no relay).
func (t *tracer) childConfig(s *session) (*child.Config, []netip.AddrPort) {
	ccfg := &child.Config{
		Path:    t.path,
		Args:    t.argv,
		Env:     os.Environ(),
		User:    t.user,
		WaitAll: t.o.waitAll,
		Grace:   gracePeriod,
	}
	if t.file.stdout() {
		// Standard output carries the capture; the program's goes to stderr.
		ccfg.Stdout = os.Stderr
	}
	if t.o.tlsKeys {
		ccfg.KeyLog = keyLogPath
		ccfg.Env = append(withoutEnv(ccfg.Env, "SSLKEYLOGFILE"), "SSLKEYLOGFILE="+keyLogPath)
	}
	gw := s.plan.HostAddr.Addr()
	switch {
	case t.eg != nil && hasResolvConf():
		// The egress policy learns names from the answers, before the
		// program gets them: its DNS goes through the relay, also to the
		// public resolvers.
		relayTo, which := t.hostDNS.Upstreams(), "the host's resolvers"
		if t.o.publicDNS {
			relayTo, which = nil, "public resolvers (--use-public-dns)"
			for _, a := range dnsrelay.PublicResolvers {
				relayTo = append(relayTo, netip.AddrPortFrom(a, dnsrelay.DefaultPort))
			}
		}
		ccfg.ResolvConf = dnsrelay.ChildResolvConf(t.hostDNS,
			fmt.Sprintf("nsntrace relays DNS from the gateway to %s (%s), for the egress policy", which, joinAddrPorts(relayTo)), gw)
		s.dnsNote = fmt.Sprintf("DNS: relayed from %s to %s %s, for the egress policy.", gw, which, joinAddrPorts(relayTo))
		return ccfg, relayTo
	case t.o.publicDNS:
		ccfg.ResolvConf = dnsrelay.ChildResolvConf(t.hostDNS, "public resolvers (--use-public-dns)", dnsrelay.PublicResolvers...)
		s.dnsNote = "DNS: public resolvers (--use-public-dns)."
	case !hasResolvConf():
		s.dnsNote = "DNS: the host has no /etc/resolv.conf, so the program has none either."
	case t.hostDNS.NeedsRelay():
		relayTo := t.hostDNS.Upstreams()
		ccfg.ResolvConf = dnsrelay.ChildResolvConf(t.hostDNS,
			fmt.Sprintf("nsntrace relays DNS from the gateway to the host's resolvers (%s)", joinAddrPorts(relayTo)), gw)
		s.dnsNote = fmt.Sprintf("DNS: relayed from %s to the host's resolver %s.", gw, joinAddrPorts(relayTo))
		return ccfg, relayTo
	}
	return ccfg, nil
}

// withoutEnv returns env without the variable name.
func withoutEnv(env []string, name string) []string {
	out := env[:0:0]
	for _, kv := range env {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}

// egressSpec is the nft part of an enforced policy: its address rules (a
// port without a protocol is a rule for TCP and one for UDP). Name rules
// reach nft through the relay's grants.
func egressSpec(rules []policy.Rule) *nft.Egress {
	e := &nft.Egress{}
	for _, r := range rules {
		if r.IsName() {
			continue
		}
		protos := []nft.Proto{nft.Proto(r.Proto)}
		if r.Port != 0 && r.Proto == policy.Any {
			protos = []nft.Proto{nft.TCP, nft.UDP}
		}
		for _, p := range protos {
			e.Allow = append(e.Allow, nft.EgressRule{Prefix: r.Prefix, Port: r.Port, Proto: p})
		}
	}
	return e
}
