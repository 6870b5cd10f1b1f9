package projections

import (
	"encoding/json"
	"maps"
	"slices"
	"strings"
	"testing"
)

// leaves flattens a decoded JSON object into its leaf paths, "a.b.c".
func leaves(prefix string, v any, out map[string]bool) {
	m, ok := v.(map[string]any)
	if !ok {
		out[prefix] = true
		return
	}
	for k, x := range m {
		p := k
		if prefix != "" {
			p = prefix + "." + k
		}
		leaves(p, x, out)
	}
}

// TestEveryRuleIsWholeInTheTable: a rule added to Rules without an id, an
// evaluation or a sentence for the customer fails here, and so does a
// figure of the rules file that no rule declares (Default would leave it
// zero and Validate unchecked) or a declared one the file does not have.
func TestEveryRuleIsWholeInTheTable(t *testing.T) {
	ids := map[string]bool{}
	declared := map[string]string{}
	for i, r := range Rules {
		if r.ID == "" {
			t.Errorf("rule %d has no id", i)
		}
		if ids[r.ID] {
			t.Errorf("rule id %s appears twice", r.ID)
		}
		ids[r.ID] = true
		if r.eval == nil {
			t.Errorf("rule %s has no evaluation", r.ID)
		}
		p := r.Plain
		if p.DenyZH == "" || p.DenyEN == "" {
			t.Errorf("rule %s has no sentence for the customer when it denies: %+v", r.ID, p)
		}
		if (p.AllowZH == "") != (p.AllowEN == "") {
			t.Errorf("rule %s says when it allows in one language only: %+v", r.ID, p)
		}
		for _, n := range r.Numbers {
			if n.Field == "" || n.set == nil || n.check == nil {
				t.Errorf("rule %s has a number without a field, default or check: %+v", r.ID, n)
			}
			if other, ok := declared[n.Field]; ok {
				t.Errorf("%s is declared by %s and %s", n.Field, other, r.ID)
			}
			declared[n.Field] = r.ID
		}
	}
	b, err := json.Marshal(Default())
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	inFile := map[string]bool{}
	leaves("", doc, inFile)
	delete(inFile, "version")
	delete(inFile, "disabled")
	for _, f := range slices.Sorted(maps.Keys(inFile)) {
		if _, ok := declared[f]; !ok {
			t.Errorf("rules file field %s belongs to no rule's Numbers", f)
		}
	}
	for f, id := range declared {
		if !inFile[f] {
			t.Errorf("rule %s declares %s, which the rules file does not have", id, f)
		}
	}
	if len(declared) < 13 {
		t.Fatalf("only %d numbers declared", len(declared))
	}
}

// TestEveryDeclaredNumberIsChecked: each number's check refuses a value
// out of its range, naming the field, so an operator's typo cannot reach
// a decision.
func TestEveryDeclaredNumberIsChecked(t *testing.T) {
	for _, r := range Rules {
		for _, n := range r.Numbers {
			t.Run(n.Field, func(t *testing.T) {
				c := Default()
				switch n.Field {
				case "marketing_consent.bundled_terms_enough":
					return // a switch: both values are valid
				case "quiet_hours.start":
					c.QuietHours.Start = "24:61"
				case "quiet_hours.end":
					c.QuietHours.End = "8"
				case "quiet_hours.fallback_zone":
					c.QuietHours.FallbackZone = "Nowhere/Atlantis"
				case "line_suspension.rate":
					c.LineSuspension.Rate = 0
				default:
					b, _ := json.Marshal(c)
					var m map[string]any
					if err := json.Unmarshal(b, &m); err != nil {
						t.Fatal(err)
					}
					setPath(m, n.Field, -1.0)
					b, _ = json.Marshal(m)
					if _, err := ParseConfig(b); err == nil || !strings.Contains(err.Error(), n.Field) {
						t.Fatalf("%s = -1 accepted or unnamed: %v", n.Field, err)
					}
					return
				}
				if err := c.Validate(); err == nil || !strings.Contains(err.Error(), n.Field) {
					t.Fatalf("bad %s accepted or unnamed: %v", n.Field, err)
				}
			})
		}
	}
}

func setPath(m map[string]any, path string, v any) {
	for {
		head, rest, ok := strings.Cut(path, ".")
		if !ok {
			m[path] = v
			return
		}
		m, path = m[head].(map[string]any), rest
	}
}
