//go:build !linux

package pcapng

import "io"

// vecState is empty off Linux: there is no vectored write.
type vecState struct{}

func (*vecState) init(int) {}

// writeVectored writes every byte of iov, in order, and returns how many
// reached w. Off Linux it writes the pieces one by one.
func (*vecState) writeVectored(w io.Writer, iov [][]byte) (int64, error) {
	return writeEach(w, iov)
}
