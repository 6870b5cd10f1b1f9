package api

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/heed/heed/api/auth"
	"github.com/heed/heed/api/chart"
	"github.com/heed/heed/ledger"
	"github.com/heed/heed/projections"
	"github.com/heed/heed/projections/report"
)

// defaultPeriod is a report's period when the request names none.
const defaultPeriod = 30 * 24 * time.Hour

type periodIn struct {
	From time.Time `query:"from" doc:"start of the period (RFC 3339, ledger time), inclusive; 30 days before to when absent"`
	To   time.Time `query:"to" doc:"end of the period (RFC 3339, ledger time), exclusive; now when absent"`
}

type reportOut struct{ Body report.Report }

type chartIn struct {
	periodIn
	Chart string `path:"chart" enum:"contacts,denials,complaints,opt-outs,reminders"`
}

type tableIn struct {
	periodIn
	Table string `path:"table" enum:"contacts,denials,complaints,opt-outs,reminders,opt-out-list"`
}

// reportCache keeps the last few reports: the page asks for a report and
// then for each of its charts, and a report is a pure function of its
// period and the log's head, which keys it.
type reportCache struct {
	mu      sync.Mutex
	entries []cachedReport
}

type cachedReport struct {
	from, to time.Time
	head     uint64
	r        report.Report
}

const reportCacheSize = 8

func (c *reportCache) get(from, to time.Time, head uint64) (report.Report, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, e := range c.entries {
		if e.from.Equal(from) && e.to.Equal(to) && e.head == head {
			return e.r, true
		}
	}
	return report.Report{}, false
}

func (c *reportCache) put(from, to time.Time, head uint64, r report.Report) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.entries = append(c.entries, cachedReport{from, to, head, r})
	if len(c.entries) > reportCacheSize {
		c.entries = c.entries[1:]
	}
}

func (s *Server) registerReports() {
	mw := huma.Middlewares{s.requireKey(auth.RoleAuditor, auth.RoleAdmin)}
	sec := []map[string][]string{{"key": {}}}
	huma.Register(s.api, huma.Operation{OperationID: "audit-report", Method: http.MethodGet, Path: "/v1/audit/reports",
		Summary: "The auditor's report over a period: contacts per line and channel, denials by rule, complaint rates against the suspension threshold, opt-outs and any contact after them, reminders by outcome",
		Description: "The period is ledger time (each event's recorded_at), the order the signed checkpoints attest. " +
			"The charts and their numbers are at /v1/audit/reports/{chart}/chart.svg and /v1/audit/reports/{table}/data.csv.",
		Tags: []string{"auditor"}, Middlewares: mw, Security: sec, Errors: []int{401, 403, 422}},
		func(ctx context.Context, in *periodIn) (*reportOut, error) {
			r, err := s.report(ctx, in)
			if err != nil {
				return nil, err
			}
			return &reportOut{Body: r}, nil
		})
	huma.Register(s.api, huma.Operation{OperationID: "audit-report-chart", Method: http.MethodGet, Path: "/v1/audit/reports/{chart}/chart.svg",
		Summary: "A chart of the report, as SVG", Tags: []string{"auditor"}, Middlewares: mw, Security: sec, Errors: []int{401, 403, 422},
		Responses: map[string]*huma.Response{"200": {Description: "the chart", Content: map[string]*huma.MediaType{"image/svg+xml": {}}}}},
		func(ctx context.Context, in *chartIn) (*huma.StreamResponse, error) {
			r, err := s.report(ctx, &in.periodIn)
			if err != nil {
				return nil, err
			}
			c := reportCharts(r)[in.Chart]
			return file("image/svg+xml", "", c.SVG()), nil
		})
	huma.Register(s.api, huma.Operation{OperationID: "audit-report-data", Method: http.MethodGet, Path: "/v1/audit/reports/{table}/data.csv",
		Summary:     "The numbers behind a chart of the report, as CSV",
		Description: "Each chart's CSV holds exactly the numbers it draws (and columns it does not draw, after them); opt-out-list lists every opt-out with the contacts after it.",
		Tags:        []string{"auditor"}, Middlewares: mw, Security: sec, Errors: []int{401, 403, 422},
		Responses: map[string]*huma.Response{"200": {Description: "the numbers", Content: map[string]*huma.MediaType{"text/csv": {}}}}},
		func(ctx context.Context, in *tableIn) (*huma.StreamResponse, error) {
			r, err := s.report(ctx, &in.periodIn)
			if err != nil {
				return nil, err
			}
			var body []byte
			if in.Table == "opt-out-list" {
				body = optOutList(r)
			} else {
				body = reportCharts(r)[in.Table].CSV()
			}
			name := fmt.Sprintf("heed-%s-%s-%s.csv", in.Table, r.From.Format("20060102T150405Z"), r.To.Format("20060102T150405Z"))
			return file("text/csv; charset=utf-8", name, body), nil
		})
}

func file(typ, name string, body []byte) *huma.StreamResponse {
	return &huma.StreamResponse{Body: func(hc huma.Context) {
		hc.SetHeader("Content-Type", typ)
		hc.SetHeader("Cache-Control", "no-store")
		if name != "" {
			hc.SetHeader("Content-Disposition", `attachment; filename="`+name+`"`)
		}
		_, _ = hc.BodyWriter().Write(body)
	}}
}

// report computes (or recalls) the report of a period.
func (s *Server) report(ctx context.Context, in *periodIn) (report.Report, error) {
	to, from := in.To, in.From
	if to.IsZero() {
		to = s.cfg.Now()
	}
	if from.IsZero() {
		from = to.Add(-defaultPeriod)
	}
	if to.Before(from) {
		return report.Report{}, huma.Error422UnprocessableEntity("the period ends before it starts",
			&huma.ErrorDetail{Location: "query.to", Message: "must not be before from"})
	}
	rules := s.suspensionRules()
	head, err := s.cfg.Store.Head(ctx)
	if err != nil {
		return report.Report{}, s.storeError("report", err)
	}
	if r, ok := s.reports.get(from, to, head); ok {
		return r, nil
	}
	r, err := report.ComputeAt(ctx, s.cfg.Store, head, from, to, rules)
	if err != nil {
		if errors.Is(err, ledger.ErrInvalid) {
			s.cfg.Log.Error("report", "err", err)
			return report.Report{}, huma.Error500InternalServerError("an event of the period could not be read")
		}
		return report.Report{}, s.storeError("report", err)
	}
	s.reports.put(from, to, head, r)
	return r, nil
}

// ruleSource is a LineStates that also tells its rule numbers
// (projections.Runner does).
type ruleSource interface{ Config() *projections.Config }

// suspensionRules are the line-suspension numbers the projections run
// with, or the defaults when the server has none.
func (s *Server) suspensionRules() report.Rules {
	cfg := projections.Default()
	if rs, ok := s.cfg.LineStates.(ruleSource); ok && rs.Config() != nil {
		cfg = rs.Config()
	}
	l := cfg.LineSuspension
	return report.Rules{Threshold: l.Rate, MinContacts: l.MinContacts, WindowDays: l.WindowDays}
}

// perTenThousand is how complaint rates are charted: the suspension rule's
// own unit (1 per 10,000 contacts).
const perTenThousand = 10000

func lineLabel(tenant, line string) string {
	if line == "" {
		line = "(no line named)"
	}
	return tenant + " · " + line
}

// reportCharts draws the report's charts, by id.
func reportCharts(r report.Report) map[string]*chart.Chart {
	period := fmt.Sprintf("from %s to %s", r.From.Format(time.RFC3339), r.To.Format(time.RFC3339))
	contacts := &chart.Chart{ID: "contacts", Title: "Contacts per line and channel",
		Desc: "Contacts made on each line, by channel, " + period + ": calls and SMS recorded by ContactMade, flash reminders the SMSC accepted.",
		Keys: []string{"tenant", "line"}, Series: ledger.Channels, Empty: "No contacts in this period."}
	idx := map[string]int{}
	for _, c := range r.Contacts {
		k := c.Tenant + "\x00" + c.Line
		i, ok := idx[k]
		if !ok {
			i = len(contacts.Rows)
			idx[k] = i
			contacts.Rows = append(contacts.Rows, chart.Row{Label: lineLabel(c.Tenant, c.Line), Keys: []string{c.Tenant, c.Line}, Values: make([]float64, len(ledger.Channels))})
		}
		for j, ch := range ledger.Channels {
			if ch == c.Channel {
				contacts.Rows[i].Values[j] += float64(c.Contacts)
			}
		}
	}
	denials := &chart.Chart{ID: "denials", Title: "Denials by rule",
		Desc: "Refused reminders and refused calls " + period + ", per rule that refused them; a refusal naming two rules counts for each.",
		Keys: []string{"rule"}, Series: []string{"reminders", "calls"}, Empty: "No denials in this period."}
	for _, d := range r.Denials {
		denials.Rows = append(denials.Rows, chart.Row{Label: d.Rule, Keys: []string{d.Rule}, Values: []float64{float64(d.Reminders), float64(d.Calls)}})
	}
	complaints := &chart.Chart{ID: "complaints", Title: "Complaint rate per line",
		Desc: fmt.Sprintf("Complaints per 10,000 contacts on each line %s, against the suspension threshold of %s per 10,000 (which applies from %d contacts in %d days).",
			period, chart.Number(r.Rules.Threshold*perTenThousand), r.Rules.MinContacts, r.Rules.WindowDays),
		Keys: []string{"tenant", "line"}, Series: []string{"complaints per 10,000 contacts"},
		Notes: []string{"contacts", "complaints", "at threshold", "over (enough contacts)", "suspensions"},
		Ref:   &chart.Ref{Label: "suspension threshold", Value: r.Rules.Threshold * perTenThousand}, Empty: "No contacts or complaints in this period."}
	for _, l := range r.Complaints {
		complaints.Rows = append(complaints.Rows, chart.Row{Label: lineLabel(l.Tenant, l.Line), Keys: []string{l.Tenant, l.Line},
			Values: []float64{l.Rate * perTenThousand},
			Notes: []string{strconv.Itoa(l.Contacts), strconv.Itoa(l.Complaints), strconv.FormatBool(l.AtThreshold), strconv.FormatBool(l.Over),
				strconv.Itoa(l.Suspensions)}})
	}
	optOuts := &chart.Chart{ID: "opt-outs", Title: "Opt-outs, and those followed by a contact",
		Desc: "Opt-outs " + period + " by how they were made, and how many of them were followed by a contact they cover (there should be none).",
		Keys: []string{"via"}, Series: []string{"opt-outs", "followed by a contact"}, Empty: "No opt-outs in this period."}
	vi := map[string]int{}
	for _, o := range r.OptOuts {
		i, ok := vi[o.Via]
		if !ok {
			i = len(optOuts.Rows)
			vi[o.Via] = i
			optOuts.Rows = append(optOuts.Rows, chart.Row{Label: o.Via, Keys: []string{o.Via}, Values: []float64{0, 0}})
		}
		optOuts.Rows[i].Values[0]++
		if o.ContactsAfter > 0 {
			optOuts.Rows[i].Values[1]++
		}
	}
	reminders := &chart.Chart{ID: "reminders", Title: "Reminders by outcome",
		Desc: "Reminders requested " + period + ", by their state at its end.",
		Keys: []string{"outcome"}, Series: []string{"reminders"}, Empty: "No reminders in this period."}
	for _, o := range r.Reminders {
		reminders.Rows = append(reminders.Rows, chart.Row{Label: o.Outcome, Keys: []string{o.Outcome}, Values: []float64{float64(o.Reminders)}})
	}
	return map[string]*chart.Chart{"contacts": contacts, "denials": denials, "complaints": complaints, "opt-outs": optOuts, "reminders": reminders}
}

// optOutList is every opt-out of the report with the contacts after it,
// as CSV.
func optOutList(r report.Report) []byte {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	_ = w.Write([]string{"position", "event id", "tenant", "subject", "occurred at", "via", "channels", "purposes",
		"contacts after", "last contact position", "last contact at", "seconds to the last contact after"})
	for _, o := range r.OptOuts {
		rec := []string{strconv.FormatUint(o.Position, 10), o.ID, o.Tenant, o.Subject, o.OccurredAt.Format(time.RFC3339),
			o.Via, strings.Join(o.Channels, " "), strings.Join(o.Purposes, " "), strconv.Itoa(o.ContactsAfter), "", "", ""}
		if o.LastContactAt != nil {
			rec[9], rec[10], rec[11] = strconv.FormatUint(o.LastContact, 10), o.LastContactAt.Format(time.RFC3339), chart.Number(o.GapSeconds)
		}
		_ = w.Write(rec)
	}
	w.Flush()
	return b.Bytes()
}
