package pcapng

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

// keyLog is two lines of the NSS key log format; 13 bytes short of a
// multiple of 4, so that the padding is exercised.
const keyLog = "CLIENT_RANDOM 0001020304050607080900010203040506070809000102030405060708090001 " +
	"000102030405060708090001020304050607080900010203040506070809000102030405060708090001020304050607\n" +
	"SERVER_TRAFFIC_SECRET_0 aa 0b\n"

// secretsFile writes a file with one interface and one packet, and the
// key log before the packet when inject is set.
func secretsFile(t *testing.T, inject bool) []byte {
	t.Helper()
	var b bytes.Buffer
	w, err := NewWriter(&b, &Config{Format: FormatPcapNG})
	if err != nil {
		t.Fatal(err)
	}
	id, err := w.AddInterface(Interface{LinkType: LinkTypeEthernet})
	if err != nil {
		t.Fatal(err)
	}
	if inject {
		if err := w.WriteSecrets(SecretsTLSKeyLog, []byte(keyLog)); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.WritePacket(&Packet{Interface: id, Timestamp: 1e9, Length: 60, Data: make([]byte, 60)}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// blocksOf returns the blocks of type typ in a little-endian pcapng file.
func blocksOf(t *testing.T, b []byte, typ uint32) [][]byte {
	t.Helper()
	var out [][]byte
	for off := 0; off+12 <= len(b); {
		n := int(le.Uint32(b[off+4:]))
		if n < 12 || off+n > len(b) {
			t.Fatalf("block at %d has length %d", off, n)
		}
		if le.Uint32(b[off:]) == typ {
			out = append(out, b[off:off+n])
		}
		off += n
	}
	return out
}

// TestSecretsOracle: the Decryption Secrets Block is the one Wireshark's
// editcap writes for the same key log (--inject-secrets), byte for byte,
// and where it goes: before the packet.
func TestSecretsOracle(t *testing.T) {
	dir := t.TempDir()
	keys, plain, injected := filepath.Join(dir, "keys"), filepath.Join(dir, "plain.pcapng"), filepath.Join(dir, "injected.pcapng")
	if err := os.WriteFile(keys, []byte(keyLog), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(plain, secretsFile(t, false), 0o644); err != nil {
		t.Fatal(err)
	}
	oracle(t, "editcap", "--inject-secrets", "tls,"+keys, plain, injected)
	theirs, err := os.ReadFile(injected)
	if err != nil {
		t.Fatal(err)
	}
	ours := secretsFile(t, true)
	want, got := blocksOf(t, theirs, blockDSB), blocksOf(t, ours, blockDSB)
	if len(want) != 1 || len(got) != 1 || !bytes.Equal(got[0], want[0]) {
		t.Fatalf("decryption secrets blocks:\nours   % x\neditcap % x", got, want)
	}
	f, err := parseNg(ours)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.order) < 4 || f.order[2] != blockDSB || f.order[3] != blockEPB {
		t.Errorf("block order %v: want the secrets before the packet", f.order)
	}
	oracle(t, "tshark", "-n", "-r", writeBytes(t, ours))
}

// TestSecretsPcap: classic pcap cannot hold secrets, and says so.
func TestSecretsPcap(t *testing.T) {
	w, err := NewWriter(&bytes.Buffer{}, &Config{Format: FormatPcap})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteSecrets(SecretsTLSKeyLog, []byte(keyLog)); !errors.Is(err, ErrNoSecrets) {
		t.Errorf("pcap: %v, want ErrNoSecrets", err)
	}
}

func writeBytes(t *testing.T, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "f.pcapng")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}
