package codecheck

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNoNamedResultInGoOrDefer: a goroutine or a deferred function must not
// use a named result other than err. `return nil, err` sets such a result
// to nil before deferred functions run, and a goroutine outlives the
// return, so it writes through (or reads) a nil pointer: that turned every
// trace in a busybox chroot into a nil-pointer panic that also hid the
// real error (child.Start), and would have in nft.Install, rtnl.Setup and
// dnsrelay.Listen. Deferred functions may read and set err: that is the
// close-on-error idiom. A goroutine may not touch even err.
func TestNoNamedResultInGoOrDefer(t *testing.T) {
	root := moduleRoot(t)
	fset := token.NewFileSet()
	n := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "testdata" || strings.HasPrefix(d.Name(), ".")) && path != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		n++
		for _, bad := range namedResultUses(f) {
			rel, _ := filepath.Rel(root, fset.Position(bad.pos).Filename)
			t.Errorf("%s:%d: %s uses the named result %q; use a local variable and an unnamed result",
				rel, fset.Position(bad.pos).Line, bad.where, bad.name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 20 {
		t.Fatalf("checked only %d files under %s: the walk is broken", n, root)
	}
}

func TestNamedResultUsesFindsTheBug(t *testing.T) {
	const src = `package p
func Start() (p *int, err error) {
	p = new(int)
	go func() { *p = 1 }()
	defer func() {
		if err != nil {
			*p = 2
		}
	}()
	return nil, nil
}
func OK() (_ *int, err error) {
	p := new(int)
	go func() { *p = 1 }()
	defer func() {
		if err != nil {
			*p = 2
		}
	}()
	return p, nil
}
func Racy() (err error) {
	go func() { err = nil }()
	go func() {
		err := error(nil)
		_ = err
	}()
	return nil
}`
	f, err := parser.ParseFile(token.NewFileSet(), "p.go", src, 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, u := range namedResultUses(f) {
		got = append(got, u.where+" "+u.name)
	}
	want := []string{"goroutine p", "deferred function p", "goroutine err"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("found %q, want %q", got, want)
	}
}

type use struct {
	pos   token.Pos
	where string // "goroutine" or "deferred function"
	name  string
}

// namedResultUses finds identifiers inside go and defer statements that
// resolve to a named result of the enclosing function. It relies on the
// parser's identifier resolution (ast.Ident.Obj), which sees shadowing by
// := and closure parameters; that is enough within one function.
func namedResultUses(f *ast.File) []use {
	var out []use
	ast.Inspect(f, func(n ast.Node) bool {
		var ft *ast.FuncType
		var body *ast.BlockStmt
		switch x := n.(type) {
		case *ast.FuncDecl:
			ft, body = x.Type, x.Body
		case *ast.FuncLit:
			ft, body = x.Type, x.Body
		default:
			return true
		}
		if body == nil || ft.Results == nil {
			return true
		}
		results := map[*ast.Field]bool{}
		for _, fl := range ft.Results.List {
			results[fl] = true
		}
		ast.Inspect(body, func(n ast.Node) bool {
			var where string
			switch n.(type) {
			case *ast.GoStmt:
				where = "goroutine"
			case *ast.DeferStmt:
				where = "deferred function"
			default:
				return true
			}
			ast.Inspect(n, func(n ast.Node) bool {
				id, ok := n.(*ast.Ident)
				if !ok || id.Obj == nil || id.Obj.Kind != ast.Var {
					return true
				}
				if fl, ok := id.Obj.Decl.(*ast.Field); ok && results[fl] {
					if where == "deferred function" && id.Name == "err" {
						return true
					}
					out = append(out, use{id.Pos(), where, id.Name})
				}
				return true
			})
			return true
		})
		return true
	})
	return out
}

func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}
