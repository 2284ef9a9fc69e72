// Package summary answers "what does my program connect to?": it keeps a
// bounded table of conversations as packets are captured, learns names for
// remote addresses from what the program itself did (DNS answers over UDP
// and TCP, CNAME chains included, TLS ClientHello SNI, HTTP/1 Host
// headers), and reports the result as a table for people and as JSON for
// CI.
//
// # Two halves
//
// Flows is the part that sees every packet, on the capture path: it reads
// the headers at fixed offsets (Ethernet, 802.1Q/802.1ad tags, IPv4 with
// options, IPv6 with hop-by-hop, routing, destination and fragment headers,
// TCP, UDP, ICMP) into a fixed-size key and counts the packet in an
// open-addressing table allocated once, without allocating or locking.
// Packets of the conversation seen last in each direction are counted
// without even being parsed. Only the few packets that can carry a name
// (UDP or TCP port 53, and the first four payload segments a program sends
// on a TCP connection, up to 16 KiB of each) are handed on: Account says
// how many bytes of them Names.Decode needs. Names decodes those with
// gopacket, wherever the caller likes (nsntrace: a goroutine beside the
// writer, fed batches that the capture never waits for). Counts are exact
// whatever the decoder does; a name packet the caller had no room for is
// reported in name_packets_skipped. NewReport joins the two.
//
// What Flows counts as a conversation agrees with gopacket's decoders
// (the oracle test holds them side by side): a transport header gopacket
// rejects, and fragments after the first, make an "other" conversation
// between the two addresses; ICMP errors and IPv6 neighbour discovery and
// multicast listener messages make none. Conversations first seen after
// their start (mid-stream) are listed, with state "partial" for TCP and
// the side with the ephemeral port as initiator.
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
//	  "untracked_conversations": 0, // conversations beyond the table's cap (an estimate)
//	  "untracked_packets": 0,       // their packets (exact)
//	  "name_packets_skipped": 0,    // packets that might have named an address, not decoded
//	  "cut_packets": 0,             // packets the snap length cut inside their headers: in no connection
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
//	    "state":       "established", // tcp: established | refused | no answer | partial;
//	                                 // udp/icmp: answered | no answer
//	    "pid":         12,           // the process that owned the socket, as the program's
//	    "comm":        "curl",       // PID namespace numbers it, its command name and
//	    "cmdline":     "curl -s http://example.com/" // command line; all three absent when unknown
//	  }],
//	  "dns_failures": [{"name": "nx.example", "type": "A", "rcode": "NXDOMAIN"}],
//	                                 // rcode: NXDOMAIN, SERVFAIL, ..., "no data", "no answer"
//	  "loopback": [{                 // null when the program's lo was not captured
//	    "proto":       "tcp",
//	    "server_addr": "127.0.0.1", "server_port": 8080,
//	    "client_addr": "127.0.0.1", "client_port": 41236,
//	    "packets_to_server": 6, "packets_to_client": 5,
//	    "bytes_to_server": 500, "bytes_to_client": 900,
//	    "first_seen":  "...", "last_seen": "...",
//	    "state":       "established"
//	  }],
//	  "loopback_untracked_conversations": 0,
//	  "unattributed_connections": 0, // tcp and udp connections with no known process;
//	                                 // absent when processes were not looked for
//	  "violations": [{               // null without an egress policy (--allow)
//	    "kind": "connection",        // or "lookup": a name no rule allows
//	    "name": "", "remote_addr": "10.1.2.3", "remote_port": 443, "proto": "tcp",
//	    "count": 1, "blocked": true  // blocked: --policy enforce
//	  }]
//	}
//
// Flows.TakeNew says which packet added a conversation, so that the caller
// can look up the process behind it while that packet is in hand, and name
// it with Flows.SetProcess; what is not known stays unknown.
//
// Conversations on the program's own loopback interface (Loopback) are
// kept apart: both ends are the program, so they are not connections out
// of it. Each has a client (for TCP the sender of the SYN, otherwise the
// side with the higher port) and a server; their table holds 4096.
//
// The table is capped (Config.MaxConversations, 65536 by default, about
// 7.5 MB allocated up front, touched only as it fills); conversations
// beyond the cap are never stored, so memory stays bounded however busy the
// traced program is. Their number is estimated by linear counting over
// 2^19 bits (within a per cent up to about four million; beyond that the
// estimate saturates and their packet count is given as an upper bound);
// their packets are counted exactly. The connections array is written one
// connection a line.
package summary
