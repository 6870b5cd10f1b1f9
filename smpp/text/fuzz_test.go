package text

import (
	"testing"
	"unicode/utf8"
)

// FuzzSplit checks that any valid text splits into parts within the limits
// that decode, joined, to the text itself.
func FuzzSplit(f *testing.F) {
	for _, s := range []string{"", "TD", "您的保单将于2026年12月31日到期", "€€€{}[]", "😀中a€"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			return
		}
		coding, parts := Split(s)
		var joined []byte
		for _, p := range parts {
			limit := 160
			if coding == UCS2 {
				limit = 140
			}
			if len(parts) > 1 {
				limit = 153
				if coding == UCS2 {
					limit = 134
				}
			}
			if len(p) > limit {
				t.Fatalf("%v part of %d bytes", coding, len(p))
			}
			joined = append(joined, p...)
		}
		if got := Decode(coding.DataCoding(), joined); got != s {
			t.Fatalf("Split(%q) joins to %q", s, got)
		}
	})
}
