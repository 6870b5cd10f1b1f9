package api

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/heed/heed/ledger"
)

func TestCallDetailRecords(t *testing.T) {
	h := newHarness(t)
	const gatedNumber, otherNumber = "+8613900000201", "+8613900000202"
	subject := hmacPseudonyms{}.Pseudonym(gatedNumber)
	gated, err := ledger.NewEvent("tenanta", subject, h.api.cfg.Now(), ledger.ContactMade{Line: "02150000001", Channel: "call",
		Purpose: "service", Outcome: "routed", CallID: "call-1@pbx", Trunk: "pbx1"})
	if err != nil {
		t.Fatal(err)
	}
	stored, err := h.store.Append(context.Background(), ledger.ContactStream("tenanta", subject), ledger.Any(), []ledger.Event{gated})
	if err != nil {
		t.Fatal(err)
	}
	// Asterisk's cdr_csv: accountcode, src, dst, dcontext, clid, channel,
	// dstchannel, lastapp, lastdata, start, answer, end, duration,
	// billsec, disposition, amaflags, uniqueid, userfield (the Call-ID).
	asterisk := strings.Join([]string{
		`"","02150000001","13900000201","out","","PJSIP/t-1","","Dial","","2026-06-01 12:00:00","2026-06-01 12:00:05","2026-06-01 12:00:47",47,42,"ANSWERED","DOCUMENTATION","1717.1","call-1@pbx"`,
		`"","02150000001","13900000202","out","","PJSIP/t-2","","Dial","","2026-06-01 12:01:00","","2026-06-01 12:01:30",30,0,"NO ANSWER","DOCUMENTATION","1717.2","call-2@pbx"`,
		`"","02150000001","not-a-number","out","","PJSIP/t-3","","Dial","","2026-06-01 12:02:00","","2026-06-01 12:02:30",30,0,"BUSY","DOCUMENTATION","1717.3","call-3@pbx"`,
		`"","02150000001","13900000202"`,
		`"","02150000001","13900000202","out","","PJSIP/t-4","","Dial","","2026-06-01 12:03:00","","2026-06-01 12:03:30",30,-5,"FAILED","DOCUMENTATION","1717.4","call-4@pbx"`,
	}, "\n") + "\n"
	up := func(token, format, body string) map[string]any {
		t.Helper()
		r := h.do(http.MethodPost, "/v1/calls:cdr?format="+format, token, body, "Content-Type", "text/csv")
		if r.status != http.StatusOK {
			t.Fatalf("upload: %d %s", r.status, r.body)
		}
		if strings.Contains(string(r.body), "13900000") {
			t.Fatalf("the answer echoes a number: %s", r.body)
		}
		return r.json(t)
	}
	first := up(h.a, "asterisk", asterisk)
	if first["rows"] != 5.0 || first["recorded"] != 2.0 || first["ungated"] != 1.0 || first["replayed"] != 0.0 {
		t.Fatalf("first upload: %v", first)
	}
	errs := first["errors"].([]any)
	want := map[float64]string{3: "callee", 4: "row", 5: "duration_s"}
	if len(errs) != len(want) {
		t.Fatalf("errors %v, want rows 3, 4 and 5", errs)
	}
	for _, e := range errs {
		e := e.(map[string]any)
		if want[e["row"].(float64)] != e["field"] {
			t.Errorf("error %v, want field %q for its row", e, want[e["row"].(float64)])
		}
	}
	again := up(h.a, "asterisk", asterisk)
	if again["recorded"] != 0.0 || again["replayed"] != 2.0 {
		t.Fatalf("the same records again: %v, want nothing new", again)
	}

	evs, err := h.store.ReadStream(context.Background(), ledger.ContactStream("tenanta", subject), 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	var ended []ledger.CallEnded
	for _, e := range evs {
		if e.Type == ledger.TypeCallEnded {
			p, err := ledger.Decode(&e)
			if err != nil {
				t.Fatal(err)
			}
			ended = append(ended, *p.(*ledger.CallEnded))
		}
	}
	if len(ended) != 1 || !ended[0].Gated || ended[0].Contact != stored[0].ID || !ended[0].Answered || ended[0].DurationS != 42 || ended[0].HangupCause != "ANSWERED" {
		t.Fatalf("recorded %+v, want the answered 42 s call tied to the gated contact", ended)
	}
	other, err := h.store.ReadStream(context.Background(), ledger.ContactStream("tenanta", hmacPseudonyms{}.Pseudonym(otherNumber)), 1, 0)
	if err != nil || len(other) != 1 || !strings.Contains(string(other[0].Data), `"gated":false`) {
		t.Fatalf("the ungated call: %v %v", other, err)
	}

	// Another tenant's record of the same Call-ID is not tied to tenant A's
	// contact; FreeSWITCH's layout and a header-row CSV are read too.
	fs := `"A","02150000009","13900000201","default","2026-06-01 12:00:00","2026-06-01 12:00:03","2026-06-01 12:00:10","10","7","NORMAL_CLEARING","u-1","","","PCMA","PCMA","call-1@pbx"` + "\n"
	if r := up(h.b, "freeswitch", fs); r["recorded"] != 1.0 || r["ungated"] != 1.0 {
		t.Fatalf("tenant B's record: %v, want recorded as ungated", r)
	}
	header := "call_id,callee,answered,duration_s,hangup_cause\ncall-9@pbx,+8613900000202,false,0,NO_ANSWER\n"
	if r := up(h.a, "csv", header); r["recorded"] != 1.0 || r["ungated"] != 1.0 {
		t.Fatalf("header CSV: %v", r)
	}
	if r := h.do(http.MethodPost, "/v1/calls:cdr?format=csv", h.a, "callee,answered\n1,true\n", "Content-Type", "text/csv"); r.status != http.StatusBadRequest {
		t.Fatalf("a header without call_id: %d, want 400", r.status)
	}
	if r := h.do(http.MethodPost, "/v1/calls:cdr", h.auditor, asterisk, "Content-Type", "text/csv"); r.status != http.StatusForbidden {
		t.Fatalf("an auditor uploading: %d, want 403", r.status)
	}
}
