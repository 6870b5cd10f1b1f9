package api

import (
	"context"
	"encoding/base64"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/heed/heed/ledger/mem"
	"github.com/heed/heed/ledger/merkle"
)

// treeAuditor serves real RFC 6962 roots and proofs of the in-memory log
// (unsigned: the page checks the proof against the root it is given).
type treeAuditor struct {
	fakeAuditor
	st     *mem.Store
	tamper bool // serve a proof for the wrong leaf
}

func (a treeAuditor) Checkpoint(ctx context.Context) (Checkpoint, error) {
	n, err := a.st.Head(ctx)
	if err != nil {
		return Checkpoint{}, err
	}
	root, err := tlog.TreeHash(int64(n), a.st)
	if err != nil {
		return Checkpoint{}, err
	}
	return Checkpoint{Size: int64(n), Root: root[:], Note: fmt.Sprintf("test\n%d\n%s\n", n, base64.StdEncoding.EncodeToString(root[:]))}, nil
}

func (a treeAuditor) Inclusion(_ context.Context, position, size int64) ([][]byte, error) {
	if a.tamper {
		position = position%size + 1
	}
	p, err := merkle.Inclusion(a.st, position, size)
	out := make([][]byte, len(p))
	for i := range p {
		out[i] = p[i][:]
	}
	return out, err
}

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

func TestAuditPageVerifiesInclusionInChromium(t *testing.T) {
	for _, tamper := range []bool{false, true} {
		t.Run(fmt.Sprint("tamper=", tamper), func(t *testing.T) {
			h := newHarness(t)
			h.api.cfg.Auditor = treeAuditor{st: h.store, tamper: tamper}
			for i := range 13 {
				h.do("POST", "/v1/complaints", h.a, map[string]any{"number": numA, "source": "customer", "reason": fmt.Sprint(i)})
			}
			ctx := browser(t)
			done := `["verified", "NOT", "error"].some((w) => document.getElementById("result").textContent.startsWith(w))`
			if err := chromedp.Do(ctx,
				chromedp.Navigate(h.srv.URL+"/audit"),
				chromedp.SendKeys("#key", h.auditor),
				chromedp.Click("#load"),
				chromedp.Poll[chromedp.Void](`document.getElementById("checkpoint").textContent.length > 0`),
				chromedp.SetValue("#position", "6"),
				chromedp.Click("#verify"),
				chromedp.Poll[chromedp.Void](done),
			); err != nil {
				t.Fatal(err)
			}
			note, err := chromedp.Run(ctx, chromedp.TextContent("#checkpoint"))
			if err != nil {
				t.Fatal(err)
			}
			result, err := chromedp.Run(ctx, chromedp.TextContent("#result"))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(note, "\n13\n") {
				t.Errorf("checkpoint shown: %q", note)
			}
			ok := strings.HasPrefix(result, "verified: event 6 is in the tree of 13 events")
			if ok == tamper {
				t.Fatalf("result %q with tampered proof = %v", result, tamper)
			}
		})
	}
}
