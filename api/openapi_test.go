package api

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/openapi.json from the served document")

// TestOpenAPIGolden keeps the API's contract a reviewed diff: the document
// the server serves must equal testdata/openapi.json, which
// `go test ./api -run OpenAPIGolden -update` rewrites.
func TestOpenAPIGolden(t *testing.T) {
	doc := servedOpenAPI(t)
	got, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", "openapi.json")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./api -run OpenAPIGolden -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("the served OpenAPI document differs from %s; review the change and run go test ./api -run OpenAPIGolden -update", path)
	}
}

// servedOpenAPI returns the OpenAPI document a server serves, decoded.
func servedOpenAPI(t *testing.T) any {
	t.Helper()
	h := newHarness(t)
	r := h.do("GET", "/openapi.json", "", nil)
	if r.status != 200 {
		t.Fatalf("GET /openapi.json: %d", r.status)
	}
	var doc any
	if err := json.Unmarshal(r.body, &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}
