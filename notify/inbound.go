package notify

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode"

	"github.com/nyaruka/phonenumbers"
	"golang.org/x/text/unicode/norm"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/smpp"
	"github.com/heed/heed/smpp/text"
)

var (
	// ErrSender means an inbound sender address is not a phone number heed
	// can read (a short code, an alphanumeric sender, garbage).
	ErrSender = errors.New("notify: sender is not a phone number")
	// ErrSenders means the lines configuration leaves a tenant's SMS
	// sender ambiguous or names a line the tenant does not own.
	ErrSenders = errors.New("notify: sender lines")
)

// Inbound is a mobile-originated message, or one part of a longer one.
type Inbound struct {
	// From is the sender's address as the SMSC gave it, read with
	// FromTON and FromNPI (see [SenderNumber]).
	From             string
	FromTON, FromNPI byte
	To               string // the line it was sent to
	Text             string
	SMSC             string // the connection it came on, for the record
	// Concat is set when the message is one part of a longer one.
	Concat *text.Concat
}

// InboundResult is what became of an inbound message.
type InboundResult struct {
	// Withdrawals are the ConsentWithdrawn events recorded: one per tenant
	// the reply reached.
	Withdrawals []ledger.Event
	// Unmatched is the InboundUnmatched event recorded instead, and
	// Reason its reason.
	Unmatched *ledger.Event
	Reason    string
	// Held is set when the message is one part of a longer one whose other
	// parts have not all come yet.
	Held bool
}

// TON values of SMPP 3.4 (section 5.2.5) that Sender reads.
const (
	tonUnknown       = 0
	tonInternational = 1
	tonNational      = 2
	tonAlphanumeric  = 5
	tonAbbreviated   = 6
)

// SenderNumber returns the E.164 form of a sender address delivered with the
// given TON and NPI, reading national numbers in region (e.g. "CN").
// Chinese gateways send a mobile number as "13912340002" with TON 2
// (national), "8613912340002" with TON 1, or with TON 0 (unknown) in any
// of the forms "+86…", "0086…", "86…" and national; all give
// +8613912340002. Abbreviated (TON 6) and alphanumeric (TON 5) senders,
// and short codes of any TON, are not numbers of a person: ErrSender.
// An international address that is no valid number is tried as a national
// one, and an unknown or national one that is no valid national number as
// an international one, because gateways mislabel TON; the first reading
// that gives a valid number wins.
func SenderNumber(addr string, ton, npi byte, region string) (string, error) {
	_ = npi // E.164 (1) and unknown (0) read alike; others carry digits too
	addr = strings.TrimSpace(addr)
	if addr == "" || len(addr) > 32 || ton == tonAlphanumeric || ton == tonAbbreviated {
		return "", ErrSender
	}
	intl := false
	switch {
	case strings.HasPrefix(addr, "+"):
		addr, intl = addr[1:], true
	case strings.HasPrefix(addr, "00"):
		addr, intl = addr[2:], true
	}
	if addr == "" {
		return "", ErrSender
	}
	for _, c := range addr {
		if c < '0' || c > '9' {
			return "", ErrSender
		}
	}
	if region == "" {
		region = "CN"
	}
	international := func() (string, bool) { return valid("+"+addr, "") }
	national := func() (string, bool) { return valid(addr, region) }
	order := []func() (string, bool){national, international}
	if intl || ton == tonInternational {
		order = []func() (string, bool){international, national}
	}
	if intl {
		order = order[:1]
	}
	for _, try := range order {
		if e164, ok := try(); ok {
			return e164, nil
		}
	}
	return "", ErrSender
}

// valid parses raw in region and returns its E.164 form if it is a valid
// number.
func valid(raw, region string) (string, bool) {
	n, err := phonenumbers.Parse(raw, region)
	if err != nil || !phonenumbers.IsValidNumber(n) {
		return "", false
	}
	return phonenumbers.Format(n, phonenumbers.E164), true
}

// Keyword folds a reply for keyword matching: NFKC (full-width "ＴＤ" is
// "TD"), upper case, no white space anywhere, and no punctuation or
// symbols around it ("td。", " 退订 ", "TD!").
func Keyword(s string) string {
	s = norm.NFKC.String(s)
	s = strings.TrimFunc(s, func(r rune) bool {
		return unicode.IsSpace(r) || unicode.IsPunct(r) || unicode.IsSymbol(r) || unicode.IsControl(r)
	})
	s = strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return r
	}, s)
	return strings.ToUpper(s)
}

// Check reports configuration that would send a tenant's reminders from
// a line it did not choose: a tenant owning several lines must name its
// SMS sender in Senders, and a sender must be one of its own lines or a
// line no tenant owns.
func (c Config) Check() error {
	owned := map[string]int{}
	for _, t := range c.Lines {
		owned[t]++
	}
	for t, l := range c.Senders {
		if owner, ok := c.Lines[l]; ok && owner != t {
			return fmt.Errorf("%w: tenant %q sends from line %s, which is %q's", ErrSenders, t, l, owner)
		}
	}
	for t, k := range owned {
		if _, named := c.Senders[t]; k > 1 && !named {
			return fmt.Errorf("%w: tenant %q owns %d lines; name the one its SMS go from (senders)", ErrSenders, t, k)
		}
	}
	return nil
}

// senderLines returns each tenant's default line: the one Senders names,
// else the only line it owns.
func senderLines(c Config) map[string]string {
	owned := map[string][]string{}
	for l, t := range c.Lines {
		owned[t] = append(owned[t], l)
	}
	out := map[string]string{}
	for t, ls := range owned {
		if len(ls) == 1 {
			out[t] = ls[0]
		}
	}
	for t, l := range c.Senders {
		out[t] = l
	}
	return out
}

// OnInbound handles a mobile-originated message or part. A reply that is
// an opt-out keyword withdraws every consent of the customer at the tenant
// that owns the line; on a line no tenant owns (heed's shared default
// line), at every tenant that sent to the customer from that line, as the
// log shows. Anything else — a sender that is no number, a line nobody
// sent from, a text that is no keyword, a multi-part message whose parts
// never all came — is recorded as InboundUnmatched, its sender and text
// sealed. Parts of a longer message are held until the message is whole
// (or given up on, by a later call or by Sweep).
func (n *Notifier) OnInbound(ctx context.Context, in Inbound) (InboundResult, error) {
	key := in.SMSC + "\x00" + in.From + "\x00" + in.To
	wholes := n.mo.Add(key, in.Concat, in.Text, in, n.cfg.Now())
	var res InboundResult
	var errs []error
	mine := false
	for _, w := range wholes {
		r, err := n.inbound(ctx, w)
		if err != nil {
			errs = append(errs, err)
		}
		// Messages given up on (incomplete) while this one came are
		// recorded on the way; only this call's message can be complete.
		if w.Complete() {
			res, mine = r, true
			if err != nil && in.Concat != nil {
				// The error makes the SMSC deliver this part again: keep
				// the others for it.
				n.mo.Retain(w, in.Concat.Seq, n.cfg.Now())
			}
		}
	}
	if !mine {
		res.Held = true
	}
	return res, errors.Join(errs...)
}

// flushInbound records the multi-part messages whose parts stopped coming.
func (n *Notifier) flushInbound(ctx context.Context) {
	for _, w := range n.mo.Expire(n.cfg.Now()) {
		if _, err := n.inbound(ctx, w); err != nil {
			n.cfg.Log.Error("incomplete inbound message not recorded", "line", w.Meta.To, "err", err)
		}
	}
}

// inbound handles one whole (or given-up) message.
func (n *Notifier) inbound(ctx context.Context, w smpp.Whole[Inbound]) (InboundResult, error) {
	in := w.Meta
	in.Text = w.Text
	owner, owned := n.cfg.Lines[in.To]
	e164, err := SenderNumber(in.From, in.FromTON, in.FromNPI, n.cfg.Region)
	if err != nil {
		return n.unmatched(ctx, in, owner, n.cfg.Pseudonym(in.From), ledger.UnmatchedSender, w)
	}
	subject := n.cfg.Pseudonym(e164)
	if !n.keywords[Keyword(in.Text)] {
		reason := ledger.UnmatchedKeyword
		if !w.Complete() {
			reason = ledger.UnmatchedIncomplete
		}
		return n.unmatched(ctx, in, owner, subject, reason, w)
	}
	tenants := []string{owner}
	if !owned {
		if tenants, err = n.sentFrom(ctx, subject, in.To); err != nil {
			return InboundResult{}, fmt.Errorf("notify: who sent from line: %w", err)
		}
		if len(tenants) == 0 {
			return n.unmatched(ctx, in, "", subject, ledger.UnmatchedLine, w)
		}
	}
	var res InboundResult
	for _, t := range tenants {
		ev, err := n.withdraw(ctx, t, subject, in)
		if err != nil {
			return res, err
		}
		res.Withdrawals = append(res.Withdrawals, ev)
	}
	return res, nil
}

// withdraw records a keyword opt-out of every consent at tenant.
func (n *Notifier) withdraw(ctx context.Context, tenant, subject string, in Inbound) (ledger.Event, error) {
	ev, err := ledger.NewEvent(tenant, subject, n.cfg.Now(), ledger.ConsentWithdrawn{
		All: true, Via: "sms_keyword", RawText: in.Text, Line: in.To,
	})
	if err != nil {
		return ledger.Event{}, err
	}
	ev.Actor = "sms:" + in.To
	var stored []ledger.Event
	err = n.Exclusive(subject, func() error {
		var err error
		stored, err = n.cfg.Store.Append(ctx, ledger.ContactStream(tenant, subject), ledger.Any(), []ledger.Event{ev})
		return err
	})
	if err != nil {
		return ledger.Event{}, fmt.Errorf("notify: record opt-out: %w", err)
	}
	n.cfg.Log.Info("opt-out recorded", "tenant", tenant, "line", in.To, "position", stored[0].Position)
	return stored[0], nil
}

// unmatched records an inbound message heed did not act on.
func (n *Notifier) unmatched(ctx context.Context, in Inbound, tenant, subject, reason string, w smpp.Whole[Inbound]) (InboundResult, error) {
	p := ledger.InboundUnmatched{Line: in.To, Reason: reason, SMSC: in.SMSC, From: in.From, Text: in.Text}
	if w.Total > 1 {
		p.Parts, p.Total = w.Got, w.Total
	}
	// The store seals From and Text (see Config.Store).
	ev, err := ledger.NewEvent(tenant, subject, n.cfg.Now(), p)
	if err != nil {
		return InboundResult{}, err
	}
	ev.Actor = "sms:" + in.To
	stored, err := n.cfg.Store.Append(ctx, ledger.InboundStream(in.To), ledger.Any(), []ledger.Event{ev})
	if err != nil {
		return InboundResult{}, fmt.Errorf("notify: record unmatched inbound: %w", err)
	}
	if n.cfg.OnUnmatched != nil {
		n.cfg.OnUnmatched(reason)
	}
	n.cfg.Log.Info("inbound message not acted on", "reason", reason, "line", in.To, "position", stored[0].Position)
	return InboundResult{Unmatched: &stored[0], Reason: reason}, nil
}

// sentFrom lists the tenants whose contact stream with subject shows a
// reminder dispatched, or an SMS contact made, from line.
func (n *Notifier) sentFrom(ctx context.Context, subject, line string) ([]string, error) {
	var tenants []string
	var err error
	if n.cfg.Tenants != nil {
		tenants, err = n.cfg.Tenants(ctx, subject)
	} else {
		tenants, err = n.scanTenants(ctx, subject)
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, t := range tenants {
		evs, err := n.cfg.Store.ReadStream(ctx, ledger.ContactStream(t, subject), 1, 0)
		if errors.Is(err, ledger.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		for i := range evs {
			if sentOn(&evs[i], line) {
				out = append(out, t)
				break
			}
		}
	}
	return out, nil
}

// sentOn reports whether e is a message sent to its subject from line.
func sentOn(e *ledger.Event, line string) bool {
	if e.Type != ledger.TypeReminderDispatched && e.Type != ledger.TypeContactMade {
		return false
	}
	p, err := ledger.Decode(e)
	if err != nil {
		return false
	}
	switch p := p.(type) {
	case *ledger.ReminderDispatched:
		return p.Line == line
	case *ledger.ContactMade:
		return p.Line == line && p.Channel != ledger.ChannelCall
	}
	return false
}

// scanTenants reads the whole log for the tenants that hold contact
// events about subject; it serves when no projection is configured.
func (n *Notifier) scanTenants(ctx context.Context, subject string) ([]string, error) {
	seen := map[string]bool{}
	var out []string
	for from := uint64(1); ; {
		evs, err := n.cfg.Store.ReadAll(ctx, from, 4096)
		if err != nil {
			return nil, err
		}
		if len(evs) == 0 {
			return out, nil
		}
		for i := range evs {
			e := &evs[i]
			if kind, _, _ := ledger.ParseStream(e.Stream, e.Tenant); e.Subject == subject && e.Tenant != "" && !seen[e.Tenant] && kind == ledger.StreamContact {
				seen[e.Tenant] = true
				out = append(out, e.Tenant)
			}
		}
		from = evs[len(evs)-1].Position + 1
	}
}
