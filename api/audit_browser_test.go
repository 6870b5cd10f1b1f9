package api

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/heed/heed/ledger/mem"
	"github.com/heed/heed/ledger/merkle"
)

// Ways the test's auditor lies.
const (
	honest             = ""
	tamperSignature    = "signature"
	tamperConsistency  = "consistency"
	tamperInclusion    = "inclusion"
	tamperRotationSigs = "rotation"
)

// signingAuditor serves checkpoints signed with a real Ed25519 note key
// over the in-memory log's RFC 6962 tree, and real proofs, unless it is
// told to lie.
type signingAuditor struct {
	fakeAuditor
	st *mem.Store

	mu        sync.Mutex
	signer    *merkle.Signer
	rotations []merkle.Checkpoint
	tamper    string
}

const testOrigin = "heed.test/log"

func newSigner(t *testing.T) (*merkle.Signer, string) {
	t.Helper()
	skey, vkey, err := note.GenerateKey(rand.Reader, testOrigin)
	if err != nil {
		t.Fatal(err)
	}
	s, err := merkle.NewSigner(skey, vkey)
	if err != nil {
		t.Fatal(err)
	}
	return s, vkey
}

func (a *signingAuditor) lie(how string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.tamper = how
}

func (a *signingAuditor) tree(ctx context.Context) (merkle.Checkpoint, error) {
	n, err := a.st.Head(ctx)
	if err != nil {
		return merkle.Checkpoint{}, err
	}
	root, err := tlog.TreeHash(int64(n), a.st)
	return merkle.Checkpoint{Origin: testOrigin, Size: int64(n), Root: root}, err
}

// rotate hands signing to next, announced in a checkpoint of the current
// tree; with tamperRotationSigs the announcement lacks next's signature.
func (a *signingAuditor) rotate(t *testing.T, next *merkle.Signer, how string) {
	t.Helper()
	a.mu.Lock()
	defer a.mu.Unlock()
	cp, err := a.tree(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if how == tamperRotationSigs {
		cp.Rotation = &merkle.Rotation{Old: a.signer.VerifierKey(), New: next.VerifierKey()}
		cp, err = a.signer.Sign(cp)
	} else {
		cp, err = a.signer.SignRotation(cp, next)
	}
	if err != nil {
		t.Fatal(err)
	}
	a.rotations = append(a.rotations, cp)
	a.signer = next
}

func (a *signingAuditor) Checkpoint(ctx context.Context) (Checkpoint, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	cp, err := a.tree(ctx)
	if err != nil {
		return Checkpoint{}, err
	}
	if n := len(a.rotations); n > 0 && a.rotations[n-1].Size == cp.Size {
		cp = a.rotations[n-1]
	} else if cp, err = a.signer.Sign(cp); err != nil {
		return Checkpoint{}, err
	}
	out := Checkpoint{Size: cp.Size, Root: cp.Root[:], Note: string(cp.Note)}
	for _, r := range a.rotations {
		out.Rotations = append(out.Rotations, string(r.Note))
	}
	if a.tamper == tamperSignature {
		out.Note = flipSignature(out.Note)
	}
	return out, nil
}

// flipSignature changes one bit of the last signature of a signed note,
// keeping its key name and hash.
func flipSignature(msg string) string {
	i := strings.LastIndex(msg, " ")
	sig, err := base64.StdEncoding.DecodeString(strings.TrimSpace(msg[i+1:]))
	if err != nil {
		panic(err)
	}
	sig[len(sig)-1] ^= 1
	return msg[:i+1] + base64.StdEncoding.EncodeToString(sig) + "\n"
}

func (a *signingAuditor) proof(p []tlog.Hash, err error, how string) ([][]byte, error) {
	out := make([][]byte, len(p))
	for i := range p {
		out[i] = append([]byte(nil), p[i][:]...)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.tamper == how && len(out) > 0 {
		out[0][0] ^= 1
	}
	return out, err
}

func (a *signingAuditor) Inclusion(_ context.Context, position, size int64) ([][]byte, error) {
	p, err := merkle.Inclusion(a.st, position, size)
	return a.proof(p, err, tamperInclusion)
}

func (a *signingAuditor) Consistency(_ context.Context, older, newer int64) ([][]byte, error) {
	p, err := merkle.Consistency(a.st, older, newer)
	return a.proof(p, err, tamperConsistency)
}

// auditShots is where the page tests leave screenshots and the printed
// report for people to look at: $HEED_SCREENSHOTS, or a folder in the
// system's temporary directory.
func auditShots(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("HEED_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "heed-screenshots")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func auditWrite(t *testing.T, name string, b []byte) {
	t.Helper()
	p := filepath.Join(auditShots(t), name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s", p)
}

// auditPage drives /audit in Chromium and keeps what the browser logged.
type auditPage struct {
	t   *testing.T
	ctx context.Context
	mu  sync.Mutex
	log []chromedp.ConsoleMessage
}

func openAuditPage(t *testing.T, url string, width, height int64) *auditPage {
	t.Helper()
	p := &auditPage{t: t, ctx: browser(t)}
	msgs := chromedp.Console(p.ctx)
	go func() {
		for m, err := range msgs {
			if err != nil {
				return
			}
			p.mu.Lock()
			p.log = append(p.log, m)
			p.mu.Unlock()
		}
	}()
	p.do(chromedp.EmulateViewport(width, height), chromedp.Navigate(url+"/audit"),
		chromedp.Poll[chromedp.Void](`document.body.dataset.ready === "true"`))
	return p
}

func (p *auditPage) do(steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	if err := chromedp.Do(p.ctx, steps...); err != nil {
		p.t.Fatal(err)
	}
}

func (p *auditPage) eval(js string, out any) {
	p.t.Helper()
	b, err := chromedp.Run(p.ctx, chromedp.Evaluate[[]byte](js, chromedp.EvalAwaitPromise))
	if err != nil {
		p.t.Fatalf("%v\n%s", err, js)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			p.t.Fatalf("%v: %s", err, b)
		}
	}
}

func (p *auditPage) text(sel string) string {
	p.t.Helper()
	var s string
	p.eval(fmt.Sprintf(`document.querySelector(%q).textContent`, sel), &s)
	return s
}

// settle clicks sel and waits until the result box id shows ok or fail,
// and returns which, with its text.
func (p *auditPage) settle(click, box string) (string, string) {
	p.t.Helper()
	p.do(chromedp.Click(click),
		chromedp.Poll[chromedp.Void](fmt.Sprintf(`(() => { const c = document.getElementById(%q).classList; return c.contains("ok") || c.contains("fail") })()`, box)))
	var kind string
	p.eval(fmt.Sprintf(`document.getElementById(%q).classList.contains("ok") ? "ok" : "fail"`, box), &kind)
	return kind, p.text("#" + box)
}

func (p *auditPage) pin(apiKey, vkey string) {
	p.t.Helper()
	p.eval(`document.getElementById("pubkey").value = ""`, nil)
	p.do(chromedp.SendKeys("#pubkey", vkey))
	if apiKey != "" {
		p.do(chromedp.SendKeys("#apikey", apiKey))
	}
	if kind, text := p.settle("#pin", "key-result"); kind != "ok" {
		p.t.Fatalf("pinning the key: %s", text)
	}
}

// noStaleSuccess: after a failed check, nothing on screen says a check of
// that kind passed.
func (p *auditPage) noStaleSuccess(box string, others ...string) {
	p.t.Helper()
	if txt := p.text("#" + box); strings.Contains(txt, "Verified") || !strings.HasPrefix(txt, "Failed") {
		p.t.Errorf("#%s after a failure: %q", box, txt)
	}
	for _, sel := range others {
		if txt := p.text(sel); txt != "" {
			p.t.Errorf("%s still shows %q after a failure", sel, txt)
		}
	}
}

// cspClean fails the test if the browser refused anything under the
// page's Content-Security-Policy, or a script threw.
func (p *auditPage) cspClean() {
	p.t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, m := range p.log {
		if m.IsException() || m.Source == "security" || strings.Contains(m.Text, "Content Security Policy") {
			p.t.Errorf("the browser logged: %s", m)
		}
	}
}

// axeSource is axe-core's script, installed by make deps.
func axeSource(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("HEED_PEERS")
	if dir == "" {
		dir = filepath.Join("..", "testdata", "peers")
	}
	b, err := os.ReadFile(filepath.Join(dir, "node_modules", "axe-core", "axe.min.js"))
	if err != nil {
		t.Fatalf("axe-core is not installed (run make deps): %v", err)
	}
	return string(b)
}

// axe runs axe-core on the page and fails on any serious or critical
// violation.
func (p *auditPage) axe(what string) {
	p.t.Helper()
	var violations []struct {
		ID, Impact, Help string
		Nodes            []struct{ Target []any }
	}
	p.eval(axeSource(p.t)+`;axe.run(document, {resultTypes: ["violations"]}).then((r) => r.violations)`, &violations)
	for _, v := range violations {
		if v.Impact == "serious" || v.Impact == "critical" {
			var where []string
			for _, n := range v.Nodes {
				where = append(where, fmt.Sprint(n.Target...))
			}
			p.t.Errorf("axe-core, %s: %s (%s) at %s", what, v.ID, v.Impact, strings.Join(where, "; "))
		} else {
			p.t.Logf("axe-core, %s: %s (%s): %s", what, v.ID, v.Impact, v.Help)
		}
	}
}

// fitsWidth: the page does not scroll sideways.
func (p *auditPage) fitsWidth(what string) {
	p.t.Helper()
	var w struct{ Scroll, Inner int }
	p.eval(`({scroll: document.documentElement.scrollWidth, inner: window.innerWidth})`, &w)
	if w.Scroll > w.Inner {
		p.t.Errorf("%s: the page is %d px wide in a %d px window", what, w.Scroll, w.Inner)
	}
}

// download clicks the link sel as a person would and returns the file
// the browser saved.
func (p *auditPage) download(sel string) string {
	p.t.Helper()
	dir := p.t.TempDir()
	if _, err := chromedp.Call(p.ctx, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
		Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dir, EventsEnabled: ptrTo(true)}); err != nil {
		p.t.Fatal(err)
	}
	progress := chromedp.Events(p.ctx, cdpbrowser.DownloadProgress)
	p.do(chromedp.Click(sel))
	for ev, err := range progress {
		if err != nil {
			p.t.Fatal(err)
		}
		switch ev.State {
		case cdpbrowser.DownloadProgressStateCanceled:
			p.t.Fatalf("the download of %s was cancelled", sel)
		case cdpbrowser.DownloadProgressStateCompleted:
			b, err := os.ReadFile(filepath.Join(dir, ev.GUID))
			if err != nil {
				p.t.Fatal(err)
			}
			return string(b)
		}
	}
	return ""
}

func ptrTo[T any](v T) *T { return &v }

func (p *auditPage) shot(name string) {
	p.t.Helper()
	b, err := chromedp.Run(p.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		p.t.Fatal(err)
	}
	auditWrite(p.t, name, b)
}

func complaints(h *harness, n int) {
	h.t.Helper()
	for i := range n {
		if r := h.do("POST", "/v1/complaints", h.a, map[string]any{"number": numA, "source": "customer", "reason": fmt.Sprint(i)}); r.status != 201 {
			h.t.Fatalf("%d %s", r.status, r.body)
		}
	}
}

// TestAuditPageInChromium drives /audit as an auditor would: pin the key,
// verify a checkpoint, verify again after the log grew, open an event and
// see its inclusion verified; then the server lies in each way it can, and
// the page says so, with no earlier success left on screen.
func TestAuditPageInChromium(t *testing.T) {
	h := newHarness(t)
	signer, vkey := newSigner(t)
	a := &signingAuditor{st: h.store, signer: signer}
	h.api.cfg.Auditor = a
	complaints(h, 13)
	p := openAuditPage(t, h.srv.URL, 1280, 800)
	p.pin(h.auditor, vkey)

	kind, text := p.settle("#verify", "verify-result")
	if kind != "ok" || !strings.Contains(text, "checkpoint of 13 events") || !strings.Contains(p.text("#verify-steps"), "no checkpoint was seen before") {
		t.Fatalf("first verification: %s %q; steps %q", kind, text, p.text("#verify-steps"))
	}
	complaints(h, 4)
	kind, text = p.settle("#verify", "verify-result")
	if kind != "ok" || !strings.Contains(text, "checkpoint of 17 events") || !strings.Contains(p.text("#verify-steps"), "extends the tree of 13 events") {
		t.Fatalf("after the log grew: %s %q; steps %q", kind, text, p.text("#verify-steps"))
	}
	if got := p.text("#pinned-checkpoint"); !strings.Contains(got, "tree of 17 events") {
		t.Errorf("last-seen checkpoint shown as %q", got)
	}

	// Browse: the complaints, and open one.
	p.do(chromedp.SetValue("#q-type", "ComplaintReceived"), chromedp.Click("#find"),
		chromedp.Poll[chromedp.Void](`document.querySelectorAll("#results-body tr").length === 17`))
	open := func(pos int) (string, string) {
		return p.settle(fmt.Sprintf(`#results-body button[aria-label="Open event %d and verify it"]`, pos), "event-result")
	}
	if kind, text := open(6); kind != "ok" || !strings.Contains(text, "event 6 (ComplaintReceived) is in the tree of 17 events") ||
		!strings.Contains(p.text("#event-leaf"), `"position": 6`) {
		t.Fatalf("opening event 6: %s %q; leaf %q", kind, text, p.text("#event-leaf"))
	}
	p.shot("audit-1280x800.png")
	p.axe("verified, at 1280×800")

	t.Run("a forged signature", func(t *testing.T) {
		p.t = t
		a.lie(tamperSignature)
		kind, text := p.settle("#verify", "verify-result")
		if kind != "fail" || !strings.Contains(text, "does not verify") {
			t.Errorf("%s %q", kind, text)
		}
		p.noStaleSuccess("verify-result", "#checkpoint-note")
		if got := p.text("#pinned-checkpoint"); !strings.Contains(got, "tree of 17 events") {
			t.Errorf("a forged checkpoint moved the last-seen one: %q", got)
		}
		// An event cannot be verified against a checkpoint that failed.
		kind, text = open(6)
		if kind != "fail" || !strings.Contains(text, "did not verify") {
			t.Errorf("opening an event after the forgery: %s %q", kind, text)
		}
		p.noStaleSuccess("event-result", "#event-leaf")
	})
	t.Run("a rewritten history", func(t *testing.T) {
		p.t = t
		a.lie(tamperConsistency)
		complaints(h, 2)
		kind, text := p.settle("#verify", "verify-result")
		if kind != "fail" || !strings.Contains(text, "not consistent") || !strings.Contains(p.text("#verify-steps"), "✗") {
			t.Errorf("%s %q; steps %q", kind, text, p.text("#verify-steps"))
		}
		p.noStaleSuccess("verify-result")
	})
	t.Run("a false inclusion proof", func(t *testing.T) {
		p.t = t
		a.lie(honest)
		if kind, text := p.settle("#verify", "verify-result"); kind != "ok" || !strings.Contains(text, "19 events") {
			t.Fatalf("honest again: %s %q", kind, text)
		}
		if kind, text := open(6); kind != "ok" {
			t.Fatalf("event 6: %s %q", kind, text)
		}
		a.lie(tamperInclusion)
		kind, text := open(7)
		if kind != "fail" || !strings.Contains(text, "does not lead from this event") {
			t.Errorf("%s %q", kind, text)
		}
		p.noStaleSuccess("event-result", "#event-leaf")
	})
	t.Run("a wrong pinned key", func(t *testing.T) {
		p.t = t
		a.lie(honest)
		if kind, _ := p.settle("#verify", "verify-result"); kind != "ok" {
			t.Fatal("honest again")
		}
		// The other key comes from a file, as verifier.key holds it.
		_, other := newSigner(t)
		file := filepath.Join(t.TempDir(), "verifier.key")
		if err := os.WriteFile(file, []byte(other+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		p.eval(`document.getElementById("pubkey").value = ""`, nil)
		p.do(chromedp.SetUploadFiles("#pubkey-file", []string{file}),
			chromedp.Poll[chromedp.Void](`document.getElementById("pubkey").value !== ""`))
		var loaded string
		p.eval(`document.getElementById("pubkey").value`, &loaded)
		if loaded != other {
			t.Fatalf("the key loaded from the file reads %q, want %q", loaded, other)
		}
		if kind, text := p.settle("#pin", "key-result"); kind != "ok" {
			t.Fatalf("pinning the key from the file: %s", text)
		}
		if txt := p.text("#verify-result"); txt != "" {
			t.Errorf("pinning another key left %q on screen", txt)
		}
		kind, text := p.settle("#verify", "verify-result")
		if kind != "fail" || !strings.Contains(text, "is not signed by") {
			t.Errorf("%s %q", kind, text)
		}
		p.noStaleSuccess("verify-result", "#checkpoint-note")
	})
	p.t = t
	p.shot("audit-failure-1280x800.png")
	p.cspClean()
}

// TestAuditPageFollowsKeyRotation: a page that pinned the first key
// verifies checkpoints signed by its successor through the announced
// rotation, and refuses a rotation the new key did not sign.
func TestAuditPageFollowsKeyRotation(t *testing.T) {
	for _, c := range []struct {
		name, how, kind, want string
	}{
		{"announced and signed by both keys", honest, "ok", "the ledger's checkpoint of 8 events"},
		{"not signed by the new key", tamperRotationSigs, "fail", "is not signed by the key it announces"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			first, vkey := newSigner(t)
			a := &signingAuditor{st: h.store, signer: first}
			h.api.cfg.Auditor = a
			complaints(h, 5)
			p := openAuditPage(t, h.srv.URL, 1280, 800)
			p.pin(h.auditor, vkey)
			if kind, text := p.settle("#verify", "verify-result"); kind != "ok" {
				t.Fatalf("before the rotation: %q", text)
			}
			next, _ := newSigner(t)
			a.rotate(t, next, c.how)
			complaints(h, 3)
			kind, text := p.settle("#verify", "verify-result")
			if kind != c.kind || !strings.Contains(text, c.want) {
				t.Errorf("got %s %q, want %s …%q…", kind, text, c.kind, c.want)
			}
			if c.how == honest && !strings.Contains(p.text("#verify-steps"), "to which your pinned key") {
				t.Errorf("steps do not name the rotation: %q", p.text("#verify-steps"))
			}
			p.cspClean()
		})
	}
}

// TestAuditReportAndPhoneInChromium: at 390×844 and at 1280×800 the page
// is readable without sideways scrolling and has no serious or critical
// axe-core violation, before and after a search and a report; the report
// renders its charts and tables, offers each chart's numbers as CSV, and
// prints only itself.
func TestAuditReportAndPhoneInChromium(t *testing.T) {
	h := newHarness(t)
	signer, vkey := newSigner(t)
	h.api.cfg.Auditor = &signingAuditor{st: h.store, signer: signer}
	reportHistory(h)
	p := openAuditPage(t, h.srv.URL, 390, 844)
	p.fitsWidth("empty, at 390×844")
	p.axe("empty, at 390×844")

	p.pin(h.auditor, vkey)
	if kind, text := p.settle("#verify", "verify-result"); kind != "ok" {
		t.Fatalf("verify: %q", text)
	}
	p.do(chromedp.Click("#find"), chromedp.Poll[chromedp.Void](`document.querySelectorAll("#results-body tr").length > 0`))
	if kind, text := p.settle(`#results-body button[aria-label="Open event 7 and verify it"]`, "event-result"); kind != "ok" {
		t.Fatalf("open event 7: %q", text)
	}
	p.fitsWidth("searched, at 390×844")
	p.shot("audit-390x844.png")
	p.axe("searched, at 390×844")

	p.do(chromedp.Click("#make-report"),
		chromedp.Poll[chromedp.Void](`document.getElementById("report-status").textContent.startsWith("Report ready") || document.getElementById("report-status").textContent.startsWith("The report failed")`))
	if s := p.text("#report-status"); !strings.HasPrefix(s, "Report ready") {
		t.Fatalf("report: %q", s)
	}
	var got struct {
		Images, Loaded, Tables, Links int
		Optouts                       string
	}
	p.eval(`(async () => {
		const imgs = [...document.querySelectorAll("#report-body img")];
		await Promise.all(imgs.map((i) => i.decode().catch(() => {})));
		return {
			images: imgs.length,
			loaded: imgs.filter((i) => i.naturalWidth > 0).length,
			tables: document.querySelectorAll("#report-body table").length,
			links: document.querySelectorAll("#report-body a[download]").length,
			optouts: document.querySelector("#h-opt-outs").parentElement.querySelector(".result").textContent,
		};
	})()`, &got)
	if got.Images != 5 || got.Loaded != 5 || got.Tables != 5 || got.Links != 6 {
		t.Errorf("report shows %d charts (%d drawn), %d tables, %d downloads; want 5, 5, 5, 6", got.Images, got.Loaded, got.Tables, got.Links)
	}
	if got.Optouts != "1 opt-out was followed by a contact it covers." {
		t.Errorf("opt-out finding: %q", got.Optouts)
	}
	csv := p.download(`#report-body a[download^="heed-contacts-"]`)
	if want := "tenant,line,call,sms,flash\ntenanta,10690001,2,1,1\ntenantb,10690002,1,0,0\n"; csv != want {
		t.Errorf("the contacts CSV the page offers:\n%s\nwant\n%s", csv, want)
	}
	if !strings.Contains(p.text("#report-body"), "covers every event of the report") {
		t.Errorf("the report does not say the verified checkpoint covers it")
	}
	p.fitsWidth("report, at 390×844")
	p.shot("audit-report-390x844.png")
	p.axe("report, at 390×844")

	p.do(chromedp.EmulateViewport(1280, 800))
	p.fitsWidth("report, at 1280×800")
	p.shot("audit-report-1280x800.png")
	p.axe("report, at 1280×800")

	// On paper: the report, and nothing of the controls.
	if _, err := chromedp.Call(p.ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{Media: "print"}); err != nil {
		t.Fatal(err)
	}
	var shown map[string]bool
	p.eval(`Object.fromEntries(["#trust", "#check", "#browse", "#report-form", "#report-body", "#h-complaints", "#report-body a[download]", "#report-body img"].map(
		(s) => [s, document.querySelector(s).checkVisibility()]))`, &shown)
	for sel, want := range map[string]bool{"#trust": false, "#check": false, "#browse": false, "#report-form": false,
		"#report-body": true, "#h-complaints": true, "#report-body a[download]": false, "#report-body img": true} {
		if shown[sel] != want {
			t.Errorf("printed, %s shown = %v", sel, shown[sel])
		}
	}
	pdf, err := chromedp.Run(p.ctx, chromedp.PrintToPDF(chromedp.PDFPaper(chromedp.PaperA4)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(pdf), "%PDF-") {
		t.Fatalf("not a PDF: %q", pdf[:min(20, len(pdf))])
	}
	auditWrite(t, "audit-report.pdf", pdf)
	p.cspClean()
}

// memHashes is a tlog.HashReader over hashes kept in memory.
type memHashes []tlog.Hash

func (m memHashes) ReadHashes(idx []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(idx))
	for i, x := range idx {
		out[i] = m[x]
	}
	return out, nil
}

// TestAuditScriptsAgreeWithGo: the page's Merkle and signed-note checks,
// run in Chromium, accept what golang.org/x/mod/sumdb (which heed verify
// uses) proves and signs, and refuse every altered proof or note.
func TestAuditScriptsAgreeWithGo(t *testing.T) {
	h := newHarness(t)
	p := openAuditPage(t, h.srv.URL, 1280, 800)

	type proofCase struct {
		Kind  string   `json:"kind"` // inclusion or consistency
		M     int64    `json:"m"`    // the leaf's index, or the old tree's size
		Size  int64    `json:"n"`
		Leaf  string   `json:"leaf,omitempty"`
		Proof [][]byte `json:"proof"`
		Old   []byte   `json:"old,omitempty"`
		New   []byte   `json:"new"`
		Want  bool     `json:"want"`
	}
	var hashes memHashes
	leaf := func(i int64) string { return fmt.Sprintf(`{"position":%d}`, i+1) }
	const maxN = 48
	for i := range int64(maxN) {
		hs, err := tlog.StoredHashes(i, []byte(leaf(i)), hashes)
		if err != nil {
			t.Fatal(err)
		}
		hashes = append(hashes, hs...)
	}
	root := func(n int64) []byte {
		r, err := tlog.TreeHash(n, hashes)
		if err != nil {
			t.Fatal(err)
		}
		return r[:]
	}
	flip := func(p [][]byte) [][]byte {
		out := make([][]byte, len(p))
		for i := range p {
			out[i] = append([]byte(nil), p[i]...)
		}
		out[len(out)/2][31] ^= 0x80
		return out
	}
	bytesOf := func(p []tlog.Hash) [][]byte {
		out := make([][]byte, len(p))
		for i := range p {
			out[i] = append([]byte(nil), p[i][:]...)
		}
		return out
	}
	var cases []proofCase
	for n := int64(1); n <= maxN; n++ {
		for m := int64(0); m < n; m++ {
			rp, err := tlog.ProveRecord(n, m, hashes)
			if err != nil {
				t.Fatal(err)
			}
			good := proofCase{Kind: "inclusion", M: m, Size: n, Leaf: leaf(m), Proof: bytesOf(rp), New: root(n), Want: true}
			cases = append(cases, good)
			if len(rp) > 0 {
				bad := good
				bad.Proof, bad.Want = flip(good.Proof), false
				cases = append(cases, bad)
			}
			wrong := good
			wrong.Leaf, wrong.Want = leaf((m+1)%n), n == 1
			cases = append(cases, wrong)

			old := m + 1
			tp, err := tlog.ProveTree(n, old, hashes)
			if err != nil {
				t.Fatal(err)
			}
			cg := proofCase{Kind: "consistency", M: old, Size: n, Proof: bytesOf(tp), Old: root(old), New: root(n), Want: true}
			cases = append(cases, cg)
			if len(tp) > 0 {
				cb := cg
				cb.Proof, cb.Want = flip(cg.Proof), false
				cases = append(cases, cb)
				// The proof of another old size proves nothing about this one.
				if old > 1 {
					co := cg
					co.M, co.Old, co.Want = old-1, root(old-1), false
					cases = append(cases, co)
				}
			}
		}
	}
	in, err := json.Marshal(cases)
	if err != nil {
		t.Fatal(err)
	}
	var wrong []int
	p.eval(`(async () => {
		const m = await import("/static/audit/merkle.js");
		const b = (s) => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));
		const cases = `+string(in)+`;
		const wrong = [];
		for (const [i, c] of cases.entries()) {
			const proof = c.proof.map(b);
			const got = c.kind === "inclusion"
				? await m.verifyInclusion(await m.leafHash(c.leaf), c.m, c.n, proof, b(c.new))
				: await m.verifyConsistency(c.m, c.n, proof, b(c.old), b(c.new));
			if (got !== c.want) wrong.push(i);
		}
		return wrong;
	})()`, &wrong)
	for _, i := range wrong[:min(len(wrong), 10)] {
		c := cases[i]
		t.Errorf("%s m=%d n=%d (%d hashes): the page says %v, Go %v", c.Kind, c.M, c.Size, len(c.Proof), !c.Want, c.Want)
	}
	t.Logf("%d Merkle cases checked in the browser", len(cases))

	// Signed notes: what the page accepts is what merkle.Chain accepts.
	first, k1 := newSigner(t)
	second, k2 := newSigner(t)
	_, k3 := newSigner(t)
	cp := func(size int64) merkle.Checkpoint {
		return merkle.Checkpoint{Origin: testOrigin, Size: size, Root: tlog.Hash(root(size))}
	}
	sign := func(s *merkle.Signer, c merkle.Checkpoint) string {
		c, err := s.Sign(c)
		if err != nil {
			t.Fatal(err)
		}
		return string(c.Note)
	}
	rot, err := first.SignRotation(cp(10), second)
	if err != nil {
		t.Fatal(err)
	}
	half := cp(10)
	half.Rotation = &merkle.Rotation{Old: first.VerifierKey(), New: second.VerifierKey()}
	halfSigned := sign(first, half)
	altered := strings.Replace(sign(first, cp(20)), "\n20\n", "\n21\n", 1)
	type noteCase struct {
		Name      string   `json:"name"`
		Key       string   `json:"key"`
		Rotations []string `json:"rotations"`
		Note      string   `json:"note"`
	}
	notes := []noteCase{
		{"signed by the pinned key", k1, nil, sign(first, cp(20))},
		{"a changed size", k1, nil, altered},
		{"a changed signature", k1, nil, flipSignature(sign(first, cp(20)))},
		{"signed by another key", k3, nil, sign(first, cp(20))},
		{"a key with a wrong hash", strings.Replace(k1, "+", "x+", 1), nil, sign(first, cp(20))},
		{"after a rotation, by the new key", k1, []string{string(rot.Note)}, sign(second, cp(30))},
		{"the rotation itself", k1, []string{string(rot.Note)}, string(rot.Note)},
		{"after a rotation, by the old key", k1, []string{string(rot.Note)}, sign(first, cp(30))},
		{"by a new key never announced", k1, nil, sign(second, cp(30))},
		{"a rotation the new key did not sign", k1, []string{halfSigned}, sign(second, cp(30))},
		{"pinned to the new key", k2, []string{string(rot.Note)}, sign(second, cp(30))},
	}
	goSays := func(c noteCase) bool {
		ch, err := merkle.NewChain(c.Key)
		if err != nil {
			return false
		}
		for _, r := range c.Rotations {
			if rc, err := merkle.ParseNote([]byte(r)); err == nil && rc.Rotation != nil && rc.Rotation.Old != ch.Active().Key() {
				continue
			}
			if _, err := ch.Open([]byte(r)); err != nil {
				return false
			}
		}
		if c.Note == string(rot.Note) {
			return true // opened above as a rotation
		}
		_, err = ch.Open([]byte(c.Note))
		return err == nil
	}
	in, err = json.Marshal(notes)
	if err != nil {
		t.Fatal(err)
	}
	var page []string
	p.eval(`(async () => {
		const n = await import("/static/audit/note.js");
		const out = [];
		for (const c of `+string(in)+`) {
			try {
				const keys = await n.chain(await n.parseKey(c.key), c.rotations || []);
				const cp = await n.openCheckpoint(c.note, keys);
				out.push("ok " + cp.size);
			} catch (e) {
				out.push("fail " + e.message);
			}
		}
		return out;
	})()`, &page)
	want := map[string]bool{"signed by the pinned key": true, "after a rotation, by the new key": true, "the rotation itself": true, "pinned to the new key": true}
	for i, c := range notes {
		ok := strings.HasPrefix(page[i], "ok ")
		if ok != want[c.Name] || goSays(c) != want[c.Name] {
			t.Errorf("%s: the page says %q, Go accepts it: %v; want accepted %v", c.Name, page[i], goSays(c), want[c.Name])
		}
	}
	p.cspClean()
}

// TestAuditPageByKeyboard: an auditor who uses only the keyboard reaches
// every control in reading order, pins a key and verifies the checkpoint.
func TestAuditPageByKeyboard(t *testing.T) {
	h := newHarness(t)
	signer, vkey := newSigner(t)
	h.api.cfg.Auditor = &signingAuditor{st: h.store, signer: signer}
	complaints(h, 3)
	p := openAuditPage(t, h.srv.URL, 1280, 800)
	focused := func() string {
		var s string
		p.eval(`(() => { const e = document.activeElement; return e.id || e.getAttribute("href") || e.tagName })()`, &s)
		return s
	}
	var order []string
	for range 11 {
		p.do(chromedp.KeyEvent(kb.Tab))
		order = append(order, focused())
	}
	want := []string{"#main", "#trust", "#check", "#browse", "#report", "apikey", "pubkey", "pubkey-file", "pin", "verify", "SUMMARY"}
	if strings.Join(order, " ") != strings.Join(want, " ") {
		t.Errorf("Tab visits %v, want %v", order, want)
	}
	// From the key field on: type, tab, press.
	p.do(chromedp.Focus("#apikey"), chromedp.KeyEvent(h.auditor), chromedp.KeyEvent(kb.Tab), chromedp.KeyEvent(vkey),
		chromedp.KeyEvent(kb.Tab), chromedp.KeyEvent(kb.Tab), chromedp.KeyEvent(kb.Enter),
		chromedp.Poll[chromedp.Void](`document.getElementById("key-result").classList.contains("ok")`))
	if f := focused(); f != "pin" {
		t.Fatalf("after pinning, focus is on %s", f)
	}
	p.do(chromedp.KeyEvent(kb.Tab), chromedp.KeyEvent(kb.Enter),
		chromedp.Poll[chromedp.Void](`document.getElementById("verify-result").classList.contains("ok") || document.getElementById("verify-result").classList.contains("fail")`))
	if txt := p.text("#verify-result"); !strings.HasPrefix(txt, "Verified: the ledger's checkpoint of 3 events") {
		t.Errorf("verified by keyboard: %q", txt)
	}
	p.cspClean()
}
