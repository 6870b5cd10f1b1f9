package api

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/heed/heed/ledger"
)

// formPage is a browser without a browser: a cookie jar and the last page.
type formPage struct {
	t      *testing.T
	h      *harness
	c      *http.Client
	lang   string // Accept-Language
	status int
	header http.Header
	body   string
}

func newPage(t *testing.T, h *harness, acceptLanguage string) *formPage {
	jar, _ := cookiejar.New(nil)
	return &formPage{t: t, h: h, c: &http.Client{Jar: jar}, lang: acceptLanguage}
}

func (p *formPage) do(method, path string, form url.Values, hdr ...string) *formPage {
	p.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, p.h.srv.URL+path, body)
	if err != nil {
		p.t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	if p.lang != "" {
		req.Header.Set("Accept-Language", p.lang)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := p.c.Do(req)
	if err != nil {
		p.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	p.status, p.header, p.body = res.StatusCode, res.Header, string(b)
	return p
}

func (p *formPage) get(path string) *formPage { return p.do("GET", path, nil) }

func (p *formPage) post(path string, form url.Values) *formPage { return p.do("POST", path, form) }

// says fails unless the page answered status and holds every one of want.
func (p *formPage) says(status int, want ...string) {
	p.t.Helper()
	if p.status != status {
		p.t.Errorf("status %d, want %d", p.status, status)
	}
	for _, w := range want {
		if !strings.Contains(p.body, w) {
			p.t.Errorf("the page lacks %q:\n%s", w, p.body)
		}
	}
}

func (p *formPage) signIn(number string) {
	p.t.Helper()
	p.post("/me/challenge", url.Values{"number": {number}}).says(200, `id="code"`)
	p.post("/me/session", url.Values{"number": {number}, "code": {p.h.texter.code(number)}}).says(200, `id="contacts"`)
}

// TestCustomerPageLanguage: Chinese unless the browser prefers English;
// a toggle that is remembered; the strict CSP on every answer.
func TestCustomerPageLanguage(t *testing.T) {
	h := newHarness(t)
	for _, c := range []struct{ accept, lang, says string }{
		{"", langZH, "手机号码"},
		{"en-US,en;q=0.9", langEN, "Mobile number"},
		{"fr-FR,fr;q=0.9,en;q=0.5,zh;q=0.4", langEN, "Mobile number"},
		{"fr-FR", langZH, "手机号码"},
		{"en;q=0.2,zh-TW", langZH, "手机号码"},
	} {
		p := newPage(t, h, c.accept).get("/me")
		p.says(200, `<html lang="`+c.lang+`">`, c.says)
		if got := p.header.Get("Content-Language"); got != c.lang {
			t.Errorf("Accept-Language %q: Content-Language %q", c.accept, got)
		}
		if csp := p.header.Get("Content-Security-Policy"); csp != meCSP || strings.Contains(csp, "unsafe") {
			t.Errorf("CSP %q", csp)
		}
	}
	// The toggle is remembered over the browser's language.
	p := newPage(t, h, "zh-CN")
	p.post("/me/lang", url.Values{"lang": {langEN}}).says(200, `<html lang="en">`)
	p.get("/me").says(200, "Mobile number")
	// On the code step it stays there and sends no second code.
	p.post("/me/challenge", url.Values{"number": {numA}}).says(200, "A code was sent")
	first := h.texter.code(numA)
	p.post("/me/lang", url.Values{"lang": {langZH}, "step": {"code"}, "number": {numA}}).says(200, "验证码已通过短信发送", `id="code"`)
	if h.texter.code(numA) != first {
		t.Error("switching language sent another code")
	}
	// The page's stylesheets are served, and nothing it does not list.
	for path, status := range map[string]int{"/static/me/me.css": 200, "/static/me/": 404, "/static/me/nope.js": 404} {
		if res, err := http.Get(h.srv.URL + path); err != nil || res.StatusCode != status {
			t.Errorf("GET %s: %v %v, want %d", path, res.StatusCode, err, status)
		} else {
			res.Body.Close()
		}
	}
}

func TestAcceptLanguage(t *testing.T) {
	for h, want := range map[string]string{
		"": langZH, "zh-CN": langZH, "en": langEN, "EN-gb": langEN, "de, en;q=0.8": langEN, "de": langZH,
		"en;q=0.5, zh;q=0.9": langZH, "zh;q=0.5, en;q=0.9": langEN, "en;q=x": langZH, "en;q=0": langZH, "zh-Hant-TW;q=1, en": langZH,
	} {
		if got := acceptLang(h); got != want {
			t.Errorf("%q: %s, want %s", h, got, want)
		}
	}
}

// TestTextsInBothLanguages: every sentence of /me exists in Chinese and
// in English, and each format takes the same values in both.
func TestTextsInBothLanguages(t *testing.T) {
	zh, en := reflect.ValueOf(textZH), reflect.ValueOf(textEN)
	for i := range zh.NumField() {
		name := zh.Type().Field(i).Name
		a, b := zh.Field(i).String(), en.Field(i).String()
		if a == "" || b == "" {
			t.Errorf("%s: %q / %q", name, a, b)
		}
		if strings.HasSuffix(name, "F") && (verbs(a) != verbs(b) || verbs(a) == "") {
			t.Errorf("%s: formats %q and %q take different values", name, a, b)
		}
		if strings.Contains(a, "%") && !strings.HasSuffix(name, "F") {
			t.Errorf("%s holds a verb but is not a format", name)
		}
	}
	for rule := range ruleText {
		for _, l := range []string{langZH, langEN} {
			for _, e := range []string{"allow", "deny"} {
				if s := ruleSentence(l, rule, e); strings.Contains(s, rule) || s == "" {
					t.Errorf("%s %s %s: %q", rule, l, e, s)
				}
			}
		}
	}
}

func verbs(f string) string {
	var out []string
	for i := 0; i < len(f)-1; i++ {
		if f[i] == '%' {
			out = append(out, f[i:i+2])
			i++
		}
	}
	return strings.Join(out, "")
}

// TestCustomerPageActs: through the page's forms, a customer stops a
// business, complains about a reminder (once), and erases their data at
// one business, then at every one; each is recorded via self-service and
// the page says what was done; what cannot be done is refused in words.
func TestCustomerPageActs(t *testing.T) {
	h := newHarness(t)
	customerStory(t, h)
	p := newPage(t, h, "")
	p.signIn(numA)
	p.says(200, "平安保险", "速达电销", "依据：您与该企业的合同 P-7")
	if strings.Contains(p.body, "13800138000") || strings.Contains(p.body, "tenanta") && !strings.Contains(p.body, `value="tenanta"`) {
		t.Error("the page shows the number or a tenant id")
	}

	before := h.head()
	p.post("/me/withdrawal", url.Values{"tenant": {"tenantb"}, "scope": {"call"}}).says(200, `id="notice"`, "已记录：速达电销 不能再联系您（电话）。", "要求它停止：电话。")
	w := selfService(t, h, "tenantb", numA, ledger.TypeConsentWithdrawn)
	if len(w) != 1 || !strings.Contains(string(w[0].Data), `"channels":["call"]`) || h.head() != before+1 {
		t.Fatalf("opt-outs recorded: %v", w)
	}

	p.post("/me/complaint", url.Values{"tenant": {"tenanta"}, "contact": {"r-1"}, "reason": {"半夜发的"}}).says(200, "已记录您的投诉，记在线路 10690001 上。", "您已于")
	p.post("/me/complaint", url.Values{"tenant": {"tenanta"}, "contact": {"r-1"}, "reason": {"again"}}).says(200, "您之前已经投诉过这次联系")
	if c := selfService(t, h, "tenanta", numA, ledger.TypeComplaintReceived); len(c) != 1 {
		t.Errorf("complaints recorded: %d, want 1", len(c))
	}

	head := h.head()
	p.post("/me/complaint", url.Values{"tenant": {"tenanta"}, "contact": {"r-2"}}).says(422, "这条提醒没有发送，无需投诉。")
	p.post("/me/complaint", url.Values{"tenant": {"tenanta"}, "contact": {"nope"}}).says(422, "找不到这次联系。")
	p.post("/me/complaint", url.Values{"tenant": {"tenanta"}, "contact": {"r-1"}, "reason": {strings.Repeat("长", 1001)}}).says(400, "出了点问题")
	p.post("/me/withdrawal", url.Values{"tenant": {"tenantc"}, "scope": {"all"}}).says(422, "这个企业没有关于您号码的记录。")
	p.post("/me/withdrawal", url.Values{"tenant": {"tenanta"}, "scope": {"everything"}}).says(400)
	p.post("/me/erasure", url.Values{"tenant": {"../x"}}).says(400)
	p.do("POST", "/me/withdrawal", url.Values{"tenant": {"tenanta"}, "scope": {"all"}}, "Origin", "https://elsewhere.example").says(403)
	if h.head() != head {
		t.Errorf("refused actions appended: head %d → %d", head, h.head())
	}

	p.post("/me/erasure", url.Values{"tenant": {"tenanta"}}).says(200, "您在 平安保险 的个人信息已删除。您的退订仍然有效。", "您的信息已于")
	if e := selfService(t, h, "tenanta", numA, ledger.TypeSubjectErased); len(e) != 1 {
		t.Errorf("erasures at tenanta: %d", len(e))
	}
	// The reminder's text went with the key.
	p.says(200, "短信内容已无法显示")
	p.post("/me/erasure", nil).says(200, "您在所有企业的个人信息已删除。您的退订仍然有效。")
	if e := selfService(t, h, "tenantb", numA, ledger.TypeSubjectErased); len(e) != 1 {
		t.Errorf("erasures at tenantb after erasing everywhere: %d", len(e))
	}

	p.post("/me/logout", nil).says(200, `id="number"`)
	p.post("/me/erasure", nil).says(401, "登录已过期")
}

// TestCustomerSignInErrorsSayWhatHappened: a wrong code says how many
// tries are left, a used-up code says to ask for another, too many codes
// say when to try again, on the page and in the API, with Retry-After.
func TestCustomerSignInErrorsSayWhatHappened(t *testing.T) {
	h := newHarness(t)
	p := newPage(t, h, "en")
	p.post("/me/challenge", url.Values{"number": {"12"}}).says(422, "That number could not be read.")
	p.post("/me/session", url.Values{"number": {numA}, "code": {"123456"}}).says(401, "No code is waiting for this number.")
	p.post("/me/challenge", url.Values{"number": {numA}}).says(200, "It works for 5 minutes.")
	for left := 4; left > 0; left-- {
		p.post("/me/session", url.Values{"number": {numA}, "code": {"000000"}}).says(401, fmt.Sprintf("That code is not right. You can try %d more times.", left), `id="code"`)
	}
	p.post("/me/session", url.Values{"number": {numA}, "code": {"000000"}}).says(401, "That code no longer works", `id="number"`)
	p.post("/me/session", url.Values{"number": {numA}, "code": {h.texter.code(numA)}}).says(401, "That code no longer works")

	r := h.do("POST", "/v1/me/session", "", map[string]any{"number": numA, "code": h.texter.code(numA)})
	checkProblem(t, "used-up code", r, 401, "ask for a new code")
	h.do("POST", "/v1/me/challenge", "", map[string]any{"number": numA})
	r = h.do("POST", "/v1/me/session", "", map[string]any{"number": numA, "code": "000000"})
	checkProblem(t, "wrong code", r, 401, "4 tries left")

	// Three codes in ten minutes; the fourth is refused until the first
	// leaves the window.
	h.do("POST", "/v1/me/challenge", "", map[string]any{"number": numA})
	r = h.do("POST", "/v1/me/challenge", "", map[string]any{"number": numA})
	checkProblem(t, "fourth code", r, 429, "Retry-After")
	if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 || s > 600 {
		t.Errorf("Retry-After %q on the API's 429", r.header.Get("Retry-After"))
	}
	p.post("/me/challenge", url.Values{"number": {numA}}).says(429, "Too many codes were asked for. Try again at ", "minutes).")
	if s, err := strconv.Atoi(p.header.Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("Retry-After %q on the page's 429", p.header.Get("Retry-After"))
	}
	// Guessing from one address runs into its limit, said the same way.
	b := numB
	h.do("POST", "/v1/me/challenge", "", map[string]any{"number": b})
	var last resp
	for range 40 {
		if last = h.do("POST", "/v1/me/session", "", map[string]any{"number": b, "code": "999999"}); last.status == 429 {
			break
		}
	}
	if last.status != 429 || last.header.Get("Retry-After") == "" {
		t.Errorf("forty guesses from one address: %d, Retry-After %q", last.status, last.header.Get("Retry-After"))
	}
}

// TestCustomerActionsAPI: the customer's operations take a customer
// session only, refuse what is not theirs, and record via self-service.
func TestCustomerActionsAPI(t *testing.T) {
	h := newHarness(t)
	customerStory(t, h)
	tok := signIn(t, h, numA)

	r := h.do("GET", "/v1/me/contacts", tok, nil)
	var got contactsOut
	if r.status != 200 || json.Unmarshal(r.body, &got.Body) != nil || got.Body.Zone != "Asia/Shanghai" || len(got.Body.Businesses) != 2 {
		t.Fatalf("contacts: %d %s", r.status, r.body)
	}
	if b := got.Body.Businesses[0]; b.Tenant != "tenanta" || b.DisplayName != "平安保险" || b.ServicePhone != "95511" {
		t.Errorf("the first business: %+v", b)
	}

	before := h.head()
	r = h.do("POST", "/v1/me/withdrawals", tok, map[string]any{"tenant": "tenantb", "channels": []string{"sms", "sms"}})
	if r.status != 201 || h.head() != before+1 {
		t.Fatalf("withdrawal: %d %s", r.status, r.body)
	}
	w := selfService(t, h, "tenantb", numA, ledger.TypeConsentWithdrawn)
	if len(w) != 1 || !strings.Contains(string(w[0].Data), `"channels":["sms"]`) || strings.Contains(string(w[0].Data), `"all"`) {
		t.Errorf("withdrawal recorded: %v", w)
	}
	if r := h.do("POST", "/v1/me/withdrawals", tok, map[string]any{"tenant": "tenantb"}); r.status != 201 {
		t.Fatalf("withdrawal of everything: %d %s", r.status, r.body)
	}
	if w := selfService(t, h, "tenantb", numA, ledger.TypeConsentWithdrawn); len(w) != 2 || !strings.Contains(string(w[1].Data), `"all":true`) {
		t.Errorf("withdrawal of everything recorded: %v", w)
	}

	r = h.do("POST", "/v1/me/complaints", tok, map[string]any{"tenant": "tenanta", "contact": "r-1", "reason": "半夜发的"})
	if r.status != 201 {
		t.Fatalf("complaint: %d %s", r.status, r.body)
	}
	c := selfService(t, h, "tenanta", numA, ledger.TypeComplaintReceived)
	if len(c) != 1 || !strings.Contains(string(c[0].Data), `"line":"10690001"`) || strings.Contains(string(c[0].Data), "半夜") || len(c[0].PII) == 0 {
		t.Fatalf("complaint recorded: %v", c)
	}
	head := h.head()
	if r := h.do("POST", "/v1/me/complaints", tok, map[string]any{"tenant": "tenanta", "contact": "r-1"}); r.status != 200 || r.json(t)["id"] != c[0].ID || h.head() != head {
		t.Errorf("a second complaint about the same reminder: %d %s", r.status, r.body)
	}
	r = h.do("POST", "/v1/me/erasure", tok, map[string]any{"tenant": "tenanta"})
	if e := selfService(t, h, "tenanta", numA, ledger.TypeSubjectErased); r.status != 201 || len(e) != 1 {
		t.Errorf("erasure: %d %s; recorded via self-service: %d", r.status, r.body, len(e))
	}

	other := signIn(t, h, numB)
	for _, c := range []struct {
		name, path, token string
		body              any
		status            int
		mention           string
	}{
		{"withdrawal without a session", "/v1/me/withdrawals", "", map[string]any{"tenant": "tenanta"}, 401, ""},
		{"withdrawal with a business key", "/v1/me/withdrawals", h.a, map[string]any{"tenant": "tenanta"}, 401, ""},
		{"complaint without a session", "/v1/me/complaints", "", map[string]any{"tenant": "tenanta", "contact": "r-1"}, 401, ""},
		{"withdrawal at a business that never knew the number", "/v1/me/withdrawals", other, map[string]any{"tenant": "tenanta"}, 422, "body.tenant"},
		{"complaint about another number's reminder", "/v1/me/complaints", other, map[string]any{"tenant": "tenanta", "contact": "r-1"}, 422, "body.tenant"},
		{"withdrawal at no business", "/v1/me/withdrawals", tok, map[string]any{}, 422, "tenant"},
		{"withdrawal of an unknown channel", "/v1/me/withdrawals", tok, map[string]any{"tenant": "tenanta", "channels": []string{"fax"}}, 422, "channels"},
		{"withdrawal at a malformed tenant", "/v1/me/withdrawals", tok, map[string]any{"tenant": "a b"}, 422, "tenant"},
		{"complaint about nothing", "/v1/me/complaints", tok, map[string]any{"tenant": "tenanta"}, 422, "contact"},
		{"complaint about an unknown contact", "/v1/me/complaints", tok, map[string]any{"tenant": "tenanta", "contact": "nope"}, 422, "body.contact"},
		{"complaint about a refused reminder", "/v1/me/complaints", tok, map[string]any{"tenant": "tenanta", "contact": "r-2"}, 422, "never sent"},
		{"complaint too long", "/v1/me/complaints", tok, map[string]any{"tenant": "tenanta", "contact": "r-1", "reason": strings.Repeat("x", 1001)}, 422, "reason"},
		{"a business imports a self-service opt-out", "/v1/events:import", h.a,
			`{"type":"ConsentWithdrawn","number":"` + numA + `","occurred_at":"` + recent + `","data":{"via":"self-service"}}`, 403, "via"},
		{"a business imports a self-service complaint", "/v1/events:import", h.a,
			`{"type":"ComplaintReceived","number":"` + numA + `","occurred_at":"` + recent + `","data":{"source":"customer","via":"self-service","contact":"r-1"}}`, 403, "via"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := h.head()
			var hdr []string
			if c.path == "/v1/events:import" {
				hdr = []string{"Content-Type", "application/x-ndjson"}
			}
			r := h.do("POST", c.path, c.token, c.body, hdr...)
			if r.status != c.status {
				t.Fatalf("%d, want %d: %s", r.status, c.status, r.body)
			}
			checkProblem(t, c.name, r, c.status, c.mention)
			if h.head() != before {
				t.Errorf("a refused request appended")
			}
		})
	}
}

// TestCustomerPageUpcomingReminders: the section shows what GET
// /v1/me/reminders answers; a 404 (no schedules) or a failure hides it
// and says nothing of it.
func TestCustomerPageUpcomingReminders(t *testing.T) {
	h := newHarness(t)
	customerStory(t, h)
	p := newPage(t, h, "")
	p.signIn(numA)
	for _, c := range []struct {
		name    string
		source  http.Handler
		shows   bool
		content string
	}{
		{"none served", nil, false, ""},
		{"served", upcomingStub(`{"reminders":[{"tenant":"tenanta","due_at":"2026-12-01T02:00:00Z","contract_ref":"P-7"},{"tenant":"tenantb","next_at":"2026-11-30T01:30:00Z","due_at":"2026-11-29T14:00:00Z","text":"续约提醒"}]}`),
			true, "速达电销 计划于 2026年11月30日 09:30 提醒您：续约提醒"},
		{"served empty", upcomingStub(`{"reminders":[]}`), true, "目前没有计划发给您的提醒。"},
		{"failing", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "down", 500) }), false, ""},
		{"garbled", upcomingStub(`{"reminders":`), false, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			h.api.reminderSource = c.source
			p.get("/me")
			if got := strings.Contains(p.body, `id="upcoming"`); got != c.shows {
				t.Fatalf("upcoming section shown: %v, want %v", got, c.shows)
			}
			if !strings.Contains(p.body, c.content) || strings.Contains(p.body, `id="error"`) {
				t.Errorf("the page:\n%s", p.body)
			}
		})
	}
	h.api.reminderSource = nil
}
