package api

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/notify"
)

// Metrics are heed's Prometheus collectors. No label ever holds a phone
// number or a subject: labels are operations, outcomes, rules and states.
type Metrics struct {
	requests      *prometheus.HistogramVec
	appends       *prometheus.CounterVec
	appendSeconds prometheus.Histogram
	appendBatch   prometheus.Histogram
	decisions     *prometheus.CounterVec
	decisionRules *prometheus.CounterVec
	reminders     *prometheus.CounterVec
	// SMPP is exported so the SMPP client's hooks can be wired to it.
	SMPPSubmits   *prometheus.CounterVec
	SMPPResponses *prometheus.CounterVec
	SMPPReceipts  *prometheus.CounterVec
	reg           prometheus.Registerer
}

// NewMetrics registers heed's collectors with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		reg: reg,
		requests: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "heed_http_request_seconds",
			Help: "HTTP requests by route and status.", Buckets: []float64{.0005, .001, .002, .005, .01, .025, .05, .1, .25, 1}},
			[]string{"route", "code"}),
		appends: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "heed_appends_total",
			Help: "Append calls by result."}, []string{"result"}),
		appendSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "heed_append_seconds",
			Help: "Durable append latency (includes the fsync).", Buckets: []float64{.0002, .0005, .001, .002, .005, .01, .025, .05, .1}}),
		appendBatch: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "heed_append_batch_events",
			Help: "Events per append call.", Buckets: []float64{1, 2, 5, 10, 50, 100, 500, 1000}}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "heed_decisions_total",
			Help: "Eligibility decisions by outcome."}, []string{"outcome"}),
		decisionRules: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "heed_decision_reasons_total",
			Help: "Reasons given in decisions, by rule and effect."}, []string{"rule", "effect"}),
		reminders: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "heed_reminders_total",
			Help: "Reminders entering each state."}, []string{"state"}),
		SMPPSubmits: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "heed_smpp_submits_total",
			Help: "submit_sm sent, by SMSC."}, []string{"smsc"}),
		SMPPResponses: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "heed_smpp_responses_total",
			Help: "submit_sm responses by command status (hex)."}, []string{"smsc", "status"}),
		SMPPReceipts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "heed_smpp_receipts_total",
			Help: "Delivery receipts by final state."}, []string{"smsc", "state"}),
	}
	// Known label values start at zero so rates exist from the first scrape.
	for _, r := range []string{"ok", "error"} {
		m.appends.WithLabelValues(r)
	}
	for _, o := range []string{"allowed", "denied"} {
		m.decisions.WithLabelValues(o)
	}
	reg.MustRegister(m.requests, m.appends, m.appendSeconds, m.appendBatch, m.decisions, m.decisionRules,
		m.reminders, m.SMPPSubmits, m.SMPPResponses, m.SMPPReceipts)
	return m
}

// SMPPLinks registers the SMPP re-bind and throttle counters, read at
// scrape time from the clients' own counts.
func (m *Metrics) SMPPLinks(rebinds, throttles func() float64) {
	m.reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "heed_smpp_reconnects_total",
			Help: "SMPP re-binds after a lost link."}, rebinds),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "heed_smpp_throttles_total",
			Help: "Temporary refusals (ESME_RTHROTTLED, queue full) answered with a pause and a resend."}, throttles))
}

// Gauge registers a gauge read from fn at scrape time, e.g. projection lag
// or the SMPP window in flight.
func (m *Metrics) Gauge(name, help string, fn func() float64) {
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, fn))
}

func (m *Metrics) request(route string, code int, d time.Duration) {
	if route == "" {
		route = "unmatched"
	}
	m.requests.WithLabelValues(route, strconv.Itoa(code)).Observe(d.Seconds())
}

func (m *Metrics) decision(d notify.Decision) {
	outcome := "denied"
	if d.Allowed {
		outcome = "allowed"
	}
	m.decisions.WithLabelValues(outcome).Inc()
	for _, r := range d.Reasons {
		m.decisionRules.WithLabelValues(r.Rule, r.Effect).Inc()
	}
}

// ReminderState counts a reminder entering state; wire it to notify.Config.OnState.
func (m *Metrics) ReminderState(state string) { m.reminders.WithLabelValues(state).Inc() }

// Decider wraps d so every decision (including the notifier's) is counted.
func (m *Metrics) Decider(d notify.Decider) notify.Decider { return meteredDecider{d, m} }

type meteredDecider struct {
	notify.Decider
	m *Metrics
}

func (d meteredDecider) Decide(ctx context.Context, q notify.Query) (notify.Decision, error) {
	out, err := d.Decider.Decide(ctx, q)
	if err == nil {
		d.m.decision(out)
	}
	return out, err
}

// Store wraps st so appends are counted and timed.
func (m *Metrics) Store(st ledger.Store) ledger.Store { return meteredStore{st, m} }

type meteredStore struct {
	ledger.Store
	m *Metrics
}

func (s meteredStore) Append(ctx context.Context, stream string, expected ledger.Expected, events []ledger.Event) ([]ledger.Event, error) {
	start := time.Now()
	out, err := s.Store.Append(ctx, stream, expected, events)
	s.m.appendSeconds.Observe(time.Since(start).Seconds())
	s.m.appendBatch.Observe(float64(len(events)))
	result := "ok"
	if err != nil {
		result = "error"
	}
	s.m.appends.WithLabelValues(result).Inc()
	return out, err
}
