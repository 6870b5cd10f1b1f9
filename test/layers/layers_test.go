// Package layers holds the test that keeps DESIGN.md's layering true:
// data flows one way, cmd/heed → api, sip → notify → projections → ledger,
// notify → smpp, and a package never imports one in a layer above its own
// or beside it.
package layers

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/heed/heed/"

// rank is each top-level folder's layer: a package may import packages of
// its own folder and of folders with a lower rank, nothing else. Folders of
// equal rank are lanes that know nothing of each other (the ledger knows
// no SMPP; the HTTP API and the call gate are two front doors).
var rank = map[string]int{
	"ledger":      0,
	"smpp":        0,
	"backup":      0,
	"projections": 1,
	"notify":      2,
	"api":         3,
	"sip":         3,
	"cmd":         4,
	// Tests of the whole: they may use anything.
	"test":       5,
	"dashboards": 5,
}

func TestLayers(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	seen := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		from := strings.Split(filepath.ToSlash(rel), "/")[0]
		r, ok := rank[from]
		if !ok {
			t.Errorf("%s: top-level folder %q has no layer; add it to rank", rel, from)
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		seen++
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if !strings.HasPrefix(p, module) {
				continue
			}
			to := strings.Split(strings.TrimPrefix(p, module), "/")[0]
			if to == from {
				continue
			}
			if tr, ok := rank[to]; !ok || tr >= r {
				t.Errorf("%s imports %s: %s (layer %d) may import only lower layers, and %s is layer %d", rel, p, from, r, to, tr)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if seen < 100 {
		t.Fatalf("read only %d Go files under %s", seen, root)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("%s is not the module root: %v", root, err)
	}
}
