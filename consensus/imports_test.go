package consensus

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestImports enforces doc.go's promise: production files import only the
// standard library, hashicorp/raft, raft-boltdb with its bbolt, and hclog.
func TestImports(t *testing.T) {
	allowed := []string{
		"github.com/hashicorp/raft",
		"github.com/hashicorp/raft-boltdb/v2",
		"go.etcd.io/bbolt",
		"github.com/hashicorp/go-hclog",
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			first, _, _ := strings.Cut(path, "/")
			if !strings.Contains(first, ".") {
				continue // standard library
			}
			ok := false
			for _, a := range allowed {
				ok = ok || path == a
			}
			if !ok {
				t.Errorf("%s imports %s", name, path)
			}
		}
	}
}

func TestDocGo(t *testing.T) {
	src, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	f, err := parser.ParseFile(token.NewFileSet(), "doc.go", src, parser.ParseComments|parser.PackageClauseOnly)
	if err != nil {
		t.Fatal(err)
	}
	doc := f.Doc.Text()
	for _, want := range []string{"Package consensus ", "must not import"} {
		if !strings.Contains(doc, want) {
			t.Errorf("doc.go package comment lacks %q", want)
		}
	}
}
