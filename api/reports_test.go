package api

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"encoding/xml"
	"io"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heed/heed/projections/report"
)

const numC = "+8613900000022"

// reportHistory records, through the API, a history whose report is
// known: 3 contacts on 10690001 (2 calls, 1 SMS), one on 10690002, a
// complaint against 10690001, an opt-out by SMS keyword followed by one
// SMS it covers, and two reminders (one sent, one refused).
func reportHistory(h *harness) {
	h.t.Helper()
	must := func(r resp) {
		h.t.Helper()
		if r.status != 201 && r.status != 200 {
			h.t.Fatalf("%d %s", r.status, r.body)
		}
	}
	contact := func(token, number, line, channel, purpose string) {
		must(h.do("POST", "/v1/contacts", token, map[string]any{"number": number, "line": line, "channel": channel, "purpose": purpose}))
	}
	must(h.do("POST", "/v1/relationships", h.a, map[string]any{"number": numA, "contract_ref": "P-7"}))
	h.approved(h.a, "renewal", renewalText)
	must(h.do("POST", "/v1/reminders", h.a, renewal("r-1", numA, "P-7")))
	contact(h.a, numA, "10690001", "call", "service")
	contact(h.a, numB, "10690001", "call", "service")
	contact(h.b, numA, "10690002", "call", "service")
	must(h.do("POST", "/v1/complaints", h.a, map[string]any{"number": numB, "line": "10690001", "channel": "call", "source": "customer"}))
	must(h.do("POST", "/v1/withdrawals", h.a, map[string]any{"number": numC, "via": "sms_keyword", "channels": []string{"sms"}}))
	contact(h.a, numC, "10690001", "sms", "service")
	must(h.do("POST", "/v1/reminders", h.a, renewal("r-2", numC, "P-9")))
}

func TestReportOverTheAPI(t *testing.T) {
	h := newHarness(t)
	reportHistory(h)
	r := h.do("GET", "/v1/audit/reports", h.auditor, nil)
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	var rep report.Report
	if err := json.Unmarshal(r.body, &rep); err != nil {
		t.Fatal(err)
	}
	wantContacts := []report.Contacts{{Tenant: "tenanta", Line: "10690001", Channel: "call", Contacts: 2}, {Tenant: "tenanta", Line: "10690001", Channel: "sms", Contacts: 1},
		{Tenant: "tenanta", Line: "10690001", Channel: "flash", Contacts: 1}, {Tenant: "tenantb", Line: "10690002", Channel: "call", Contacts: 1}}
	if !equalJSON(rep.Contacts, wantContacts) {
		t.Errorf("contacts %+v, want %+v", rep.Contacts, wantContacts)
	}
	if len(rep.OptOuts) != 1 || rep.OptOuts[0].ContactsAfter != 1 || rep.OptOuts[0].Via != "sms_keyword" {
		t.Errorf("opt-outs %+v", rep.OptOuts)
	}
	if len(rep.Complaints) < 1 || rep.Complaints[0].Line != "10690001" || rep.Complaints[0].Complaints != 1 || rep.Complaints[0].Contacts != 4 ||
		rep.Rules.Threshold != 1.0/10000 || rep.Rules.MinContacts != 10000 {
		t.Errorf("complaints %+v under %+v", rep.Complaints, rep.Rules)
	}
	if !equalJSON(rep.Reminders, []report.Outcome{{Outcome: report.Submitted, Reminders: 1}, {Outcome: report.Denied, Reminders: 1}}) {
		t.Errorf("reminders %+v", rep.Reminders)
	}
	if !equalJSON(rep.Denials, []report.Denials{{Rule: "relationship-active", Reminders: 1}}) {
		t.Errorf("denials %+v", rep.Denials)
	}
	if rep.Head != h.head() || rep.Last != h.head() || rep.First != 1 {
		t.Errorf("covers %d..%d of %d", rep.First, rep.Last, rep.Head)
	}

	// A period before the history has nothing in it.
	q := url.Values{"from": {"2020-01-01T00:00:00Z"}, "to": {"2020-02-01T00:00:00Z"}}
	r = h.do("GET", "/v1/audit/reports?"+q.Encode(), h.auditor, nil)
	if err := json.Unmarshal(r.body, &rep); err != nil || r.status != 200 || rep.Events != 0 || len(rep.Contacts) != 0 {
		t.Errorf("an empty period: %d %s", r.status, r.body)
	}
	for _, c := range []struct {
		path   string
		token  string
		status int
	}{
		{"/v1/audit/reports?from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z", h.auditor, 422},
		{"/v1/audit/reports?from=yesterday", h.auditor, 422},
		{"/v1/audit/reports/nonsense/chart.svg", h.auditor, 422},
		{"/v1/audit/reports/opt-out-list/chart.svg", h.auditor, 422},
		{"/v1/audit/reports", h.a, 403},
		{"/v1/audit/reports/contacts/data.csv", "", 401},
	} {
		if r := h.do("GET", c.path, c.token, nil); r.status != c.status {
			t.Errorf("GET %s: %d, want %d: %s", c.path, r.status, c.status, r.body)
		}
	}
}

// svgBars reads the value of every bar of a chart, by its title
// ("label[, series]: value"), in drawing order.
func svgBars(t *testing.T, svg []byte) []string {
	t.Helper()
	dec := xml.NewDecoder(bytes.NewReader(svg))
	var out []string
	inBar, inTitle := false, false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("the chart is not well-formed SVG: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if tok.Name.Local == "rect" {
				for _, a := range tok.Attr {
					inBar = inBar || (a.Name.Local == "class" && a.Value == "bar")
				}
			}
			inTitle = inBar && tok.Name.Local == "title"
		case xml.EndElement:
			if tok.Name.Local == "rect" {
				inBar = false
			}
			inTitle = false
		case xml.CharData:
			if inTitle {
				s := string(tok)
				out = append(out, s[strings.LastIndex(s, ": ")+2:])
			}
		}
	}
}

// TestReportCSVHoldsTheChartsNumbers: for every chart, the values its bars
// draw are the CSV's value columns, row by row, series by series.
func TestReportCSVHoldsTheChartsNumbers(t *testing.T) {
	h := newHarness(t)
	reportHistory(h)
	q := "?from=" + url.QueryEscape(time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)) + "&to=" + url.QueryEscape(time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	series := map[string]int{"contacts": 3, "denials": 2, "complaints": 1, "opt-outs": 2, "reminders": 1}
	keys := map[string]int{"contacts": 2, "denials": 1, "complaints": 2, "opt-outs": 1, "reminders": 1}
	for name, n := range series {
		t.Run(name, func(t *testing.T) {
			svg := h.do("GET", "/v1/audit/reports/"+name+"/chart.svg"+q, h.auditor, nil)
			if svg.status != 200 || svg.header.Get("Content-Type") != "image/svg+xml" {
				t.Fatalf("chart: %d %s %s", svg.status, svg.header.Get("Content-Type"), svg.body)
			}
			data := h.do("GET", "/v1/audit/reports/"+name+"/data.csv"+q, h.auditor, nil)
			if data.status != 200 || !strings.HasPrefix(data.header.Get("Content-Type"), "text/csv") ||
				!strings.Contains(data.header.Get("Content-Disposition"), "heed-"+name+"-") {
				t.Fatalf("data: %d %v", data.status, data.header)
			}
			recs, err := csv.NewReader(bytes.NewReader(data.body)).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			var fromCSV []string
			for _, rec := range recs[1:] {
				for j := range n {
					v, err := strconv.ParseFloat(rec[keys[name]+j], 64)
					if err != nil {
						t.Fatalf("CSV value %q: %v", rec[keys[name]+j], err)
					}
					fromCSV = append(fromCSV, strconv.FormatFloat(v, 'f', -1, 64))
				}
			}
			bars := svgBars(t, svg.body)
			if len(bars) == 0 || strings.Join(bars, ",") != strings.Join(fromCSV, ",") {
				t.Errorf("the chart draws %v, its CSV says %v\n%s", bars, fromCSV, data.body)
			}
		})
	}
	list := h.do("GET", "/v1/audit/reports/opt-out-list/data.csv"+q, h.auditor, nil)
	recs, err := csv.NewReader(bytes.NewReader(list.body)).ReadAll()
	if err != nil || len(recs) != 2 || recs[1][5] != "sms_keyword" || recs[1][6] != "sms" || recs[1][8] != "1" || recs[1][9] == "" {
		t.Errorf("opt-out list: %v %v\n%s", recs, err, list.body)
	}
}

func equalJSON(a, b any) bool {
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return bytes.Equal(x, y)
}
