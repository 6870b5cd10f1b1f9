package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/notify"
	"github.com/heed/heed/projections"
)

// viewport is a screen the page is checked at.
type viewport struct {
	name          string
	width, height int64
	mobile        bool
}

var (
	phone   = viewport{"390x844", 390, 844, true}
	desktop = viewport{"1280x800", 1280, 800, false}
)

func (v viewport) set() chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{
			Width: v.width, Height: v.height, DeviceScaleFactor: 1, Mobile: v.mobile})
		return err
	})
}

// cspWatch records, in every page, what the Content-Security-Policy
// refused; cspViolations reads it.
const cspWatch = `window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(e.violatedDirective + " " + e.blockedURI));`

func customerBrowser(t *testing.T, acceptLanguage string) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium(t)), chromedp.NoSandbox, chromedp.Headless)
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	// A story of several pages, each checked by axe-core at two sizes: a
	// bound for a slow machine under -race, not a timing.
	ctx, cancel3 := context.WithTimeout(ctx, 5*time.Minute)
	t.Cleanup(cancel3)
	if err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		if _, err := cdp.Call(ctx, t, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		if _, err := cdp.Call(ctx, t, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
			Headers: network.Headers{"Accept-Language": acceptLanguage}}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, t, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: cspWatch})
		return err
	})); err != nil {
		t.Fatal(err)
	}
	return ctx
}

// look checks the page as it stands at a phone's and a desktop's size:
// no sideways scrolling, text at a readable size, nothing the CSP
// refused, no serious or critical axe-core violation; and leaves a
// screenshot of each.
func look(t *testing.T, ctx context.Context, axe, name string) {
	t.Helper()
	dir := auditShots(t) // the same folder as the auditor's page's
	for _, v := range []viewport{phone, desktop} {
		if err := chromedp.Do(ctx, v.set()); err != nil {
			t.Fatal(err)
		}
		over, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.documentElement.scrollWidth > window.innerWidth`))
		if err != nil {
			t.Fatal(err)
		}
		if over {
			t.Errorf("%s at %s scrolls sideways", name, v.name)
		}
		size, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`parseFloat(getComputedStyle(document.body).fontSize)`))
		if err != nil || size < 16 {
			t.Errorf("%s at %s: body text %vpx (%v), want at least 16px", name, v.name, size, err)
		}
		csp, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`window.__csp || []`))
		if err != nil || len(csp) > 0 {
			t.Errorf("%s: the Content-Security-Policy refused %v (%v)", name, csp, err)
		}
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[chromedp.Void](axe)); err != nil {
			t.Fatal(err)
		}
		found, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`axe.run(document, {resultTypes: ["violations"]}).then((r) =>
			r.violations.filter((v) => v.impact === "serious" || v.impact === "critical")
				.map((v) => v.impact + " " + v.id + ": " + v.help + " at " + v.nodes.map((n) => n.target.join(" ")).join(", ")))`, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range found {
			t.Errorf("%s at %s: axe-core: %s", name, v.name, f)
		}
		shot, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name+"-"+v.name+".png"), shot, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(sel))
	if err != nil {
		t.Fatalf("%s: %v", sel, err)
	}
	return s
}

// waitText waits until the element sel holds want, through the
// navigation a form's submission starts.
func waitText(t *testing.T, ctx context.Context, sel, want string) {
	t.Helper()
	js := fmt.Sprintf(`((e) => e !== null && e.textContent.includes(%q))(document.querySelector(%q))`, want, sel)
	deadline := time.Now().Add(15 * time.Second)
	for {
		pctx, cancel := context.WithTimeout(ctx, time.Until(deadline))
		err := chromedp.Do(pctx, chromedp.Poll[chromedp.Void](js))
		cancel()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			got, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body.innerText`))
			t.Fatalf("%s never said %q (%v); the page says:\n%s", sel, want, err, got)
		}
	}
}

// selfService returns the events of type typ the customer recorded via
// self-service in tenant's contact stream for number.
func selfService(t *testing.T, h *harness, tenant, number, typ string) []ledger.Event {
	t.Helper()
	evs, err := h.store.ReadStream(context.Background(), ledger.ContactStream(tenant, hmacPseudonyms{}.Pseudonym(number)), 1, 0)
	if err != nil && !errors.Is(err, ledger.ErrNotFound) {
		t.Fatal(err)
	}
	var out []ledger.Event
	for _, e := range evs {
		if e.Type == typ && e.Actor == customerActor && strings.Contains(string(e.Data), `"via":"self-service"`) {
			out = append(out, e)
		}
	}
	return out
}

// customerStory records what two businesses did to numA: Ping An (tenanta,
// with a profile) holds a contract, sent one renewal reminder, was told to
// stop marketing calls, and so had its second reminder refused; an
// auditor read the opt-out's words. A telemarketer (tenantb) called
// without any basis.
func customerStory(t *testing.T, h *harness) {
	t.Helper()
	steps := []struct {
		method, path, token string
		body                any
	}{
		{"PUT", "/v1/tenants/tenanta/profile", h.admin, pingan},
		{"PUT", "/v1/tenants/tenantb/profile", h.admin, map[string]any{"display_name": "速达电销", "display_name_en": "Speedy Telesales", "service_phone": "4008001234", "lines": []string{"10690002"}}},
		{"POST", "/v1/relationships", h.a, map[string]any{"number": numA, "contract_ref": "P-7", "product": "车险"}},
		{"POST", "/v1/reminders", h.a, renewal("r-1", numA, "P-7")},
		{"POST", "/v1/contacts", h.b, map[string]any{"number": numA, "line": "10690002", "channel": "call", "purpose": "marketing"}},
		{"POST", "/v1/withdrawals", h.a, map[string]any{"number": numA, "via": "call", "channels": []string{"call"}, "purposes": []string{"marketing"}, "raw_text": "别再打电话推销了"}},
		{"POST", "/v1/reminders", h.a, renewal("r-2", numA, "P-7")},
	}
	h.approved(h.a, "renewal", renewalText)
	var withdrawal float64
	for _, s := range steps {
		r := h.do(s.method, s.path, s.token, s.body)
		if r.status != 201 {
			t.Fatalf("%s %s: %d %s", s.method, s.path, r.status, r.body)
		}
		if s.path == "/v1/withdrawals" {
			withdrawal = r.json(t)["position"].(float64)
		}
	}
	if r := h.do("GET", fmt.Sprintf("/v1/audit/events/%d/personal?purpose=dispute+D-12", int(withdrawal)), h.auditor, nil); r.status != 200 {
		t.Fatalf("staff read: %d %s", r.status, r.body)
	}
}

// TestCustomerPageInChromium drives /me as a person would, on a phone
// set to Chinese: sign in (a wrong code first), read the record in
// Chinese, switch to English, stop one business, complain about one
// reminder, erase the data one business holds; and checks what the page
// says and what the ledger recorded.
func TestCustomerPageInChromium(t *testing.T) {
	axe := axeSource(t)
	h := newHarness(t)
	customerStory(t, h)
	ctx := customerBrowser(t, "zh-CN,zh;q=0.9,en;q=0.5")

	if err := chromedp.Do(ctx, phone.set(), chromedp.Navigate(h.srv.URL+"/me"), chromedp.WaitVisible("#number")); err != nil {
		t.Fatal(err)
	}
	if got := text(t, ctx, "h1"); got != "我的联系记录" {
		t.Fatalf("a Chinese browser's page is titled %q", got)
	}
	look(t, ctx, axe, "me-zh-sign-in")
	if err := chromedp.Do(ctx, chromedp.SendKeys("#number", "138 0013 8000"), chromedp.Click("#send"), chromedp.WaitVisible("#sent")); err != nil {
		t.Fatal(err)
	}
	// A wrong code is refused, saying so and how many tries are left.
	if err := chromedp.Do(ctx, chromedp.SendKeys("#code", "000000"), chromedp.Click("#verify"), chromedp.WaitVisible("#error")); err != nil {
		t.Fatal(err)
	}
	if got := text(t, ctx, "#error"); !strings.Contains(got, "验证码不正确") || !strings.Contains(got, "4 次") {
		t.Errorf("after a wrong code the page says %q", got)
	}
	look(t, ctx, axe, "me-zh-wrong-code")
	if err := chromedp.Do(ctx, chromedp.SendKeys("#code", h.texter.code(numA)), chromedp.Click("#verify"), chromedp.WaitVisible("#contacts")); err != nil {
		t.Fatal(err)
	}

	// The record, in Chinese and in plain words.
	page := text(t, ctx, "main")
	for _, want := range []string{
		"以下时间均为您所在地的时间：Asia/Shanghai（UTC+08:00）",
		"共 3 次联系和提醒，其中 2 次不被允许",
		"平安保险", "速达电销", "闪信提醒", "电话",
		"【平安保险】您的车险保单P-7将于2026-12-31到期，请及时续保。", "与发送时记录的内容一致",
		"10690001（该企业登记的线路）",
		"依据：您与该企业的合同 P-7",
		"您曾要求该企业不要再这样联系您。",
		"规则不允许这次联系，但该企业仍然联系了您。",
		"用途：营销（推销产品或服务）",
		"审计员查看了您退订时的原话（平安保险）。说明的理由：“dispute D-12”",
		"客服电话：95511",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the Chinese record lacks %q", want)
		}
	}
	for _, never := range []string{"tenanta", "tenantb", "service-basis", "withdrawal", "relationship-active", "13800138000", "UTC\n"} {
		if strings.Contains(page, never) {
			t.Errorf("the record shows %q", never)
		}
	}
	if strings.Contains(page, "即将收到的提醒") {
		t.Error("the upcoming reminders show though nothing answers for them")
	}
	look(t, ctx, axe, "me-zh-record")

	// English, remembered across visits.
	if err := chromedp.Do(ctx, chromedp.Click("#lang")); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "h1", "My contact record")
	if err := chromedp.Do(ctx, chromedp.Navigate(h.srv.URL+"/me"), chromedp.WaitVisible("#contacts")); err != nil {
		t.Fatal(err)
	}
	page = text(t, ctx, "main")
	for _, want := range []string{"Times are in your own time zone: Asia/Shanghai (UTC+08:00).", "Ping An Insurance", "Speedy Telesales",
		"You had asked this business not to contact you this way.", "an auditor read the words of your opt-out (Ping An Insurance)"} {
		if !strings.Contains(page, want) {
			t.Errorf("the English record lacks %q", want)
		}
	}
	if lang, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.documentElement.lang`)); err != nil || lang != "en" {
		t.Errorf("html lang %q (%v)", lang, err)
	}

	// Stop the telemarketer's marketing.
	if err := chromedp.Do(ctx, chromedp.Click("#scope-tenantb-marketing"), chromedp.Click("#stop-tenantb")); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "#notice", "Recorded: Speedy Telesales may no longer contact you (Marketing).")
	if evs := selfService(t, h, "tenantb", numA, ledger.TypeConsentWithdrawn); len(evs) != 1 || !strings.Contains(string(evs[0].Data), `"purposes":["marketing"]`) {
		t.Errorf("the ledger holds %d self-service opt-outs at the telemarketer: %v", len(evs), evs)
	}

	// Complain about the first reminder.
	r1 := `details:has(input[name=contact][value="r-1"])`
	if err := chromedp.Do(ctx, chromedp.Click(r1+" summary"), chromedp.SendKeys(r1+" textarea", "我没有要求提醒"), chromedp.Click(r1+" button")); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "#notice", "Your complaint was recorded against line 10690001.")
	complaints := selfService(t, h, "tenanta", numA, ledger.TypeComplaintReceived)
	if len(complaints) != 1 {
		t.Fatalf("the ledger holds %d self-service complaints", len(complaints))
	}
	if d := string(complaints[0].Data); !strings.Contains(d, `"line":"10690001"`) || !strings.Contains(d, `"contact":"r-1"`) || !strings.Contains(d, `"source":"customer"`) ||
		strings.Contains(d, "我没有要求提醒") || len(complaints[0].PII) == 0 {
		t.Errorf("the complaint: %s (its words must be sealed, not in data)", d)
	}
	if !strings.Contains(text(t, ctx, "main"), "You complained about this contact on") {
		t.Error("the reminder does not say it was complained about")
	}

	// Erase what the telemarketer holds; its opt-out still stops it.
	if err := chromedp.Do(ctx, chromedp.Click("#erase-open-tenantb"), chromedp.WaitVisible("#erase-tenantb")); err != nil {
		t.Fatal(err)
	}
	if keeps := text(t, ctx, "#biz-tenantb details"); !strings.Contains(keeps, "your opt-outs and do-not-contact entries") {
		t.Errorf("the erasure does not say what it keeps: %q", keeps)
	}
	if err := chromedp.Do(ctx, chromedp.Click("#erase-tenantb")); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "#notice", "Your personal data at Speedy Telesales was erased. Your opt-outs still apply.")
	if evs := selfService(t, h, "tenantb", numA, ledger.TypeSubjectErased); len(evs) != 1 {
		t.Errorf("the ledger holds %d self-service erasures at the telemarketer", len(evs))
	}
	if evs := selfService(t, h, "tenanta", numA, ledger.TypeSubjectErased); len(evs) != 0 {
		t.Errorf("erasing at one business erased at another: %d", len(evs))
	}
	if r := h.do("POST", "/v1/decisions", h.b, map[string]any{"number": numA, "channel": "call", "purpose": "marketing"}); r.status != 200 || r.json(t)["allowed"] != false {
		t.Errorf("after the erasure the telemarketer may call again: %d %s", r.status, r.body)
	}
	look(t, ctx, axe, "me-en-after-actions")
}

// TestCustomerPageShowsUpcomingReminders: when GET /v1/me/reminders
// answers, /me lists what it planned, in the customer's time zone.
func TestCustomerPageShowsUpcomingReminders(t *testing.T) {
	axe := axeSource(t)
	h := newHarness(t)
	customerStory(t, h)
	due := time.Date(2026, 12, 1, 2, 0, 0, 0, time.UTC) // 10:00 in Beijing
	h.api.reminderSource = upcomingStub(fmt.Sprintf(`{"reminders":[{"tenant":"tenanta","reminder_id":"s-1","contract_ref":"P-7","due_at":%q}]}`, due.Format(time.RFC3339)))
	ctx := customerBrowser(t, "en-GB,en;q=0.9")
	if err := chromedp.Do(ctx, phone.set(), chromedp.Navigate(h.srv.URL+"/me"), chromedp.SendKeys("#number", numA), chromedp.Click("#send"), chromedp.WaitVisible("#code")); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.SendKeys("#code", h.texter.code(numA)), chromedp.Click("#verify"), chromedp.WaitVisible("#upcoming")); err != nil {
		t.Fatal(err)
	}
	if got := text(t, ctx, "#upcoming"); !strings.Contains(got, "Ping An Insurance plans to remind you on 1 Dec 2026, 10:00: your contract P-7 with the business") {
		t.Errorf("upcoming reminders: %q", got)
	}
	look(t, ctx, axe, "me-en-upcoming")
}

// TestRuleSentencesCoverEveryRule: every rule a decision can name has a
// sentence for the customer in both languages, for each effect it has.
func TestRuleSentencesCoverEveryRule(t *testing.T) {
	rules := []string{notify.RuleTemplateApproved, notify.RuleTemplateParams, notify.RuleFreeText}
	for _, r := range projections.Rules {
		rules = append(rules, r.ID)
	}
	for _, r := range rules {
		s, ok := ruleText[r]
		if !ok {
			t.Errorf("rule %s has no sentence", r)
			continue
		}
		if (s.DenyZH == "") != (s.DenyEN == "") || (s.AllowZH == "") != (s.AllowEN == "") || s.DenyZH == "" && s.AllowZH == "" {
			t.Errorf("rule %s is not said in both languages: %+v", r, s)
		}
	}
	for r := range ruleText {
		if !slices.Contains(rules, r) {
			t.Errorf("a sentence for %s, which no decision names", r)
		}
	}
}

// upcomingStub stands in for GET /v1/me/reminders, which the renewal
// schedules serve: it answers body to a signed-in customer.
func upcomingStub(body string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/me/reminders" || !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer cust_") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
	})
}

// TestCustomerPageByKeyboard: the page is used with the keyboard alone,
// in an order that follows what is read: skip link, language, number,
// send; then the code; then, past the skip link, a complaint opened,
// written and sent with keys.
func TestCustomerPageByKeyboard(t *testing.T) {
	h := newHarness(t)
	customerStory(t, h)
	ctx := customerBrowser(t, "en")
	focus := func() string {
		t.Helper()
		f, err := chromedp.Run(ctx, chromedp.Evaluate[string](`((e) => e.id || e.className || e.tagName)(document.activeElement)`))
		if err != nil {
			t.Fatal(err)
		}
		return f
	}
	tabs := func(want ...string) {
		t.Helper()
		for _, w := range want {
			if err := chromedp.Do(ctx, chromedp.KeyEvent("\t")); err != nil {
				t.Fatal(err)
			}
			if got := focus(); got != w {
				t.Fatalf("focus on %q, want %q", got, w)
			}
		}
	}
	if err := chromedp.Do(ctx, phone.set(), chromedp.Navigate(h.srv.URL+"/me"), chromedp.WaitVisible("#number")); err != nil {
		t.Fatal(err)
	}
	tabs("skip", "lang", "number")
	if err := chromedp.Do(ctx, chromedp.KeyEvent(numA)); err != nil {
		t.Fatal(err)
	}
	tabs("send")
	if err := chromedp.Do(ctx, chromedp.KeyEvent("\r"), chromedp.WaitVisible("#code")); err != nil {
		t.Fatal(err)
	}
	tabs("skip", "lang", "code")
	if err := chromedp.Do(ctx, chromedp.KeyEvent(h.texter.code(numA)+"\r"), chromedp.WaitVisible("#contacts")); err != nil {
		t.Fatal(err)
	}
	// The skip link lands in the content; the first thing to act on there
	// is the first complaint.
	tabs("skip")
	if err := chromedp.Do(ctx, chromedp.KeyEvent("\r")); err != nil {
		t.Fatal(err)
	}
	if got := focus(); got != "main" {
		t.Fatalf("the skip link left focus on %q", got)
	}
	tabs("complain-2")
	if err := chromedp.Do(ctx, chromedp.KeyEvent("\r")); err != nil {
		t.Fatal(err)
	}
	tabs("reason-2")
	if err := chromedp.Do(ctx, chromedp.KeyEvent("called at night")); err != nil {
		t.Fatal(err)
	}
	tabs("complain-send-2")
	if err := chromedp.Do(ctx, chromedp.KeyEvent("\r")); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "#notice", "Your complaint was recorded against line 10690002.")
	if c := selfService(t, h, "tenantb", numA, ledger.TypeComplaintReceived); len(c) != 1 {
		t.Errorf("complaints recorded by keyboard: %d", len(c))
	}
}
