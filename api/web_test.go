package api

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
)

func TestCustomerPageSignsInAndListsContacts(t *testing.T) {
	h := newHarness(t)
	h.do("POST", "/v1/relationships", h.a, map[string]any{"number": numA, "contract_ref": "P-7"})
	h.approved(h.a, "renewal", renewalText)
	h.do("POST", "/v1/reminders", h.a, renewal("r-web", numA, "P-7"))
	h.do("POST", "/v1/withdrawals", h.a, map[string]any{"number": numA, "via": "sms_keyword"})
	h.do("POST", "/v1/reminders", h.a, renewal("r-web-2", numA, "P-7"))
	w := h.do("POST", "/v1/withdrawals", h.a, map[string]any{"number": numA, "via": "call", "raw_text": "stop calling"})
	if r := h.do("GET", "/v1/audit/events/"+fmt.Sprint(w.json(t)["position"])+"/personal?purpose=dispute+D-12", h.auditor, nil); r.status != 200 {
		t.Fatalf("staff read: %d %s", r.status, r.body)
	}

	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar}
	get := func(path string) string {
		res, err := c.Get(h.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var b strings.Builder
		_, _ = io.Copy(&b, res.Body)
		return b.String()
	}
	if page := get("/me"); !strings.Contains(page, `name="number"`) {
		t.Fatalf("first page has no number form:\n%s", page)
	}
	res, err := c.PostForm(h.srv.URL+"/me/challenge", url.Values{"number": {"138 0013 8000"}})
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("challenge: %v %v", res.StatusCode, err)
	}
	res.Body.Close()
	res, err = c.PostForm(h.srv.URL+"/me/session", url.Values{"number": {"138 0013 8000"}, "code": {"000000x"}})
	if err != nil || res.StatusCode != 401 {
		t.Fatalf("wrong code: %v %v", res.StatusCode, err)
	}
	res.Body.Close()
	res, err = c.PostForm(h.srv.URL+"/me/session", url.Values{"number": {"138 0013 8000"}, "code": {h.texter.code(numA)}})
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("session: %v %v", res.StatusCode, err)
	}
	var b strings.Builder
	_, _ = io.Copy(&b, res.Body)
	res.Body.Close()
	page := b.String()
	for _, want := range []string{"3 contacts, reminders and reads of your personal data", "Purpose given: dispute D-12", "ConsentWithdrawn", "submitted", "denied", "withdrawal", "P-7",
		"【平安保险】您的车险保单P-7将于2026-12-31到期，请及时续保。"} {
		if !strings.Contains(page, want) {
			t.Errorf("contacts page lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, "13800138000") {
		t.Error("the page shows the number")
	}
	// The customer erases at every business from the page; the staff read
	// of the withdrawal's text then finds nothing.
	res, err = c.PostForm(h.srv.URL+"/me/erasure", nil)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("erasure from the page: %v %v", res.StatusCode, err)
	}
	b.Reset()
	_, _ = io.Copy(&b, res.Body)
	res.Body.Close()
	if !strings.Contains(b.String(), "was erased at every business") {
		t.Errorf("the page does not confirm the erasure:\n%s", b.String())
	}
	if r := h.do("GET", "/v1/audit/events/"+fmt.Sprint(w.json(t)["position"])+"/personal?purpose=again", h.auditor, nil); r.status != http.StatusGone {
		t.Errorf("staff read after the erasure from the page: %d %s", r.status, r.body)
	}
	// Signing out forgets the session.
	res, _ = c.PostForm(h.srv.URL+"/me/logout", nil)
	res.Body.Close()
	if page := get("/me"); !strings.Contains(page, `name="number"`) {
		t.Error("still signed in after sign-out")
	}
}

func TestAuditPageIsServed(t *testing.T) {
	h := newHarness(t)
	res, err := http.Get(h.srv.URL + "/audit")
	if err != nil || res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("audit page: %v %v", res, err)
	}
	res.Body.Close()
}
