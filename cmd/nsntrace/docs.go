//go:build gendocs

package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// The man page and completion generator (cobra/doc, md2man, blackfriday)
// is linked only into the documentation build, `go run -tags gendocs
// ./cmd/nsntrace --gen-docs DIR` (make docs, make install), never into the
// shipped binary.
func init() { genDocsFunc = genDocs }

// genDocs writes what `make install` installs, all generated from the
// command definition: DIR/man/nsntrace.1 and the bash, zsh and fish
// completion scripts DIR/nsntrace.bash, DIR/_nsntrace, DIR/nsntrace.fish.
func genDocs(dir string) error {
	cmd := newCommand(&options{})
	cmd.DisableAutoGenTag = true // keep the files reproducible
	man := filepath.Join(dir, "man")
	if err := os.MkdirAll(man, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", man, err)
	}
	hdr := &doc.GenManHeader{Title: "NSNTRACE", Section: "1", Source: "nsntrace " + version, Manual: "User Commands"}
	if err := doc.GenManTree(cmd, hdr, man); err != nil {
		return fmt.Errorf("write man page: %w", err)
	}
	for _, c := range []struct {
		name string
		gen  func(*cobra.Command, string) error
	}{
		{"nsntrace.bash", func(c *cobra.Command, p string) error { return c.GenBashCompletionFileV2(p, true) }},
		{"_nsntrace", (*cobra.Command).GenZshCompletionFile},
		{"nsntrace.fish", func(c *cobra.Command, p string) error { return c.GenFishCompletionFile(p, true) }},
	} {
		p := filepath.Join(dir, c.name)
		if err := c.gen(cmd, p); err != nil {
			return fmt.Errorf("write %s: %w", p, err)
		}
	}
	return nil
}
