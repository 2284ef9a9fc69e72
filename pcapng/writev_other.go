//go:build !linux

package pcapng

import "io"

// vecState is empty off Linux: there is no vectored write.
type vecState struct{}

func (*vecState) init(int) {}

// classify does nothing: every write goes through w.Write.
func (*vecState) classify(io.Writer) {}

// write is w.Write.
func (*vecState) write(w io.Writer, p []byte) (int, error) { return w.Write(p) }

// writeVectored writes every byte of iov, in order, and returns how many
// reached w. Off Linux it writes the pieces one by one.
func (*vecState) writeVectored(w io.Writer, iov [][]byte) (int64, error) {
	return writeEach(w, iov)
}
