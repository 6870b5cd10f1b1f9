package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
)

const bookHeader = "number,contract_ref,product,starts_at,expires_at,plan\n"

// secretBookNumber is in the bad rows: no answer may repeat it.
const secretBookNumber = "+8613912345678"

func noBookNumber(t *testing.T, s string) {
	t.Helper()
	for i := 1; i+7 <= len(secretBookNumber); i++ {
		if strings.Contains(s, secretBookNumber[i:i+7]) {
			t.Fatalf("answer holds part of the number: %s", s)
		}
	}
}

type bookAnswer struct {
	Rows, Recorded, Renewed, Already, Refused int64
	Errors                                    []BookRowError
	More                                      int64 `json:"more_errors"`
}

func (h *harness) importBook(token, contentType, body string) (resp, bookAnswer) {
	h.t.Helper()
	r := h.do(http.MethodPost, bookPath, token, body, "Content-Type", contentType)
	var a bookAnswer
	if r.status == http.StatusOK {
		if err := json.Unmarshal(r.body, &a); err != nil {
			h.t.Fatal(err)
		}
	}
	return r, a
}

// definePlan records version 1 of a tenant's reminder plan.
func (h *harness) definePlan(tenant, plan string) {
	h.t.Helper()
	e, err := ledger.NewEvent(tenant, "", time.Now(), &ledger.ReminderPlanDefined{PlanID: plan, Version: 1, Offsets: []string{"30d"},
		Window: ledger.SendWindow{Start: "10:00", End: "18:00"}, TemplateID: "renewal", TemplateVersion: 1})
	if err != nil {
		h.t.Fatal(err)
	}
	if _, err := h.store.Append(context.Background(), ledger.PlanStream(tenant, plan), ledger.NoStream(), []ledger.Event{e}); err != nil {
		h.t.Fatal(err)
	}
}

// TestImportBook: a CSV book's good rows are recorded under the key's
// tenant, its bad ones answered by row and field without their values,
// and sending it again records nothing new; an NDJSON book the same.
func TestImportBook(t *testing.T) {
	h := newHarness(t)
	h.definePlan("tenanta", "renewal")
	body := bookHeader +
		"+8613800138000,P-1,car,2025-06-01,2026-06-01,renewal\n" +
		secretBookNumber + ",P-1,car,2025-06-01,2026-06-01,renewal\n" + // P-1 is another number's
		"13800138001,P-2,home,2025-06-01,2026-06-01,\n" +
		"+86 139 1234 5678,P-3,car,2025-06-01,2026-06-01,\n" +
		secretBookNumber + ",P-4,car,2025-06-01,2026-06-01,gold\n" +
		secretBookNumber + ",P-5,car,2025-06-01,someday,renewal\n"
	r, a := h.importBook(h.a, "text/csv", body)
	if r.status != http.StatusOK || a.Rows != 6 || a.Recorded != 2 || a.Refused != 4 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	want := []BookRowError{
		{3, "contract_ref", "already recorded for another number"},
		{5, "number", "not a valid phone number"},
		{6, "plan", "no such reminder plan"},
		{7, "expires_at", "not a date"},
	}
	if len(a.Errors) != len(want) {
		t.Fatalf("errors %+v", a.Errors)
	}
	for i, w := range want {
		if e := a.Errors[i]; e.Row != w.Row || e.Field != w.Field || !strings.Contains(e.Why, w.Why) {
			t.Fatalf("error %d: %+v, want %+v", i, e, w)
		}
	}
	noBookNumber(t, string(r.body))
	// The relationship is the tenant's, and answers a reminder's gate.
	subject := hmacPseudonyms{}.Pseudonym("+8613800138000")
	evs, err := h.store.ReadStream(context.Background(), ledger.ContactStream("tenanta", subject), 1, 0)
	if err != nil || len(evs) != 1 || evs[0].Type != ledger.TypeRelationshipStarted || evs[0].Actor == "" || len(evs[0].PII) == 0 {
		t.Fatalf("P-1: %+v, %v", evs, err)
	}
	head := h.head()
	r, a = h.importBook(h.a, "text/csv; charset=utf-8", body)
	if r.status != http.StatusOK || a.Recorded != 0 || a.Already != 2 || a.Refused != 4 || h.head() != head {
		t.Fatalf("again: %d %s, head %d (was %d)", r.status, r.body, h.head(), head)
	}
	// Tenant b's P-1 is its own; its book names no plan of tenant a's.
	r, a = h.importBook(h.b, "application/x-ndjson",
		`{"number":"`+secretBookNumber+`","contract_ref":"P-1","starts_at":"2025-06-01","expires_at":"2026-06-01"}`+"\n"+
			`{"number":"`+secretBookNumber+`","contract_ref":"P-2","starts_at":"2025-06-01","expires_at":"2026-06-01","plan":"renewal"}`+"\n")
	if r.status != http.StatusOK || a.Recorded != 1 || a.Refused != 1 || a.Errors[0].Field != "plan" {
		t.Fatalf("tenant b: %d %s", r.status, r.body)
	}
}

// TestImportBookRefusals: the whole book is refused, nothing recorded,
// for wrong columns, another format, a wrong key, or a declared size over
// the limit.
func TestImportBookRefusals(t *testing.T) {
	h := newHarness(t)
	good := bookHeader + secretBookNumber + ",P-1,car,2025-06-01,2026-06-01,\n"
	cases := []struct {
		name, token, ct, body string
		status                int
		says                  string
	}{
		{"wrong columns", h.a, "text/csv", "number,contract_ref,expiry\n" + secretBookNumber + ",P-1,2026-01-01\n", 400, "column 3"},
		{"no header", h.a, "text/csv", secretBookNumber + ",P-1,car,2025-06-01,2026-06-01,\n", 400, "column 1"},
		{"NDJSON of other columns", h.a, "application/x-ndjson", `{"number":"` + secretBookNumber + `","ref":"P-1"}` + "\n", 400, "wrong columns"},
		{"a spreadsheet", h.a, "application/vnd.ms-excel", good, 415, "text/csv"},
		{"JSON", h.a, "application/json", `[]`, 415, "text/csv"},
		{"bad zone", h.a, "text/csv", good, 422, "time zone"},
		{"no key", "", "text/csv", good, 401, ""},
		{"an auditor", h.auditor, "text/csv", good, 403, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			path := bookPath
			if tc.name == "bad zone" {
				path += "?zone=Mars/Olympus"
			}
			r := h.do(http.MethodPost, path, tc.token, tc.body, "Content-Type", tc.ct)
			if r.status != tc.status || !strings.Contains(string(r.body), tc.says) {
				t.Fatalf("%d %s, want %d saying %q", r.status, r.body, tc.status, tc.says)
			}
			noBookNumber(t, string(r.body))
			if h.head() != 0 {
				t.Fatalf("head %d", h.head())
			}
		})
	}
	t.Run("declared too large", func(t *testing.T) {
		req := httptest.NewRequest(http.MethodPost, bookPath, strings.NewReader(good))
		req.ContentLength = MaxBookBody + 1
		req.Header.Set("Content-Type", "text/csv")
		req.Header.Set("Authorization", "Bearer "+h.a)
		w := httptest.NewRecorder()
		h.api.ServeHTTP(w, req)
		if w.Code != http.StatusRequestEntityTooLarge || !strings.Contains(w.Body.String(), "1 GiB") || h.head() != 0 {
			t.Fatalf("%d %s, head %d", w.Code, w.Body, h.head())
		}
	})
}

// TestImportBookLarge: a 200 MB book streams through the API without
// being held: one 200 MB row is refused unread, the rows around it are
// recorded, and the heap stays small.
func TestImportBookLarge(t *testing.T) {
	h := newHarness(t)
	const size = 200 << 20
	pr, pw := io.Pipe()
	go func() {
		_, _ = io.WriteString(pw, bookHeader+"+8613800138000,L-1,car,2025-06-01,2026-06-01,\n"+secretBookNumber+",")
		chunk := []byte(strings.Repeat("0123456789", 6554))
		for n := 0; n < size; n += len(chunk) {
			if _, err := pw.Write(chunk); err != nil {
				return
			}
		}
		_, _ = io.WriteString(pw, "\n+8613800138001,L-2,car,2025-06-01,2026-06-01,\n")
		pw.Close()
	}()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > base && ms.HeapInuse-base > peak.Load() {
					peak.Store(ms.HeapInuse - base)
				}
			}
		}
	}()
	req, err := http.NewRequest(http.MethodPost, h.srv.URL+bookPath, pr) // chunked: no length
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/csv")
	req.Header.Set("Authorization", "Bearer "+h.a)
	res, err := http.DefaultClient.Do(req)
	close(stop)
	<-sampled
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var a bookAnswer
	if res.StatusCode != http.StatusOK || json.Unmarshal(b, &a) != nil || a.Recorded != 2 || a.Refused != 1 ||
		len(a.Errors) != 1 || a.Errors[0].Row != 3 || !strings.Contains(a.Errors[0].Why, "longer than 4096") {
		t.Fatalf("%d %s", res.StatusCode, b)
	}
	if p := peak.Load(); p > 64<<20 {
		t.Fatalf("the heap grew by %d MiB for a %d MiB book", p>>20, size>>20)
	}
}

// TestImportBookErrorsBounded: the answer lists the first 1000 errors by
// row and counts the rest.
func TestImportBookErrorsBounded(t *testing.T) {
	h := newHarness(t)
	var b strings.Builder
	b.WriteString(bookHeader)
	for i := range 1500 {
		fmt.Fprintf(&b, "+86138%08d,B-%d,car,2025-06-01,2024-06-01,\n", i, i)
	}
	r, a := h.importBook(h.a, "text/csv", b.String())
	if r.status != http.StatusOK || a.Refused != 1500 || len(a.Errors) != 1000 || a.More != 500 {
		t.Fatalf("%d: refused %d, %d errors, %d more", r.status, a.Refused, len(a.Errors), a.More)
	}
	for i, e := range a.Errors {
		if e.Row != i+2 {
			t.Fatalf("error %d is of row %d", i, e.Row)
		}
	}
}

// TestImportBookDatesInTheCustomersZone: an imported book's bare dates are
// midnight where each customer lives, by the number (with its daylight
// saving time), whatever zone the request names; a time of day is kept.
func TestImportBookDatesInTheCustomersZone(t *testing.T) {
	h := newHarness(t)
	body := "number,contract_ref,starts_at,expires_at\n" +
		"+14155550123,Z-1,2025-07-01,2026-12-31\n" +
		"+442071234567,Z-2,2025-12-31,2026-07-01\n" +
		"+8613800138000,Z-3,2025-07-01,2026-07-01T12:00:00Z\n"
	r, a := h.importBook(h.a, "text/csv", body)
	if r.status != http.StatusOK || a.Recorded != 3 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	for _, tc := range []struct{ number, starts, expires string }{
		{"+14155550123", "2025-07-01T07:00:00Z", "2026-12-31T08:00:00Z"},
		{"+442071234567", "2025-12-31T00:00:00Z", "2026-06-30T23:00:00Z"},
		{"+8613800138000", "2025-06-30T16:00:00Z", "2026-07-01T12:00:00Z"},
	} {
		evs, err := h.store.ReadStream(context.Background(), ledger.ContactStream("tenanta", hmacPseudonyms{}.Pseudonym(tc.number)), 1, 0)
		if err != nil || len(evs) != 1 {
			t.Fatalf("%s: %v %v", tc.number, evs, err)
		}
		var p ledger.RelationshipStarted
		if err := json.Unmarshal(evs[0].Data, &p); err != nil {
			t.Fatal(err)
		}
		if got := p.StartsAt.Format(time.RFC3339) + " " + p.ExpiresAt.Format(time.RFC3339); got != tc.starts+" "+tc.expires {
			t.Errorf("%s: %s, want %s %s", tc.number, got, tc.starts, tc.expires)
		}
	}
}
