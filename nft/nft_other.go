//go:build !linux

package nft

import (
	"fmt"
	"runtime"
)

// Table is a run's firewall state; it exists only on Linux.
type Table struct{}

// Install is not implemented off Linux.
func Install(s Spec) (*Table, error) {
	return nil, fmt.Errorf("nft: not implemented on %s", runtime.GOOS)
}

// Close does nothing off Linux.
func (t *Table) Close() error { return nil }

// Sweep does nothing off Linux.
func Sweep() ([]string, error) { return nil, nil }

// MaybeReap does nothing off Linux.
func MaybeReap() {}
