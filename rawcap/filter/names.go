package filter

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// service is a built-in /etc/services entry: the port and whether the
// name is registered for tcp, udp or both (protoAny). libpcap narrows
// `port NAME` to the protocols the name is registered for, so a tcp-only
// name does not match udp.
type service struct {
	port  uint32
	proto int
}

// services are the common IANA service names with the transport
// protocols Debian's netbase registers them for. Appliances have no
// /etc/services, so the table is built in.
var services = map[string]service{
	"tcpmux":         {1, protoTCP},
	"echo":           {7, protoAny},
	"discard":        {9, protoAny},
	"systat":         {11, protoTCP},
	"daytime":        {13, protoAny},
	"netstat":        {15, protoTCP},
	"qotd":           {17, protoTCP},
	"chargen":        {19, protoAny},
	"ftp-data":       {20, protoTCP},
	"ftp":            {21, protoTCP},
	"ssh":            {22, protoTCP},
	"telnet":         {23, protoTCP},
	"smtp":           {25, protoTCP},
	"time":           {37, protoAny},
	"whois":          {43, protoTCP},
	"tacacs":         {49, protoAny},
	"domain":         {53, protoAny},
	"gopher":         {70, protoTCP},
	"finger":         {79, protoTCP},
	"http":           {80, protoTCP},
	"kerberos":       {88, protoAny},
	"iso-tsap":       {102, protoTCP},
	"pop3":           {110, protoTCP},
	"sunrpc":         {111, protoAny},
	"auth":           {113, protoTCP},
	"nntp":           {119, protoTCP},
	"ntp":            {123, protoUDP},
	"epmap":          {135, protoTCP},
	"netbios-ns":     {137, protoUDP},
	"netbios-dgm":    {138, protoUDP},
	"netbios-ssn":    {139, protoTCP},
	"imap2":          {143, protoTCP},
	"snmp":           {161, protoAny},
	"snmp-trap":      {162, protoAny},
	"bgp":            {179, protoTCP},
	"ldap":           {389, protoAny},
	"https":          {443, protoAny},
	"microsoft-ds":   {445, protoTCP},
	"kpasswd":        {464, protoAny},
	"isakmp":         {500, protoUDP},
	"submissions":    {465, protoTCP},
	"submission":     {587, protoTCP},
	"rtsp":           {554, protoAny},
	"exec":           {512, protoTCP},
	"biff":           {512, protoUDP},
	"login":          {513, protoTCP},
	"who":            {513, protoUDP},
	"shell":          {514, protoTCP},
	"syslog":         {514, protoAny},
	"printer":        {515, protoTCP},
	"talk":           {517, protoUDP},
	"ntalk":          {518, protoUDP},
	"route":          {520, protoUDP},
	"uucp":           {540, protoTCP},
	"dhcpv6-client":  {546, protoUDP},
	"dhcpv6-server":  {547, protoUDP},
	"nfs":            {2049, protoAny},
	"ldaps":          {636, protoAny},
	"ftps-data":      {989, protoTCP},
	"ftps":           {990, protoTCP},
	"telnets":        {992, protoTCP},
	"imaps":          {993, protoTCP},
	"pop3s":          {995, protoTCP},
	"openvpn":        {1194, protoAny},
	"rsync":          {873, protoTCP},
	"radius":         {1812, protoAny},
	"radius-acct":    {1813, protoAny},
	"l2tp":           {1701, protoUDP},
	"mysql":          {3306, protoTCP},
	"postgresql":     {5432, protoTCP},
	"sip":            {5060, protoAny},
	"sip-tls":        {5061, protoAny},
	"xmpp-client":    {5222, protoTCP},
	"xmpp-server":    {5269, protoTCP},
	"mdns":           {5353, protoUDP},
	"redis":          {6379, protoTCP},
	"amqp":           {5672, protoTCP},
	"bootps":         {67, protoUDP},
	"bootpc":         {68, protoUDP},
	"tftp":           {69, protoUDP},
	"xdmcp":          {177, protoUDP},
	"socks":          {1080, protoTCP},
	"domain-s":       {853, protoAny},
	"nrpe":           {5666, protoTCP},
	"nut":            {3493, protoAny},
	"git":            {9418, protoTCP},
	"svn":            {3690, protoTCP},
	"x11":            {6000, protoTCP},
	"kerberos-adm":   {749, protoTCP},
	"iprop":          {2121, protoTCP},
	"zabbix-agent":   {10050, protoTCP},
	"zabbix-trapper": {10051, protoTCP},
	"cfengine":       {5308, protoTCP},
	"hkp":            {11371, protoTCP},
	"sieve":          {4190, protoTCP},
	"ms-sql-s":       {1433, protoTCP},
	"ms-sql-m":       {1434, protoUDP},
	"rmiregistry":    {1099, protoTCP},
	"gsigatekeeper":  {2119, protoTCP},
	"gris":           {2135, protoTCP},
	"puppet":         {8140, protoTCP},
	"webmin":         {10000, protoTCP},
	"syslog-tls":     {6514, protoTCP},
	"distcc":         {3632, protoTCP},
	"www":            {80, protoTCP},
	"mail":           {25, protoTCP},
	"imap":           {143, protoTCP},
	"postgres":       {5432, protoTCP},
	"snmptrap":       {162, protoAny},
}

// ipProtocols are IANA protocol names and aliases as in /etc/protocols.
var ipProtocols = map[string]uint32{
	"ip": 0, "IP": 0, "hopopt": 0, "HOPOPT": 0, "icmp": 1, "ICMP": 1, "igmp": 2, "IGMP": 2,
	"ggp": 3, "ipencap": 4, "IP-ENCAP": 4, "st": 5, "tcp": 6, "TCP": 6, "egp": 8, "EGP": 8,
	"igp": 9, "IGP": 9, "pup": 12, "udp": 17, "UDP": 17, "hmp": 20, "xns-idp": 22,
	"rdp": 27, "iso-tp4": 29, "dccp": 33, "DCCP": 33, "xtp": 36, "ddp": 37,
	"idpr-cmtp": 38, "ipv6": 41, "IPv6": 41, "ipv6-route": 43, "IPv6-Route": 43,
	"ipv6-frag": 44, "IPv6-Frag": 44, "idrp": 45, "rsvp": 46, "RSVP": 46, "gre": 47,
	"GRE": 47, "esp": 50, "IPSEC-ESP": 50, "ah": 51, "IPSEC-AH": 51, "skip": 57,
	"ipv6-icmp": 58, "IPv6-ICMP": 58, "ipv6-nonxt": 59, "IPv6-NoNxt": 59,
	"ipv6-opts": 60, "IPv6-Opts": 60, "rspf": 73, "vmtp": 81, "eigrp": 88, "EIGRP": 88,
	"ospf": 89, "OSPFIGP": 89, "ax.25": 93, "AX.25": 93, "ipip": 94, "IPIP": 94,
	"etherip": 97, "ETHERIP": 97, "encap": 98, "ENCAP": 98, "pim": 103, "PIM": 103,
	"ipcomp": 108, "IPCOMP": 108, "vrrp": 112, "VRRP": 112, "l2tp": 115, "L2TP": 115,
	"isis": 124, "ISIS": 124, "sctp": 132, "SCTP": 132, "fc": 133, "FC": 133,
	"mobility-header": 135, "Mobility-Header": 135, "udplite": 136, "UDPLite": 136,
	"mpls-in-ip": 137, "MPLS-in-IP": 137, "manet": 138, "hip": 139, "HIP": 139,
	"shim6": 140, "Shim6": 140, "wesp": 141, "WESP": 141, "rohc": 142, "ROHC": 142,
	"ethernet": 143, "Ethernet": 143,
}

// etherProtocols are libpcap's built-in Ethernet type names (nametoaddr.c
// eproto_db) and 802.2 SAP names (llc_db).
var etherProtocols = map[string]uint32{
	"pup": 0x0200, "xns": 0x0600, "ip": 0x0800, "ip6": 0x86dd, "arp": 0x0806,
	"rarp": 0x8035, "sprite": 0x0500, "mopdl": 0x6001, "moprc": 0x6002,
	"decnet": 0x6003, "lat": 0x6004, "sca": 0x6007, "lanbridge": 0x8038,
	"vexp": 0x805b, "vprod": 0x805c, "atalk": 0x809b, "atalkarp": 0x80f3,
	"loopback": 0x9000, "decdts": 0x803e, "decdns": 0x803c,
	"iso": 0xfe, "stp": 0x42, "ipx": 0xe0, "netbeui": 0xf0,
}

func lookupPort(name string) (uint32, int, bool) {
	s, ok := services[name]
	if !ok {
		return 0, 0, false
	}
	return s.port, s.proto, true
}

// lookupPortRange reads "lo-hi" with numbers or service names
// (libpcap pcap_nametoportrange).
func lookupPortRange(name string) (uint32, uint32, int, bool) {
	i := strings.IndexByte(name, '-')
	if i <= 0 || i == len(name)-1 {
		return 0, 0, 0, false
	}
	a, b := name[:i], name[i+1:]
	lo, err1 := strconv.ParseUint(a, 10, 32)
	hi, err2 := strconv.ParseUint(b, 10, 32)
	if err1 == nil && err2 == nil {
		return uint32(lo), uint32(hi), protoAny, true
	}
	p1, r1, ok1 := lookupPort(a)
	p2, r2, ok2 := lookupPort(b)
	if !ok1 || !ok2 {
		return 0, 0, 0, false
	}
	if r1 != r2 {
		r1 = protoAny
	}
	return p1, p2, r1, true
}

// lookupHost resolves a host name at compile time, as libpcap does with
// getaddrinfo. It is a variable so tests never query a real resolver.
var lookupHost = func(name string) ([]netip.Addr, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return net.DefaultResolver.LookupNetIP(ctx, "ip", name)
}
