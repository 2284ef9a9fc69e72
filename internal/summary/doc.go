// Package summary answers "what does my program connect to?": it decodes
// the packets of a trace as they are captured (gopacket), keeps a bounded
// table of conversations, learns names for remote addresses from what the
// program itself did (DNS answers over UDP and TCP, TLS ClientHello SNI,
// HTTP/1 Host headers), and reports the result as a table for people and as
// JSON for CI.
//
// # JSON schema (stable; fields are only ever added)
//
//	{
//	  "command":      ["curl", "http://example.com/"],   // the traced command line
//	  "exit_status":  0,                                 // nsntrace's exit status
//	  "started":      "2026-11-22T10:00:00.123456789Z",  // RFC 3339, ns
//	  "ended":        "2026-11-22T10:00:01.5Z",
//	  "packets":      42,          // packets captured
//	  "dropped":      0,           // packets the kernel dropped (ring full)
//	  "untracked_conversations": 0, // conversations beyond the table's cap
//	  "connections": [{
//	    "proto":       "tcp",       // tcp | udp | icmp | icmpv6 | other
//	    "direction":   "outbound",  // outbound: the program initiated it
//	    "remote_addr": "93.184.216.34",
//	    "remote_port": 80,          // 0 for icmp/other
//	    "local_port":  41234,
//	    "names":       ["example.com"],
//	    "packets_out": 5, "packets_in": 4,  // out = sent by the program
//	    "bytes_out": 420, "bytes_in": 1200, // Ethernet frame bytes, as tshark counts
//	    "first_seen":  "...", "last_seen": "...",
//	    "state":       "established" // tcp: established | refused | no answer | partial;
//	                                 // udp/icmp: answered | no answer
//	  }],
//	  "dns_failures": [{"name": "nx.example", "type": "A", "rcode": "NXDOMAIN"}]
//	                                 // rcode: NXDOMAIN, SERVFAIL, ..., "no data", "no answer"
//	}
//
// The table is capped (Config.MaxConversations); conversations beyond the
// cap are counted in untracked_conversations, never stored, so memory stays
// bounded however busy the traced program is.
package summary
