// Package policy is nsntrace's egress policy: rules saying where a traced
// program may connect (--allow, --allow-file), matching of connections and
// DNS names against them, the addresses that DNS answers for allowed names
// grant for a while, and rules suggested from a run (--suggest-policy).
//
// A rule is a name (api.github.com), a wildcard (*.pythonhosted.org: any
// name below pythonhosted.org, not the name itself), an address or a CIDR
// prefix (IPv4 or IPv6), each with an optional :PORT and /tcp or /udp:
//
//	api.github.com:443/tcp
//	*.pythonhosted.org
//	10.0.0.0/8:53/udp
//	[2001:db8::1]:443/tcp
//	2001:db8::/32
//
// A port without a protocol allows both TCP and UDP; no port allows every
// port and protocol (ICMP included).
//
// The package is pure Go: no privileges, no network namespaces.
package policy
