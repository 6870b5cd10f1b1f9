package template

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzRender: whatever the template text and values, nothing panics; a
// template that passes Review renders only messages without a link, a
// mobile number or promotional wording, within MaxUnits, and a value
// accepted by Check is within its type's bounds.
func FuzzRender(f *testing.F) {
	f.Add("平安保险", renewal, "车险", "POL-S2B", "2026-12-31", "1234.50")
	f.Add("平安保险", "保单到期，回{x}续保", "复1", "", "", "")
	f.Add("平安保险", "保单{a:number}-{b:number}已到期", "13912", "345678", "", "")
	f.Add("ACME", "您的{p}到期，见{q}.com", "www", "x", "", "")
	f.Add("ACME", "{p}{q:ref}", "五折", "13912345678", "", "")
	f.Fuzz(func(t *testing.T, sig, text, v1, v2, v3, v4 string) {
		problems := Review(sig, text)
		tpl, err := Parse(sig, text)
		if err != nil {
			if len(problems) == 0 {
				t.Fatalf("Parse fails (%v) but Review finds nothing", err)
			}
			return
		}
		vals := map[string]string{}
		for i, v := range []string{v1, v2, v3, v4} {
			if i < len(tpl.Params) {
				vals[tpl.Params[i].Name] = v
			}
		}
		for _, p := range tpl.Params {
			v := vals[p.Name]
			if Check(p.Type, v) == nil && utf8.RuneCountInString(v) > maxLen[p.Type] {
				t.Fatalf("Check accepted a %s of %d characters", p.Type, utf8.RuneCountInString(v))
			}
		}
		msg, err := tpl.Render(vals)
		if err != nil || len(problems) > 0 {
			return
		}
		if !strings.HasPrefix(msg, "【"+sig+"】") {
			t.Fatalf("message %q does not start with the signature", msg)
		}
		if mobile, _ := phones(msg); mobile {
			t.Fatalf("message %q shows a mobile number", msg)
		}
		if linkRE.MatchString(msg) {
			t.Fatalf("message %q shows a link", msg)
		}
		if w := promotion(msg); w != "" {
			t.Fatalf("message %q is promotional (%s)", msg, w)
		}
		if u := units(msg); u > MaxUnits {
			t.Fatalf("message %q is %d units, over %d", msg, u, MaxUnits)
		}
	})
}
