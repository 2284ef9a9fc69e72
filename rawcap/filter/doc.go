// Package filter compiles pcap-filter(7) expressions into classic BPF
// programs for Linux AF_PACKET sockets on Ethernet, without libpcap.
//
// The compiler follows libpcap's grammar and code-generation semantics
// (gencode.c), because a capture filter that matches different packets
// from the one a user tested with tcpdump is worse than none:
//
//   - and/or have equal precedence and group left to right; not binds
//     tighter; && || ! are aliases; an id after and/or inherits the
//     qualifiers before it (`port 80 or 443`, `tcp dst port 80 or not 443`).
//   - `tcp port 80` matches IPv4 and IPv6, and skips IPv4 fragments other
//     than the first; `host 10.0.0.1` also matches ARP and RARP addresses;
//     `tcp`, `udp` and `proto N` on IPv6 accept one fragment header; byte
//     access such as tcp[13] is IPv4-only; and so on.
//   - `vlan` is compiled as libpcap does for a live Linux socket: the
//     kernel strips the outer tag into metadata, so the first `vlan` tests
//     SKF_AD_VLAN_TAG_PRESENT/SKF_AD_VLAN_TAG and falls back to an inline
//     tag, and every offset after it moves when the tag was inline.
//   - `inbound` and `outbound` use SKF_AD_PKTTYPE.
//   - Service and protocol names come from built-in tables; host names are
//     resolved with the Go resolver when the expression is compiled.
//
// Primitives that make no sense on an Ethernet capture or that this
// package does not implement (802.11 qualifiers, protochain, gateway,
// atalk, decnet, iso, ipx, stp, netbeui, mpls, pppoe, geneve, ifindex, pf
// and SS7 fields, ...) are refused with an error naming them, never
// approximated. `ip broadcast` assumes an unknown netmask, as
// `tcpdump -y EN10MB` does: it matches 0.0.0.0 and 255.255.255.255.
//
// The programs obey the kernel's rules (see Validate): forward jumps only,
// `ja` trampolines where a conditional jump would exceed 255 instructions,
// at most 4096 instructions, no read of uninitialised scratch memory, a
// final return. (The kernel also charges a filter against
// net.core.optmem_max, so with the common 128 KiB a program of more than
// about 3000 instructions is refused with ENOMEM when attached.) Accepted
// packets return the snaplen given to Compile. An
// expression that can never match is refused with ErrRejectsAll, as
// libpcap does (this compiler sees it in more cases). The optimiser
// removes only loads that cannot change a verdict or that libpcap's own
// optimiser removes too, so truncated packets are rejected where libpcap
// rejects them.
//
// # Compatibility
//
// The reference is the code libpcap 1.10 generates (`tcpdump -O -d`),
// including its quirks, because users check their filters with tcpdump:
// `%` and `^` have no precedence (`-a % b % c` is `-(a % (b % c))`); only
// the left operand of an arithmetic operator brings protocol checks
// (`26 + udp[0] = 5` reads that byte of any packet); offsets wrap around
// 2^32 (`ip[-3]` is the byte at 11); `x / ip[0]` and `x << ip[40]` are
// refused as division by zero and over-long shift, as in libpcap.
// libpcap's optimiser sometimes reorders loads or drops dead ones, and on
// truncated packets its optimised program can then disagree with its own
// unoptimised one; this compiler agrees with one of the two. Where the
// optimiser changes the meaning of `vlan` (as in `ip or vlan and ip` on a
// QinQ frame whose outer tag the kernel stripped), this compiler keeps the
// generated code's meaning. `byte N & V` and `byte N | V` are refused:
// libpcap compiles them without loading the byte.
//
// FormatDDD and Disassemble print programs like `tcpdump -ddd` and
// `tcpdump -d`.
package filter
