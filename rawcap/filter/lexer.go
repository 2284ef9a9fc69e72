package filter

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"
)

// tokKind classifies a token. The classes follow libpcap's scanner: a word
// is a keyword, a number, a dotted IPv4 prefix (HID), an IPv6 address
// (HID6), an Ethernet address (EID) or a name (ID), and the longest
// match wins, so "tcp-syn" is one token and "len-14" is a name.
type tokKind int

const (
	tEOF tokKind = iota
	tNum
	tHID
	tHID6
	tEID
	tID
	tKw // keyword; text holds it
	tAnd
	tOr
	tNot
	tLParen
	tRParen
	tLBrack
	tRBrack
	tColon
	tPlus
	tMinus
	tStar
	tSlash
	tPercent
	tAmp
	tPipe
	tCaret
	tLsh
	tRsh
	tEq
	tNeq
	tGt
	tGe
	tLt
	tLe
)

type token struct {
	kind tokKind
	text string // source text (for tID: without a leading backslash)
	num  uint32 // value of tNum
	pos  int
}

func (t token) String() string {
	switch t.kind {
	case tEOF:
		return "end of expression"
	}
	return strconv.Quote(t.text)
}

// keywords of pcap-filter(7). The value says whether the keyword is
// implemented; unimplemented ones are recognised so that they can be named
// in the error instead of being misread as host names.
var keywords = map[string]bool{
	"dst": true, "src": true, "link": true, "ether": true, "ppp": true, "slip": true,
	"arp": true, "rarp": true, "ip": true, "ip6": true, "sctp": true, "tcp": true, "udp": true,
	"icmp": true, "icmp6": true, "igmp": true, "igrp": true, "pim": true, "vrrp": true,
	"carp": true, "ah": true, "esp": true,
	"host": true, "net": true, "mask": true, "port": true, "portrange": true, "proto": true,
	"less": true, "greater": true, "byte": true, "broadcast": true, "multicast": true,
	"and": true, "or": true, "not": true, "len": true, "length": true,
	"inbound": true, "outbound": true, "vlan": true,

	"fddi": false, "tr": false, "wlan": false, "radio": false,
	"atalk": false, "aarp": false, "decnet": false, "lat": false, "sca": false,
	"moprc": false, "mopdl": false, "iso": false, "esis": false, "es-is": false,
	"isis": false, "is-is": false, "l1": false, "l2": false, "iih": false, "lsp": false,
	"snp": false, "csnp": false, "psnp": false, "clnp": false, "stp": false, "ipx": false,
	"netbeui": false, "protochain": false, "gateway": false,
	"type": false, "subtype": false, "direction": false, "dir": false,
	"address1": false, "address2": false, "address3": false, "address4": false,
	"addr1": false, "addr2": false, "addr3": false, "addr4": false, "ra": false, "ta": false,
	"ifindex": false, "mpls": false, "pppoed": false, "pppoes": false, "geneve": false,
	"lane": false, "llc": false, "metac": false, "bcc": false, "oam": false, "oamf4": false,
	"oamf4ec": false, "oamf4sc": false, "sc": false, "ilmic": false, "vpi": false,
	"vci": false, "connectmsg": false, "metaconnect": false, "on": false, "ifname": false,
	"rnr": false, "rulenum": false, "reason": false, "rset": false, "ruleset": false,
	"srnr": false, "subrulenum": false, "action": false, "fisu": false, "lssu": false,
	"lsu": false, "msu": false, "hfisu": false, "hlssu": false, "hmsu": false, "sio": false,
	"opc": false, "dpc": false, "sls": false, "hsio": false, "hopc": false, "hdpc": false,
	"hsls": false,
}

// namedNumbers are the symbolic constants libpcap's scanner turns into
// numbers (pcap-filter(7), "expr relop expr").
var namedNumbers = map[string]uint32{
	"icmptype": 0, "icmpcode": 1,
	"icmp-echoreply": 0, "icmp-unreach": 3, "icmp-sourcequench": 4, "icmp-redirect": 5,
	"icmp-echo": 8, "icmp-routeradvert": 9, "icmp-routersolicit": 10, "icmp-timxceed": 11,
	"icmp-paramprob": 12, "icmp-tstamp": 13, "icmp-tstampreply": 14, "icmp-ireq": 15,
	"icmp-ireqreply": 16, "icmp-maskreq": 17, "icmp-maskreply": 18,
	"icmp6type": 0, "icmp6code": 1,
	"icmp6-destinationunreach": 1, "icmp6-packettoobig": 2, "icmp6-timeexceeded": 3,
	"icmp6-parameterproblem": 4, "icmp6-echo": 128, "icmp6-echoreply": 129,
	"icmp6-multicastlistenerquery": 130, "icmp6-multicastlistenerreportv1": 131,
	"icmp6-multicastlistenerdone": 132, "icmp6-routersolicit": 133,
	"icmp6-routeradvert": 134, "icmp6-neighborsolicit": 135, "icmp6-neighboradvert": 136,
	"icmp6-redirect": 137, "icmp6-routerrenum": 138, "icmp6-nodeinformationquery": 139,
	"icmp6-nodeinformationresponse": 140, "icmp6-ineighbordiscoverysolicit": 141,
	"icmp6-ineighbordiscoveryadvert": 142, "icmp6-multicastlistenerreportv2": 143,
	"icmp6-homeagentdiscoveryrequest": 144, "icmp6-homeagentdiscoveryreply": 145,
	"icmp6-mobileprefixsolicit": 146, "icmp6-mobileprefixadvert": 147,
	"icmp6-certpathsolicit": 148, "icmp6-certpathadvert": 149,
	"icmp6-multicastrouteradvert": 151, "icmp6-multicastroutersolicit": 152,
	"icmp6-multicastrouterterm": 153,
	"tcpflags":                  13, "tcp-fin": 0x01, "tcp-syn": 0x02, "tcp-rst": 0x04, "tcp-push": 0x08,
	"tcp-ack": 0x10, "tcp-urg": 0x20, "tcp-ece": 0x40, "tcp-cwr": 0x80,
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func isWordChar(c byte) bool {
	return isAlnum(c) || c == '.' || c == '-' || c == '_' || c == ':'
}

// lex splits expr into tokens. The returned slice always ends in tEOF.
func lex(expr string) ([]token, error) {
	var toks []token
	depth := 0 // of parentheses and brackets
	i := 0
	for i < len(expr) {
		c := expr[i]
		switch c {
		case ' ', '\t', '\n', '\r':
			i++
			continue
		}
		if c == '\\' {
			j := i + 1
			for j < len(expr) && !strings.ContainsRune(" !()\n\t", rune(expr[j])) {
				j++
			}
			if j == i+1 {
				return nil, &SyntaxError{Pos: i, Msg: "syntax error: lone backslash", Expr: expr}
			}
			toks = append(toks, token{kind: tID, text: expr[i+1 : j], pos: i})
			i = j
			continue
		}
		if c == ':' {
			// A colon starts an IPv6 address ("::1") or is the size
			// separator of a byte access ("ip[2:2]").
			j := i
			for j < len(expr) && isWordChar(expr[j]) {
				j++
			}
			if t, ok := longestWord(expr[i:j]); ok && t.kind == tHID6 {
				t.pos = i
				toks = append(toks, t)
				i += len(t.text)
				continue
			}
			toks = append(toks, token{kind: tColon, text: ":", pos: i})
			i++
			continue
		}
		if op, n := lexOperator(expr[i:]); n > 0 {
			switch op {
			case tLParen, tLBrack:
				if depth++; depth > MaxDepth {
					return nil, &SyntaxError{Pos: i, Expr: expr, tooLarge: true,
						Msg: fmt.Sprintf("parentheses and brackets nest more than %d deep, the limit", MaxDepth)}
				}
			case tRParen, tRBrack:
				depth-- // an unbalanced one is the parser's to report
			}
			toks = append(toks, token{kind: op, text: expr[i : i+n], pos: i})
			i += n
			continue
		}
		if !isAlnum(c) && c != ':' {
			// Report the character, not its first byte: 'ü', not 'Ã'.
			r, _ := utf8.DecodeRuneInString(expr[i:])
			return nil, &SyntaxError{Pos: i, Msg: "syntax error: unexpected character " + strconv.QuoteRune(r), Expr: expr}
		}
		j := i
		for j < len(expr) && isWordChar(expr[j]) {
			j++
		}
		t, ok := longestWord(expr[i:j])
		if !ok {
			return nil, &SyntaxError{Pos: i, Msg: "syntax error: cannot read " + strconv.Quote(expr[i:j]), Expr: expr}
		}
		t.pos = i
		toks = append(toks, t)
		i += len(t.text)
	}
	toks = append(toks, token{kind: tEOF, pos: len(expr)})
	return toks, nil
}

func lexOperator(s string) (tokKind, int) {
	if len(s) >= 2 {
		switch s[:2] {
		case "&&":
			return tAnd, 2
		case "||":
			return tOr, 2
		case "!=":
			return tNeq, 2
		case "==":
			return tEq, 2
		case ">=":
			return tGe, 2
		case "<=":
			return tLe, 2
		case ">>":
			return tRsh, 2
		case "<<":
			return tLsh, 2
		}
	}
	switch s[0] {
	case '!':
		return tNot, 1
	case '(':
		return tLParen, 1
	case ')':
		return tRParen, 1
	case '[':
		return tLBrack, 1
	case ']':
		return tRBrack, 1
	case '+':
		return tPlus, 1
	case '-':
		return tMinus, 1
	case '*':
		return tStar, 1
	case '/':
		return tSlash, 1
	case '%':
		return tPercent, 1
	case '&':
		return tAmp, 1
	case '|':
		return tPipe, 1
	case '^':
		return tCaret, 1
	case '=':
		return tEq, 1
	case '>':
		return tGt, 1
	case '<':
		return tLt, 1
	}
	return 0, 0
}

// longestWord finds the longest prefix of run that is a token, preferring
// keyword, number, Ethernet, IPv4, IPv6, name in that order among equal
// lengths, as flex does with libpcap's rule order.
func longestWord(run string) (token, bool) {
	for n := len(run); n > 0; n-- {
		s := run[:n]
		if _, ok := keywords[s]; ok {
			switch s {
			case "and":
				return token{kind: tAnd, text: s}, true
			case "or":
				return token{kind: tOr, text: s}, true
			case "not":
				return token{kind: tNot, text: s}, true
			}
			return token{kind: tKw, text: s}, true
		}
		if v, ok := namedNumbers[s]; ok {
			return token{kind: tNum, text: s, num: v}, true
		}
		if v, ok := parseNum(s); ok {
			return token{kind: tNum, text: s, num: v}, true
		}
		if isEID(s) {
			return token{kind: tEID, text: s}, true
		}
		if isHID(s) {
			return token{kind: tHID, text: s}, true
		}
		if strings.Contains(s, ":") {
			if a, err := netip.ParseAddr(s); err == nil && a.Is6() && a.Zone() == "" {
				return token{kind: tHID6, text: s}, true
			}
		}
		if isID(s) {
			return token{kind: tID, text: s}, true
		}
	}
	return token{}, false
}

// parseNum reads decimal, 0x-hex and 0-prefixed octal numbers as libpcap
// does; values above 2^32-1 are refused by the parser, not wrapped.
func parseNum(s string) (uint32, bool) {
	if s == "" {
		return 0, false
	}
	base := 10
	digits := s
	switch {
	case len(s) > 2 && (s[:2] == "0x" || s[:2] == "0X"):
		base, digits = 16, s[2:]
	case len(s) > 1 && s[0] == '0':
		base, digits = 8, s[1:]
	}
	for i := 0; i < len(digits); i++ {
		c := digits[i]
		switch base {
		case 10:
			if c < '0' || c > '9' {
				return 0, false
			}
		case 8:
			if c < '0' || c > '9' { // 8 and 9 are caught by ParseUint below
				return 0, false
			}
		case 16:
			if !isHex(c) {
				return 0, false
			}
		}
	}
	v, err := strconv.ParseUint(digits, base, 64)
	if err != nil || v > 0xffffffff {
		// libpcap silently truncates; an out-of-range number is almost
		// certainly a mistake, so it is kept as a word and refused later.
		return 0, false
	}
	return uint32(v), true
}

func isHID(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) < 2 || len(parts) > 4 {
		return false
	}
	for _, p := range parts {
		if p == "" {
			return false
		}
		for i := 0; i < len(p); i++ {
			if p[i] < '0' || p[i] > '9' {
				return false
			}
		}
	}
	return true
}

func isEID(s string) bool {
	for _, sep := range []string{":", "-", "."} {
		parts := strings.Split(s, sep)
		if len(parts) == 6 {
			ok := true
			for _, p := range parts {
				if len(p) < 1 || len(p) > 2 || !allHex(p) {
					ok = false
					break
				}
			}
			if ok {
				return true
			}
		}
	}
	parts := strings.Split(s, ".")
	if len(parts) == 3 {
		for _, p := range parts {
			if len(p) != 4 || !allHex(p) {
				return false
			}
		}
		return true
	}
	return false
}

func allHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isHex(s[i]) {
			return false
		}
	}
	return true
}

// isID matches libpcap's name rule [A-Za-z0-9]([-_.A-Za-z0-9]*[.A-Za-z0-9])?.
func isID(s string) bool {
	if !isAlnum(s[0]) {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !isAlnum(c) && c != '-' && c != '_' && c != '.' {
			return false
		}
	}
	last := s[len(s)-1]
	return isAlnum(last) || last == '.'
}

// parseEID converts an Ethernet address token to its six bytes.
func parseEID(s string) [6]byte {
	var mac [6]byte
	var hexs string
	if parts := strings.Split(s, "."); len(parts) == 3 && len(parts[0]) == 4 {
		hexs = strings.Join(parts, "")
	} else {
		parts := strings.FieldsFunc(s, func(r rune) bool { return r == ':' || r == '-' || r == '.' })
		for _, p := range parts {
			if len(p) == 1 {
				p = "0" + p
			}
			hexs += p
		}
	}
	for i := 0; i < 6; i++ {
		v, _ := strconv.ParseUint(hexs[2*i:2*i+2], 16, 8)
		mac[i] = byte(v)
	}
	return mac
}
