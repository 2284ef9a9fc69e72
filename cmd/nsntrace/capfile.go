package main

import (
	"fmt"

	"github.com/nsntrace/nsntrace/pcapng"
)

// captureFile is the capture file of a run, in both modes: the output
// (checked first, created only once everything else is in place) and the
// pcapng or pcap writer over it. Its life is check, create, addInterface,
// packets (through w), finish, then keep or abort.
type captureFile struct {
	out    *output
	format pcapng.Format
	w      pcapng.Writer
}

func newCaptureFile(path string, format pcapng.Format) *captureFile {
	return &captureFile{out: &output{path: path}, format: format}
}

// stdout reports whether the capture goes to standard output.
func (f *captureFile) stdout() bool { return f.out.stdout() }

// name is how messages call the file.
func (f *captureFile) name() string { return f.out.name() }

// check tells whether the file can be written, creating nothing.
func (f *captureFile) check() error { return f.out.check() }

// create creates the file and writes its section header, with comment
// (what was traced) as its comment.
func (f *captureFile) create(comment string) error {
	if err := f.out.create(); err != nil {
		return err
	}
	w, err := pcapng.NewWriter(f.out.f, &pcapng.Config{
		Format:   f.format,
		Hardware: machine(),
		OS:       osName(),
		UserAppl: "nsntrace " + version,
		Comments: []string{comment},
	})
	if err != nil {
		return fmt.Errorf("write %s: %w", f.name(), err)
	}
	f.w = w
	return nil
}

// addInterface describes an interface whose packets the file will hold,
// and returns its id.
func (f *captureFile) addInterface(ifc pcapng.Interface) (int, error) {
	ifc.LinkType = pcapng.LinkTypeEthernet
	ifc.OS = osName()
	id, err := f.w.AddInterface(ifc)
	if err != nil {
		return 0, fmt.Errorf("write %s: %w", f.name(), err)
	}
	return id, nil
}

// finish completes the file once the capture into it ended with capErr:
// the names learned (when sum is not nil), the statistics of interface
// id, and the writer's last batch. It returns the first error, capErr
// first; after an error only the writer is closed. The output stays for
// keep or abort.
func (f *captureFile) finish(capErr error, sum *summarizer, id int, st pcapng.Stats) error {
	err := capErr
	if err == nil && sum != nil {
		err = sum.addNames(f.w)
	}
	if err == nil {
		err = f.w.WriteStats(id, st)
	}
	if cerr := f.w.Close(); err == nil {
		err = cerr
	}
	return err
}

// keep closes the file and keeps it (it replaces the file it stands for).
func (f *captureFile) keep() error { return f.out.close() }

// abort closes the file and removes what this run created; after keep it
// does nothing.
func (f *captureFile) abort() { f.out.abort() }
