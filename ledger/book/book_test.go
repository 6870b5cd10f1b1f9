package book_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/book"
	"github.com/heed/heed/ledger/ledgertest"
	"github.com/heed/heed/ledger/pii"
)

// stores opens a fresh store of each kind.
var stores = ledgertest.Stores

// subject stands in for the API's normalisation and pseudonym: E.164 or
// an 11-digit Chinese mobile, ASCII digits only. The package takes it as a
// function, so the rules themselves are tested where they live (api).
func subject(n string) (e164, subject string, err error) {
	d := strings.TrimPrefix(n, "+")
	if d == "" || strings.Trim(d, "0123456789") != "" {
		return "", "", errors.New("not a number")
	}
	switch {
	case n[0] == '+' && len(d) >= 8 && len(d) <= 15:
	case n[0] == '1' && len(d) == 11:
		n = "+86" + n
	default:
		return "", "", errors.New("not a number")
	}
	h := sha256.Sum256([]byte(n))
	return n, hex.EncodeToString(h[:8]), nil
}

// dataKeys opens a key store for the subjects' data keys.
func dataKeys(t testing.TB) *pii.Keys {
	t.Helper()
	k, err := pii.OpenKeys(filepath.Join(t.TempDir(), "keys.db"), bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return k
}

// definePlan defines version 1 of a tenant's plan, unless it exists.
func definePlan(t testing.TB, st ledger.Store, tenant, plan string) {
	t.Helper()
	ctx := context.Background()
	if rev, err := st.StreamRevision(ctx, ledger.PlanStream(tenant, plan)); err != nil || rev > 0 {
		return
	}
	e, err := ledger.NewEvent(tenant, "", now, &ledger.ReminderPlanDefined{PlanID: plan, Version: 1, Offsets: []string{"30d", "7d"},
		Window: ledger.SendWindow{Start: "10:00", End: "18:00"}, TemplateID: "renewal", TemplateVersion: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Append(ctx, ledger.PlanStream(tenant, plan), ledger.NoStream(), []ledger.Event{e}); err != nil {
		t.Fatal(err)
	}
}

// report collects the row errors of a run.
type report struct {
	mu   sync.Mutex
	errs []book.RowError
}

func (r *report) add(e book.RowError) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, e)
}

func (r *report) sorted() []book.RowError {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := slices.Clone(r.errs)
	slices.SortFunc(out, func(a, b book.RowError) int {
		if a.Row != b.Row {
			return a.Row - b.Row
		}
		return strings.Compare(a.Field, b.Field)
	})
	return out
}

var now = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

// keysOf holds each store's data keys, as a data directory holds both.
var keysOf sync.Map

func run(t testing.TB, st ledger.Store, tenant, file string, f book.Format) (book.Counts, *report, error) {
	t.Helper()
	k, ok := keysOf.Load(st)
	if !ok {
		k, _ = keysOf.LoadOrStore(st, dataKeys(t))
	}
	definePlan(t, st, tenant, "renewal")
	rep := &report{}
	im, err := book.New(book.Config{Store: st, Keys: k.(*pii.Keys), Tenant: tenant, Actor: "test", Subject: subject,
		Now: func() time.Time { return now }, Report: rep.add, Workers: 8})
	if err != nil {
		t.Fatal(err)
	}
	c, err := im.Run(context.Background(), strings.NewReader(file), f)
	return c, rep, err
}

// relationships returns the contract refs recorded for tenant, each with
// its subject, and fails on any event that is not a plan, a
// RelationshipStarted or a renewal, or a ref started twice.
func relationships(t testing.TB, st ledger.Store, tenant string) map[string]string {
	t.Helper()
	evs, err := st.ReadAll(context.Background(), 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, e := range evs {
		if e.Tenant != tenant || e.Type == ledger.TypeReminderPlanDefined || e.Type == ledger.TypeRelationshipRenewed {
			continue
		}
		if e.Type != ledger.TypeRelationshipStarted {
			t.Fatalf("event %d is a %s", e.Position, e.Type)
		}
		var p ledger.RelationshipStarted
		if err := json.Unmarshal(e.Data, &p); err != nil {
			t.Fatal(err)
		}
		if _, dup := out[p.ContractRef]; dup {
			t.Fatalf("%s recorded twice", p.ContractRef)
		}
		out[p.ContractRef] = e.Subject
	}
	return out
}

const header = "number,contract_ref,product,starts_at,expires_at,plan\n"

// good rows surround every bad one in the table.
const (
	good1 = "+8613800000001,G-1,car,2025-06-01,2026-06-01,renewal\n"
	good2 = "13800000002,G-2,home,2025-07-01T00:00:00+08:00,2026-07-01T00:00:00+08:00,\n"
)

// secret is a phone number put in every field of the bad rows: no error
// may repeat it, nor any long part of it.
const secret = "+8613912345678"

func TestBadRows(t *testing.T) {
	long := strings.Repeat("x", 129)
	cases := []struct {
		name  string
		row   string
		field string
		why   string
	}{
		{"bad starts_at", secret + ",B-1,car,31/12/2025,2026-12-31,renewal", "starts_at", "not a date"},
		{"bad expires_at", secret + ",B-1,car,2025-12-31,2026-02-30,renewal", "expires_at", "not a date"},
		{"expiry before start", secret + ",B-1,car,2025-12-31,2025-01-01,renewal", "expires_at", "not after starts_at"},
		{"expiry at start", secret + ",B-1,car,2025-12-31,2025-12-31,renewal", "expires_at", "not after starts_at"},
		{"number with spaces", "+86 139 1234 5678,B-1,car,2025-12-31,2026-12-31,renewal", "number", "not a valid phone number"},
		{"number with letters", "+86139123456ab,B-1,car,2025-12-31,2026-12-31,renewal", "number", "not a valid phone number"},
		{"number after a space", " " + secret + ",B-1,car,2025-12-31,2026-12-31,renewal", "number", "not a valid phone number"},
		{"number missing", ",B-1,car,2025-12-31,2026-12-31,renewal", "number", "missing"},
		{"number too long", strings.Repeat("1", 33) + ",B-1,car,2025-12-31,2026-12-31,renewal", "number", "longer than 32"},
		{"ref missing", secret + ",,car,2025-12-31,2026-12-31,renewal", "contract_ref", "missing"},
		{"ref too long", secret + "," + long + ",car,2025-12-31,2026-12-31,renewal", "contract_ref", "longer than 128"},
		{"ref with a control character", secret + ",B\x01-1,car,2025-12-31,2026-12-31,renewal", "contract_ref", "control"},
		{"product too long", secret + ",B-1," + long + ",2025-12-31,2026-12-31,renewal", "product", "longer than 128"},
		{"unknown plan", secret + ",B-1,car,2025-12-31,2026-12-31,gold", "plan", "no such reminder plan"},
		{"plan too long", secret + ",B-1,car,2025-12-31,2026-12-31," + strings.Repeat("p", 65), "plan", "longer than 64"},
		{"invalid UTF-8 (GBK)", secret + ",B-1,\xc6\xfb\xb3\xb5\xcf\xd5,2025-12-31,2026-12-31,renewal", "product", "not UTF-8"},
		{"too few fields", secret + ",B-1,car,2025-12-31,2026-12-31", "row", "has 5 fields, the header names 6"},
		{"too many fields", secret + ",B-1,car,2025-12-31,2026-12-31,renewal," + secret, "row", "has 7 fields"},
		{"unclosed quote", secret + ",\"B-1,car,2025-12-31,2026-12-31,renewal", "row", "not closed"},
		{"stray quote", secret + ",B\"1,car,2025-12-31,2026-12-31,renewal", "row", "quote inside"},
		{"row too long", secret + ",B-1," + strings.Repeat(secret, 400) + ",2025-12-31,2026-12-31,renewal", "row", "longer than 4096"},
		{"row longer than the read buffer", secret + ",B-1," + strings.Repeat(secret, 10000) + ",2025-12-31,2026-12-31,renewal", "row", "longer than 4096"},
	}
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					st := open(t)
					c, rep, err := run(t, st, "acme", header+good1+tc.row+"\n"+good2, book.CSV)
					if err != nil {
						t.Fatal(err)
					}
					if c != (book.Counts{Rows: 3, Recorded: 2, Refused: 1, Bytes: c.Bytes}) {
						t.Fatalf("counts %+v", c)
					}
					errs := rep.sorted()
					if len(errs) != 1 || errs[0].Row != 3 || errs[0].Field != tc.field || !strings.Contains(errs[0].Why, tc.why) {
						t.Fatalf("errors %v, want row 3 %s: %s", errs, tc.field, tc.why)
					}
					noNumber(t, errs[0].String())
					// Nothing of the bad row was written, all of the good.
					got := relationships(t, st, "acme")
					if len(got) != 2 || got["G-1"] == "" || got["G-2"] == "" {
						t.Fatalf("recorded %v", got)
					}
					if head, _ := st.Head(context.Background()); head != 3 { // and the plan
						t.Fatalf("head %d, want 3", head)
					}
				})
			}
		})
	}
}

// noNumber fails if s holds the secret number or any 7 of its digits in a
// row.
func noNumber(t testing.TB, s string) {
	t.Helper()
	d := strings.TrimPrefix(secret, "+")
	for i := 0; i+7 <= len(d); i++ {
		if strings.Contains(s, d[i:i+7]) {
			t.Fatalf("%q holds part of the number", s)
		}
	}
}

// TestDuplicateRef: a contract ref given to a second number is refused,
// in the same file (the later row, every run) or across files, and the
// first number keeps it; the same row again is already recorded; the same
// contract with a later expiry is a renewal, with an earlier one or
// another product refused.
func TestDuplicateRef(t *testing.T) {
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			file := header + good1 +
				secret + ",G-1,car,2025-06-01,2026-06-01,renewal\n" + // another number
				good1 + // the same row again
				"+8613800000001,G-1,car,2025-06-01,2027-06-01,renewal\n" + // renewed
				"+8613800000001,G-1,car,2025-06-01,2026-12-01,renewal\n" + // earlier than the renewal
				"+8613800000001,G-1,bike,2025-06-01,2027-06-01,renewal\n" + // another product
				good2
			c, rep, err := run(t, st, "acme", file, book.CSV)
			if err != nil {
				t.Fatal(err)
			}
			if c.Recorded != 2 || c.Already != 1 || c.Renewed != 1 || c.Refused != 3 {
				t.Fatalf("counts %+v", c)
			}
			errs := rep.sorted()
			want := []book.RowError{
				{Row: 3, Field: "contract_ref", Why: "already recorded for another number"},
				{Row: 6, Field: "expires_at", Why: "before the expiry already recorded"},
				{Row: 7, Field: "contract_ref", Why: "another product, start or plan"},
			}
			if len(errs) != len(want) {
				t.Fatalf("errors %v", errs)
			}
			for i := range want {
				if errs[i].Row != want[i].Row || errs[i].Field != want[i].Field || !strings.Contains(errs[i].Why, want[i].Why) {
					t.Fatalf("error %d: %v, want %v", i, errs[i], want[i])
				}
			}
			_, first, _ := subject("+8613800000001")
			if got := relationships(t, st, "acme"); got["G-1"] != first {
				t.Fatalf("G-1 belongs to %s", got["G-1"])
			}
			evs, err := st.ReadStream(context.Background(), ledger.ContactStream("acme", first), 1, 0)
			if err != nil || len(evs) != 2 || evs[1].Type != ledger.TypeRelationshipRenewed || !strings.Contains(string(evs[1].Data), "2027-06-01") {
				t.Fatalf("G-1's stream: %v, %v", evs, err)
			}
			// Another file giving G-2 to another number.
			c, rep, err = run(t, st, "acme", header+secret+",G-2,home,2025-07-01,2026-07-01,\n", book.CSV)
			if err != nil || c.Refused != 1 || len(rep.errs) != 1 || !strings.Contains(rep.errs[0].Why, "another number") {
				t.Fatalf("second file: %+v %v %v", c, rep.errs, err)
			}
			noNumber(t, fmt.Sprint(rep.errs))
			// Another tenant's G-1 is its own.
			if c, _, err := run(t, st, "other", header+secret+",G-1,car,2025-06-01,2026-06-01,renewal\n", book.CSV); err != nil || c.Recorded != 1 {
				t.Fatalf("other tenant: %+v %v", c, err)
			}
		})
	}
}

// TestSealedNumber: a row naming a plan carries its number for the
// scheduler, sealed with the subject's data key, never in the clear; a
// row without one carries none.
func TestSealedNumber(t *testing.T) {
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			file := header + secret + ",S-1,car,2025-06-01,2026-06-01,renewal\n+8613800000001,S-2,car,2025-06-01,2026-06-01,\n"
			if c, _, err := run(t, st, "acme", file, book.CSV); err != nil || c.Recorded != 2 {
				t.Fatalf("%+v, %v", c, err)
			}
			evs, err := st.ReadAll(context.Background(), 1, 0)
			if err != nil {
				t.Fatal(err)
			}
			k, _ := keysOf.Load(st)
			for _, e := range evs {
				if e.Type != ledger.TypeRelationshipStarted {
					continue
				}
				leaf, _ := e.Leaf()
				noNumber(t, string(leaf))
				fields, err := k.(*pii.Keys).OpenEvent(context.Background(), &e)
				if err != nil {
					t.Fatal(err)
				}
				var p ledger.RelationshipStarted
				if err := json.Unmarshal(e.Data, &p); err != nil {
					t.Fatal(err)
				}
				switch p.ContractRef {
				case "S-1":
					if p.Plan != "renewal" || fields["number"] != secret {
						t.Fatalf("S-1: plan %q, sealed %v", p.Plan, fields)
					}
				case "S-2":
					if p.Plan != "" || len(e.PII) != 0 {
						t.Fatalf("S-2: plan %q, %d sealed bytes", p.Plan, len(e.PII))
					}
				}
			}
		})
	}
}

// TestRerun: running a book again appends nothing and counts every row
// as already recorded; a row added to it is the only one recorded.
func TestRerun(t *testing.T) {
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			var b strings.Builder
			b.WriteString(header)
			for i := range 300 {
				fmt.Fprintf(&b, "+86138%08d,R-%d,car,2025-06-01,2026-%02d-01,renewal\n", i, i, i%12+1)
			}
			// A relationship starting after now is recorded as occurring
			// now, which differs between runs: still already recorded.
			b.WriteString("+8613899999999,R-future,car,2026-09-01,2027-09-01,\n")
			file := b.String()
			if c, _, err := run(t, st, "acme", file, book.CSV); err != nil || c.Recorded != 301 {
				t.Fatalf("first run: %+v %v", c, err)
			}
			head, _ := st.Head(context.Background())
			now = now.Add(time.Hour)
			c, rep, err := run(t, st, "acme", file, book.CSV)
			if err != nil || c.Recorded != 0 || c.Already != 301 || len(rep.errs) != 0 {
				t.Fatalf("second run: %+v %v %v", c, rep.errs, err)
			}
			if again, _ := st.Head(context.Background()); again != head {
				t.Fatalf("head %d after the re-run, was %d", again, head)
			}
			c, _, err = run(t, st, "acme", file+"+8613899999998,R-new,car,2025-06-01,2026-06-01,\n", book.CSV)
			if err != nil || c.Recorded != 1 || c.Already != 301 {
				t.Fatalf("third run: %+v %v", c, err)
			}
			if n := len(relationships(t, st, "acme")); n != 302 {
				t.Fatalf("%d relationships", n)
			}
		})
	}
}

// TestFileErrors: a file with wrong columns, or not in its format, is
// refused whole before anything is written.
func TestFileErrors(t *testing.T) {
	cases := []struct {
		name   string
		format book.Format
		file   string
		err    error
		why    string
	}{
		{"empty", book.CSV, "", book.ErrColumns, "empty"},
		{"no header", book.CSV, good1 + good2, book.ErrColumns, "column 1 is not one of"},
		{"unknown column", book.CSV, "number,contract_ref,starts_at,expiry\n" + good1, book.ErrColumns, `column 4 ("expiry")`},
		{"missing column", book.CSV, "number,contract_ref,starts_at\n" + good1, book.ErrColumns, "missing column expires_at"},
		{"repeated column", book.CSV, "number,contract_ref,starts_at,expires_at,number\n", book.ErrColumns, "appears twice"},
		{"NDJSON read as CSV", book.CSV, `{"number":"` + secret + `"}` + "\n", book.ErrColumns, "looks like NDJSON"},
		{"header not UTF-8", book.CSV, "number,contract_ref,starts_at,expires_at,\xff\n", book.ErrFormat, "not UTF-8"},
		{"CSV read as NDJSON", book.NDJSON, header + good1, book.ErrFormat, "not a JSON object"},
		{"NDJSON unknown member", book.NDJSON, `{"number":"1","contract_ref":"a","starts_at":"2025-01-01","expires_at":"2026-01-01","expiry":"x"}` + "\n", book.ErrColumns, `member ("expiry")`},
		{"NDJSON missing member", book.NDJSON, `{"number":"1","contract_ref":"a","starts_at":"2025-01-01"}` + "\n", book.ErrColumns, "missing column expires_at"},
		{"NDJSON member named as a number", book.NDJSON, `{"number":"1","contract_ref":"a","starts_at":"2025-01-01","expires_at":"2026-01-01","` + secret + `":"x"}` + "\n", book.ErrColumns, "member of the first row"},
		{"unknown format", book.Format("xlsx"), header + good1, book.ErrFormat, "unknown format"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st := stores["mem"](t)
			c, rep, err := run(t, st, "acme", tc.file, tc.format)
			if !errors.Is(err, tc.err) || !strings.Contains(err.Error(), tc.why) {
				t.Fatalf("err %v, want %v: %s", err, tc.err, tc.why)
			}
			noNumber(t, err.Error())
			if head, _ := st.Head(context.Background()); head != 1 || c.Done() != 0 || len(rep.errs) != 0 { // the plan alone
				t.Fatalf("head %d, counts %+v, errors %v", head, c, rep.errs)
			}
		})
	}
}

// TestNDJSON: the same rows as NDJSON, with its own bad rows.
func TestNDJSON(t *testing.T) {
	file := `{"number":"+8613800000001","contract_ref":"N-1","product":"car","starts_at":"2025-06-01","expires_at":"2026-06-01","plan":"renewal"}
{"number":"13800000002","contract_ref":"N-2","starts_at":"2025-06-01","expires_at":"2026-06-01"}

{"number":"` + secret + `","contract_ref":"N-3","starts_at":"2025-06-01","expires_at":"2026-06-01","policy":"x"}
{"number":"` + secret + `","contract_ref":"N-4","starts_at":"2025-06-01","expires_at":"2026-06-01","number":"` + secret + `"}
{"number":8613912345678,"contract_ref":"N-5","starts_at":"2025-06-01","expires_at":"2026-06-01"}
{"number":"` + secret + `","contract_ref":"N-6","starts_at":"2025-06-01","expires_at":"2026-06-01","product":"` + "\xff" + `"}
["` + secret + `"]
{"number":"` + secret + `","contract_ref":"N-8","starts_at":"2025-06-01","expires_at":"2025-06-01"}
{"number":"+8613800000009","contract_ref":"N-9","starts_at":"2025-06-01","expires_at":"2026-06-01"}
`
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			c, rep, err := run(t, st, "acme", file, book.NDJSON)
			if err != nil {
				t.Fatal(err)
			}
			if c != (book.Counts{Rows: 9, Recorded: 3, Refused: 6, Bytes: int64(len(file))}) {
				t.Fatalf("counts %+v", c)
			}
			want := []book.RowError{
				{Row: 4, Field: "row", Why: `member ("policy") is not one of`},
				{Row: 5, Field: "number", Why: "appears twice"},
				{Row: 6, Field: "number", Why: "must be a JSON string"},
				{Row: 7, Field: "row", Why: "not UTF-8"},
				{Row: 8, Field: "row", Why: "not a JSON object"},
				{Row: 9, Field: "expires_at", Why: "not after starts_at"},
			}
			got := rep.sorted()
			if len(got) != len(want) {
				t.Fatalf("errors %v", got)
			}
			for i := range want {
				if got[i].Row != want[i].Row || got[i].Field != want[i].Field || !strings.Contains(got[i].Why, want[i].Why) {
					t.Fatalf("error %d: %v, want %v", i, got[i], want[i])
				}
			}
			noNumber(t, fmt.Sprint(got))
			if r := relationships(t, st, "acme"); len(r) != 3 || r["N-1"] == "" || r["N-2"] == "" || r["N-9"] == "" {
				t.Fatalf("recorded %v", r)
			}
		})
	}
}

// TestLargeFile: a 200 MB file is read as a stream, never held: here one
// row of 200 MB between two good ones is refused unread while the heap
// stays small, and the good rows after it are recorded.
func TestLargeFile(t *testing.T) {
	const size = 200 << 20
	st := stores["mem"](t)
	definePlan(t, st, "acme", "renewal")
	huge := io.MultiReader(strings.NewReader(header+good1+secret+","), &repeat{b: []byte("0123456789"), n: size},
		strings.NewReader("\n"+good2))
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	rep := &report{}
	im, err := book.New(book.Config{Store: st, Keys: dataKeys(t), Tenant: "acme", Subject: subject, Report: rep.add})
	if err != nil {
		t.Fatal(err)
	}
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
				runtime.ReadMemStats(&ms)
				if ms.HeapInuse > base && ms.HeapInuse-base > peak.Load() {
					peak.Store(ms.HeapInuse - base)
				}
			}
		}
	}()
	c, err := im.Run(context.Background(), huge, book.CSV)
	close(stop)
	<-sampled
	if err != nil || c.Recorded != 2 || c.Refused != 1 || c.Bytes < size {
		t.Fatalf("%+v, %v", c, err)
	}
	if errs := rep.sorted(); len(errs) != 1 || errs[0].Row != 3 || !strings.Contains(errs[0].Why, "longer than 4096") {
		t.Fatalf("errors %v", errs)
	}
	if p := peak.Load(); p > 16<<20 {
		t.Fatalf("the heap grew by %d MiB reading a %d MiB file", p>>20, size>>20)
	}
}

// repeat reads b over and over, n bytes in all.
type repeat struct {
	b []byte
	n int
}

func (r *repeat) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	k := 0
	for k < len(p) && r.n > 0 {
		c := copy(p[k:min(len(p), k+r.n)], r.b)
		k += c
		r.n -= c
	}
	return k, nil
}
