package template

import (
	"strings"
	"testing"
	"unicode"
)

// slowPromotion is promotionFolded as it was before its shortcuts: every
// word tried in order, then both figure checks.
func slowPromotion(s, f string) string {
	for _, w := range promoWords {
		if strings.Contains(f, w) {
			return w
		}
	}
	if m := promoRE.FindString(strings.ToLower(strings.ReplaceAll(widen(s), " ", ""))); m != "" {
		return m
	}
	return promoRE.FindString(f)
}

// FuzzShortcuts: the checks that skip their regular expressions when it
// cannot match answer as the expressions do.
func FuzzShortcuts(f *testing.F) {
	for _, s := range []string{"您的车险保单将于2027-03-01到期，请及时续保。", "见 abc。 COM", "见abc。\tcn", "请访问ｗｗｗ．x", "HTTPS:x",
		"五折", "8.5折", "50%OFF", "５０％", "1 off", "拨打4001234567", "800-123-4567", "促 销", "Ｆｒｅｅ", "回T", "。", "。 ", "a.b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := showsLink(s), linkRE.MatchString(s); got != want {
			t.Fatalf("showsLink(%q) = %v, the expression says %v", s, got, want)
		}
		if got, want := serviceNumber(s), serviceRE.MatchString(s); got != want {
			t.Fatalf("serviceNumber(%q) = %v, the expression says %v", s, got, want)
		}
		if got, want := promotionFolded(s, fold(s)), slowPromotion(s, fold(s)); got != want {
			t.Fatalf("promotion(%q) = %q, want %q", s, got, want)
		}
	})
}

// TestFoldRune: fold's shortcuts for ASCII and Han answer as the Unicode
// tables do, for every rune of the Basic Multilingual Plane.
func TestFoldRune(t *testing.T) {
	slow := func(r rune) rune {
		r = []rune(widen(string(r)))[0]
		if unicode.IsSpace(r) || unicode.IsPunct(r) || unicode.IsSymbol(r) || unicode.Is(unicode.Cf, r) {
			return -1
		}
		return unicode.ToLower(r)
	}
	for r := rune(0); r <= 0xFFFF; r++ {
		if r >= 0xD800 && r <= 0xDFFF {
			continue
		}
		if got, want := foldRune(r), slow(r); got != want {
			t.Fatalf("fold of %U is %U, want %U", r, got, want)
		}
	}
}
