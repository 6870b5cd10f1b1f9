package api

import (
	"context"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/notify"
)

// StoreCommitted records one group commit of the embedded store: its
// duration and each of its appends' wait before it (see bolt.Store.Observe).
func (m *Metrics) StoreCommitted(commit time.Duration, waited []time.Duration) {
	m.storeCommit.Observe(commit.Seconds())
	for _, w := range waited {
		m.storeWait.Observe(w.Seconds())
	}
}

// Metrics are heed's Prometheus collectors. No label ever holds a phone
// number or a subject: labels are operations, outcomes, rules and states.
type Metrics struct {
	requests      *prometheus.HistogramVec
	appends       *prometheus.CounterVec
	appendSeconds prometheus.Histogram
	appendBatch   prometheus.Histogram
	storeCommit   prometheus.Histogram
	storeWait     prometheus.Histogram
	decisions     *prometheus.CounterVec
	decisionRules *prometheus.CounterVec
	reminders     *prometheus.CounterVec
	contacts      *prometheus.CounterVec
	// SMPP is exported so the SMPP client's hooks can be wired to it.
	SMPPSubmits   *prometheus.CounterVec
	SMPPResponses *prometheus.CounterVec
	SMPPReceipts  *prometheus.CounterVec
	unmatched     *prometheus.CounterVec
	cdrs          *prometheus.CounterVec
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
		storeCommit: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "heed_store_commit_seconds",
			Help:    "Embedded store: how long each group commit took, writing its pages and both fsyncs.",
			Buckets: []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, 1}}),
		storeWait: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "heed_store_wait_seconds",
			Help:    "Embedded store: how long each append waited in the queue before its group commit began.",
			Buckets: []float64{.0001, .0005, .001, .002, .005, .01, .02, .05, .1, .25, 1}}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "heed_decisions_total",
			Help: "Eligibility decisions by outcome."}, []string{"outcome"}),
		decisionRules: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "heed_decision_reasons_total",
			Help: "Reasons given in decisions, by rule and effect."}, []string{"rule", "effect"}),
		reminders: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "heed_reminders_total",
			Help: "Reminders entering each state."}, []string{"state"}),
		contacts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "heed_contacts_total",
			Help: "Contacts recorded, by the status of the decision they cite (valid, none, denied, forged, mismatch, expired)."}, []string{"decision"}),
		SMPPSubmits: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "heed_smpp_submits_total",
			Help: "submit_sm sent, by SMSC."}, []string{"smsc"}),
		SMPPResponses: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "heed_smpp_responses_total",
			Help: "submit_sm responses by command status (hex)."}, []string{"smsc", "status"}),
		SMPPReceipts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "heed_smpp_receipts_total",
			Help: "Delivery receipts by final state."}, []string{"smsc", "state"}),
		cdrs: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "heed_call_records_total",
			Help: "Call detail records by result: gated, ungated (a call the gate never saw), replayed, error."}, []string{"result"}),
		unmatched: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "heed_inbound_unmatched_total",
			Help: "Inbound messages recorded as InboundUnmatched, by reason."}, []string{"reason"}),
	}
	// Known label values start at zero so rates exist from the first scrape.
	for _, r := range []string{"ok", "error"} {
		m.appends.WithLabelValues(r)
	}
	for _, o := range []string{"allowed", "denied"} {
		m.decisions.WithLabelValues(o)
	}
	for _, st := range ledger.CitedStatuses {
		m.contacts.WithLabelValues(st)
	}
	for _, r := range ledger.UnmatchedReasons {
		m.unmatched.WithLabelValues(r)
	}
	reg.MustRegister(m.requests, m.appends, m.appendSeconds, m.appendBatch, m.storeCommit, m.storeWait, m.decisions, m.decisionRules,
		m.reminders, m.contacts, m.SMPPSubmits, m.SMPPResponses, m.SMPPReceipts, m.unmatched, m.cdrs)
	return m
}

// SMPPLink is what one SMSC connection reports at scrape time.
type SMPPLink struct {
	SMSC  string // the connection's name
	Bound bool   // the link submits go to is bound
	// InFlight counts submits written and awaiting their answer.
	InFlight int
	// BindFailures counts failed bind attempts, Reconnects every bind
	// attempt after the first (after a lost link or a failed attempt),
	// Throttles the temporary refusals answered with a pause and a resend.
	BindFailures, Reconnects, Throttles int64
}

// SMPPLinks registers the per-SMSC bind state, in-flight, bind-failure,
// reconnect and throttle series, read at scrape time from links.
func (m *Metrics) SMPPLinks(links func() []SMPPLink) {
	m.reg.MustRegister(smppCollector(links))
}

var (
	smppBound = prometheus.NewDesc("heed_smpp_bound",
		"1 while the SMSC connection's sending link is bound, else 0.", []string{"smsc"}, nil)
	smppInFlight = prometheus.NewDesc("heed_smpp_window_in_flight",
		"Submits written to the SMSC and not yet answered.", []string{"smsc"}, nil)
	smppBindFailures = prometheus.NewDesc("heed_smpp_bind_failures_total",
		"Bind attempts that failed (unreachable, refused, timed out).", []string{"smsc"}, nil)
	smppReconnects = prometheus.NewDesc("heed_smpp_reconnects_total",
		"Bind attempts after the first: after a lost link or a failed attempt.", []string{"smsc"}, nil)
	smppThrottles = prometheus.NewDesc("heed_smpp_throttles_total",
		"Temporary refusals (ESME_RTHROTTLED, queue full) answered with a pause and a resend.", []string{"smsc"}, nil)
)

type smppCollector func() []SMPPLink

func (c smppCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{smppBound, smppInFlight, smppBindFailures, smppReconnects, smppThrottles} {
		ch <- d
	}
}

func (c smppCollector) Collect(ch chan<- prometheus.Metric) {
	for _, l := range c() {
		bound := 0.0
		if l.Bound {
			bound = 1
		}
		ch <- prometheus.MustNewConstMetric(smppBound, prometheus.GaugeValue, bound, l.SMSC)
		ch <- prometheus.MustNewConstMetric(smppInFlight, prometheus.GaugeValue, float64(l.InFlight), l.SMSC)
		ch <- prometheus.MustNewConstMetric(smppBindFailures, prometheus.CounterValue, float64(l.BindFailures), l.SMSC)
		ch <- prometheus.MustNewConstMetric(smppReconnects, prometheus.CounterValue, float64(l.Reconnects), l.SMSC)
		ch <- prometheus.MustNewConstMetric(smppThrottles, prometheus.CounterValue, float64(l.Throttles), l.SMSC)
	}
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

// contact counts a recorded contact by the status of the decision it
// cites; m may be nil.
func (m *Metrics) contact(status string) {
	if m != nil && status != "" {
		m.contacts.WithLabelValues(status).Inc()
	}
}

// ReminderState counts a reminder entering state; wire it to notify.Config.OnState.
func (m *Metrics) ReminderState(state string) { m.reminders.WithLabelValues(state).Inc() }

// cdr counts one call detail record by its result.
func (m *Metrics) cdr(result string) {
	if m != nil {
		m.cdrs.WithLabelValues(result).Inc()
	}
}

// InboundUnmatched counts an inbound message recorded as unmatched; the
// label is the reason, never a number or a line.
func (m *Metrics) InboundUnmatched(reason string) { m.unmatched.WithLabelValues(reason).Inc() }

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
