package node

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/dittonode/dittonode"

// listPackage is the part of `go list -json` these tests read.
type listPackage struct {
	ImportPath string
	Name       string
	Dir        string
	Imports    []string
	GoFiles    []string
}

func goList(t *testing.T) []listPackage {
	t.Helper()
	out, err := exec.Command("go", "list", "-json", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	var pkgs []listPackage
	for dec.More() {
		var p listPackage
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// TestDependencyGraph enforces the layering of STYLE.md: imports point
// downward only, siblings meet through interfaces, third-party stacks stay
// in the package that owns them, and no production code imports testing.
func TestDependencyGraph(t *testing.T) {
	// allowed lists, per package, the project packages it may import.
	allowed := map[string][]string{
		"ditto":                 {},
		"ditto/rql":             {"ditto"},
		"consensus":             {},
		"services/policies":     {"ditto", "ditto/rql", "consensus"},
		"services/things":       {"ditto", "ditto/rql", "consensus"},
		"services/connectivity": {"ditto", "ditto/rql", "consensus"},
		"services/search":       {"ditto", "ditto/rql"},
		"services/gateway":      {"ditto", "ditto/rql"},
		"services/live":         {"ditto", "ditto/rql"},
		"mqtt":                  {"ditto", "ditto/rql"},
		"sync":                  {"ditto", "ditto/rql"},
		"testnet":               nil, // anything
		"node":                  nil,
		"cmd/dittonode":         nil,
		"cmd/dittoload":         {},
		"cmd/mqttload":          {},
	}
	for _, p := range goList(t) {
		rel := strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, module), "/")
		allow, known := allowed[rel]
		if !known {
			t.Errorf("package %s is not in the dependency table of node/deps_test.go; add it with its allowed imports", rel)
			continue
		}
		for _, imp := range p.Imports {
			// testnet is a test harness: it takes a testing.TB.
			if (imp == "testing" || strings.HasPrefix(imp, "testing/")) && rel != "testnet" {
				t.Errorf("%s imports %s in production code", rel, imp)
			}
			if strings.HasPrefix(imp, module+"/") {
				dep := strings.TrimPrefix(imp, module+"/")
				if allow != nil && !contains(allow, dep) {
					t.Errorf("%s must not import %s", rel, dep)
				}
				if dep == "testnet" {
					t.Errorf("%s imports testnet in production code", rel)
				}
			}
		}
		// Third-party stacks are imported only by the package that owns them.
		owners := map[string]string{
			"github.com/libp2p/":        "node",
			"github.com/mochi-mqtt/":    "mqtt",
			"github.com/hashicorp/raft": "consensus",
			"github.com/golang-jwt/":    "services/gateway",
			"github.com/eclipse/paho":   "services/connectivity",
			"github.com/dop251/goja":    "services/connectivity",
		}
		for _, imp := range p.Imports {
			for prefix, owner := range owners {
				// The MQTT load tool speaks MQTT 5 itself.
				tool := prefix == "github.com/eclipse/paho" && rel == "cmd/mqttload"
				if strings.HasPrefix(imp, prefix) && rel != owner && !tool {
					t.Errorf("%s imports %s; only %s may", rel, imp, owner)
				}
			}
		}
	}
}

// TestPackageDocs checks that every package has a doc.go with a package
// comment.
func TestPackageDocs(t *testing.T) {
	for _, p := range goList(t) {
		if !contains(p.GoFiles, "doc.go") {
			t.Errorf("package %s has no doc.go", p.ImportPath)
		}
	}
}

func contains(list []string, s string) bool {
	for _, e := range list {
		if e == s {
			return true
		}
	}
	return false
}
