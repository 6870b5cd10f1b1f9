package notify

import (
	"bytes"
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/mem"
	"github.com/heed/heed/ledger/pii"
)

const (
	renewalSig  = "平安保险"
	renewalText = "您的保单{policy:ref}将于{date:date}到期"
)

// templateEvent appends one review event to tenant tn's renewal template.
func templateEvent(t *testing.T, st ledger.Store, tn string, payload any) {
	t.Helper()
	e, err := ledger.NewEvent(tn, "", time.Now(), payload)
	if err != nil {
		t.Fatal(err)
	}
	e.Actor = "key_reviewer"
	if _, err := st.Append(context.Background(), ledger.TemplateStream(tn, "renewal"), ledger.Any(), []ledger.Event{e}); err != nil {
		t.Fatal(err)
	}
}

// approveRenewal proposes and approves version 1 of the "renewal"
// template of tenant (and of each of tenants), once per store.
func approveRenewal(t *testing.T, st ledger.Store, tenants ...string) {
	t.Helper()
	for _, tn := range append([]string{tenant}, tenants...) {
		if rev, _ := st.StreamRevision(context.Background(), ledger.TemplateStream(tn, "renewal")); rev > 0 {
			continue
		}
		templateEvent(t, st, tn, ledger.TemplateProposed{TemplateID: "renewal", Version: 1, Purpose: "service", Signature: renewalSig, Text: renewalText})
		templateEvent(t, st, tn, ledger.TemplateApproved{TemplateID: "renewal", Version: 1})
	}
}

// lastReasons are the reasons of the reminder's final event.
func denialRules(res Result) []string {
	var out []string
	for _, r := range res.Reasons {
		if r.Effect == "deny" {
			out = append(out, r.Rule)
		}
	}
	return out
}

// TestFreeTextRefused: the promotion of the issue, as free text, is refused
// and nothing is recorded or sent; with the dev switch it goes out.
func TestFreeTextRefused(t *testing.T) {
	r := newRig(t)
	r.relate(t, number)
	q := req("promo")
	q.TemplateID, q.TemplateVersion, q.Params = "", 0, nil
	q.Text = "双十一大促！全场车险五折，回复1立即抢购"
	head, _ := r.store.Head(context.Background())
	if _, err := r.n.Remind(context.Background(), q); !errors.Is(err, ErrFreeText) {
		t.Fatalf("free text: err = %v, want ErrFreeText", err)
	}
	if now, _ := r.store.Head(context.Background()); now != head || r.sender.count() != 0 {
		t.Fatalf("free text was recorded (%d → %d) or sent (%d)", head, now, r.sender.count())
	}
	cfg := r.n.cfg
	cfg.FreeText = true
	dev := New(cfg)
	res, err := dev.Remind(context.Background(), q)
	if err != nil || res.State != StateSubmitted || r.sender.sent[0].Text != q.Text {
		t.Fatalf("with FreeText: %+v, %v", res, err)
	}
}

// TestTemplateMustBeApproved: a reminder naming a version that is not
// approved for its own tenant is denied with template-approved, recorded,
// and not sent.
func TestTemplateMustBeApproved(t *testing.T) {
	for _, c := range []struct {
		name    string
		setup   func(t *testing.T, st ledger.Store)
		version int
	}{
		{"never proposed", func(*testing.T, ledger.Store) {}, 1},
		{"pending", func(t *testing.T, st ledger.Store) {
			templateEvent(t, st, tenant, ledger.TemplateProposed{TemplateID: "renewal", Version: 1, Purpose: "service", Signature: renewalSig, Text: renewalText})
		}, 1},
		{"rejected", func(t *testing.T, st ledger.Store) {
			templateEvent(t, st, tenant, ledger.TemplateProposed{TemplateID: "renewal", Version: 1, Purpose: "service", Signature: renewalSig, Text: renewalText})
			templateEvent(t, st, tenant, ledger.TemplateRejected{TemplateID: "renewal", Version: 1, Reason: "reads as marketing"})
		}, 1},
		{"revoked", func(t *testing.T, st ledger.Store) {
			approveRenewal(t, st)
			templateEvent(t, st, tenant, ledger.TemplateRevoked{TemplateID: "renewal", Version: 1, Reason: "misused"})
		}, 1},
		{"another version", func(t *testing.T, st ledger.Store) { approveRenewal(t, st) }, 2},
		{"another tenant's", func(t *testing.T, st ledger.Store) {
			templateEvent(t, st, "other", ledger.TemplateProposed{TemplateID: "renewal", Version: 1, Purpose: "service", Signature: renewalSig, Text: renewalText})
			templateEvent(t, st, "other", ledger.TemplateApproved{TemplateID: "renewal", Version: 1})
		}, 1},
		{"approval in another tenant's stream", func(t *testing.T, st ledger.Store) {
			templateEvent(t, st, tenant, ledger.TemplateProposed{TemplateID: "renewal", Version: 1, Purpose: "service", Signature: renewalSig, Text: renewalText})
			// An event of tenant "other" cannot approve tenant's template,
			// even in its stream.
			e, _ := ledger.NewEvent("other", "", time.Now(), ledger.TemplateApproved{TemplateID: "renewal", Version: 1})
			if _, err := st.Append(context.Background(), ledger.TemplateStream(tenant, "renewal"), ledger.Any(), []ledger.Event{e}); err != nil {
				t.Fatal(err)
			}
		}, 1},
	} {
		t.Run(c.name, func(t *testing.T) {
			st := mem.New()
			t.Cleanup(func() { st.Close() })
			c.setup(t, st)
			sender := &fakeSender{}
			n := New(Config{Store: st, Decider: &streamDecider{store: st}, Sender: sender, Lines: map[string]string{line: tenant},
				DefaultLine: line, Pseudonym: pseudo})
			e, _ := ledger.NewEvent(tenant, pseudo(number), time.Now(), ledger.RelationshipStarted{ContractRef: "P-1", StartsAt: time.Now()})
			if _, err := st.Append(context.Background(), ledger.ContactStream(tenant, pseudo(number)), ledger.Any(), []ledger.Event{e}); err != nil {
				t.Fatal(err)
			}
			q := req("r1")
			q.TemplateVersion = c.version
			res, err := n.Remind(context.Background(), q)
			if err != nil {
				t.Fatal(err)
			}
			if res.State != StateDenied || strings.Join(denialRules(res), ",") != RuleTemplateApproved || sender.count() != 0 {
				t.Fatalf("state %s, denied by %v, %d sent; want denied by template-approved, none sent", res.State, denialRules(res), sender.count())
			}
			last := res.Events[len(res.Events)-1]
			if last.Type != ledger.TypeReminderDenied || !strings.Contains(string(last.Data), `"rule":"template-approved"`) {
				t.Fatalf("recorded %s %s", last.Type, last.Data)
			}
		})
	}
}

// TestRevocationStopsLaterReminders: an approved version sends; once
// revoked, the next reminder naming it is denied.
func TestRevocationStopsLaterReminders(t *testing.T) {
	r := newRig(t)
	r.relate(t, number)
	if res, err := r.n.Remind(context.Background(), req("before")); err != nil || res.State != StateSubmitted {
		t.Fatalf("before revocation: %+v, %v", res, err)
	}
	templateEvent(t, r.store, tenant, ledger.TemplateRevoked{TemplateID: "renewal", Version: 1, Reason: "misused"})
	res, err := r.n.Remind(context.Background(), req("after"))
	if err != nil || res.State != StateDenied || !strings.Contains(strings.Join(denialRules(res), ","), RuleTemplateApproved) {
		t.Fatalf("after revocation: %s %v, %v", res.State, denialRules(res), err)
	}
	if r.sender.count() != 1 {
		t.Fatalf("%d submitted, want 1", r.sender.count())
	}
}

// TestRevocationBeforeSubmit: a revocation acknowledged after the template
// was read but before the submit stops the reminder.
func TestRevocationBeforeSubmit(t *testing.T) {
	r := newRig(t)
	r.relate(t, number)
	r.dec.after = func(Query) {
		r.dec.after = nil
		templateEvent(t, r.store, tenant, ledger.TemplateRevoked{TemplateID: "renewal", Version: 1, Reason: "misused"})
	}
	res, err := r.n.Remind(context.Background(), req("raced"))
	if err != nil || res.State != StateDenied || r.sender.count() != 0 {
		t.Fatalf("state %s, err %v, %d sent; want denied, none sent", res.State, err, r.sender.count())
	}
	if got := strings.Join(r.types(t, number), " "); got != "RelationshipStarted ReminderRequested ReminderDispatched ReminderDenied" {
		t.Fatalf("stream = %s", got)
	}
}

// TestParamsCannotSmuggleText: values carrying a link, a mobile number,
// promotional wording or the wrong type are denied with template-params,
// and never sent.
func TestParamsCannotSmuggleText(t *testing.T) {
	for name, params := range map[string]map[string]string{
		"url in ref":         {"policy": "t.cn/x", "date": "2026-12-01"},
		"mobile in ref":      {"policy": "13912345678", "date": "2026-12-01"},
		"promotion in date":  {"policy": "P-1", "date": "五折抢购"},
		"reply to subscribe": {"policy": "P-1", "date": "回复1"},
		"missing":            {"policy": "P-1"},
		"extra":              {"policy": "P-1", "date": "2026-12-01", "note": "全场五折"},
	} {
		t.Run(name, func(t *testing.T) {
			r := newRig(t)
			r.relate(t, number)
			q := req("smuggle")
			q.Params = params
			res, err := r.n.Remind(context.Background(), q)
			if err != nil {
				t.Fatal(err)
			}
			if res.State != StateDenied || strings.Join(denialRules(res), ",") != RuleTemplateParams || r.sender.count() != 0 {
				t.Fatalf("state %s denied by %v, %d sent", res.State, denialRules(res), r.sender.count())
			}
			for _, v := range params {
				if v == "P-1" {
					continue // the contract, recorded as such
				}
				for _, e := range res.Events {
					if strings.Contains(string(e.Data), v) {
						t.Fatalf("%s records the value in clear: %s", e.Type, e.Data)
					}
				}
			}
		})
	}
}

// TestSealedParamsRebuildTheText: the parameters are sealed under the
// (tenant, subject) key, never in Data; opened, they rebuild exactly the
// text sent, which the content hash confirms.
func TestSealedParamsRebuildTheText(t *testing.T) {
	keys, err := pii.OpenKeys(filepath.Join(t.TempDir(), "keys.db"), bytes.Repeat([]byte{7}, 32))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { keys.Close() })
	r := newRig(t)
	cfg := r.n.cfg
	cfg.Sealer = keys
	r.n = New(cfg)
	r.relate(t, number)
	res, err := r.n.Remind(context.Background(), req("sealed"))
	if err != nil || res.State != StateSubmitted {
		t.Fatalf("%+v, %v", res, err)
	}
	requested := res.Events[0]
	if requested.Type != ledger.TypeReminderRequested || len(requested.PII) == 0 {
		t.Fatalf("first event %s has no sealed fields", requested.Type)
	}
	for _, e := range res.Events {
		if strings.Contains(string(e.Data), "2026-12-01") || bytes.Contains(e.PII, []byte("2026-12-01")) {
			t.Fatalf("%s holds a parameter in clear", e.Type)
		}
	}
	fields, err := keys.Open(pii.Owner(tenant, pseudo(number)), requested.PII)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := ledger.Decode(&requested)
	rq := p.(*ledger.ReminderRequested)
	if rq.TemplateID != "renewal" || rq.TemplateVersion != 1 || rq.ContractRef != "P-1" {
		t.Fatalf("requested %+v", rq)
	}
	vs, _, err := ReadTemplate(context.Background(), r.store, tenant, "renewal")
	if err != nil {
		t.Fatal(err)
	}
	text, ok, err := Rebuild(vs[0], fields, rq.ContentHash)
	if err != nil || !ok || text != r.sender.sent[0].Text {
		t.Fatalf("rebuilt %q (hash ok %v, %v), sent %q", text, ok, err, r.sender.sent[0].Text)
	}
	// Erased, the parameters no longer open.
	if _, err := keys.Erase(pii.Owner(tenant, pseudo(number))); err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Open(pii.Owner(tenant, pseudo(number)), requested.PII); err == nil {
		t.Fatal("parameters open after erasure")
	}
}

// TestReadTemplate folds a template's review in order: only the expected
// transitions count.
func TestReadTemplate(t *testing.T) {
	st := mem.New()
	t.Cleanup(func() { st.Close() })
	templateEvent(t, st, tenant, ledger.TemplateProposed{TemplateID: "renewal", Version: 1, Purpose: "service", Signature: renewalSig, Text: renewalText})
	templateEvent(t, st, tenant, ledger.TemplateRevoked{TemplateID: "renewal", Version: 1, Reason: "not approved yet"})
	templateEvent(t, st, tenant, ledger.TemplateRejected{TemplateID: "renewal", Version: 1, Reason: "marketing"})
	templateEvent(t, st, tenant, ledger.TemplateApproved{TemplateID: "renewal", Version: 1})
	templateEvent(t, st, tenant, ledger.TemplateProposed{TemplateID: "renewal", Version: 3, Purpose: "service", Signature: renewalSig, Text: renewalText})
	templateEvent(t, st, tenant, ledger.TemplateProposed{TemplateID: "renewal", Version: 2, Purpose: "service", Signature: renewalSig, Text: renewalText})
	templateEvent(t, st, tenant, ledger.TemplateApproved{TemplateID: "renewal", Version: 2})
	templateEvent(t, st, tenant, ledger.TemplateRevoked{TemplateID: "renewal", Version: 2, Reason: "misused"})
	vs, rev, err := ReadTemplate(context.Background(), st, tenant, "renewal")
	if err != nil || rev != 8 {
		t.Fatalf("rev %d, %v", rev, err)
	}
	var got []string
	for _, v := range vs {
		got = append(got, v.State)
	}
	if strings.Join(got, ",") != "rejected,revoked" || vs[0].Reason != "marketing" || vs[1].Reason != "misused" || vs[1].DecidedBy != "key_reviewer" {
		t.Fatalf("versions %+v", vs)
	}
}
