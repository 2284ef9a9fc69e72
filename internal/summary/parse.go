package summary

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"strings"

	"golang.org/x/net/dns/dnsmessage"
)

// Failure is a DNS lookup that did not give an address.
type Failure struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	RCode string `json:"rcode"`
}

func qtypeName(t dnsmessage.Type) string { return strings.TrimPrefix(t.String(), "Type") }

func rcodeName(r dnsmessage.RCode) string {
	switch r {
	case dnsmessage.RCodeNameError:
		return "NXDOMAIN"
	case dnsmessage.RCodeServerFailure:
		return "SERVFAIL"
	case dnsmessage.RCodeRefused:
		return "REFUSED"
	case dnsmessage.RCodeFormatError:
		return "FORMERR"
	case dnsmessage.RCodeNotImplemented:
		return "NOTIMP"
	}
	return strings.TrimPrefix(r.String(), "RCode")
}

// dns handles one DNS message: a query is remembered, a response teaches
// names (following CNAME chains) or records a failure.
func (t *Names) dns(msg []byte, query bool) {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil {
		return
	}
	q, err := p.Question()
	if err != nil {
		return
	}
	qname := strings.TrimSuffix(q.Name.String(), ".")
	if !h.Response {
		if _, ok := t.queries[h.ID]; !ok && len(t.queries) < maxNames {
			t.queries[h.ID] = &dnsQuery{name: qname, qtype: qtypeName(q.Type)}
			t.qorder = append(t.qorder, h.ID)
		}
		return
	}
	pending := t.queries[h.ID]
	if pending != nil && pending.name == qname {
		pending.done = true
	}
	if h.RCode != dnsmessage.RCodeSuccess {
		t.fail(qname, qtypeName(q.Type), rcodeName(h.RCode))
		return
	}
	p.SkipAllQuestions()
	aliases := map[string]string{} // target -> the name asked
	got := false
	for {
		rh, err := p.AnswerHeader()
		if err != nil {
			break
		}
		owner := strings.TrimSuffix(rh.Name.String(), ".")
		asked := owner
		if a, ok := aliases[owner]; ok {
			asked = a
		}
		switch rh.Type {
		case dnsmessage.TypeCNAME:
			r, err := p.CNAMEResource()
			if err != nil {
				return
			}
			aliases[strings.TrimSuffix(r.CNAME.String(), ".")] = asked
		case dnsmessage.TypeA:
			r, err := p.AResource()
			if err != nil {
				return
			}
			t.learn(netip.AddrFrom4(r.A), asked, owner)
			got = true
		case dnsmessage.TypeAAAA:
			r, err := p.AAAAResource()
			if err != nil {
				return
			}
			t.learn(netip.AddrFrom16(r.AAAA), asked, owner)
			got = true
		default:
			if err := p.SkipAnswer(); err != nil {
				return
			}
		}
	}
	if !got && (q.Type == dnsmessage.TypeA || q.Type == dnsmessage.TypeAAAA) {
		t.fail(qname, qtypeName(q.Type), "no data")
	}
}

// learn names addr by the name the program asked for, and by the canonical
// name where a CNAME chain led elsewhere.
func (t *Names) learn(addr netip.Addr, asked, canonical string) {
	t.addName(addr, asked)
	if canonical != asked {
		t.addName(addr, canonical)
	}
}

func (t *Names) fail(name, typ, rcode string) {
	f := Failure{name, typ, rcode}
	if _, dup := t.failed[f]; dup || len(t.failures) >= maxNames {
		return
	}
	t.failed[f] = struct{}{}
	t.failures = append(t.failures, f)
}

// sni returns the server name of a TLS ClientHello at the start of p.
// clientHello reports whether p begins a TLS handshake record holding a
// ClientHello.
func clientHello(p []byte) bool {
	return len(p) >= 9 && p[0] == 22 && p[1] == 3 && p[5] == 1
}

func sni(p []byte) string {
	// TLS record: type 22 (handshake), version, length; handshake type 1.
	if len(p) < 9 || p[0] != 22 || p[5] != 1 {
		return ""
	}
	b := p[9:]
	take := func(n int) []byte {
		if n < 0 || len(b) < n {
			b = nil
			return nil
		}
		v := b[:n]
		b = b[n:]
		return v
	}
	u8 := func() int {
		v := take(1)
		if v == nil {
			return -1
		}
		return int(v[0])
	}
	u16 := func() int {
		v := take(2)
		if v == nil {
			return -1
		}
		return int(binary.BigEndian.Uint16(v))
	}
	take(2 + 32) // client_version, random
	take(u8())   // session_id
	take(u16())  // cipher_suites
	take(u8())   // compression_methods
	ext := take(u16())
	for len(ext) >= 4 {
		typ := binary.BigEndian.Uint16(ext)
		n := int(binary.BigEndian.Uint16(ext[2:]))
		if len(ext) < 4+n {
			return ""
		}
		body := ext[4 : 4+n]
		ext = ext[4+n:]
		if typ != 0 || len(body) < 5 || body[2] != 0 {
			continue
		}
		l := int(binary.BigEndian.Uint16(body[3:]))
		if len(body) < 5+l {
			return ""
		}
		return strings.ToLower(string(body[5 : 5+l]))
	}
	return ""
}

var methods = [][]byte{[]byte("GET "), []byte("POST "), []byte("PUT "), []byte("HEAD "), []byte("DELETE "), []byte("OPTIONS "), []byte("PATCH "), []byte("CONNECT ")}

// httpHost returns the Host header of an HTTP/1 request at the start of p,
// without a port.
func httpHost(p []byte) string {
	ok := false
	for _, m := range methods {
		if bytes.HasPrefix(p, m) {
			ok = true
			break
		}
	}
	if !ok {
		return ""
	}
	end := bytes.Index(p, []byte("\r\n\r\n"))
	if end < 0 {
		// The head goes on past what was captured (a snap length, or the
		// decoder's share of the segment): only a line that ends here is
		// whole, the last one may be cut ("Host: ww").
		end = bytes.LastIndex(p, []byte("\r\n"))
		if end < 0 {
			return ""
		}
	}
	for _, line := range bytes.Split(p[:end], []byte("\r\n"))[1:] {
		if len(line) > 5 && bytes.EqualFold(line[:5], []byte("host:")) {
			h := strings.TrimSpace(string(line[5:]))
			if ap, err := netip.ParseAddrPort(h); err == nil {
				return ap.Addr().String()
			}
			if i := strings.LastIndexByte(h, ':'); i > 0 && !strings.Contains(h[:i], ":") {
				h = h[:i]
			}
			return strings.ToLower(strings.Trim(h, "[]"))
		}
	}
	return ""
}
