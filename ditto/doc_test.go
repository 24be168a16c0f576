package ditto

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestPackageDoc checks that doc.go documents the package and that the
// production files import only the standard library.
func TestPackageDoc(t *testing.T) {
	fset := token.NewFileSet()
	doc, err := parser.ParseFile(fset, "doc.go", nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	if doc.Doc == nil || !strings.HasPrefix(doc.Doc.Text(), "Package ditto ") {
		t.Fatal("doc.go must start with a 'Package ditto' comment")
	}
	if !strings.Contains(doc.Doc.Text(), "standard library") {
		t.Fatal("doc.go must state what the package may import")
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
		f, err := parser.ParseFile(fset, name, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if first, _, _ := strings.Cut(path, "/"); strings.Contains(first, ".") {
				t.Errorf("%s imports %s: package ditto may import only the standard library", name, path)
			}
			if path == "testing" {
				t.Errorf("%s imports testing in production code", name)
			}
		}
	}
}
