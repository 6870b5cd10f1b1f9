package projections

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
)

func grant(source string, channels, purposes []string) ledger.ConsentGranted {
	return ledger.ConsentGranted{Channels: channels, Purposes: purposes, Source: source}
}

var (
	call      = []string{ledger.ChannelCall}
	sms       = []string{ledger.ChannelSMS}
	marketing = []string{ledger.PurposeMarketing}
	service   = []string{ledger.PurposeService}
)

// basis gives the subject a contract, so service contact has a basis.
func basis(b *book) uint32 {
	policy(b, base.Add(-days(60)), nil)
	return 0
}

func policy(b *book, at time.Time, expires *time.Time) uint32 {
	return b.contact(tenant, subject, at, ledger.RelationshipStarted{ContractRef: "P-1", Product: "car insurance", StartsAt: at, ExpiresAt: expires})
}

func ptr(t time.Time) *time.Time { return &t }

func called(b *book, subj string, at time.Time, channel, purpose string) uint32 {
	return b.contact(tenant, subj, at, ledger.ContactMade{Line: line1, Channel: channel, Purpose: purpose})
}

type ruleCase struct {
	name  string
	cfg   func(*Config)
	setup func(b *book) uint32 // returns the event a denial must cite, or 0
	q     Query
	deny  bool
}

// TestRules checks every rule with cases that allow and cases that deny,
// each in isolation from the others' verdicts.
func TestRules(t *testing.T) {
	past := base.Add(-days(60))
	tests := map[string][]ruleCase{
		RuleSuppression: {
			{name: "no list", setup: basis},
			{name: "tenant list denies service", deny: true, setup: func(b *book) uint32 {
				policy(b, past, nil)
				return b.contact(tenant, subject, past, ledger.SuppressionListed{Scope: "tenant", List: "dnc"})
			}},
			{name: "tenant list lifted", setup: func(b *book) uint32 {
				b.contact(tenant, subject, past, ledger.SuppressionListed{Scope: "tenant", List: "dnc"})
				b.contact(tenant, subject, past, ledger.SuppressionLifted{Scope: "tenant", List: "dnc"})
				return 0
			}},
			{name: "national list denies marketing", deny: true, q: Query{Purpose: ledger.PurposeMarketing}, setup: func(b *book) uint32 {
				b.contact(tenant, subject, past, grant("web_form", call, marketing))
				return b.add(ledger.SubjectStream(subject), "", subject, past, ledger.SuppressionListed{Scope: "global", List: "national"})
			}},
			{name: "national list leaves service", setup: func(b *book) uint32 {
				policy(b, past, nil)
				b.add(ledger.SubjectStream(subject), "", subject, past, ledger.SuppressionListed{Scope: "global", List: "national"})
				return 0
			}},
		},
		RuleWithdrawal: {
			{name: "no withdrawal", q: Query{Purpose: ledger.PurposeMarketing}, setup: func(b *book) uint32 {
				b.contact(tenant, subject, past, grant("web_form", call, marketing))
				return 0
			}},
			{name: "withdraw all after grant", deny: true, q: Query{Purpose: ledger.PurposeMarketing}, setup: func(b *book) uint32 {
				b.contact(tenant, subject, past, grant("web_form", call, marketing))
				return b.contact(tenant, subject, past, ledger.ConsentWithdrawn{All: true, Via: "call"})
			}},
			{name: "granted again after withdrawal", q: Query{Purpose: ledger.PurposeMarketing}, setup: func(b *book) uint32 {
				b.contact(tenant, subject, past, ledger.ConsentWithdrawn{All: true, Via: "call"})
				b.contact(tenant, subject, past, grant("web_form", call, marketing))
				return 0
			}},
			{name: "other channel withdrawn", q: Query{Purpose: ledger.PurposeMarketing}, setup: func(b *book) uint32 {
				b.contact(tenant, subject, past, grant("web_form", []string{"call", "sms"}, marketing))
				b.contact(tenant, subject, past, ledger.ConsentWithdrawn{Channels: sms, Via: "sms_keyword", RawText: "TD"})
				return 0
			}},
			{name: "service withdrawn despite contract", deny: true, setup: func(b *book) uint32 {
				policy(b, past, nil)
				return b.contact(tenant, subject, past, ledger.ConsentWithdrawn{Purposes: service, Via: "agent"})
			}},
		},
		RuleMarketingConsent: {
			{name: "explicit grant", q: Query{Purpose: ledger.PurposeMarketing}, setup: func(b *book) uint32 {
				b.contact(tenant, subject, past, grant("web_form", call, marketing))
				return 0
			}},
			{name: "bundled terms only", deny: true, q: Query{Purpose: ledger.PurposeMarketing}, setup: func(b *book) uint32 {
				return b.contact(tenant, subject, past, grant("bundled_terms", call, marketing))
			}},
			{name: "bundled terms when configured enough", q: Query{Purpose: ledger.PurposeMarketing},
				cfg: func(c *Config) { c.MarketingConsent.BundledTermsEnough = true },
				setup: func(b *book) uint32 {
					b.contact(tenant, subject, past, grant("bundled_terms", call, marketing))
					return 0
				}},
			{name: "expired grant", deny: true, q: Query{Purpose: ledger.PurposeMarketing}, setup: func(b *book) uint32 {
				g := grant("web_form", call, marketing)
				g.ExpiresAt = ptr(base.Add(-days(1)))
				return b.contact(tenant, subject, past, g)
			}},
			{name: "grant for another channel", deny: true, q: Query{Purpose: ledger.PurposeMarketing}, setup: func(b *book) uint32 {
				b.contact(tenant, subject, past, grant("web_form", sms, marketing))
				return 0
			}},
		},
		RuleServiceBasis: {
			{name: "active contract", setup: func(b *book) uint32 { return policy(b, past, ptr(base.Add(days(30)))) }},
			{name: "expired within grace", setup: func(b *book) uint32 { return policy(b, base.Add(-days(400)), ptr(base.Add(-days(30)))) }},
			{name: "expired beyond grace", deny: true, setup: func(b *book) uint32 { return policy(b, base.Add(-days(400)), ptr(base.Add(-days(91)))) }},
			{name: "contract ended", deny: true, setup: func(b *book) uint32 {
				p := policy(b, past, nil)
				b.contact(tenant, subject, past, ledger.RelationshipEnded{ContractRef: "P-1", EndedAt: base.Add(-days(1))})
				return p
			}},
			{name: "contract not started yet", deny: true, setup: func(b *book) uint32 {
				b.contact(tenant, subject, past, ledger.RelationshipStarted{ContractRef: "P-2", StartsAt: base.Add(days(3))})
				return 0
			}},
			{name: "second contract still active", setup: func(b *book) uint32 {
				policy(b, past, nil)
				b.contact(tenant, subject, past, ledger.RelationshipStarted{ContractRef: "P-2", StartsAt: past})
				b.contact(tenant, subject, past, ledger.RelationshipEnded{ContractRef: "P-1", EndedAt: past})
				return 0
			}},
			{name: "service consent", setup: func(b *book) uint32 {
				b.contact(tenant, subject, past, grant("sms_reply", call, service))
				return 0
			}},
			{name: "stranger", deny: true, setup: func(b *book) uint32 { return 0 }},
		},
		RuleFlashServiceOnly: {
			{name: "flash service", q: Query{Channel: ledger.ChannelFlash}, setup: basis},
			{name: "flash marketing", deny: true, q: Query{Channel: ledger.ChannelFlash, Purpose: ledger.PurposeMarketing}, setup: func(b *book) uint32 {
				b.contact(tenant, subject, past, grant("web_form", []string{"flash"}, marketing))
				return 0
			}},
		},
		RuleQuietHours: {
			{name: "10:00 Beijing", q: Query{At: time.Date(2026, 11, 2, 2, 0, 0, 0, time.UTC)}, setup: basis},
			{name: "22:00 Beijing", deny: true, q: Query{At: time.Date(2026, 11, 2, 14, 0, 0, 0, time.UTC)}, setup: basis},
			{name: "07:59 Beijing", deny: true, q: Query{At: time.Date(2026, 11, 1, 23, 59, 0, 0, time.UTC)}, setup: basis},
			{name: "08:00 Beijing", q: Query{At: time.Date(2026, 11, 2, 0, 0, 0, 0, time.UTC)}, setup: basis},
			{name: "noon Beijing is midnight in New York", deny: true, q: Query{Number: "+12125551234"}, setup: basis},
			{name: "no number uses fallback zone", q: Query{Number: "-"}, setup: basis},
		},
		RuleFrequency: {
			{name: "two service calls this week", setup: func(b *book) uint32 {
				policy(b, past, nil)
				called(b, subject, base.Add(-days(1)), "call", "service")
				called(b, subject, base.Add(-days(2)), "call", "service")
				return 0
			}},
			{name: "three service calls this week", deny: true, setup: func(b *book) uint32 {
				policy(b, past, nil)
				called(b, subject, base.Add(-days(1)), "call", "service")
				called(b, subject, base.Add(-days(2)), "call", "service")
				return called(b, subject, base.Add(-days(6)), "call", "service")
			}},
			{name: "third call older than the window", setup: func(b *book) uint32 {
				policy(b, past, nil)
				called(b, subject, base.Add(-days(8)), "call", "service")
				called(b, subject, base.Add(-days(1)), "call", "service")
				called(b, subject, base.Add(-days(2)), "call", "service")
				return 0
			}},
			{name: "other channel does not count", setup: func(b *book) uint32 {
				policy(b, past, nil)
				for i := range 3 {
					called(b, subject, base.Add(-days(i+1)), "sms", "service")
				}
				return 0
			}},
			{name: "calls survive a flood of messages", deny: true, setup: func(b *book) uint32 {
				policy(b, past, nil)
				p := called(b, subject, base.Add(-days(3)), "call", "service")
				called(b, subject, base.Add(-days(3)), "call", "service")
				called(b, subject, base.Add(-days(3)), "call", "service")
				for range 8 {
					called(b, subject, base.Add(-days(2)), "sms", "service")
				}
				return p
			}},
			{name: "one marketing call this month", deny: true, q: Query{Purpose: ledger.PurposeMarketing}, setup: func(b *book) uint32 {
				b.contact(tenant, subject, past, grant("web_form", call, marketing))
				return called(b, subject, base.Add(-days(20)), "call", "marketing")
			}},
			{name: "ten contacts today across businesses", deny: true, setup: func(b *book) uint32 {
				policy(b, past, nil)
				for i := range 5 {
					ten := fmt.Sprintf("other-%d", i)
					for _, ch := range []string{"call", "sms"} {
						b.contact(ten, subject, base.Add(-time.Hour), ledger.ContactMade{Line: "x", Channel: ch, Purpose: "service"})
					}
				}
				return 0
			}},
			{name: "nine contacts today across businesses", setup: func(b *book) uint32 {
				policy(b, past, nil)
				for i := range 9 {
					b.contact(fmt.Sprintf("other-%d", i), subject, base.Add(-time.Hour), ledger.ContactMade{Line: "x", Channel: "call", Purpose: "service"})
				}
				return 0
			}},
		},
		RuleComplaintCooldown: {
			{name: "complaint 10 days ago", deny: true, q: Query{Purpose: ledger.PurposeMarketing}, setup: func(b *book) uint32 {
				b.contact(tenant, subject, past, grant("web_form", call, marketing))
				return b.contact(tenant, subject, base.Add(-days(10)), ledger.ComplaintReceived{Source: "customer"})
			}},
			{name: "complaint 200 days ago", q: Query{Purpose: ledger.PurposeMarketing}, setup: func(b *book) uint32 {
				b.contact(tenant, subject, base.Add(-days(250)), grant("web_form", call, marketing))
				b.contact(tenant, subject, base.Add(-days(200)), ledger.ComplaintReceived{Source: "customer"})
				return 0
			}},
			{name: "service is not cooled down", setup: func(b *book) uint32 {
				policy(b, past, nil)
				b.contact(tenant, subject, base.Add(-days(10)), ledger.ComplaintReceived{Source: "customer"})
				return 0
			}},
		},
		RuleLineSuspended: {
			{name: "line in service", setup: basis},
			{name: "line suspended", deny: true, setup: func(b *book) uint32 {
				policy(b, past, nil)
				return b.add(ledger.LineStream(tenant, line1), tenant, "", past, ledger.LineSuspended{Line: line1, Rule: RuleLineSuspended, Contacts: 10000, Complaints: 1, Rate: 1e-4, WindowDays: 30})
			}},
			{name: "line reinstated", setup: func(b *book) uint32 {
				policy(b, past, nil)
				b.add(ledger.LineStream(tenant, line1), tenant, "", past, ledger.LineSuspended{Line: line1, Rule: RuleLineSuspended})
				b.add(ledger.LineStream(tenant, line1), tenant, "", past, ledger.LineReinstated{Line: line1, Reason: "vendor audited"})
				return 0
			}},
			{name: "another line suspended", setup: func(b *book) uint32 {
				policy(b, past, nil)
				b.add(ledger.LineStream(tenant, "pbx-2"), tenant, "", past, ledger.LineSuspended{Line: "pbx-2", Rule: RuleLineSuspended})
				return 0
			}},
		},
		RuleRegionBurst: {
			{name: "59 calls to Beijing this hour", setup: func(b *book) uint32 {
				policy(b, past, nil)
				burstOf(b, 59, "北京市", base.Add(-30*time.Minute))
				return 0
			}},
			{name: "60 calls to Beijing this hour", deny: true, setup: func(b *book) uint32 {
				policy(b, past, nil)
				return burstOf(b, 60, "北京市", base.Add(-0*time.Minute))
			}},
			{name: "60 calls to Beijing last hour", setup: func(b *book) uint32 {
				policy(b, past, nil)
				burstOf(b, 60, "北京市", base.Add(-time.Hour))
				return 0
			}},
			{name: "60 calls to Shanghai", setup: func(b *book) uint32 { policy(b, past, nil); burstOf(b, 60, "上海市", base); return 0 }},
			{name: "60 calls from another line", q: Query{Line: "pbx-9"}, setup: func(b *book) uint32 { policy(b, past, nil); burstOf(b, 60, "北京市", base); return 0 }},
		},
		RuleRelationshipActive: {
			{name: "no contract named", setup: basis},
			{name: "active contract named", q: Query{Contract: "P-1"}, setup: basis},
			{name: "unknown contract named", deny: true, q: Query{Contract: "P-9"}, setup: basis},
			{name: "ended contract named", deny: true, q: Query{Contract: "P-1"}, setup: func(b *book) uint32 {
				p := policy(b, past, nil)
				b.contact(tenant, subject, past, ledger.RelationshipEnded{ContractRef: "P-1", EndedAt: base.Add(-days(1))})
				return p
			}},
		},
	}
	for i, r := range Rules {
		rule := r.ID
		cases := tests[rule]
		var allows, denies int
		for _, tc := range cases {
			if tc.deny {
				denies++
			} else {
				allows++
			}
		}
		if allows == 0 || denies == 0 {
			t.Errorf("rule %s needs allow and deny cases (has %d, %d)", rule, allows, denies)
		}
		for _, tc := range cases {
			t.Run(rule+"/"+tc.name, func(t *testing.T) {
				cfg := Default()
				if tc.cfg != nil {
					tc.cfg(cfg)
					if err := cfg.Validate(); err != nil {
						t.Fatal(err)
					}
				}
				b := newBook(t, cfg)
				cite := tc.setup(b)
				q := tc.q
				q.Tenant, q.Subject = tenant, subject
				if q.Number == "" {
					q.Number = number
				} else if q.Number == "-" {
					q.Number = ""
				}
				q.Channel = cmp(q.Channel, ledger.ChannelCall)
				q.Purpose = cmp(q.Purpose, ledger.PurposeService)
				q.Line = cmp(q.Line, line1)
				if q.At.IsZero() {
					q.At = base
				}
				d := b.decide(q)
				if got := d.Denied(rule); got != tc.deny {
					t.Fatalf("%s denied = %v, want %v; reasons %+v", rule, got, tc.deny, d.Reasons)
				}
				for _, r := range d.Reasons {
					if r.Rule == rule && (r.Text == "" || r.TextZH == "") {
						t.Errorf("reason without text: %+v", r)
					}
					if r.Rule == rule && r.Effect == Allow && Rules[i].Plain.AllowEN == "" {
						t.Errorf("%s allows, but its Plain has no sentence for the customer when it does", rule)
					}
					if r.Rule == rule && r.Effect == Deny && cite != 0 && !slices.Contains(r.Positions, uint64(cite)) {
						t.Errorf("denial cites %v, want it to include %d", r.Positions, cite)
					}
				}
				if d.RulesVersion != cfg.RulesVersion() || d.AsOf != b.st.pos {
					t.Errorf("version %q as of %d, want %q as of %d", d.RulesVersion, d.AsOf, cfg.RulesVersion(), b.st.pos)
				}
				if d.Allowed == slices.ContainsFunc(d.Reasons, func(r Reason) bool { return r.Effect == Deny }) {
					t.Errorf("allowed = %v contradicts reasons %+v", d.Allowed, d.Reasons)
				}
			})
		}
	}
}

// burstOf records n calls from line1 to region within the hour of at, to
// n different subjects, and returns the position of the last.
func burstOf(b *book, n int, region string, at time.Time) uint32 {
	var last uint32
	for i := range n {
		s := fmt.Sprintf("burst-%d", i)
		last = b.contact(tenant, s, at, ledger.ContactMade{Line: line1, Channel: "call", Purpose: "service", Region: region})
	}
	return last
}

func cmp(v, def string) string {
	if v == "" {
		return def
	}
	return v
}
