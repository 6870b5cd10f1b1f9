package contactindex

import (
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// dump returns every subject's tenants, sorted, keyed by the subject as
// written.
func (t *tenantSets) dump() map[string][]string {
	out := map[string][]string{}
	for k := range t.byHash {
		s := hex.EncodeToString(k[:])
		out[s] = t.of(s)
	}
	for s := range t.other {
		out[s] = t.of(s)
	}
	return out
}

func TestTenantSets(t *testing.T) {
	hexSubj := strings.Repeat("ab", 32)
	upper := strings.Repeat("AB", 32) // not the canonical form: kept apart
	ts := newTenantSets()
	adds := []struct{ tenant, subject string }{
		{"t1", hexSubj}, {"t2", hexSubj}, {"t1", hexSubj}, // a repeat is one tenant
		{"t1", "s-short"}, {"t3", upper},
	}
	for _, a := range adds {
		ts.add(a.tenant, a.subject)
	}
	// A fifth tenant moves the subject out of the fixed-size set.
	many := strings.Repeat("0f", 32)
	for i := range 6 {
		ts.add(fmt.Sprintf("m%d", i), many)
	}
	for _, tc := range []struct {
		subject string
		want    []string
	}{
		{hexSubj, []string{"t1", "t2"}},
		{"s-short", []string{"t1"}},
		{upper, []string{"t3"}},
		{many, []string{"m0", "m1", "m2", "m3", "m4", "m5"}},
		{strings.Repeat("cd", 32), []string{}},
	} {
		if got := ts.of(tc.subject); !slices.Equal(got, tc.want) {
			t.Errorf("of(%.8s…) = %v, want %v", tc.subject, got, tc.want)
		}
	}
	for _, tc := range []struct {
		tenant, subject string
		want            bool
	}{
		{"t1", hexSubj, true}, {"t3", hexSubj, false}, {"nobody", hexSubj, false},
		{"t1", "s-short", true}, {"t2", "s-short", false}, {"m5", many, true}, {"t1", many, false},
	} {
		if got := ts.has([]byte(tc.tenant), []byte(tc.subject)); got != tc.want {
			t.Errorf("has(%s, %.8s…) = %v, want %v", tc.tenant, tc.subject, got, tc.want)
		}
	}
}
