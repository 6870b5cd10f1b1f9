// Package dashboards holds the Grafana dashboard for heed's metrics; its
// test keeps the dashboard in step with the metrics heed registers.
package dashboards

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heed/heed/api"
	"github.com/heed/heed/api/auth"
	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/mem"
	"github.com/heed/heed/notify"
)

type noKeys struct{}

func (noKeys) Lookup(string) (auth.Key, error) { return auth.Key{}, auth.ErrUnknownKey }

type oneDecision struct{}

func (oneDecision) Decide(context.Context, notify.Query) (notify.Decision, error) {
	return notify.Decision{Allowed: true, Reasons: []ledger.Reason{{Rule: "service-basis", Effect: "allow"}}}, nil
}

// TestDashboardQueriesKnownMetrics fails when a panel queries a metric heed
// does not export, or when a heed metric has no panel.
func TestDashboardQueriesKnownMetrics(t *testing.T) {
	b, err := os.ReadFile("heed.json")
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m := api.NewMetrics(reg)
	// The gauges heed serve registers beside the collectors.
	for _, g := range []string{"heed_projection_lag_events", "heed_store_commit_seconds_total", "heed_store_commits_total"} {
		m.Gauge(g, "test", func() float64 { return 0 })
	}
	m.SMPPLinks(func() []api.SMPPLink { return []api.SMPPLink{{SMSC: "x"}} })
	m.SMPPSubmits.WithLabelValues("x")
	m.SMPPResponses.WithLabelValues("x", "0")
	m.SMPPReceipts.WithLabelValues("x", "DELIVRD")
	m.ReminderState("submitted")
	if _, err := m.Decider(oneDecision{}).Decide(context.Background(), notify.Query{}); err != nil {
		t.Fatal(err)
	}
	// One request through the API, so the request histogram has a series.
	srv := api.New(api.Config{Store: mem.New(), Keys: noKeys{}, Metrics: m})
	srv.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/openapi.json", nil))
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, f := range fams {
		known[f.GetName()] = true
	}
	used := map[string]bool{}
	name := regexp.MustCompile(`heed_[a-z_]+`)
	for _, p := range d.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			for _, n := range name.FindAllString(tg.Expr, -1) {
				base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_count"), "_sum")
				if !known[base] {
					t.Errorf("panel %q queries %s, which heed does not export", p.Title, n)
				}
				used[base] = true
			}
		}
	}
	for n := range known {
		if strings.HasPrefix(n, "heed_") && !used[n] {
			t.Errorf("metric %s has no panel", n)
		}
	}
}
