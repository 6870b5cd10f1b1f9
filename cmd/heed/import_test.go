package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
)

// captured runs fn with stdout and stderr going to pipes, and returns what
// each received.
func captured(t *testing.T, fn func()) (out, errOut string) {
	t.Helper()
	var got [2]string
	pipes := [2]**os.File{&os.Stdout, &os.Stderr}
	var olds [2]*os.File
	var ws [2]*os.File
	done := make(chan struct{}, 2)
	for i, p := range pipes {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		olds[i], ws[i] = *p, w
		*p = w
		go func() {
			b, _ := io.ReadAll(r)
			got[i] = string(b)
			done <- struct{}{}
		}()
	}
	defer func() {
		for i, p := range pipes {
			*p = olds[i]
		}
	}()
	fn()
	for _, w := range ws {
		w.Close()
	}
	<-done
	<-done
	return got[0], got[1]
}

const secretNumber = "+8613912345678"

// TestImportCLI: heed import on a stopped server's directory records the
// good rows, reports the bad ones (never with their number) on stderr or
// in --errors, prints progress lines when stdout is not a terminal, exits
// 1 while some rows are refused and 0 when none are, appends nothing when
// run again, and leaves a directory that verifies.
func TestImportCLI(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	d, err := openData(dir, "", "", false)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	if code := run([]string{"keys", "create", "--data", dir, "--role", "business", "--tenant", "acme"}); code != 0 {
		t.Fatalf("keys create: exit %d", code)
	}
	files := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(files, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	var b strings.Builder
	b.WriteString("number,contract_ref,product,starts_at,expires_at\n")
	for i := range 2000 {
		fmt.Fprintf(&b, "+86138%08d,P-%d,car,2025-06-01,2026-06-01\n", i, i)
	}
	good := b.String()
	bad := good + secretNumber + ",P-0,car,2025-06-01,2026-06-01\n" + // P-0 is another number's
		"+86 139 1234 5678,P-x,car,2025-06-01,2026-06-01\n" +
		secretNumber + ",P-y,car,2026-06-01,2025-06-01\n"
	badFile := write("book.csv", bad)

	var code int
	out, errOut := captured(t, func() {
		code = run([]string{"import", "--data", dir, badFile, "--progress-every", "1ms"})
	})
	if code != 1 {
		t.Fatalf("exit %d, want 1; stderr:\n%s", code, errOut)
	}
	if !strings.Contains(out, "progress rows=") || !strings.Contains(out, "imported rows=2003 recorded=2000 renewed=0 already=0 refused=3") {
		t.Fatalf("stdout:\n%s", out)
	}
	for _, want := range []string{"row 2002: contract_ref: already recorded for another number", "row 2003: number: not a valid phone number",
		"row 2004: expires_at: not after starts_at", "3 rows refused"} {
		if !strings.Contains(errOut, want) {
			t.Fatalf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	noSecret(t, out+errOut)

	// Again, the errors to a file: nothing new, the same three refused.
	report := filepath.Join(files, "errors.csv")
	out, errOut = captured(t, func() {
		code = run([]string{"import", "--data", dir, "--errors", report, badFile, "--progress-every", "0"})
	})
	if code != 1 || strings.Contains(out, "progress") || !strings.Contains(out, "imported rows=2003 recorded=0 renewed=0 already=2000 refused=3") {
		t.Fatalf("exit %d, stdout:\n%s\nstderr:\n%s", code, out, errOut)
	}
	rep := string(mustRead(t, report))
	if !strings.HasPrefix(rep, "row,field,why\n") || strings.Count(rep, "\n") != 4 || !strings.Contains(rep, `2003,number,"not a valid phone number`) {
		t.Fatalf("errors file:\n%s", rep)
	}
	noSecret(t, out+errOut+rep)

	// A good book as NDJSON, naming a plan the tenant defined: exit 0.
	d, err = openData(dir, "", "", false)
	if err != nil {
		t.Fatal(err)
	}
	plan, err := ledger.NewEvent("acme", "", time.Now(), &ledger.ReminderPlanDefined{PlanID: "renewal", Version: 1, Offsets: []string{"30d"},
		Window: ledger.SendWindow{Start: "10:00", End: "18:00"}, TemplateID: "renewal", TemplateVersion: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Store.Append(context.Background(), ledger.PlanStream("acme", "renewal"), ledger.NoStream(), []ledger.Event{plan}); err != nil {
		t.Fatal(err)
	}
	d.Close()
	nd := write("more.ndjson", `{"number":"+8613800009999","contract_ref":"N-1","starts_at":"2025-06-01","expires_at":"2026-06-01","plan":"renewal"}`+"\n")
	if code := run([]string{"import", "--data", dir, "--tenant", "acme", nd}); code != 0 {
		t.Fatalf("good book: exit %d", code)
	}
	if code := run([]string{"verify", "--data", dir}); code != 0 {
		t.Fatalf("verify after the imports: exit %d", code)
	}
	d, err = openData(dir, "", "", false)
	if err != nil {
		t.Fatal(err)
	}
	head, _ := d.Store.Head(context.Background())
	d.Close()
	if head != 2001+2 { // the relationships, the plan and KeyCreated
		t.Fatalf("head %d", head)
	}
}

// TestImportCLIUsage: exit 2 for a usage or whole-file error, with nothing
// written: no file, wrong columns, an unknown format, another tenant
// named badly, no ledger, and a directory a server holds.
func TestImportCLIUsage(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	d, err := openData(dir, "", "", false)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	files := t.TempDir()
	wrong := filepath.Join(files, "wrong.csv")
	os.WriteFile(wrong, []byte("number,contract_ref,expiry\n"+secretNumber+",P-1,2026-01-01\n"), 0o600)
	good := filepath.Join(files, "good.txt")
	os.WriteFile(good, []byte("number,contract_ref,starts_at,expires_at\n"+secretNumber+",P-1,2025-01-01,2026-01-01\n"), 0o600)
	cases := []struct {
		name string
		args []string
		says string
	}{
		{"no file", []string{"import", "--data", dir, "--tenant", "acme"}, "name the book"},
		{"missing file", []string{"import", "--data", dir, "--tenant", "acme", filepath.Join(files, "none.csv")}, "no such file"},
		{"wrong columns", []string{"import", "--data", dir, "--tenant", "acme", wrong}, "column 3"},
		{"format unknown", []string{"import", "--data", dir, "--tenant", "acme", good}, "--format"},
		{"format wrong", []string{"import", "--data", dir, "--tenant", "acme", "--format", "xlsx", good}, "--format"},
		{"no tenant and no keys", []string{"import", "--data", dir, "--format", "csv", good}, "--tenant"},
		{"bad tenant", []string{"import", "--data", dir, "--tenant", "a-b", "--format", "csv", good}, "--tenant"},
		{"no ledger", []string{"import", "--data", t.TempDir(), "--tenant", "acme", "--format", "csv", good}, "holds no ledger"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var code int
			_, errOut := captured(t, func() { code = run(tc.args) })
			if code != 2 || !strings.Contains(errOut, tc.says) {
				t.Fatalf("exit %d, stderr %q; want 2 saying %q", code, errOut, tc.says)
			}
			noSecret(t, errOut)
		})
	}
	t.Run("server running", func(t *testing.T) {
		d, err := openData(dir, "", "", false)
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		var code int
		_, errOut := captured(t, func() { code = run([]string{"import", "--data", dir, "--tenant", "acme", "--format", "csv", good}) })
		if code != 2 || !strings.Contains(errOut, "is heed serve running") {
			t.Fatalf("exit %d, stderr %q", code, errOut)
		}
		if head, _ := d.Store.Head(context.Background()); head != 0 {
			t.Fatalf("head %d", head)
		}
	})
}

func noSecret(t *testing.T, s string) {
	t.Helper()
	for i := 1; i+7 <= len(secretNumber); i++ {
		if strings.Contains(s, secretNumber[i:i+7]) {
			t.Fatalf("output holds part of the number:\n%s", s)
		}
	}
}
