package testbed

import (
	"strings"
	"testing"
)

// TestInternet checks the private internet itself: the host reaches the
// upstream's HTTP and DNS servers, directly and through the loopback stub.
func TestInternet(t *testing.T) {
	for _, stub := range []bool{false, true} {
		in := NewInternet(t, &InternetConfig{LoopbackResolver: stub})
		out := in.H.Run(t, "curl", "-4", "-sS", "--max-time", "10", "http://www.example.test:8080/x")
		if out != HTTPBody {
			t.Fatalf("stub=%v: curl got %q, want %q", stub, out, HTTPBody)
		}
		out = in.H.Run(t, "getent", "ahostsv4", "alias.example.test")
		if !strings.Contains(out, ServerAddr.String()) {
			t.Fatalf("stub=%v: getent alias.example.test = %q, want %s", stub, out, ServerAddr)
		}
		if _, err := in.H.Command("getent", "hosts", "nonexistent.example.test").Output(); err == nil {
			t.Fatalf("stub=%v: nonexistent name resolved", stub)
		}
		seen := in.Seen()
		var http bool
		for _, s := range seen {
			if s.Service == "http" && s.Remote.Addr() == HostAddr {
				http = true
			}
		}
		if !http {
			t.Fatalf("stub=%v: upstream did not see the host's HTTP request: %+v", stub, seen)
		}
	}
}
