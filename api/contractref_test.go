package api

import (
	"bytes"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/heed/heed/api/auth"
	"github.com/heed/heed/ledger/ledgertest"
	"github.com/heed/heed/ledger/pii"
)

// TestContractRefNamesOneNumber: a contract ref recorded for one number
// is refused for another, whether each was recorded by POST
// /v1/relationships or by an imported book, on every store; the refusal
// names the field and never a number; the same request again is a retry.
func TestContractRefNamesOneNumber(t *testing.T) {
	rel := func(number, ref, product string) map[string]any {
		return map[string]any{"number": number, "contract_ref": ref, "product": product}
	}
	type step struct {
		name   string
		book   string // a CSV row imported, or else body POSTed
		body   map[string]any
		status int
		want   string // in the answer
	}
	steps := []step{
		{name: "first", body: rel(numA, "R-1", "car"), status: 201},
		{name: "the same again", body: rel(numA, "R-1", "car"), status: 200, want: `"replayed":true`},
		{name: "another number", body: rel(numB, "R-1", "car"), status: 409, want: "already recorded for another number"},
		{name: "the same number, another product", body: rel(numA, "R-1", "home"), status: 409, want: "for this number with another product"},
		{name: "another number, under an id of the client's", body: map[string]any{"number": numB, "contract_ref": "R-1", "id": "0190f5a0-0000-7000-8000-000000000009"},
			status: 409, want: "already recorded for another number"},
		{name: "posted, then booked for another number", book: numC + ",R-1,car,2025-06-01,2026-06-01", status: 200, want: "already recorded for another number"},
		{name: "booked", book: numC + ",R-2,car,2025-06-01,2026-06-01", status: 200, want: `"recorded":1`},
		{name: "booked, then posted for another number", body: rel(numA, "R-2", "car"), status: 409, want: "already recorded for another number"},
	}
	for name, open := range ledgertest.Stores {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			keys, err := auth.Open(filepath.Join(t.TempDir(), "apikeys.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { keys.Close() })
			data, err := pii.OpenKeys(filepath.Join(t.TempDir(), "keys.db"), bytes.Repeat([]byte{9}, 32))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { data.Close() })
			biz, _, err := keys.Create(auth.RoleBusiness, "acme")
			if err != nil {
				t.Fatal(err)
			}
			s := New(Config{Store: st, Keys: keys, Pseudonyms: hmacPseudonyms{}, Decider: streamDecider{st}, PII: data})
			for _, step := range steps {
				var body string
				var code int
				if step.book != "" {
					req := httptest.NewRequest("POST", "/v1/relationships:import",
						strings.NewReader("number,contract_ref,product,starts_at,expires_at\n"+step.book+"\n"))
					req.Header.Set("Content-Type", "text/csv")
					req.Header.Set("Authorization", "Bearer "+biz)
					w := httptest.NewRecorder()
					s.ServeHTTP(w, req)
					body, code = w.Body.String(), w.Code
				} else {
					b, err := callJSON(t, s, "POST", "/v1/relationships", biz, step.body, step.status)
					if err != nil {
						t.Fatalf("%s: %v", step.name, err)
					}
					body, code = string(b), step.status
				}
				if code != step.status || !strings.Contains(body, step.want) {
					t.Fatalf("%s: %d %s, want %d with %q", step.name, code, body, step.status, step.want)
				}
				for _, n := range []string{numA, numB, numC, numA[1:], numB[1:], numC[1:], numA[3:], numB[3:], numC[3:]} {
					if strings.Contains(body, n) {
						t.Fatalf("%s: the answer names a number: %s", step.name, body)
					}
				}
			}
		})
	}
}
