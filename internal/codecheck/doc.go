// Package codecheck holds tests that read the project's own source and
// enforce rules the compiler and go vet do not: mistakes that have cost
// panics before and that a reviewer misses easily.
//
// It has no API; its tests parse every non-test Go file of the module.
package codecheck
