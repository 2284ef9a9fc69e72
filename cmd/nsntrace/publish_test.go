package main

import (
	"io"
	"net/netip"
	"strings"
	"testing"

	"github.com/nsntrace/nsntrace/nft"
)

func TestParsePublish(t *testing.T) {
	a := netip.MustParseAddr
	for _, c := range []struct {
		in   string
		want nft.Port
		err  string
	}{
		{"8080:80", nft.Port{Proto: nft.TCP, HostPort: 8080, Port: 80}, ""},
		{"8080:80/tcp", nft.Port{Proto: nft.TCP, HostPort: 8080, Port: 80}, ""},
		{"53:5353/udp", nft.Port{Proto: nft.UDP, HostPort: 53, Port: 5353}, ""},
		{"127.0.0.1:8080:80", nft.Port{Proto: nft.TCP, HostAddr: a("127.0.0.1"), HostPort: 8080, Port: 80}, ""},
		{"[::1]:8080:80/udp", nft.Port{Proto: nft.UDP, HostAddr: a("::1"), HostPort: 8080, Port: 80}, ""},
		{"fd77::2:8080:80", nft.Port{Proto: nft.TCP, HostAddr: a("fd77::2"), HostPort: 8080, Port: 80}, ""},
		{"[::ffff:10.0.0.1]:1:2", nft.Port{Proto: nft.TCP, HostAddr: a("10.0.0.1"), HostPort: 1, Port: 2}, ""},
		{"0.0.0.0:8080:80", nft.Port{Proto: nft.TCP, HostPort: 8080, Port: 80}, ""},
		{"[::]:65535:65535", nft.Port{Proto: nft.TCP, HostPort: 65535, Port: 65535}, ""},
		{"80", nft.Port{}, "give HOSTPORT:PORT"},
		{"80/udp", nft.Port{}, "give HOSTPORT:PORT"},
		{"", nft.Port{}, "give HOSTPORT:PORT"},
		{":80", nft.Port{}, `HOSTPORT ""`},
		{"8080:", nft.Port{}, `PORT ""`},
		{"0:80", nft.Port{}, `HOSTPORT "0"`},
		{"8080:65536", nft.Port{}, `PORT "65536"`},
		{"8080:-1", nft.Port{}, `PORT "-1"`},
		{"8080:80/sctp", nft.Port{}, `protocol "sctp"`},
		{"8080:80/", nft.Port{}, `protocol ""`},
		{"8080-8081:80", nft.Port{}, `HOSTPORT "8080-8081"`},
		{"localhost:8080:80", nft.Port{}, `HOSTADDR "localhost"`},
		{"[fe80::1%eth0]:8080:80", nft.Port{}, `HOSTADDR "fe80::1%eth0"`},
	} {
		got, err := parsePublish(c.in)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("parsePublish(%q): %v", c.in, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("parsePublish(%q) = %v, %v; want error with %q", c.in, got, err, c.err)
		case got != c.want:
			t.Errorf("parsePublish(%q) = %+v, want %+v", c.in, got, c.want)
		}
	}
}

func TestPublishFlag(t *testing.T) {
	o, err := parse([]string{"-p", "8080:80", "--publish", "[::1]:53:53/udp", "prog"}, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(o.ports) != 2 || o.ports[1].String() != "[::1]:53:53/udp" || o.ports[0].String() != "8080:80/tcp" {
		t.Errorf("ports = %v", o.ports)
	}
	for _, c := range []struct{ args []string }{
		{[]string{"-p", "8080:80", "-p", "127.0.0.1:8080:81", "prog"}},
		{[]string{"-p", "8080:80/udp", "-p", "8080:81/udp", "prog"}},
		{[]string{"-p", "8080:80", "--interface", "lo"}},
	} {
		if _, err := parse(c.args, io.Discard, io.Discard); err == nil {
			t.Errorf("parse %q: accepted", c.args)
		}
	}
	// The same host port for TCP and UDP, or on two addresses: fine.
	if _, err := parse([]string{"-p", "8080:80", "-p", "8080:80/udp", "-p", "10.0.0.1:9:9", "-p", "10.0.0.2:9:9", "prog"}, io.Discard, io.Discard); err != nil {
		t.Error(err)
	}
}
