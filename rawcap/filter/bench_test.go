package filter

import "testing"

func benchCompile(b *testing.B, expr string) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Compile(expr, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCompileSimple(b *testing.B) { benchCompile(b, "tcp port 443") }

func BenchmarkCompileTypical(b *testing.B) {
	benchCompile(b, "tcp port 443 and not host 10.0.0.1 or udp port 53")
}

func BenchmarkCompileComplex(b *testing.B) {
	benchCompile(b, "vlan and (tcp[tcpflags] & (tcp-syn|tcp-fin) != 0 or portrange 1000-2000) and not net 10.0.0.0/8 and ip6 or icmp[icmptype] = icmp-echo")
}
