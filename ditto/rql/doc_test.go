package rql

import (
	goparser "go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestDoc checks that the package documents itself in doc.go and imports
// only what doc.go allows: the standard library and package ditto.
func TestDoc(t *testing.T) {
	fset := token.NewFileSet()
	doc, err := goparser.ParseFile(fset, "doc.go", nil, goparser.PackageClauseOnly|goparser.ParseComments)
	if err != nil {
		t.Fatalf("parse doc.go: %v", err)
	}
	if doc.Doc == nil || !strings.HasPrefix(doc.Doc.Text(), "Package rql ") {
		t.Fatal("doc.go has no package comment starting with \"Package rql \"")
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := goparser.ParseFile(fset, name, src, goparser.ImportsOnly)
		if err != nil {
			t.Fatalf("parse %s: %v", name, err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			first, _, _ := strings.Cut(path, "/")
			stdlib := !strings.Contains(first, ".")
			if path == "testing" || (!stdlib && path != "github.com/dittonode/dittonode/ditto") {
				t.Errorf("%s imports %s; rql may import only the standard library and ditto", name, path)
			}
		}
	}
}
