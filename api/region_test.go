package api

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/projections"
)

// TestContactCarriesRegion checks a recorded contact names the callee's
// region as Decide computes it: the projection never sees the number, so
// without it the region-burst rule would never count an API contact.
func TestContactCarriesRegion(t *testing.T) {
	h := newHarness(t)
	want, err := projections.Region(numA)
	if err != nil || want == "" {
		t.Fatalf("Region(numA) = %q, %v", want, err)
	}
	r := h.do("POST", "/v1/contacts", h.a, map[string]any{"number": "13800138000", "line": "L1", "channel": "call", "purpose": "marketing"})
	if r.status != 201 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	evs, err := h.store.ReadAll(context.Background(), h.head(), 1)
	if err != nil || len(evs) != 1 || evs[0].Type != ledger.TypeContactMade {
		t.Fatalf("read back: %v %+v", err, evs)
	}
	var p ledger.ContactMade
	if err := json.Unmarshal(evs[0].Data, &p); err != nil {
		t.Fatal(err)
	}
	if p.Region != want {
		t.Fatalf("contact region %q, want %q", p.Region, want)
	}
}

// TestImportedContactCarriesRegion checks the bulk import records the
// callee's region too, overriding one the line claims.
func TestImportedContactCarriesRegion(t *testing.T) {
	h := newHarness(t)
	want, _ := projections.Region(numA)
	line := `{"type":"ContactMade","number":"` + numA + `","occurred_at":"` + recent + `","data":{"line":"L1","channel":"call","purpose":"service","region":"elsewhere"}}`
	r := h.do("POST", "/v1/events:import", h.a, line+"\n", "Content-Type", "application/x-ndjson")
	if r.status/100 != 2 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	evs, err := h.store.ReadAll(context.Background(), h.head(), 1)
	if err != nil || len(evs) != 1 {
		t.Fatalf("read back: %v %+v", err, evs)
	}
	var p ledger.ContactMade
	if err := json.Unmarshal(evs[0].Data, &p); err != nil {
		t.Fatal(err)
	}
	if p.Region != want {
		t.Fatalf("imported contact region %q, want %q", p.Region, want)
	}
}
