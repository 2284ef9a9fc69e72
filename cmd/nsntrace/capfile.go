package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/nsntrace/nsntrace/pcapng"
)

// captureFile is the capture file of a run, in both modes: the output
// (checked first, created only once everything else is in place) and the
// pcapng or pcap writer over it. Its life is check, create, addInterface,
// packets (through w), finish, then keep or abort.
//
// With rotation (-C, -G) it is a series of files, each complete in
// itself: next finishes and keeps the current one and starts the next
// with the same section header and interfaces.
type captureFile struct {
	base   string // the name given (-o); files after the first are named from it
	rot    rotation
	owner  *fileOwner
	format pcapng.Format
	out    *output
	w      pcapng.Writer

	comment string             // of every section header
	ifcs    []pcapng.Interface // described in every file, in the order of their ids
	n       int                // files begun, less one: the current file's number
	inFile  int                // interfaces described in the current file
}

// ifaceStats is the statistics block of interface id.
type ifaceStats struct {
	id int
	st pcapng.Stats
}

func newCaptureFile(path string, format pcapng.Format, rot rotation, owner *fileOwner) *captureFile {
	f := &captureFile{base: path, rot: rot, owner: owner, format: format}
	f.out = &output{path: rot.name(path, 0), owner: owner}
	return f
}

// stdout reports whether the capture goes to standard output.
func (f *captureFile) stdout() bool { return f.out.stdout() }

// name is how messages call the capture: its file, or the name the
// rotated files are named from. Other goroutines may call it.
func (f *captureFile) name() string {
	if f.rot.on() {
		return f.base
	}
	return f.out.name()
}

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
		return fmt.Errorf("write %s: %w", f.out.name(), err)
	}
	f.w, f.comment, f.inFile = w, comment, 0
	return nil
}

// addInterface describes an interface whose packets the file will hold,
// and returns its id. Classic pcap describes one interface: the packets
// of another one (the program's lo, --loopback) go in with the first
// one's id, as they would in a capture on "any" without its headers.
func (f *captureFile) addInterface(ifc pcapng.Interface) (int, error) {
	ifc.LinkType = pcapng.LinkTypeEthernet
	ifc.OS = osName()
	id, err := f.add(ifc)
	if err != nil {
		return 0, err
	}
	f.ifcs = append(f.ifcs, ifc)
	return id, nil
}

// add describes ifc in the current file.
func (f *captureFile) add(ifc pcapng.Interface) (int, error) {
	if f.format == pcapng.FormatPcap && f.inFile > 0 {
		return 0, nil
	}
	id, err := f.w.AddInterface(ifc)
	if err != nil {
		return 0, fmt.Errorf("write %s: %w", f.out.name(), err)
	}
	f.inFile++
	return id, nil
}

// finish completes the file once the capture into it ended with capErr:
// the names learned (when sum is not nil), the statistics of each
// interface, and the writer's last batch. It returns the first error,
// capErr first; after an error only the writer is closed. The output
// stays for keep or abort.
func (f *captureFile) finish(capErr error, sum *summarizer, stats []ifaceStats) error {
	err := capErr
	if err == nil && sum != nil {
		err = sum.addNames(f.w)
	}
	for _, s := range stats {
		if err == nil {
			err = f.w.WriteStats(s.id, s.st)
		}
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

// files says how many files the capture made.
func (f *captureFile) files() int { return f.n + 1 }

// next completes and keeps the current file, with the names learned so
// far (sum, if not nil) and its statistics, and starts the next one with
// the same interfaces.
// Where the next name is taken, by a file of the ring or of an earlier
// run, that file is replaced at once, as tcpdump does: a ring bounds the
// disk space (-C SIZE × -W N).
func (f *captureFile) next(sum *summarizer, stats []ifaceStats) error {
	var err error
	if sum != nil {
		err = sum.addNamesSoFar(f.w)
	}
	if err == nil {
		err = f.finish(nil, nil, stats)
	}
	if kerr := f.keep(); err == nil {
		err = kerr
	}
	if err != nil {
		return err
	}
	f.n++
	name := f.rot.name(f.base, f.n)
	if fi, err := os.Lstat(name); err == nil && fi.Mode().IsRegular() {
		if err := os.Remove(name); err != nil {
			return fmt.Errorf("replace %s: %w", name, err)
		}
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("cannot write output: %w", err)
	}
	f.out = &output{path: name, owner: f.owner}
	if err := f.out.check(); err != nil {
		return err
	}
	if err := f.create(f.comment); err != nil {
		return err
	}
	// The same interfaces in the same order get the same ids again.
	for _, ifc := range f.ifcs {
		if _, err := f.add(ifc); err != nil {
			return err
		}
	}
	return nil
}

// written says where the capture went, once it ended: its file, or how
// many files and the last one.
func (f *captureFile) written() string {
	if !f.rot.on() {
		return f.name()
	}
	s := fmt.Sprintf("%s, the last of them %s", plural(uint64(f.files()), "file", "files"), f.out.path)
	if w := f.rot.files; w > 0 && f.files() > w {
		s += fmt.Sprintf(" (-W %d: only the last %d are kept)", w, w)
	}
	return s
}
