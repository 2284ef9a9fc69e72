//go:build !linux

package child

import (
	"fmt"
	"io"
	"os"
	"runtime"
)

var _ io.Closer = (*Process)(nil)

var errNotImplemented = fmt.Errorf("child: not implemented on %s", runtime.GOOS)

// MaybeRun returns at once: there are no children off Linux.
func MaybeRun() {}

// Process is a started child. Off Linux there are none.
type Process struct{}

// Start returns an error: namespaces exist only on Linux.
func Start(cfg *Config) (*Process, error) { return nil, errNotImplemented }

// Pid returns 0.
func (p *Process) Pid() int { return 0 }

// NetNS returns an error.
func (p *Process) NetNS() (*os.File, error) { return nil, errNotImplemented }

// Release returns an error.
func (p *Process) Release() error { return errNotImplemented }

// Signal returns an error.
func (p *Process) Signal(sig os.Signal) error { return errNotImplemented }

// Kill returns an error.
func (p *Process) Kill() error { return errNotImplemented }

// Wait returns an error.
func (p *Process) Wait() (Status, error) { return Status{}, errNotImplemented }

// Close does nothing.
func (p *Process) Close() error { return nil }

// KeyLog is not implemented off Linux.
func (p *Process) KeyLog(string) (*os.File, error) { return nil, errNotImplemented }
