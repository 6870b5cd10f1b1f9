package api

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/heed/heed/api/auth"
	"github.com/heed/heed/ledger"
)

// TestAPIEnumsAreTheRegistries: every enum of the served OpenAPI document
// that shares a value with a list the ledger's catalogue (or auth's roles,
// or the erasure reasons) defines must be that list, or one of the named
// parts of it below, so a value added to the catalogue cannot be refused
// by the API (nor one dropped from it accepted up to the append).
func TestAPIEnumsAreTheRegistries(t *testing.T) {
	registries := map[string][]string{
		"ledger.Channels":       ledger.Channels,
		"ledger.Purposes":       ledger.Purposes,
		"ledger.ConsentSources": ledger.ConsentSources,
		"ledger.WithdrawVias":   ledger.WithdrawVias,
		"ledger.ComplaintFrom":  ledger.ComplaintFrom,
		"ledger.Scopes":         ledger.Scopes,
		"auth.Roles":            auth.Roles,
		"ErasureReasons":        ErasureReasons,
	}
	// The parts the API offers on purpose, and why.
	parts := map[string][]string{
		// self-service is recorded by the customer's own page only.
		"ledger.WithdrawVias but self-service": without(ledger.WithdrawVias, ledger.ViaSelfService),
		// operators and regulators file external complaints.
		"ledger.ComplaintFrom but customer": without(ledger.ComplaintFrom, "customer"),
		// flash templates carry service reminders only.
		"ledger.Purposes: service": {ledger.PurposeService},
	}
	doc := servedOpenAPI(t)
	checked := 0
	var walk func(path string, x any)
	walk = func(path string, x any) {
		switch x := x.(type) {
		case map[string]any:
			if e, ok := x["enum"].([]any); ok {
				var vals []string
				for _, v := range e {
					vals = append(vals, fmt.Sprint(v))
				}
				var shares []string
				for name, reg := range registries {
					if slices.ContainsFunc(vals, func(v string) bool { return slices.Contains(reg, v) }) {
						shares = append(shares, name)
					}
				}
				if len(shares) > 0 {
					checked++
					match := false
					for _, l := range []map[string][]string{registries, parts} {
						for _, want := range l {
							match = match || slices.Equal(vals, want)
						}
					}
					if !match {
						t.Errorf("%s: enum %v shares values with %s but is none of them", path, vals, strings.Join(shares, ", "))
					}
				}
			}
			for k, v := range x {
				walk(path+"/"+k, v)
			}
		case []any:
			for i, v := range x {
				walk(fmt.Sprintf("%s/%d", path, i), v)
			}
		}
	}
	walk("", doc)
	if checked < 10 {
		t.Fatalf("only %d enums of the document name registry values", checked)
	}
}
