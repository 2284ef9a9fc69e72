//go:build !linux

package rawcap

import (
	"golang.org/x/net/bpf"

	"context"
	"fmt"
	"runtime"
)

// Ring is a capture ring; it exists only on Linux.
type Ring struct{}

// Open is not implemented off Linux.
func Open(ifindex int, cfg *Config) (*Ring, error) {
	return nil, fmt.Errorf("rawcap: not implemented on %s", runtime.GOOS)
}

// New is not implemented off Linux.
func New(cfg *Config) (*Ring, error) {
	return nil, fmt.Errorf("rawcap: not implemented on %s", runtime.GOOS)
}

// Bind is not implemented off Linux.
func (r *Ring) Bind(ifindex int) error {
	return fmt.Errorf("rawcap: not implemented on %s", runtime.GOOS)
}

// Run is not implemented off Linux.
func (r *Ring) Run(ctx context.Context, fn func(*Packet) error) error {
	return fmt.Errorf("rawcap: not implemented on %s", runtime.GOOS)
}

// Stats is not implemented off Linux.
func (r *Ring) Stats() (Stats, error) {
	return Stats{}, fmt.Errorf("rawcap: not implemented on %s", runtime.GOOS)
}

// Close does nothing off Linux.
func (r *Ring) Close() error { return nil }

// Wake does nothing off Linux.
func (r *Ring) Wake() {}

// Watcher is a packet socket without a ring; it exists only on Linux.
type Watcher struct{}

// NewWatcher is not implemented off Linux.
func NewWatcher(cfg *Config) (*Watcher, error) {
	return nil, fmt.Errorf("rawcap: not implemented on %s", runtime.GOOS)
}

// Bind is not implemented off Linux.
func (w *Watcher) Bind(ifindex int) error {
	return fmt.Errorf("rawcap: not implemented on %s", runtime.GOOS)
}

// Run is not implemented off Linux.
func (w *Watcher) Run(ctx context.Context, fn func(*Packet) error) error {
	return fmt.Errorf("rawcap: not implemented on %s", runtime.GOOS)
}

// Close does nothing off Linux.
func (w *Watcher) Close() error { return nil }

// SetFilter is not implemented off Linux.
func (w *Watcher) SetFilter(prog []bpf.RawInstruction) error {
	return fmt.Errorf("rawcap: not implemented on %s", runtime.GOOS)
}
