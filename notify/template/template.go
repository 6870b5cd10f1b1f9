// Package template parses, reviews and renders the service templates of
// flash reminders: fixed text with typed, bounded parameters, checked the
// way China's SMS platforms check a template before a sender may use it
// (signature, no promotional wording, no links or mobile numbers), and
// values checked again at send time so free text cannot be smuggled in
// through a parameter.
//
// A parameter is written {name} (type text) or {name:type}; the types are
// text, date, money, number and ref. The rendered message is
// 【signature】 followed by the text with each parameter replaced.
package template

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf16"
	"unicode/utf8"
)

// Sentinel errors.
var (
	// ErrSyntax means the template text does not parse.
	ErrSyntax = errors.New("template: syntax")
	// ErrValue means a parameter value is missing, unknown, or fails its
	// type's checks.
	ErrValue = errors.New("template: parameter value refused")
)

// Type is a parameter's type.
type Type string

// Parameter types. Each is bounded so that no value can carry a message of
// its own.
const (
	// Text is a short name or product: up to MaxTextRunes letters, Han
	// characters, digits (at most MaxTextDigits of them) and a few
	// separators; no links, numbers to call or promotional words.
	Text Type = "text"
	// Date is a calendar date written YYYY-MM-DD.
	Date Type = "date"
	// Money is an amount: digits and at most one dot with two decimals;
	// the currency sign belongs to the fixed text.
	Money Type = "money"
	// Number is a count of up to six digits.
	Number Type = "number"
	// Ref is a contract or policy number: up to 20 letters, digits, '-'
	// or '_', never a phone number.
	Ref Type = "ref"
)

// Types lists the parameter types.
var Types = []Type{Text, Date, Money, Number, Ref}

// Bounds of templates and values.
const (
	// MaxParams is the most parameters a template may have.
	MaxParams = 20
	// MaxTextRunes bounds a text value (the platforms' limit for names
	// and products).
	MaxTextRunes = 20
	// MaxTextDigits bounds the digits in a text value, so that no phone
	// or account number fits in one.
	MaxTextDigits = 6
	// MaxRefLen bounds a ref value.
	MaxRefLen = 20
	// MaxUnits bounds the longest message a template can render, in UTF-16
	// units: two concatenated UCS2 parts. A flash message is read once
	// and gone, so it is meant to be short.
	MaxUnits = 134
	// MaxNumbers is how many service numbers (95…, 400…, landlines) the
	// fixed text may show.
	MaxNumbers = 2
)

// maxLen is the longest value of each type, in runes.
var maxLen = map[Type]int{Text: MaxTextRunes, Date: 10, Money: 12, Number: 6, Ref: MaxRefLen}

// Param is one parameter of a template.
type Param struct {
	Name string `json:"name"`
	Type Type   `json:"type"`
}

// Template is a parsed template.
type Template struct {
	Signature string
	Text      string
	Params    []Param
	parts     []part
}

// part is fixed text, or the parameter at index param when param >= 0.
type part struct {
	lit   string
	param int
}

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,31}$`)

// Parse reads text's parameters. It checks the syntax only; Review runs
// the content checks.
func Parse(signature, text string) (*Template, error) {
	if !utf8.ValidString(signature) || !utf8.ValidString(text) {
		return nil, fmt.Errorf("%w: not valid UTF-8", ErrSyntax)
	}
	t := &Template{Signature: signature, Text: text}
	seen := map[string]bool{}
	rest := text
	for rest != "" {
		open := strings.IndexByte(rest, '{')
		if cl := strings.IndexByte(rest, '}'); cl >= 0 && (open < 0 || cl < open) {
			return nil, fmt.Errorf("%w: '}' without '{'", ErrSyntax)
		}
		if open < 0 {
			t.parts = append(t.parts, part{lit: rest, param: -1})
			break
		}
		if open > 0 {
			t.parts = append(t.parts, part{lit: rest[:open], param: -1})
		}
		cl := strings.IndexByte(rest[open:], '}')
		if cl < 0 {
			return nil, fmt.Errorf("%w: '{' without '}'", ErrSyntax)
		}
		inner := rest[open+1 : open+cl]
		name, typ, hasType := strings.Cut(inner, ":")
		if !hasType {
			typ = string(Text)
		}
		if !nameRE.MatchString(name) {
			return nil, fmt.Errorf("%w: parameter names are a lower-case letter then up to 31 letters, digits or '_'", ErrSyntax)
		}
		if !slices.Contains(Types, Type(typ)) {
			return nil, fmt.Errorf("%w: parameter %s: type %q is not one of text, date, money, number, ref", ErrSyntax, name, typ)
		}
		if seen[name] {
			return nil, fmt.Errorf("%w: parameter %s is used twice", ErrSyntax, name)
		}
		seen[name] = true
		t.Params = append(t.Params, Param{Name: name, Type: Type(typ)})
		t.parts = append(t.parts, part{param: len(t.Params) - 1})
		rest = rest[open+cl+1:]
	}
	return t, nil
}

// Problem is one reason the automatic review refuses a template.
type Problem struct {
	Rule   string `json:"rule"`
	Detail string `json:"detail"`
}

func (p Problem) String() string { return p.Rule + ": " + p.Detail }

// Review runs the automatic checks on a proposed template and returns
// every problem it finds; none means a human reviewer may approve it.
func Review(signature, text string) []Problem {
	var out []Problem
	add := func(rule, detail string) { out = append(out, Problem{rule, detail}) }
	reviewSignature(signature, add)
	t, err := Parse(signature, text)
	if err != nil {
		add("syntax", strings.TrimPrefix(err.Error(), "template: syntax: "))
		return out
	}
	var fixed strings.Builder
	prevParam := false
	for _, p := range t.parts {
		if p.param >= 0 {
			if prevParam {
				add("variables", "two parameters need fixed text between them")
			}
			prevParam = true
			fixed.WriteString(" ")
			continue
		}
		prevParam = false
		fixed.WriteString(p.lit)
	}
	lit := fixed.String()
	switch {
	case len(t.Params) > MaxParams:
		add("variables", fmt.Sprintf("at most %d parameters", MaxParams))
	case countLetters(lit) < 2:
		add("variables", "a template needs fixed text, not only parameters")
	}
	if strings.ContainsAny(lit, "【】[]<>《》{}") {
		add("brackets", "no 【】, [], <>, 《》 or braces in the text: the signature is added in front")
	}
	if r, bad := symbol(lit); bad {
		add("symbols", fmt.Sprintf("no emoji, decorative symbols or control characters (U+%04X)", r))
	}
	if m := promotion(lit); m != "" {
		add("promotion", fmt.Sprintf("promotional wording (%s): flash carries notifications only", m))
	}
	if showsLink(lit) {
		add("link", "no links in a flash template")
	}
	if m := im(lit); m != "" {
		add("contact", fmt.Sprintf("no QQ, WeChat or other messenger contacts (%s)", m))
	}
	mobile, numbers := phones(lit)
	if mobile {
		add("mobile", "no mobile numbers; a service number (95…, 400…) or a landline may be given")
	}
	if numbers > MaxNumbers {
		add("numbers", fmt.Sprintf("at most %d service numbers", MaxNumbers))
	}
	if units := t.MaxUnits(); units > MaxUnits {
		add("length", fmt.Sprintf("the longest message would be %d UTF-16 units, over %d", units, MaxUnits))
	}
	return out
}

func reviewSignature(sig string, add func(rule, detail string)) {
	n := utf8.RuneCountInString(sig)
	if n < 2 || n > 12 {
		add("signature", "the signature is 2 to 12 characters")
	}
	for _, r := range sig {
		if !(unicode.Is(unicode.Han, r) || r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r))) {
			add("signature", "the signature holds only Han characters, Latin letters and digits, without 【】")
			break
		}
	}
	if promotion(sig) != "" {
		add("signature", "the signature carries promotional wording")
	}
	if slices.Contains(neutral, fold(sig)) {
		add("signature", "the signature names the company, app or trademark, not a neutral word such as 客服通知")
	}
}

// neutral are signatures the platforms refuse: they name no one.
var neutral = []string{"客服通知", "通知", "提醒", "客服", "系统通知", "短信通知", "服务通知", "温馨提示", "官方", "验证码", "系统消息", "重要通知"}

// MaxUnits is the length of the longest message t can render, in UTF-16
// units, signature included.
func (t *Template) MaxUnits() int {
	n := units("【" + t.Signature + "】")
	for _, p := range t.parts {
		if p.param >= 0 {
			// Every value of every type is in the BMP.
			n += maxLen[t.Params[p.param].Type]
			continue
		}
		n += units(p.lit)
	}
	return n
}

func units(s string) int { return len(utf16.Encode([]rune(s))) }

// Render checks values against t's parameters and returns the message:
// 【signature】 and the text with each parameter replaced. Every
// parameter needs a value and no other value may be given. Errors name the
// parameter and the check, never the value.
func (t *Template) Render(values map[string]string) (string, error) {
	for name := range values {
		if !slices.ContainsFunc(t.Params, func(p Param) bool { return p.Name == name }) {
			if !nameRE.MatchString(name) {
				return "", fmt.Errorf("%w: a parameter the template does not have", ErrValue)
			}
			return "", fmt.Errorf("%w: %s: the template has no such parameter", ErrValue, name)
		}
	}
	var b strings.Builder
	b.WriteString("【" + t.Signature + "】")
	for _, p := range t.parts {
		if p.param < 0 {
			b.WriteString(p.lit)
			continue
		}
		prm := t.Params[p.param]
		v, ok := values[prm.Name]
		if !ok {
			return "", fmt.Errorf("%w: %s: missing", ErrValue, prm.Name)
		}
		if err := Check(prm.Type, v); err != nil {
			return "", fmt.Errorf("%w: %s: %w", ErrValue, prm.Name, err)
		}
		b.WriteString(v)
	}
	// Fixed text and values that pass one by one may still join into a
	// marker or a number ("回" and "复1"; "13912", "-" and "345678").
	msg := b.String()
	f := fold(msg)
	switch mobile, _ := phones(msg); {
	case mobile:
		return "", fmt.Errorf("%w: with these values the message shows a mobile number", ErrValue)
	case promotionFolded(msg, f) != "" || imFolded(f) != "":
		return "", fmt.Errorf("%w: with these values the message reads as promotional", ErrValue)
	case showsLink(msg):
		return "", fmt.Errorf("%w: with these values the message shows a link", ErrValue)
	}
	return msg, nil
}

// valueError is why a value was refused, without the value.
type valueError string

func (e valueError) Error() string { return string(e) }

// Check reports whether v is a valid value of typ.
func Check(typ Type, v string) error {
	n := utf8.RuneCountInString(v)
	if !utf8.ValidString(v) {
		return valueError("not valid UTF-8")
	}
	if n == 0 {
		return valueError("empty")
	}
	if max, ok := maxLen[typ]; !ok {
		return valueError("unknown type")
	} else if n > max {
		return valueError(fmt.Sprintf("longer than %d characters", max))
	}
	switch typ {
	case Date:
		if len(v) != 10 {
			return valueError("not a date (YYYY-MM-DD)")
		}
		d, err := time.Parse(time.DateOnly, v)
		if err != nil || d.Year() < 2000 || d.Year() > 2099 {
			return valueError("not a date (YYYY-MM-DD) between 2000 and 2099")
		}
	case Money:
		if !moneyRE.MatchString(v) {
			return valueError("not an amount (digits, at most two decimals; the currency sign is in the fixed text)")
		}
	case Number:
		if !numberRE.MatchString(v) {
			return valueError("not a number of up to 6 digits")
		}
	case Ref:
		if !refRE.MatchString(v) {
			return valueError(fmt.Sprintf("a reference is 1 to %d letters, digits, '-' or '_'", MaxRefLen))
		}
		if mobile, _ := phones(v); mobile || serviceNumber(refJoins.Replace(v)) {
			return valueError("looks like a phone number")
		}
	case Text:
		digits := 0
		for _, r := range v {
			switch {
			case unicode.IsDigit(r) || strings.ContainsRune(hanDigits, r):
				digits++
			case unicode.Is(unicode.Han, r), r < utf8.RuneSelf && unicode.IsLetter(r), strings.ContainsRune(textPunct, r):
			default:
				return valueError("only Han characters, Latin letters, digits, spaces and ·-()（）")
			}
		}
		if digits > MaxTextDigits {
			return valueError(fmt.Sprintf("more than %d digits", MaxTextDigits))
		}
		if promotion(v) != "" {
			return valueError("promotional wording")
		}
		if f := fold(v); imFolded(f) != "" || containsAny(f, callWords) {
			return valueError("contact details")
		}
	}
	return nil
}

const (
	textPunct = " ·-()（）"
	hanDigits = "〇零一二三四五六七八九十幺两壹贰叁肆伍陆柒捌玖拾"
)

var (
	moneyRE   = regexp.MustCompile(`^(0|[1-9][0-9]{0,8})(\.[0-9]{1,2})?$`)
	numberRE  = regexp.MustCompile(`^[0-9]{1,6}$`)
	refRE     = regexp.MustCompile(`^[A-Za-z0-9_-]{1,20}$`)
	serviceRE = regexp.MustCompile(`(400|800)[0-9]{7}`)
	linkRE    = regexp.MustCompile(`(?i)(https?:|://|www\.|\b[a-z0-9-]+\s*[.。]\s*(com|cn|net|org|cc|io|me|top|xyz|info|vip|shop|app|ly|co|tv|link|site|ink)\b)`)
	// A mobile number with or without a +86, 86 or 0086 prefix, once
	// spaces and dashes are removed.
	mobileRE = regexp.MustCompile(`^(\+?86|0086)?1[3-9][0-9]{9}$`)
)

// refJoins drops the separators a reference may carry, to see the digits
// they join.
var refJoins = strings.NewReplacer("-", "", "_", "")

// callWords invite a call or a message, which a value has no business doing.
var callWords = []string{"电话", "致电", "拨打", "热线", "联系"}

// phones reports whether s shows a mobile number and how many other runs
// of five or more digits it shows (service numbers, landlines). Spaces,
// dashes and dots between digits are ignored, and full-width digits count.
func phones(s string) (mobile bool, others int) {
	var run strings.Builder
	flush := func() {
		d := run.String()
		run.Reset()
		digits := strings.TrimPrefix(d, "+")
		switch {
		case mobileRE.MatchString(d):
			mobile = true
		case len(digits) > 11 && containsMobile(digits):
			mobile = true
		case len(digits) >= 5:
			others++
		}
	}
	rs := []rune(widen(s))
	for i, r := range rs {
		switch {
		case r >= '0' && r <= '9', r == '+' && run.Len() == 0:
			run.WriteRune(r)
		case (r == ' ' || r == '-' || r == '.' || r == '_') && run.Len() > 0 && i+1 < len(rs) && rs[i+1] >= '0' && rs[i+1] <= '9':
		default:
			if run.Len() > 0 {
				flush()
			}
		}
	}
	if run.Len() > 0 {
		flush()
	}
	return mobile, others
}

// containsMobile reports whether a long digit run ends with, or starts
// with, a mobile number: a number glued to a reference is still a number.
func containsMobile(d string) bool {
	return len(d) >= 11 && (mobileRE.MatchString(d[len(d)-11:]) || mobileRE.MatchString(d[:11]))
}

// promoWords mark a message as promotional (the platforms' lists, and the
// opt-out wording only marketing carries). They are matched on folded
// text: full-width letters narrowed, case, spaces and punctuation removed.
var promoWords = []string{
	"促销", "优惠", "折扣", "打折", "特价", "特惠", "活动", "限时", "返现", "返利", "红包", "抽奖", "积分", "秒杀",
	"抢购", "大促", "免费", "赠送", "赠品", "礼品", "礼包", "福利", "团购", "双十一", "双11", "双十二", "双12",
	"中奖", "推广", "爆款", "清仓", "低至", "满减", "包邮", "专享", "会员日", "生日快乐", "节日快乐", "新年快乐", "惊喜",
	"立即", "马上", "速来", "退订", "拒收", "回复", "回t", "回r", "回n", "享受", "立享", "领取", "领券", "优惠券", "代金券",
	"discount", "promo", "coupon", "sale", "offer", "prize", "winner", "click", "reply", "unsubscribe", "cashback", "bonus", "gift", "free",
}

// promoRE catches discounts written as a figure: 五折, 8折, 8.5折, 50%off.
var promoRE = regexp.MustCompile(`([0-9一二三四五六七八九两半]折|[0-9]%|[0-9]off)`)

// promotion returns the promotional marker s contains, or "".
func promotion(s string) string { return promotionFolded(s, fold(s)) }

// promotionFolded is promotion with fold(s) already made.
func promotionFolded(s, f string) string {
	// Every message a reminder sends is checked: one pass over f finds
	// whether any word starts anywhere, and only then are the words tried
	// in their order, so the marker named is the same.
	if anyPromoWord(f) {
		for _, w := range promoWords {
			if strings.Contains(f, w) {
				return w
			}
		}
	}
	// promoRE needs a 折, a % or an "off": without them (f keeps 折 and
	// "off" as the figure check's text would have them, but drops '%')
	// neither match can be.
	if !strings.Contains(f, "折") && !strings.Contains(f, "off") && !strings.ContainsAny(s, "%％") {
		return ""
	}
	// The figure check keeps '%' and '.', which fold removes.
	if m := promoRE.FindString(strings.ToLower(strings.ReplaceAll(widen(s), " ", ""))); m != "" {
		return m
	}
	if m := promoRE.FindString(f); m != "" {
		return m
	}
	return ""
}

// promoFirst maps the first rune of each promotional word to the words
// starting with it.
var promoFirst = func() map[rune][]string {
	m := map[rune][]string{}
	for _, w := range promoWords {
		r, _ := utf8.DecodeRuneInString(w)
		m[r] = append(m[r], w)
	}
	return m
}()

// anyPromoWord reports whether f contains any of promoWords.
func anyPromoWord(f string) bool {
	for i, r := range f {
		for _, w := range promoFirst[r] {
			if strings.HasPrefix(f[i:], w) {
				return true
			}
		}
	}
	return false
}

// showsLink reports whether linkRE matches s. Each of its branches needs
// a ':' or a '.', or a '。' followed (after \s, which is ASCII space only)
// by a top-level domain's first letter: a message with none of those is
// not run through the regular expression.
func showsLink(s string) bool {
	if strings.ContainsAny(s, ":.") {
		return linkRE.MatchString(s)
	}
	for rest := s; ; {
		i := strings.Index(rest, "。")
		if i < 0 {
			return false
		}
		rest = rest[i+len("。"):]
		t := strings.TrimLeft(rest, "\t\n\f\r ")
		if t != "" && (t[0] >= 'a' && t[0] <= 'z' || t[0] >= 'A' && t[0] <= 'Z') {
			return linkRE.MatchString(s)
		}
	}
}

// serviceNumber reports whether serviceRE matches s, without running it
// when s has no "400" or "800".
func serviceNumber(s string) bool {
	if !strings.Contains(s, "400") && !strings.Contains(s, "800") {
		return false
	}
	return serviceRE.MatchString(s)
}

var imWords = []string{"微信", "weixin", "wechat", "vx", "qq", "加v", "加微", "公众号", "小程序", "抖音", "支付宝"}

// im returns the messenger contact marker s contains, or "".
func im(s string) string { return imFolded(fold(s)) }

// imFolded is im of a text already folded.
func imFolded(f string) string {
	for _, w := range imWords {
		if strings.Contains(f, w) {
			return w
		}
	}
	return ""
}

func containsAny(s string, words []string) bool {
	return slices.ContainsFunc(words, func(w string) bool { return strings.Contains(s, w) })
}

// widen maps full-width ASCII forms and the ideographic space to ASCII.
func widen(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 0xFF01 && r <= 0xFF5E:
			return r - 0xFEE0
		case r == 0x3000:
			return ' '
		}
		return r
	}, s)
}

// fold prepares text for marker matching: full-width forms narrowed, lower
// case, and every space, punctuation mark and symbol removed, so that
// "五 折", "Ｔ Ｄ" and "促-销" match like their plain forms.
func fold(s string) string { return strings.Map(foldRune, s) }

// foldRune is fold's mapping of one rune, widened first. ASCII and the
// common Han ideographs, most of what a message holds, are answered
// without the Unicode tables.
func foldRune(r rune) rune {
	switch {
	case r >= 0xFF01 && r <= 0xFF5E:
		r -= 0xFEE0
	case r == 0x3000:
		return -1
	}
	switch {
	case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
		return r
	case r >= 'A' && r <= 'Z':
		return r + 'a' - 'A'
	case r > ' ' && r < 0x7F:
		return -1 // every other printable ASCII rune is punctuation or a symbol
	case r >= 0x4E00 && r <= 0x9FFF:
		return r // CJK Unified Ideographs: letters, no case
	case unicode.IsSpace(r) || unicode.IsPunct(r) || unicode.IsSymbol(r) || unicode.Is(unicode.Cf, r):
		return -1
	}
	return unicode.ToLower(r)
}

// symbol returns the first emoji, decorative symbol or control character
// in s.
func symbol(s string) (rune, bool) {
	for _, r := range s {
		if unicode.Is(unicode.So, r) || unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r > 0xFFFF || unicode.Is(unicode.Co, r) {
			return r, true
		}
	}
	return 0, false
}

func countLetters(s string) int {
	n := 0
	for _, r := range s {
		if unicode.IsLetter(r) {
			n++
		}
	}
	return n
}
