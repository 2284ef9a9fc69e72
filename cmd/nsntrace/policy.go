package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/nsntrace/nsntrace/internal/policy"
)

// checkPolicy parses --allow and --allow-file and checks --policy and
// --suggest-policy, before anything is touched.
func (o *options) checkPolicy() error {
	given := len(o.allow) > 0 || o.set["allow-file"]
	if o.set["interface"] && (given || o.set["policy"] || o.set["suggest-policy"]) {
		return &usageError{"--allow, --allow-file, --policy and --suggest-policy concern a traced program, not --interface"}
	}
	switch o.policyMode {
	case "", "audit":
	case "enforce":
		o.enforce = true
	default:
		return &usageError{fmt.Sprintf("--policy %q: must be audit or enforce", o.policyMode)}
	}
	if o.set["policy"] && !given {
		return &usageError{fmt.Sprintf("--policy %s needs rules: give --allow RULE or --allow-file FILE", o.policyMode)}
	}
	o.rules = nil
	for _, v := range o.allow {
		r, err := policy.Parse(v)
		if err != nil {
			return &usageError{fmt.Sprintf("--allow %q: %v", v, err)}
		}
		o.rules = append(o.rules, r)
	}
	if o.set["allow-file"] {
		f, err := os.Open(o.allowFile)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return &usageError{fmt.Sprintf("--allow-file %s: no such file", o.allowFile)}
			}
			return &usageError{fmt.Sprintf("--allow-file: %v", err)}
		}
		rules, err := policy.ParseFile(f, o.allowFile)
		f.Close()
		if err != nil {
			return &usageError{fmt.Sprintf("--allow-file %v", err)}
		}
		if len(rules) == 0 && len(o.allow) == 0 {
			return &usageError{fmt.Sprintf("--allow-file %s holds no rules: with none, every connection would be a violation (add a rule a line)", o.allowFile)}
		}
		o.rules = append(o.rules, rules...)
	}
	if o.set["suggest-policy"] {
		switch {
		case o.suggestPolicy == "":
			return &usageError{"--suggest-policy: empty file name"}
		case o.output != "-" && sameFile(o.suggestPolicy, o.output):
			return &usageError{fmt.Sprintf("--suggest-policy %s and --output %s are the same file; give each its own", o.suggestPolicy, o.output)}
		case o.summary != "" && o.summary != "-" && sameFile(o.suggestPolicy, o.summary):
			return &usageError{fmt.Sprintf("--suggest-policy %s and --summary %s are the same file; give each its own", o.suggestPolicy, o.summary)}
		}
	}
	return nil
}

// policyOn says that the run has an egress policy: rules were given.
func (o *options) policyOn() bool { return len(o.rules) > 0 }
