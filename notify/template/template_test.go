package template

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

const renewal = "尊敬的客户，您的{product}保单{policy:ref}将于{expires_on:date}到期，续保保费{amount:money}元。详询95511"

func TestReview(t *testing.T) {
	for _, c := range []struct {
		name, sig, text string
		rules           []string // rules of the problems expected, in order; none = passes
	}{
		{"renewal notice", "平安保险", renewal, nil},
		{"plain expiry notice", "ACME", "您的车险将于{expires_on:date}到期。", nil},
		{"double eleven promotion", "平安保险", "双十一大促！全场车险五折，回复1立即抢购", []string{"promotion"}},
		{"discount as a figure", "平安保险", "续保享8.5折，保单{policy:ref}", []string{"promotion"}},
		{"spaced promotion", "平安保险", "全场 促 销，保单{policy:ref}", []string{"promotion"}},
		{"full-width opt-out", "平安保险", "保单{policy:ref}到期，回ＴＤ退订", []string{"promotion"}},
		{"link", "平安保险", "保单{policy:ref}到期，详见 https://example.cn/x", []string{"link"}},
		{"bare domain", "平安保险", "保单{policy:ref}到期，详见pingan.com", []string{"link"}},
		{"mobile number", "平安保险", "保单{policy:ref}到期，请联系13912345678", []string{"mobile"}},
		{"spaced mobile number", "平安保险", "保单{policy:ref}到期，请联系139 1234 5678", []string{"mobile"}},
		{"prefixed mobile number", "平安保险", "保单{policy:ref}到期，请联系+8613912345678", []string{"mobile"}},
		{"three service numbers", "平安保险", "保单{policy:ref}到期，致电95511、4008000000或01012345678", []string{"numbers"}},
		{"wechat", "平安保险", "保单{policy:ref}到期，加微信咨询", []string{"contact"}},
		{"neutral signature", "客服通知", "您的车险将于{expires_on:date}到期。", []string{"signature"}},
		{"short signature", "平", "您的车险将于{expires_on:date}到期。", []string{"signature"}},
		{"signature with brackets", "【平安】", "您的车险将于{expires_on:date}到期。", []string{"signature"}},
		{"brackets in the text", "平安保险", "【平安】您的车险将于{expires_on:date}到期。", []string{"brackets"}},
		{"adjacent parameters", "平安保险", "保单{policy:ref}{expires_on:date}到期", []string{"variables"}},
		{"only parameters", "平安保险", "{product}，{policy:ref}", []string{"variables"}},
		{"emoji", "平安保险", "您的车险将于{expires_on:date}到期🎉", []string{"symbols"}},
		{"unknown type", "平安保险", "您的车险将于{expires_on:when}到期", []string{"syntax"}},
		{"parameter twice", "平安保险", "{a}到期，{a}续保", []string{"syntax"}},
		{"unclosed brace", "平安保险", "您的车险将于{expires_on到期", []string{"syntax"}},
		{"stray brace", "平安保险", "您的车险}到期", []string{"syntax"}},
		{"too long for flash", "平安保险", strings.Repeat("您的车险即将到期", 15) + "{policy:ref}", []string{"length"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var got []string
			for _, p := range Review(c.sig, c.text) {
				got = append(got, p.Rule)
			}
			if strings.Join(got, ",") != strings.Join(c.rules, ",") {
				t.Fatalf("Review = %v, want %v", Review(c.sig, c.text), c.rules)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	for _, c := range []struct {
		typ Type
		v   string
		ok  bool
	}{
		{Text, "车险", true},
		{Text, "平安福2024 终身寿险", true},
		{Text, "Car insurance", true},
		{Text, "", false},
		{Text, strings.Repeat("险", 21), false},
		{Text, "请拨13912345678", false}, // digits
		{Text, "一三九一二三四五六七八", false},   // a number in Han digits
		{Text, "见example.com", false},  // '.' is not allowed
		{Text, "http://x", false},
		{Text, "五折抢购", false},
		{Text, "促 销", false},
		{Text, "回复一", false},
		{Text, "加微信abc", false},
		{Text, "qq群", false},
		{Text, "致电客服", false},
		{Text, "车险🎉", false},
		{Text, "车险<b>", false},
		{Text, "【平安】", false},
		{Text, "ＡＢＣ", false}, // full-width letters
		{Date, "2026-12-31", true},
		{Date, "2026-02-30", false},
		{Date, "2026-1-3", false},
		{Date, "1999-12-31", false},
		{Date, "31/12/2026", false},
		{Money, "1234.50", true},
		{Money, "0.5", true},
		{Money, "¥100", false},
		{Money, "1,000", false},
		{Money, "1.234", false},
		{Money, "13912345678", false}, // too many digits
		{Number, "30", true},
		{Number, "1234567", false},
		{Number, "-3", false},
		{Ref, "POL-S2B", true},
		{Ref, "2023123456789", true},
		{Ref, "13912345678", false},
		{Ref, "139-1234-5678", false},
		{Ref, "8613912345678", false},
		{Ref, "P13912345678", false},
		{Ref, "4008001234", false},
		{Ref, "POL S2B", false},
		{Ref, "POL.S2B", false},
		{Ref, strings.Repeat("A", 21), false},
	} {
		err := Check(c.typ, c.v)
		if (err == nil) != c.ok {
			t.Errorf("Check(%s, %q) = %v, want ok=%v", c.typ, c.v, err, c.ok)
		}
		if err != nil && c.v != "" && strings.Contains(err.Error(), c.v) {
			t.Errorf("Check(%s, %q): the error repeats the value: %v", c.typ, c.v, err)
		}
	}
}

func TestRender(t *testing.T) {
	tpl, err := Parse("平安保险", renewal)
	if err != nil {
		t.Fatal(err)
	}
	ok := map[string]string{"product": "车险", "policy": "POL-S2B", "expires_on": "2026-12-31", "amount": "1234.50"}
	got, err := tpl.Render(ok)
	if err != nil {
		t.Fatal(err)
	}
	want := "【平安保险】尊敬的客户，您的车险保单POL-S2B将于2026-12-31到期，续保保费1234.50元。详询95511"
	if got != want {
		t.Fatalf("Render = %s\nwant     %s", got, want)
	}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for a, b := range ok {
			m[a] = b
		}
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	for name, vals := range map[string]map[string]string{
		"missing":     with("amount", ""),
		"unknown":     with("extra", "x"),
		"url":         with("product", "www.x.cn"),
		"mobile":      with("policy", "13912345678"),
		"promotion":   with("product", "五折车险"),
		"wrong type":  with("expires_on", "下个月"),
		"long text":   with("product", strings.Repeat("车", 21)),
		"bad money":   with("amount", "100元"),
		"bad ref":     with("policy", "POL/1"),
		"empty value": with("product", "\x00"),
	} {
		if _, err := tpl.Render(vals); !errors.Is(err, ErrValue) {
			t.Errorf("%s: Render err = %v, want ErrValue", name, err)
		}
	}
}

// Values that pass one by one must not join with the fixed text into a
// marker or a number.
func TestRenderAcrossBoundaries(t *testing.T) {
	for _, c := range []struct {
		text string
		vals map[string]string
	}{
		{"保单到期，回{x}续保", map[string]string{"x": "复1"}},
		{"保单{a:number}-{b:number}已到期", map[string]string{"a": "13912", "b": "345678"}},
		{"请于{d:date}前续保，或访问{a}.com", map[string]string{"d": "2026-01-01", "a": "pingan"}},
	} {
		tpl, err := Parse("平安保险", c.text)
		if err != nil {
			t.Fatal(err)
		}
		if p := Review("平安保险", c.text); len(p) > 0 && p[0].Rule != "link" {
			t.Fatalf("%s: %v", c.text, p)
		}
		if msg, err := tpl.Render(c.vals); !errors.Is(err, ErrValue) {
			t.Errorf("%s: Render = %q, %v; want ErrValue", c.text, msg, err)
		}
	}
}

func TestMaxUnits(t *testing.T) {
	tpl, err := Parse("ACME", "到期{d:date}，{p}")
	if err != nil {
		t.Fatal(err)
	}
	// 【ACME】 6 + 到期 2 + 10 + ， 1 + 20
	if got := tpl.MaxUnits(); got != 39 {
		t.Fatalf("MaxUnits = %d, want 39", got)
	}
	msg, err := tpl.Render(map[string]string{"d": "2026-01-01", "p": strings.Repeat("险", 20)})
	if err != nil || utf8.RuneCountInString(msg) != 39 {
		t.Fatalf("Render = %q, %v", msg, err)
	}
}
