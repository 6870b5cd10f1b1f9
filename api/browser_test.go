package api

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no Chromium installed: run make deps (it installs the Debian package chromium)")
	return ""
}

func browser(t *testing.T) context.Context {
	t.Helper()
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(chromium(t)), chromedp.NoSandbox, chromedp.Headless)
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	ctx, cancel2 := chromedp.NewContext(actx)
	t.Cleanup(cancel2)
	ctx, cancel3 := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(cancel3)
	return ctx
}

func TestCustomerPageInChromium(t *testing.T) {
	h := newHarness(t)
	h.do("POST", "/v1/relationships", h.a, map[string]any{"number": numA, "contract_ref": "P-7"})
	h.approved(h.a, "renewal", renewalText)
	h.do("POST", "/v1/reminders", h.a, renewal("r-1", numA, "P-7"))
	h.do("POST", "/v1/withdrawals", h.a, map[string]any{"number": numA, "via": "sms_keyword"})
	h.do("POST", "/v1/reminders", h.a, renewal("r-2", numA, "P-7"))
	ctx := browser(t)

	if err := chromedp.Do(ctx,
		chromedp.Navigate(h.srv.URL+"/me"),
		chromedp.SendKeys("#number", numA),
		chromedp.Click("#send"),
		chromedp.WaitVisible("#sent"),
	); err != nil {
		t.Fatal(err)
	}
	// The code arrives by SMS (here: the test's texter) once the form is sent.
	if err := chromedp.Do(ctx,
		chromedp.SendKeys("#code", h.texter.code(numA)),
		chromedp.Click("#verify"),
		chromedp.WaitVisible("#contacts"),
	); err != nil {
		t.Fatal(err)
	}
	count, err := chromedp.Run(ctx, chromedp.Text("#count"))
	if err != nil {
		t.Fatal(err)
	}
	table, err := chromedp.Run(ctx, chromedp.Text("#contacts"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(count, "2 contacts") {
		t.Fatalf("count: %q", count)
	}
	for _, want := range []string{"submitted", "denied", "withdrawal", "P-7", "tenanta"} {
		if !strings.Contains(table, want) {
			t.Errorf("the table lacks %q:\n%s", want, table)
		}
	}
}
