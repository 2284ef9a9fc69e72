package summary

// Conv names a TCP conversation from the traced program's point of view;
// it is comparable, to key maps.
type Conv struct{ k flowKey }

// TCPPayload reads an Ethernet frame seen from the program's side
// (outbound: the program sent it) and returns its TCP conversation and the
// TCP payload captured; ok is false for anything but TCP. It does not
// allocate.
func TCPPayload(frame []byte, outbound bool) (c Conv, payload []byte, ok bool) {
	var p parsed
	if !parseFrame(frame, outbound, &p) || p.key.proto() != ProtoTCP {
		return c, nil, false
	}
	return Conv{p.key}, frame[p.l4off : p.l4off+p.payload], true
}

// ClientRandom returns the 32-byte client random of a TLS ClientHello at
// the start of a TCP payload: the key a TLS key log line names its
// connection by (NSS key log format). It returns nil for anything else, or
// for a hello cut short before its random.
func ClientRandom(p []byte) []byte {
	// Record: type 22 (handshake), version 3.x, length; handshake: type 1
	// (ClientHello), 3-byte length, client version (2 bytes), random (32).
	const off = 5 + 4 + 2
	if len(p) < off+32 || p[0] != 22 || p[1] != 3 || p[5] != 1 {
		return nil
	}
	return p[off : off+32]
}
