package notify

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/ledgertest"
	"github.com/heed/heed/ledger/mem"
	"github.com/heed/heed/ledger/pii"
	"github.com/heed/heed/smpp/text"
)

// TestSenderNumber reads sender addresses the way SMSCs deliver them.
func TestSenderNumber(t *testing.T) {
	const want = "+8613912340002"
	for _, c := range []struct {
		addr     string
		ton, npi byte
		want     string // empty: ErrSender
	}{
		{"13912340002", 2, 1, want},            // national, as Chinese gateways send it
		{"13912340002", 0, 0, want},            // unknown: national first
		{"13912340002", 0, 1, want},            // unknown TON, E.164 plan
		{"13912340002", 1, 1, want},            // mislabelled international: +1 391… is no number
		{"8613912340002", 1, 1, want},          // international
		{"8613912340002", 0, 1, want},          // unknown, with country code
		{"8613912340002", 2, 1, want},          // national TON, country code kept
		{"+8613912340002", 0, 0, want},         // plus form
		{"+8613912340002", 2, 1, want},         // plus wins over TON
		{"008613912340002", 0, 1, want},        // international prefix
		{"008613912340002", 1, 1, want},        // international prefix with TON 1
		{"01012345678", 2, 1, "+861012345678"}, // Beijing landline, trunk prefix
		{"12025550123", 1, 1, "+12025550123"},  // a US number, international
		{"+12025550123", 0, 0, "+12025550123"},
		{"10086", 6, 0, ""},             // abbreviated: an operator's short code
		{"10086", 0, 0, ""},             // short code with unknown TON
		{"95500", 3, 0, ""},             // network specific
		{"HEED", 5, 0, ""},              // alphanumeric
		{"", 1, 1, ""},                  // nothing
		{"+", 1, 1, ""},                 // nothing
		{"+86 139 1234 0002", 1, 1, ""}, // not bare digits
		{"861391234000２", 1, 1, ""},     // full-width digit
		{"00", 0, 0, ""},
	} {
		got, err := SenderNumber(c.addr, c.ton, c.npi, "CN")
		if c.want == "" {
			if !errors.Is(err, ErrSender) {
				t.Errorf("%q TON %d NPI %d: got %q, %v; want ErrSender", c.addr, c.ton, c.npi, got, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%q TON %d NPI %d: got %q, %v; want %s", c.addr, c.ton, c.npi, got, err, c.want)
		}
	}
	// The region reads national numbers: a US gateway's national form.
	if got, err := SenderNumber("2025550123", 2, 1, "US"); err != nil || got != "+12025550123" {
		t.Errorf("US national: %q, %v", got, err)
	}
}

// TestNationalFormOptOut: a TD whose sender is in national form (TON 2)
// withdraws for the customer, and the next reminder is not sent.
func TestNationalFormOptOut(t *testing.T) {
	r := newRig(t)
	const e164 = "+8613912340002"
	r.relate(t, e164)
	res, err := r.n.OnInbound(context.Background(), Inbound{From: "13912340002", FromTON: 2, FromNPI: 1, To: line, Text: "TD"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Withdrawals) != 1 || res.Withdrawals[0].Subject != pseudo(e164) {
		t.Fatalf("national-form TD: %+v", res)
	}
	q := req("r1")
	q.Number, q.Subject = e164, pseudo(e164)
	if got, err := r.n.Remind(context.Background(), q); err != nil || got.State != StateDenied || r.sender.count() != 0 {
		t.Fatalf("reminder after opt-out: %s, %v, %d submits", got.State, err, r.sender.count())
	}
}

// sharedRig is the default configuration: no line belongs to a tenant,
// every reminder goes from the default line.
func sharedRig(t *testing.T, st ledger.Store) (*rig, Config) {
	t.Helper()
	r := &rig{dec: &streamDecider{store: st}, sender: &fakeSender{}}
	if m, ok := st.(*mem.Store); ok {
		r.store = m
	}
	approveRenewal(t, st)
	cfg := Config{Store: st, Decider: r.dec, Sender: r.sender, DefaultLine: line, Pseudonym: pseudo, SMSC: "sim"}
	r.n = New(cfg)
	return r, cfg
}

func relate(t *testing.T, st ledger.Store, tenant, num string) {
	t.Helper()
	e, err := ledger.NewEvent(tenant, pseudo(num), time.Now(), ledger.RelationshipStarted{ContractRef: "P-1", StartsAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Append(context.Background(), ledger.ContactStream(tenant, pseudo(num)), ledger.Any(), []ledger.Event{e}); err != nil {
		t.Fatal(err)
	}
}

// TestSharedLineOptOut: with no --lines, a TD to the default line
// withdraws at every tenant that sent to the number from it — found in
// the log, so a restart between the reminder and the reply changes
// nothing — and the next reminder is not submitted. A tenant that never
// sent from the line is not touched; a TD from a number nobody sent to is
// recorded as unmatched. Run on the in-memory store and on KurrentDB (the
// in-process fake).
func TestSharedLineOptOut(t *testing.T) {
	stores := map[string]ledgertest.Opener{"mem": ledgertest.Stores["mem"], "kurrent": ledgertest.Stores["kurrent"]}
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			st := open(t)
			r, cfg := sharedRig(t, st)
			const other = "bank"
			approveRenewal(t, st, other)
			relate(t, st, tenant, number)
			relate(t, st, other, number)
			if res, err := r.n.Remind(ctx, req("r1")); err != nil || res.State != StateSubmitted {
				t.Fatalf("first reminder: %s, %v", res.State, err)
			}
			if m := r.sender.sent[0]; m.Line != line {
				t.Fatalf("sent from %s, want the default line", m.Line)
			}
			// A restart: nothing in memory says who sent from the line.
			n := New(cfg)
			res, err := n.OnInbound(ctx, Inbound{From: strings.TrimPrefix(number, "+"), FromTON: 1, FromNPI: 1, To: line, Text: "TD"})
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Withdrawals) != 1 || res.Withdrawals[0].Tenant != tenant {
				t.Fatalf("TD to the shared line: %+v", res)
			}
			got, err := n.Remind(ctx, req("r2"))
			if err != nil || got.State != StateDenied || r.sender.count() != 1 {
				t.Fatalf("reminder after TD: %s, %v, %d submits; want denied, 1", got.State, err, r.sender.count())
			}
			// The other tenant never sent from the line: its reminders go on.
			q := req("r3")
			q.Tenant = other
			if got, err := n.Remind(ctx, q); err != nil || got.State != StateSubmitted {
				t.Fatalf("other tenant's reminder: %s, %v", got.State, err)
			}
			// Nobody sent to this number from the line.
			res, err = n.OnInbound(ctx, Inbound{From: "8613700000011", FromTON: 1, FromNPI: 1, To: line, Text: "TD"})
			if err != nil || res.Unmatched == nil || res.Reason != ledger.UnmatchedLine {
				t.Fatalf("TD from a number nobody sent to: %+v, %v", res, err)
			}
		})
	}
}

// TestSenderLines: a tenant with several lines must name its SMS sender;
// reminders without a line go from it, not from the lowest-sorting line.
func TestSenderLines(t *testing.T) {
	lines := map[string]string{"10690001": "acme", "95500": "acme", "10690009": "bank"}
	for _, c := range []struct {
		name    string
		senders map[string]string
		err     bool
	}{
		{"several lines, none named", nil, true},
		{"named", map[string]string{"acme": "10690001"}, false},
		{"another tenant's line", map[string]string{"acme": "10690001", "bank": "95500"}, true},
		{"a shared line", map[string]string{"acme": "10690001", "bank": "10690077"}, false},
	} {
		err := Config{Lines: lines, Senders: c.senders}.Check()
		if (err != nil) != c.err || (err != nil && !errors.Is(err, ErrSenders)) {
			t.Errorf("%s: %v, want error %v", c.name, err, c.err)
		}
	}
	r := newRig(t)
	cfg := r.n.cfg
	// 10000 is acme's voice line and sorts first.
	cfg.Lines = map[string]string{"10690001": tenant, "10000": tenant}
	cfg.Senders = map[string]string{tenant: "10690001"}
	n := New(cfg)
	r.relate(t, number)
	if res, err := n.Remind(context.Background(), req("r1")); err != nil || res.State != StateSubmitted {
		t.Fatalf("reminder: %s, %v", res.State, err)
	}
	if got := r.sender.sent[0].Line; got != "10690001" {
		t.Errorf("sent from %s, want the named sender 10690001", got)
	}
}

// TestUnmatchedInboundRecorded: what heed cannot act on is recorded, its
// sender and text sealed (absent from Data, readable with the key), and
// counted by reason.
func TestUnmatchedInboundRecorded(t *testing.T) {
	keys, err := pii.OpenKeys(filepath.Join(t.TempDir(), "keys.db"), make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { keys.Close() })
	r := newRig(t)
	cfg := r.n.cfg
	cfg.Store = pii.Seal(r.store, keys)
	var mu sync.Mutex
	counted := map[string]int{}
	cfg.OnUnmatched = func(reason string) { mu.Lock(); counted[reason]++; mu.Unlock() }
	n := New(cfg)
	for _, c := range []struct {
		in     Inbound
		reason string
		tenant string
	}{
		{Inbound{From: "HEEDSHOP", FromTON: 5, To: line, Text: "TD marker-1"}, ledger.UnmatchedSender, tenant},
		{Inbound{From: "8613800138000", FromTON: 1, FromNPI: 1, To: line, Text: "what is this marker-2"}, ledger.UnmatchedKeyword, tenant},
		{Inbound{From: "8613800138000", FromTON: 1, FromNPI: 1, To: "10690077", Text: "ＴＤ"}, ledger.UnmatchedLine, ""},
	} {
		res, err := n.OnInbound(context.Background(), c.in)
		if err != nil {
			t.Fatal(err)
		}
		ev := res.Unmatched
		if ev == nil || res.Reason != c.reason || ev.Tenant != c.tenant || ev.Stream != ledger.InboundStream(c.in.To) {
			t.Fatalf("%q: %+v", c.in.Text, res)
		}
		if strings.Contains(string(ev.Data), c.in.Text) || strings.Contains(string(ev.Data), c.in.From) {
			t.Errorf("unsealed personal data: %s", ev.Data)
		}
		f, err := keys.OpenEvent(context.Background(), ev)
		if err != nil || f["text"] != c.in.Text || f["from"] != c.in.From {
			t.Errorf("sealed fields %v, %v", f, err)
		}
	}
	if counted[ledger.UnmatchedSender] != 1 || counted[ledger.UnmatchedKeyword] != 1 || counted[ledger.UnmatchedLine] != 1 {
		t.Errorf("counted %v", counted)
	}
}

// TestMultipartOptOut: the parts of a long reply are joined before the
// keyword match, in any order; a message whose parts stop coming is
// recorded when Sweep gives up on it.
func TestMultipartOptOut(t *testing.T) {
	r := newRig(t)
	cfg := r.n.cfg
	now := time.Now()
	cfg.Now = func() time.Time { return now }
	cfg.InboundWait = time.Minute
	n := New(cfg)
	r.relate(t, number)
	part := func(ref uint16, total, seq byte, s string) Inbound {
		return Inbound{From: number, To: line, Text: s, Concat: &text.Concat{Ref: ref, Total: total, Seq: seq}}
	}
	ctx := context.Background()
	for _, p := range []Inbound{part(9, 3, 3, "订 "), part(9, 3, 1, " 【")} {
		if res, err := n.OnInbound(ctx, p); err != nil || !res.Held {
			t.Fatalf("first parts: %+v, %v", res, err)
		}
	}
	if got, err := n.Remind(ctx, req("r1")); err != nil || got.State != StateSubmitted {
		t.Fatalf("reminder before the last part: %s, %v", got.State, err)
	}
	res, err := n.OnInbound(ctx, part(9, 3, 2, "退"))
	if err != nil || len(res.Withdrawals) != 1 {
		t.Fatalf("last part: %+v, %v", res, err)
	}
	if got, err := n.Remind(ctx, req("r2")); err != nil || got.State != StateDenied {
		t.Fatalf("reminder after the multi-part 退订: %s, %v", got.State, err)
	}
	// One part of two, and then nothing.
	if res, err := n.OnInbound(ctx, part(10, 2, 1, "please call me ")); err != nil || !res.Held {
		t.Fatalf("lone part: %+v, %v", res, err)
	}
	now = now.Add(time.Minute)
	if _, err := n.Sweep(ctx); err != nil {
		t.Fatal(err)
	}
	evs, err := r.store.ReadStream(ctx, ledger.InboundStream(line), 1, 0)
	if err != nil || len(evs) != 1 {
		t.Fatalf("incomplete message: %d events, %v", len(evs), err)
	}
	p, err := ledger.Decode(&evs[0])
	if u, ok := p.(*ledger.InboundUnmatched); err != nil || !ok || u.Reason != ledger.UnmatchedIncomplete || u.Parts != 1 || u.Total != 2 {
		t.Fatalf("recorded %+v, %v", p, err)
	}
}

// failOnce fails the next append when armed.
type failOnce struct {
	ledger.Store
	armed bool
}

func (f *failOnce) Append(ctx context.Context, stream string, exp ledger.Expected, evs []ledger.Event) ([]ledger.Event, error) {
	if f.armed {
		f.armed = false
		return nil, errors.New("disk full")
	}
	return f.Store.Append(ctx, stream, exp, evs)
}

// TestMultipartOptOutRedelivered: when the opt-out of a multi-part reply
// cannot be recorded, the handler fails (so the SMSC delivers the last
// part again) and the earlier parts are kept for it.
func TestMultipartOptOutRedelivered(t *testing.T) {
	r := newRig(t)
	r.relate(t, number)
	cfg := r.n.cfg
	st := &failOnce{Store: r.store}
	cfg.Store = st
	n := New(cfg)
	ctx := context.Background()
	part := func(seq byte, s string) Inbound {
		return Inbound{From: number, To: line, Text: s, Concat: &text.Concat{Ref: 3, Total: 2, Seq: seq}}
	}
	if _, err := n.OnInbound(ctx, part(1, "T")); err != nil {
		t.Fatal(err)
	}
	st.armed = true
	if _, err := n.OnInbound(ctx, part(2, "D")); err == nil {
		t.Fatal("the failed opt-out was acknowledged")
	}
	res, err := n.OnInbound(ctx, part(2, "D"))
	if err != nil || len(res.Withdrawals) != 1 {
		t.Fatalf("redelivered last part: %+v, %v", res, err)
	}
}
