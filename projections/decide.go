package projections

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/heed/heed/ledger"
)

// ErrQuery means a decision was asked with a missing or unknown field.
var ErrQuery = errors.New("projections: invalid query")

// Effects a reason can have.
const (
	Allow = "allow"
	Deny  = "deny"
	Info  = "info"
)

// Query asks whether Tenant may contact Subject on Channel for Purpose
// from Line at At (zero = now). Number is the E.164 number behind Subject,
// used only to find its region and time zone; it is never stored or logged.
type Query struct {
	Tenant  string    `json:"tenant"`
	Subject string    `json:"subject"`
	Number  string    `json:"-"`
	Channel string    `json:"channel"`
	Purpose string    `json:"purpose"`
	Line    string    `json:"line,omitempty"`
	At      time.Time `json:"at"`
	// Contract, when set, is the relationship a service reminder is
	// about: it must be active (or in its grace period) for the decision to
	// allow (rule relationship-active).
	Contract string `json:"contract,omitempty"`
	// After is a log position the decision must reflect (the caller's own
	// append); zero means the log's head when Runner.Decide is called.
	After uint64 `json:"-"`
}

// String describes q without its number, so logging a query never logs a
// phone number (invariant 7).
func (q Query) String() string {
	return fmt.Sprintf("{tenant:%s subject:%s channel:%s purpose:%s line:%s contract:%s at:%s number:[redacted]}",
		q.Tenant, q.Subject, q.Channel, q.Purpose, q.Line, q.Contract, q.At.Format(time.RFC3339))
}

// GoString is String, for %#v.
func (q Query) GoString() string { return q.String() }

// Reason is one rule's contribution to a decision, in the form
// ReminderDenied and ReminderDispatched record it.
type Reason = ledger.Reason

// Decision answers a Query. Allowed is true when no reason denies.
// AsOf is the log position the decision reflects; Revision is the revision
// of ledger.ContactStream(tenant, subject) it read, for the notifier's
// ledger.Exact append (invariant 2).
type Decision struct {
	Allowed      bool      `json:"allowed"`
	Reasons      []Reason  `json:"reasons"`
	RulesVersion string    `json:"rules_version"`
	AsOf         uint64    `json:"as_of"`
	Revision     uint64    `json:"revision"`
	At           time.Time `json:"at"`
}

// Denials returns the reasons that deny.
func (d Decision) Denials() []Reason {
	var out []Reason
	for _, r := range d.Reasons {
		if r.Effect == Deny {
			out = append(out, r)
		}
	}
	return out
}

// Denied reports whether rule denied the decision.
func (d Decision) Denied(rule string) bool {
	return slices.ContainsFunc(d.Reasons, func(r Reason) bool { return r.Rule == rule && r.Effect == Deny })
}

// Decide evaluates every rule over the current state at q.At (zero: now).
// It does not wait for the log nor read past events: Runner.Decide does.
// Event ids are left empty; Positions name the events.
func (s *State) Decide(q Query, now time.Time) (Decision, error) {
	c, ok := combo(q.Channel, q.Purpose)
	if !ok || q.Tenant == "" || q.Subject == "" {
		return Decision{}, fmt.Errorf("%w: tenant, subject, channel (call, sms, flash) and purpose (service, marketing) are required", ErrQuery)
	}
	at := q.At
	if at.IsZero() {
		at = now
	}
	at = at.UTC()
	d := Decision{RulesVersion: s.cfg.RulesVersion(), AsOf: s.pos, At: at}
	// The records are read in place, under the caller's read lock, not
	// copied: a copy escapes with the evaluation and costs an allocation.
	r, h := &noRec, &noRec
	var extra []contract
	var exp [combos]uint32
	var g global
	var compl complaint
	var erased uint32
	var spill []spilled
	if i := s.find(q.Tenant, q.Subject); i >= 0 {
		r = s.recs.at(i)
		extra = s.more[uint32(i)]
		exp = s.exps[uint32(i)]
		compl = s.complaints[uint32(i)]
		erased = s.erased[uint32(i)]
		spill = s.spill[uint32(i)]
	}
	if i := s.head(q.Subject); i >= 0 {
		h = s.recs.at(i)
		g = s.globals[uint32(i)]
	}
	d.Revision = uint64(r.rev)
	var l *line
	if q.Line != "" {
		l = s.lines[q.Tenant][q.Line]
	}
	// The rules are called through the table, so the evaluation escapes;
	// a pooled one spares every decision its allocation.
	e := evals.Get().(*eval)
	*e = eval{s: s, cfg: s.cfg, q: q, c: c, r: r, h: h, g: g, exp: exp, compl: compl, erased: erased, spill: spill, extra: extra, l: l, at: at, t: minute(at),
		out: make([]Reason, 0, 2)}
	e.run()
	d.Reasons = e.out
	d.Allowed = !slices.ContainsFunc(e.out, func(r Reason) bool { return r.Effect == Deny })
	err := e.err
	*e = eval{}
	evals.Put(e)
	return d, err
}

var evals = sync.Pool{New: func() any { return new(eval) }}

// noRec stands for a subject the state does not track; never written.
var noRec rec

type eval struct {
	s     *State
	cfg   *Config
	q     Query
	c     int
	r, h  *rec
	g     global
	exp   [combos]uint32
	compl complaint
	// erased is the tenant's latest erasure of the subject.
	erased uint32
	spill  []spilled
	extra  []contract
	l      *line
	at     time.Time
	t      uint32
	out    []Reason
	err    error
}

func (e *eval) add(rule, effect, en, zh string, pos ...uint32) {
	r := Reason{Rule: rule, Effect: effect, Text: en, TextZH: zh}
	for _, p := range pos {
		if p != 0 {
			r.Positions = append(r.Positions, uint64(p))
		}
	}
	e.out = append(e.out, r)
}

// text is sentence t of e's query's channel and purpose, in English (lang
// 0) or Chinese (lang 1).
func (e *eval) text(t text, lang int) string { return e.s.texts()[t][e.c][lang] }

func (e *eval) run() {
	for i := range Rules {
		if r := &Rules[i]; e.cfg.enabled(r.ID) {
			r.eval(e)
		}
	}
}

// Where a contract stands at the decision's moment.
const (
	pending        = iota // not started yet
	active                // started, not ended, not expired
	inGrace               // expired less than the service-basis grace ago
	lapsedContract        // ended, or expired longer ago
)

// contract returns the record's first contract for i < 0, else its i-th
// further one.
func (e *eval) contract(i int) contract {
	if i < 0 {
		return e.r.deal
	}
	return e.extra[i]
}

// standing says where k stands at e.t; both the service-basis and the
// relationship-active rule read contracts through it.
func (e *eval) standing(k contract) int {
	switch {
	case k.Start > e.t:
		return pending
	case k.End != 0 && k.End <= e.t:
		return lapsedContract
	case k.Exp == 0 || e.t < k.Exp:
		return active
	case e.t < k.Exp+uint32(e.cfg.ServiceBasis.GraceDays)*1440:
		return inGrace
	}
	return lapsedContract
}

func (e *eval) relationship() {
	ref := refHash(e.q.Contract)
	var lapsed uint32
	for i := -1; i < len(e.extra); i++ {
		k := e.contract(i)
		if k.Pos == 0 || k.Ref != ref {
			continue
		}
		switch e.standing(k) {
		case pending, lapsedContract:
			lapsed = k.Pos
		case active:
			e.add(RuleRelationshipActive, Allow,
				"The reminder is about an active contract of the customer with the business.",
				"提醒所涉合同为客户与本企业的有效合同。", k.Pos)
			return
		case inGrace:
			e.add(RuleRelationshipActive, Allow,
				e.text(txContractInGrace, 0), e.text(txContractInGrace, 1), k.Pos)
			return
		}
	}
	e.add(RuleRelationshipActive, Deny,
		e.text(txNoContract, 0), e.text(txNoContract, 1), lapsed)
}

func (e *eval) suppression() {
	if e.r.supMask != 0 {
		e.add(RuleSuppression, Deny,
			"This number is on the business's do-not-contact list.",
			"该号码在本企业的免打扰名单上。", e.r.supPos)
	}
	if e.g.Mask != 0 {
		if e.q.Purpose == ledger.PurposeMarketing {
			e.add(RuleSuppression, Deny,
				"This number is on a national do-not-call list, which forbids marketing.",
				"该号码在全国免打扰名单上，禁止营销联系。", e.g.Pos)
		} else {
			e.add(RuleSuppression, Info,
				"This number is on a national do-not-call list; it does not cover service contact.",
				"该号码在全国免打扰名单上；该名单不限制服务类联系。", e.g.Pos)
		}
	}
}

func (e *eval) erasure() {
	if at := max(e.erased, e.g.Erased); at != 0 {
		e.add(RuleSuppression, Info,
			"The customer's personal data was erased on request; opt-outs and lists still apply to the number.",
			"客户的个人信息已应要求删除；退订和免打扰名单对该号码继续有效。", at)
	}
}

func (e *eval) withdrawal() {
	if w := e.r.withdraw[e.c]; w != 0 && w > e.r.grant[e.c] {
		e.add(RuleWithdrawal, Deny,
			e.text(txWithdrawn, 0), e.text(txWithdrawn, 1), w)
	}
}

func (e *eval) grantValid() bool {
	g := e.r.grant[e.c]
	return g != 0 && (e.exp[e.c] == 0 || e.exp[e.c] > e.t)
}

func (e *eval) marketing() {
	if e.q.Purpose != ledger.PurposeMarketing {
		return
	}
	g := e.r.grant[e.c]
	switch {
	case e.grantValid():
		e.add(RuleMarketingConsent, Allow,
			e.text(txMarketingAgreed, 0), e.text(txMarketingAgreed, 1), g)
	case g != 0:
		e.add(RuleMarketingConsent, Deny,
			"The customer's consent to marketing has expired.",
			"客户的营销同意已过期。", g)
	case e.r.bundled != 0:
		e.add(RuleMarketingConsent, Deny,
			"The only consent is buried in app terms, which is not enough for marketing.",
			"唯一的同意来自捆绑的应用条款，不足以进行营销联系。", e.r.bundled)
	default:
		e.add(RuleMarketingConsent, Deny,
			e.text(txMarketingNever, 0), e.text(txMarketingNever, 1))
	}
}

func (e *eval) service() {
	if e.q.Purpose != ledger.PurposeService {
		return
	}
	var lapsed uint32
	for i := -1; i < len(e.extra); i++ {
		k := e.contract(i)
		if k.Pos == 0 {
			continue
		}
		switch e.standing(k) {
		case lapsedContract:
			lapsed = k.Pos
		case active:
			e.add(RuleServiceBasis, Allow,
				"The customer has an active contract with the business.",
				"客户与本企业有有效的合同关系。", k.Pos)
			return
		case inGrace:
			e.add(RuleServiceBasis, Allow,
				e.text(txServiceInGrace, 0), e.text(txServiceInGrace, 1), k.Pos)
			return
		}
	}
	if e.grantValid() {
		e.add(RuleServiceBasis, Allow,
			e.text(txServiceAgreed, 0), e.text(txServiceAgreed, 1), e.r.grant[e.c])
		return
	}
	e.add(RuleServiceBasis, Deny,
		"The number is not a customer of the business and gave no consent to service contact.",
		"该号码不是本企业的客户，也未同意服务类联系。", lapsed)
}

func (e *eval) flash() {
	if e.q.Channel == ledger.ChannelFlash && e.q.Purpose != ledger.PurposeService {
		e.add(RuleFlashServiceOnly, Deny,
			"Flash messages may only carry service reminders.",
			"闪信只能用于服务提醒。")
	}
}

var locations sync.Map // zone name -> *time.Location

func location(name string) *time.Location {
	if l, ok := locations.Load(name); ok {
		return l.(*time.Location)
	}
	l, err := time.LoadLocation(name)
	if err != nil {
		return nil
	}
	locations.Store(name, l)
	return l
}

// quiet refuses contact in quiet hours in the callee's own time. A number
// spanning several zones (e.g. +1 toll-free, Russia's mobile ranges) is
// refused if it is quiet in any of them: the caller cannot know which.
func (e *eval) quiet() {
	var names []string
	if e.q.Number != "" {
		var err error
		if names, err = numberZones(e.q.Number); err != nil {
			e.err = err
			return
		}
	}
	locs := make([]*time.Location, 0, 2)
	for _, name := range names {
		if l := location(name); l != nil {
			locs = append(locs, l)
		}
	}
	if len(locs) == 0 {
		locs = append(locs, e.cfg.fallback)
	}
	for _, loc := range locs {
		lt := e.at.In(loc)
		m := lt.Hour()*60 + lt.Minute()
		s, end := e.cfg.quietStart, e.cfg.quietEnd
		if (s <= end && m >= s && m < end) || (s > end && (m >= s || m < end)) {
			e.add(RuleQuietHours, Deny,
				fmt.Sprintf("It is %s where the customer lives; no contact between %s and %s.", lt.Format("15:04"), e.cfg.QuietHours.Start, e.cfg.QuietHours.End),
				fmt.Sprintf("客户当地时间为%s；%s至%s之间不得联系。", lt.Format("15:04"), e.cfg.QuietHours.Start, e.cfg.QuietHours.End))
			return
		}
	}
}

func (e *eval) frequency() {
	lim := e.s.limit(e.c)
	from := e.t - min(e.t, uint32(lim.Days)*1440)
	var pos []uint32
	for j, k := range e.r.kinds {
		if int(k) == e.c+1 && e.r.ring[j].at > from && e.r.ring[j].at <= e.t {
			pos = append(pos, e.r.ring[j].pos)
		}
	}
	for _, x := range e.spill {
		if int(x.Kind) == e.c+1 && x.At > from && x.At <= e.t {
			pos = append(pos, x.Pos)
		}
	}
	if len(pos) >= lim.Max {
		slices.Sort(pos)
		e.add(RuleFrequency, Deny,
			fmt.Sprintf("The business already contacted this customer %d times by %s for %s in %d days (limit %d).", len(pos), e.q.Channel, e.q.Purpose, lim.Days, lim.Max),
			fmt.Sprintf("本企业%d天内已通过%s就%s联系该客户%d次（上限%d次）。", lim.Days, zhChannel(e.q.Channel), zhPurpose(e.q.Purpose), len(pos), lim.Max), pos...)
	}
	// Contacts by other businesses are counted but never named: their
	// events belong to other tenants.
	if e.h.day == uint16(min(e.t/1440, 65535)) && int(e.h.dayN) >= e.cfg.Frequency.SubjectPerDay {
		e.add(RuleFrequency, Deny,
			fmt.Sprintf("This number was already contacted %d times today by all businesses together (limit %d).", e.h.dayN, e.cfg.Frequency.SubjectPerDay),
			fmt.Sprintf("该号码今天已被各企业合计联系%d次（上限%d次）。", e.h.dayN, e.cfg.Frequency.SubjectPerDay))
	}
}

func (e *eval) cooldown() {
	if e.q.Purpose != ledger.PurposeMarketing || e.compl.At == 0 {
		return
	}
	if days := uint32(e.cfg.ComplaintCooldown.Days); e.compl.At <= e.t && e.t < e.compl.At+days*1440 {
		e.add(RuleComplaintCooldown, Deny,
			e.text(txCooldown, 0), e.text(txCooldown, 1), e.compl.Pos)
	}
}

func (e *eval) suspended() {
	if e.q.Line == "" {
		e.add(RuleLineSuspended, Info,
			"No calling line was given, so line suspension and regional limits were not checked.",
			"未提供外呼线路，未检查线路暂停和地区频次限制。")
		return
	}
	if e.l == nil {
		return
	}
	o := e.l.Over
	switch {
	case e.l.Suspended && o.Known == 0:
		e.add(RuleLineSuspended, Deny,
			"The calling line is suspended for too many complaints.",
			"该外呼线路因投诉率过高已被暂停。", e.l.SuspPos)
	case e.l.Suspended || (o.Known != 0 && o.Known <= seconds(e.at)):
		per := perTenThousand(o.Complaints, o.Contacts)
		limit := e.cfg.LineSuspension.Rate * 10000
		e.add(RuleLineSuspended, Deny,
			fmt.Sprintf("The calling line is suspended: %d complaints in %d contacts over %d days, %s per 10,000 (limit %s per 10,000 with at least %d contacts).",
				o.Complaints, o.Contacts, o.WindowDays, per, trim(limit), e.cfg.LineSuspension.MinContacts),
			fmt.Sprintf("该外呼线路已被暂停：%d天内联系%d次、投诉%d次，投诉率为万分之%s（上限为万分之%s，至少%d次联系）。",
				o.WindowDays, o.Contacts, o.Complaints, per, trim(limit), e.cfg.LineSuspension.MinContacts), o.Pos)
	}
}

// perTenThousand formats complaints/contacts per 10,000.
func perTenThousand(complaints, contacts uint32) string {
	if contacts == 0 {
		return "0"
	}
	return trim(float64(complaints) * 10000 / float64(contacts))
}

// trim formats x with at most two decimals and no trailing zeros.
func trim(x float64) string {
	return strconv.FormatFloat(math.Round(x*100)/100, 'f', -1, 64)
}

func (e *eval) burst() {
	if e.l == nil || len(e.l.Trips) == 0 || e.q.Number == "" {
		return
	}
	n, err := parse(e.q.Number)
	if err != nil {
		e.err = err
		return
	}
	rid, ok := e.s.regions.lookup(region(n))
	if !ok {
		return
	}
	hour := e.t / 60
	for i := len(e.l.Trips) - 1; i >= 0; i-- {
		tr := e.l.Trips[i]
		// Trips are appended in log order, which follows time closely; a
		// day's slack covers late reports without scanning all history.
		if tr.Hour+24 < hour {
			break
		}
		if uint32(tr.Region) == rid && tr.Hour == hour && tr.At <= e.t && tr.Known <= seconds(e.at) {
			e.add(RuleRegionBurst, Deny,
				e.text(txRegionBurst, 0), e.text(txRegionBurst, 1), tr.Pos)
			return
		}
	}
}

func zhChannel(c string) string {
	switch c {
	case ledger.ChannelCall:
		return "电话"
	case ledger.ChannelSMS:
		return "短信"
	case ledger.ChannelFlash:
		return "闪信"
	}
	return c
}

func zhPurpose(p string) string {
	if p == ledger.PurposeMarketing {
		return "营销"
	}
	return "服务"
}
