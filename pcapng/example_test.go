package pcapng_test

import (
	"bytes"
	"fmt"
	"log"
	"net/netip"

	"github.com/nsntrace/nsntrace/pcapng"
)

// A capture of one interface: a packet the traced program sent, the name
// its DNS answer gave an address, and the ring's counters at the end.
func ExampleNewWriter() {
	var out bytes.Buffer // an *os.File, or os.Stdout for live output
	w, err := pcapng.NewWriter(&out, &pcapng.Config{
		Format:   pcapng.FormatPcapNG,
		UserAppl: "nsntrace 1.0",
		Comments: []string{"nsntrace curl http://example.test/"},
	})
	if err != nil {
		log.Fatal(err)
	}
	id, err := w.AddInterface(pcapng.Interface{LinkType: pcapng.LinkTypeEthernet, Name: "nsn1h", Filter: "tcp"})
	if err != nil {
		log.Fatal(err)
	}
	frame := make([]byte, 60)
	p := pcapng.Packet{Interface: id, Timestamp: 1700000000_000000001, Data: frame, Direction: pcapng.DirectionOutbound}
	if err := w.WritePacket(&p); err != nil {
		log.Fatal(err)
	}
	if err := w.AddNames(netip.MustParseAddr("192.0.2.80"), "example.test"); err != nil {
		log.Fatal(err)
	}
	if err := w.WriteStats(id, pcapng.Stats{OSDrop: 0, HasOSDrop: true}); err != nil {
		log.Fatal(err)
	}
	if err := w.Close(); err != nil { // the first write error, if any
		log.Fatal(err)
	}
	fmt.Println(out.Len(), "bytes")
	// Output: 336 bytes
}
