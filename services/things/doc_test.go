package things

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestPackageDoc enforces doc.go and the import rules it states: the
// standard library, ditto, ditto/rql and consensus only.
func TestPackageDoc(t *testing.T) {
	fset := token.NewFileSet()
	doc, err := parser.ParseFile(fset, "doc.go", nil, parser.PackageClauseOnly|parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	if doc.Doc == nil || !strings.Contains(doc.Doc.Text(), "must not import") {
		t.Fatal("doc.go must document the package and its forbidden imports")
	}
	allowed := map[string]bool{
		"github.com/dittonode/dittonode/ditto":     true,
		"github.com/dittonode/dittonode/ditto/rql": true,
		"github.com/dittonode/dittonode/consensus": true,
	}
	files, _ := filepath.Glob("*.go")
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
			p, _ := strconv.Unquote(imp.Path.Value)
			if strings.Contains(p, ".") && !allowed[p] {
				t.Errorf("%s imports %s", name, p)
			}
			if p == "testing" {
				t.Errorf("%s imports testing", name)
			}
		}
	}
}
