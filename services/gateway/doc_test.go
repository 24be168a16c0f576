package gateway

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestDoc enforces the package documentation and the import rule of doc.go:
// production code imports the standard library and ditto only.
func TestDoc(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "doc.go", nil, parser.PackageClauseOnly|parser.ParseComments)
	if err != nil {
		t.Fatalf("doc.go: %v", err)
	}
	if f.Doc == nil || !strings.HasPrefix(f.Doc.Text(), "Package gateway ") {
		t.Fatal("doc.go must carry the package comment starting with 'Package gateway '")
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
		pf, err := parser.ParseFile(fset, name, src, parser.ImportsOnly)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, imp := range pf.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			first, _, _ := strings.Cut(path, "/")
			if allowedImports[path] {
				continue
			}
			if path == "github.com/dittonode/dittonode/ditto" || !strings.Contains(first, ".") {
				if path == "testing" || path == "net/http/httptest" {
					t.Errorf("%s imports %s in production code", name, path)
				}
				continue
			}
			t.Errorf("%s imports %s: gateway may import only the standard library and ditto", name, path)
		}
	}
}

// allowedImports are the non-standard packages gateway may import besides
// ditto: the RQL evaluator (event filters) and the WebSocket library.
var allowedImports = map[string]bool{
	"github.com/dittonode/dittonode/ditto/rql": true,
	"github.com/coder/websocket":               true,
	"github.com/golang-jwt/jwt/v5":             true,
}
