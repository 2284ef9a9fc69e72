package main

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/nsntrace/nsntrace/nft"
)

// parsePublish parses one -p value, docker's syntax:
// [HOSTADDR:]HOSTPORT:PORT[/tcp|/udp], HOSTADDR an IPv4 address or an
// IPv6 one, bracketed or not. 0.0.0.0 and :: mean every address, as
// leaving HOSTADDR out does.
func parsePublish(v string) (nft.Port, error) {
	p := nft.Port{Proto: nft.TCP}
	rest := v
	if i := strings.LastIndexByte(rest, '/'); i >= 0 {
		switch rest[i+1:] {
		case "tcp":
		case "udp":
			p.Proto = nft.UDP
		default:
			return nft.Port{}, fmt.Errorf("protocol %q: must be tcp or udp", rest[i+1:])
		}
		rest = rest[:i]
	}
	i := strings.LastIndexByte(rest, ':')
	if i < 0 {
		return nft.Port{}, fmt.Errorf("give HOSTPORT:PORT, the host's port and the program's")
	}
	var err error
	if p.Port, err = parsePort(rest[i+1:], "PORT"); err != nil {
		return nft.Port{}, err
	}
	rest = rest[:i]
	host := ""
	if i := strings.LastIndexByte(rest, ':'); i >= 0 {
		host, rest = rest[:i], rest[i+1:]
	}
	if p.HostPort, err = parsePort(rest, "HOSTPORT"); err != nil {
		return nft.Port{}, err
	}
	if host == "" {
		return p, nil
	}
	if strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]") {
		host = host[1 : len(host)-1]
	}
	a, err := netip.ParseAddr(host)
	if err != nil || a.Zone() != "" {
		return nft.Port{}, fmt.Errorf("HOSTADDR %q: must be an IPv4 or IPv6 address of the host", host)
	}
	if a = a.Unmap(); !a.IsUnspecified() {
		p.HostAddr = a
	}
	return p, nil
}

func parsePort(s, what string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%s %q: must be a port number from 1 to 65535", what, s)
	}
	return uint16(n), nil
}

// checkPublish parses -p and refuses a host port given twice.
func (o *options) checkPublish() error {
	if len(o.publish) > 0 && o.set["interface"] {
		return &usageError{"-p publishes a port of a traced program, not of --interface"}
	}
	o.ports = nil
	for _, v := range o.publish {
		p, err := parsePublish(v)
		if err != nil {
			return &usageError{fmt.Sprintf("-p %q: %v ([HOSTADDR:]HOSTPORT:PORT[/tcp|/udp])", v, err)}
		}
		for _, q := range o.ports {
			if q.Proto == p.Proto && q.HostPort == p.HostPort && (q.HostAddr == p.HostAddr || !q.HostAddr.IsValid() || !p.HostAddr.IsValid()) {
				return &usageError{fmt.Sprintf("-p %q: host port %d/%s is published twice", v, p.HostPort, p.Proto)}
			}
		}
		o.ports = append(o.ports, p)
	}
	return nil
}
