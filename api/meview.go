package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nyaruka/phonenumbers"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/notify"
)

// meView is what /me shows, every sentence already in the page's
// language: the template only lays it out.
type meView struct {
	T     *meText
	Title string
	// Step is number, code or record.
	Step, Number, CodeSent string
	Error, Notice          string
	OtherLang              string

	Zone, Summary string
	Items         []meItem
	Access        []meLine
	Businesses    []meBusiness
	ShowUpcoming  bool
	Upcoming      []meLine
}

// meLine is a sentence about a moment.
type meLine struct {
	ISO, When, Text string
}

// meItem is one contact or reminder in plain words.
type meItem struct {
	N                int
	Tenant, ID       string
	Business, Kind   string
	ISO, When, Line  string
	Said, SaidNote   string
	Quote            bool
	Outcome, Class   string
	Why, Basis       []string
	Warning          string
	CanComplain      bool
	ComplainNote     string
	Complained       string
	OutcomeIsRefusal bool
}

// meBusiness is one business, with what the customer can do about it.
type meBusiness struct {
	Tenant, Name, Phone, Lines string
	Stopped                    []string
	Erased                     string
	Scopes                     []meScope
}

type meScope struct {
	Value, Label string
	Checked      bool
}

func signInView(lang, step string) *meView {
	t := textOf(lang)
	v := &meView{T: t, Title: t.Title, Step: step, CodeSent: sprintf(t.CodeSentF, codeMinutes), OtherLang: langEN}
	if lang == langEN {
		v.OtherLang = langZH
	}
	return v
}

// notice is what the page was sent back with after an action.
type notice struct{ q url.Values }

// sprintf is fmt.Sprintf for the page's formats.
func sprintf(format string, a ...any) string { return fmt.Sprintf(format, a...) }

// customerZone is the time zone of a number's region, as the rules read
// it (the first the numbering plan names), and its name; Asia/Shanghai,
// the rules' fallback, when the number names none.
func customerZone(number, region string) (*time.Location, string) {
	if n, err := phonenumbers.Parse(number, region); err == nil {
		if zs, err := phonenumbers.GetTimezonesForNumber(n); err == nil {
			for _, z := range zs {
				if z == "" || z == "Etc/Unknown" {
					continue
				}
				if l, err := time.LoadLocation(z); err == nil {
					return l, z
				}
			}
		}
	}
	if l, err := time.LoadLocation("Asia/Shanghai"); err == nil {
		return l, "Asia/Shanghai"
	}
	return time.FixedZone("UTC+8", 8*3600), "UTC+8"
}

// clock is a time of day.
func clock(t time.Time) string { return t.Format("15:04") }

// retrySeconds is a Retry-After value: whole seconds, at least one.
func retrySeconds(d time.Duration) string {
	return strconv.FormatInt(max(int64((d+time.Second-1)/time.Second), 1), 10)
}

// span says how long d is, in minutes (rounded up) or seconds.
func (t *meText) span(d time.Duration) string {
	if d >= time.Minute {
		return sprintf(t.InMinutesF, int((d+time.Minute-1)/time.Minute))
	}
	return sprintf(t.InSecondsF, max(int((d+time.Second-1)/time.Second), 1))
}

// when and day write a moment in the customer's zone.
func (t *meText) when(at time.Time) string {
	if t.Lang == langEN {
		return at.Format("2 Jan 2006, 15:04")
	}
	return at.Format("2006年1月2日 15:04")
}

func (t *meText) day(at time.Time) string {
	if t.Lang == langEN {
		return at.Format("2 Jan 2006")
	}
	return at.Format("2006年1月2日")
}

// list joins words as the language lists them.
func (t *meText) list(words []string) string {
	if t.Lang == langEN {
		return strings.Join(words, ", ")
	}
	return strings.Join(words, "、")
}

func (t *meText) channel(c string) string {
	switch c {
	case ledger.ChannelCall:
		return t.StopCalls
	case ledger.ChannelSMS:
		return t.StopSMS
	case ledger.ChannelFlash:
		return t.StopFlash
	}
	return c
}

func (t *meText) purpose(p string) string {
	switch p {
	case ledger.PurposeService:
		return t.PurposeService
	case ledger.PurposeMarketing:
		return t.PurposeMarketing
	}
	return p
}

func (t *meText) source(s string) string {
	switch s {
	case "web_form":
		return t.SourceWebForm
	case "call_recording":
		return t.SourceCall
	case "paper":
		return t.SourcePaper
	case "sms_reply":
		return t.SourceSMS
	case "bundled_terms":
		return t.SourceBundled
	case "api":
		return t.SourceAPI
	}
	return t.SourceOther
}

func (t *meText) role(r string) string {
	switch r {
	case "auditor":
		return t.RoleAuditor
	case "admin":
		return t.RoleAdmin
	case "business":
		return t.RoleBusiness
	case "regulator":
		return t.RoleRegulator
	case "reviewer":
		return t.RoleReviewer
	}
	return t.RoleStaff
}

// read names what a staff read of an event's personal fields saw.
func (t *meText) read(eventType string) string {
	switch eventType {
	case ledger.TypeConsentWithdrawn:
		return t.ReadWithdrawal
	case ledger.TypeComplaintReceived:
		return t.ReadComplaint
	case ledger.TypeConsentGranted:
		return t.ReadConsent
	case ledger.TypeReminderRequested:
		return t.ReadReminder
	case ledger.TypeContactMade:
		return t.ReadContact
	case ledger.TypeSuppressionListed, ledger.TypeSuppressionLifted:
		return t.ReadList
	case ledger.TypeRelationshipEnded:
		return t.ReadEnded
	}
	return t.ReadOther
}

func (t *meText) state(s string) string {
	switch s {
	case notify.StateDelivered:
		return t.StateDelivered
	case notify.StateSubmitted:
		return t.StateSubmitted
	case notify.StateDispatched:
		return t.StateDispatched
	case notify.StateFailed:
		return t.StateFailed
	case notify.StateUnknown:
		return t.StateUnknown
	case notify.StateDenied:
		return t.StateDenied
	}
	return t.StateRequested
}

// scopeText says what an opt-out covers: everything, some channels,
// some purposes, or some purposes on some channels ("marketing (phone
// calls)").
func (t *meText) scopeText(all bool, channels, purposes []string) string {
	if all || len(channels)+len(purposes) == 0 {
		return t.StopAll
	}
	var cs, ps []string
	for _, c := range channels {
		cs = append(cs, t.channel(c))
	}
	for _, p := range purposes {
		if p == ledger.PurposeMarketing {
			ps = append(ps, t.StopMarketing)
		} else {
			ps = append(ps, t.purpose(p))
		}
	}
	switch {
	case len(ps) == 0:
		return t.list(cs)
	case len(cs) == 0:
		return t.list(ps)
	}
	return sprintf(t.ScopeBothF, t.list(ps), t.list(cs))
}

// standing is what the customer did at one business, from its contact
// stream: opt-outs, complaints by contact, the last erasure.
type standing struct {
	withdrawals []withdrawal
	complained  map[string]time.Time
	erased      time.Time
}

type withdrawal struct {
	at                 time.Time
	all                bool
	channels, purposes []string
}

func (s *Server) standingAt(ctx context.Context, tenant, subject string) (standing, error) {
	st := standing{complained: map[string]time.Time{}}
	evs, err := s.cfg.Store.ReadStream(ctx, ledger.ContactStream(tenant, subject), 1, 0)
	if errors.Is(err, ledger.ErrNotFound) {
		return st, nil
	}
	if err != nil {
		return st, err
	}
	for i := range evs {
		e := &evs[i]
		switch e.Type {
		case ledger.TypeConsentWithdrawn, ledger.TypeComplaintReceived, ledger.TypeSubjectErased:
		default:
			continue
		}
		p, err := ledger.Decode(e)
		if err != nil {
			continue
		}
		switch p := p.(type) {
		case *ledger.ConsentWithdrawn:
			st.withdrawals = append(st.withdrawals, withdrawal{at: e.OccurredAt, all: p.All, channels: p.Channels, purposes: p.Purposes})
		case *ledger.ComplaintReceived:
			if p.Contact != "" {
				st.complained[p.Contact] = e.OccurredAt
			}
		case *ledger.SubjectErased:
			st.erased = e.OccurredAt
		}
	}
	return st, nil
}

// recordView builds the signed-in page for number.
func (s *Server) recordView(ctx context.Context, lang, number, token string, n notice) (*meView, error) {
	t := textOf(lang)
	v := signInView(lang, "record")
	loc, zone := customerZone(number, s.cfg.Region)
	now := s.cfg.Now().In(loc)
	v.Zone = sprintf(t.ZoneF, zone, "UTC"+now.Format("-07:00"))

	cs, err := s.contactsOf(ctx, number)
	if err != nil {
		return nil, err
	}
	subject := s.cfg.Pseudonyms.Pseudonym(number)
	tenants, err := s.contacts.Tenants(ctx, subject)
	if err != nil {
		return nil, err
	}
	profiles := map[string]Profile{}
	standings := map[string]standing{}
	for _, tn := range tenants {
		p, ok, err := s.profile(ctx, tn)
		if err != nil {
			return nil, err
		}
		if ok {
			profiles[tn] = p
		}
		if standings[tn], err = s.standingAt(ctx, tn, subject); err != nil {
			return nil, err
		}
	}
	name := func(tenant string) string {
		if tenant == "" {
			return "heed"
		}
		if p, ok := profiles[tenant]; ok {
			return p.name(lang)
		}
		return sprintf(t.UnnamedF, tenant)
	}

	refused := 0
	for i := len(cs) - 1; i >= 0; i-- {
		c := cs[i]
		at := c.At.In(loc)
		if c.Kind == "access" {
			a := c.Access
			v.Access = append(v.Access, meLine{ISO: at.Format(time.RFC3339), When: t.when(at),
				Text: sprintf(t.AccessF, t.when(at), t.role(a.Role), t.read(a.EventType), name(c.Tenant), a.Purpose)})
			continue
		}
		it := s.item(t, c, profiles[c.Tenant], standings[c.Tenant], loc)
		it.N = len(v.Items) + 1
		it.Business = name(c.Tenant)
		if it.OutcomeIsRefusal {
			refused++
		}
		v.Items = append(v.Items, it)
	}
	v.Summary = sprintf(t.SummaryF, len(v.Items), refused)

	for _, tn := range tenants {
		b := meBusiness{Tenant: tn, Name: name(tn), Lines: t.NoLines}
		if p, ok := profiles[tn]; ok {
			if p.ServicePhone != "" {
				b.Phone = sprintf(t.ServicePhoneF, p.ServicePhone)
			}
			if len(p.Lines) > 0 {
				b.Lines = sprintf(t.LinesF, t.list(p.Lines))
			}
		}
		st := standings[tn]
		for _, w := range st.withdrawals {
			b.Stopped = append(b.Stopped, sprintf(t.StoppedF, t.day(w.at.In(loc)), t.scopeText(w.all, w.channels, w.purposes)))
		}
		if !st.erased.IsZero() {
			b.Erased = sprintf(t.ErasedAtF, t.day(st.erased.In(loc)))
		}
		for _, sc := range []struct{ v, l string }{{"all", t.StopAll}, {"marketing", t.StopMarketing}, {"call", t.StopCalls}, {"sms", t.StopSMS}, {"flash", t.StopFlash}} {
			b.Scopes = append(b.Scopes, meScope{Value: sc.v, Label: sc.l, Checked: sc.v == "all"})
		}
		v.Businesses = append(v.Businesses, b)
	}
	slices.SortStableFunc(v.Businesses, func(a, b meBusiness) int { return strings.Compare(a.Name, b.Name) })

	v.ShowUpcoming, v.Upcoming = s.upcoming(ctx, t, token, loc, name)
	v.Notice = noticeText(t, n, tenants, name)
	return v, nil
}

// item writes one contact or reminder in words.
func (s *Server) item(t *meText, c Contact, p Profile, st standing, loc *time.Location) meItem {
	at := c.At.In(loc)
	it := meItem{Tenant: c.Tenant, ID: c.ID, ISO: at.Format(time.RFC3339), When: t.when(at), Line: t.LineNone}
	switch {
	case c.Kind == "reminder":
		it.Kind = t.KindReminder
	case c.Channel == ledger.ChannelCall:
		it.Kind = t.KindCall
	case c.Channel == ledger.ChannelSMS:
		it.Kind = t.KindSMS
	default:
		it.Kind = t.KindFlash
	}
	if c.Line != "" {
		f := t.LineUnregisteredF
		if slices.Contains(p.Lines, c.Line) {
			f = t.LineRegisteredF
		}
		it.Line = sprintf(f, c.Line)
	}
	decided := len(c.Reasons) > 0
	if c.Kind == "reminder" {
		switch {
		case c.State == notify.StateDenied:
			it.Said = t.NothingSent
		case c.Text != "":
			it.Said, it.Quote = c.Text, true
			it.SaidNote = t.NotVerified
			if c.Verified {
				it.SaidNote = t.Verified
			}
		default:
			it.Said = t.TextGone
		}
		it.Outcome = t.state(c.State)
		switch c.State {
		case notify.StateDenied:
			it.Class, it.OutcomeIsRefusal = "is-refused", true
		case notify.StateRequested:
			it.Class = "is-pending"
		default:
			it.Class = "is-allowed"
		}
		it.CanComplain = c.State != notify.StateDenied && c.State != notify.StateRequested
	} else {
		it.Said = sprintf(t.PurposeF, t.purpose(c.Purpose))
		it.CanComplain = true
		if decided {
			it.Outcome, it.Class = t.Allowed, "is-allowed"
			if !c.Allowed {
				it.Outcome, it.Class, it.OutcomeIsRefusal = t.Refused, "is-refused", true
				it.Warning = t.ContactedAnyway
			}
		}
	}
	if decided {
		effect := "deny"
		if c.Allowed {
			effect = "allow"
		}
		for _, r := range c.Reasons {
			if r.Effect != effect {
				continue
			}
			if w := ruleSentence(t.Lang, r.Rule, r.Effect); !slices.Contains(it.Why, w) {
				it.Why = append(it.Why, w)
			}
		}
		if len(it.Why) == 0 {
			it.Why = []string{ruleSentence(t.Lang, "", effect)}
		}
	}
	if c.Allowed {
		for _, b := range c.Basis {
			var what string
			switch {
			case b.Type == ledger.TypeRelationshipStarted && !b.At.IsZero():
				what = sprintf(t.BasisContractSinceF, b.ContractRef, t.day(b.At.In(loc)))
			case b.Type == ledger.TypeRelationshipStarted:
				what = sprintf(t.BasisContractF, b.ContractRef)
			default:
				what = sprintf(t.BasisConsentF, t.day(b.At.In(loc)), t.source(b.Source))
			}
			it.Basis = append(it.Basis, sprintf(t.BasisF, what))
		}
	}
	it.ComplainNote = t.ComplainNoLine
	if c.Line != "" {
		it.ComplainNote = sprintf(t.ComplainLineF, c.Line)
	}
	if at, ok := st.complained[c.ID]; ok {
		it.Complained = sprintf(t.ComplainedF, t.day(at.In(loc)))
	}
	return it
}

// noticeText says what the action the page came back from did; nothing
// for a notice the page cannot have sent.
func noticeText(t *meText, n notice, tenants []string, name func(string) string) string {
	q := n.q
	if q == nil {
		return ""
	}
	tenant := q.Get("tenant")
	known := slices.Contains(tenants, tenant)
	switch q.Get("done") {
	case "stopped":
		sc, ok := scopes[q.Get("scope")]
		if !known || !ok {
			return ""
		}
		return sprintf(t.NoticeStoppedF, name(tenant), t.scopeText(false, sc.channels, sc.purposes))
	case "complained":
		if line := q.Get("line"); line != "" && len(line) <= ledger.MaxLineLen {
			return sprintf(t.NoticeComplainedF, line)
		}
		return t.NoticeComplainedNoLine
	case "complained-again":
		return t.NoticeComplainedAgain
	case "erased":
		if !known {
			return ""
		}
		return sprintf(t.NoticeErasedF, name(tenant))
	case "erased-all":
		return t.NoticeErasedAll
	}
	return ""
}

// upcoming asks GET /v1/me/reminders, as the customer, for the reminders
// planned for them; the section shows only when it answers. Another part
// of heed serves that operation: the page reads it through the API, so it
// needs nothing but its answer.
func (s *Server) upcoming(ctx context.Context, t *meText, token string, loc *time.Location, name func(string) string) (bool, []meLine) {
	h := s.reminderSource
	if h == nil {
		h = s.mux
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "/v1/me/reminders", nil)
	if err != nil {
		return false, nil
	}
	req.Header.Set("Authorization", "Bearer "+token)
	w := &bufferedResponse{header: http.Header{}, status: http.StatusOK}
	h.ServeHTTP(w, req)
	if w.status == http.StatusNotFound {
		return false, nil
	}
	var body struct {
		Reminders []upcomingReminder `json:"reminders"`
	}
	if w.status != http.StatusOK || json.Unmarshal(w.body.Bytes(), &body) != nil {
		s.cfg.Log.Error("upcoming reminders", "status", w.status)
		return false, nil
	}
	var out []meLine
	for _, r := range body.Reminders {
		at := r.when()
		if at.IsZero() {
			continue
		}
		at = at.In(loc)
		what := r.Text
		if what == "" && r.ContractRef != "" {
			what = sprintf(t.BasisContractF, r.ContractRef)
		}
		out = append(out, meLine{ISO: at.Format(time.RFC3339), When: t.when(at), Text: sprintf(t.UpcomingF, name(r.Tenant), t.when(at), what)})
	}
	slices.SortStableFunc(out, func(a, b meLine) int { return strings.Compare(a.ISO, b.ISO) })
	return true, out
}

// upcomingReminder is what the page reads of one upcoming reminder: the
// business, when it is due (or, once deferred, next due), and what it says
// or which contract it is about.
type upcomingReminder struct {
	Tenant      string    `json:"tenant"`
	DueAt       time.Time `json:"due_at"`
	NextAt      time.Time `json:"next_at"`
	ContractRef string    `json:"contract_ref"`
	Text        string    `json:"text"`
}

func (r upcomingReminder) when() time.Time {
	if !r.NextAt.IsZero() {
		return r.NextAt
	}
	return r.DueAt
}

// bufferedResponse holds an answer served in-process.
type bufferedResponse struct {
	header http.Header
	status int
	wrote  bool
	body   bytes.Buffer
}

func (b *bufferedResponse) Header() http.Header { return b.header }

func (b *bufferedResponse) WriteHeader(code int) {
	if !b.wrote {
		b.status, b.wrote = code, true
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	b.wrote = true
	return b.body.Write(p)
}
