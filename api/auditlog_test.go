package api

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
)

type logPage struct {
	Events []LogEvent `json:"events"`
	Next   uint64     `json:"next"`
	Head   uint64     `json:"head"`
	Done   bool       `json:"done"`
}

func (h *harness) logPage(t *testing.T, q url.Values) logPage {
	t.Helper()
	r := h.do("GET", "/v1/audit/log?"+q.Encode(), h.auditor, nil)
	if r.status != 200 {
		t.Fatalf("GET /v1/audit/log?%s: %d %s", q.Encode(), r.status, r.body)
	}
	var p logPage
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func positions(evs []LogEvent) string {
	var s []string
	for _, e := range evs {
		s = append(s, fmt.Sprint(e.Position))
	}
	return strings.Join(s, ",")
}

func TestAuditLogSearch(t *testing.T) {
	h := newHarness(t)
	reportHistory(h) // 14 events, see there
	all := h.logPage(t, url.Values{})
	if len(all.Events) != 14 || !all.Done || all.Next != 14 || all.Head != 14 {
		t.Fatalf("everything: %d events, next %d, done %v", len(all.Events), all.Next, all.Done)
	}
	split := all.Events[9].RecordedAt // the 10th event's ledger time
	for _, c := range []struct {
		name string
		q    url.Values
		want string
		done bool
	}{
		{"by type", url.Values{"type": {"ContactMade"}}, "7,8,9,12", true},
		{"by business", url.Values{"tenant": {"tenantb"}}, "9", true},
		{"by line", url.Values{"line": {"10690001"}}, "4,5,7,8,10,12,13", true},
		{"by type and line", url.Values{"type": {"ContactMade"}, "line": {"10690002"}}, "9", true},
		{"from a position", url.Values{"after": {"11"}}, "12,13,14", true},
		{"a page", url.Values{"after": {"3"}, "limit": {"2"}}, "4,5", false},
		{"by time", url.Values{"since": {split.Format(time.RFC3339Nano)}, "type": {"ContactMade"}}, "12", true},
		{"until a time", url.Values{"until": {split.Format(time.RFC3339Nano)}, "type": {"ContactMade"}}, "7,8,9", true},
		{"nothing matches", url.Values{"tenant": {"nobody"}}, "", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := h.logPage(t, c.q)
			if got := positions(p.Events); got != c.want || p.Done != c.done {
				t.Errorf("positions %q done %v, want %q done %v", got, p.Done, c.want, c.done)
			}
		})
	}
	// Paging on with next visits every event once.
	var seen []LogEvent
	q := url.Values{"limit": {"4"}}
	for range 10 {
		p := h.logPage(t, q)
		seen = append(seen, p.Events...)
		if p.Done {
			break
		}
		q.Set("after", fmt.Sprint(p.Next))
	}
	if positions(seen) != positions(all.Events) {
		t.Errorf("paged %s, want %s", positions(seen), positions(all.Events))
	}
	ev := all.Events[6]
	if ev.Type != "ContactMade" || ev.Line != "10690001" || ev.Tenant != "tenanta" || !strings.Contains(string(ev.Data), `"channel":"call"`) || ev.Stream == "" {
		t.Errorf("event 7 listed as %+v", ev)
	}
	for _, c := range []struct {
		q      string
		status int
	}{
		{"type=NoSuchEvent", 422},
		{"since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z", 422},
		{"limit=1000", 422},
		{"since=last-week", 422},
	} {
		if r := h.do("GET", "/v1/audit/log?"+c.q, h.auditor, nil); r.status != c.status {
			t.Errorf("?%s: %d, want %d: %s", c.q, r.status, c.status, r.body)
		}
	}
	if r := h.do("GET", "/v1/audit/log", h.a, nil); r.status != 403 {
		t.Errorf("a business key: %d", r.status)
	}
}

// TestAuditLogScanIsBounded: a search that matches nothing reads at most
// logScan events per request and says where to go on.
func TestAuditLogScanIsBounded(t *testing.T) {
	h := newHarness(t)
	n := logScan + 500
	writeContacts(t, h, n)
	p := h.logPage(t, url.Values{"type": {"ComplaintReceived"}})
	if len(p.Events) != 0 || p.Done || p.Next != logScan {
		t.Fatalf("first request: %d events, next %d, done %v", len(p.Events), p.Next, p.Done)
	}
	p = h.logPage(t, url.Values{"type": {"ComplaintReceived"}, "after": {fmt.Sprint(p.Next)}})
	if !p.Done || p.Next != uint64(n) {
		t.Fatalf("second request: next %d, done %v", p.Next, p.Done)
	}
}

// writeContacts appends n contacts straight to the harness's store.
func writeContacts(t *testing.T, h *harness, n int) {
	t.Helper()
	evs := make([]ledger.Event, 0, 500)
	for i := range n {
		e, err := ledger.NewEvent("tenanta", "s", time.Now(), &ledger.ContactMade{Line: "10690001", Channel: "call", Purpose: "service"})
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, e)
		if len(evs) == cap(evs) || i == n-1 {
			if _, err := h.store.Append(t.Context(), ledger.ContactStream("tenanta", "s"), ledger.Any(), evs); err != nil {
				t.Fatal(err)
			}
			evs = evs[:0]
		}
	}
}
