package projections

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Rule ids. They are stable: they appear in recorded decisions and in
// customers' explanations, so a rule may change its numbers but never its id.
const (
	RuleSuppression       = "suppression"
	RuleWithdrawal        = "withdrawal"
	RuleMarketingConsent  = "marketing-consent"
	RuleServiceBasis      = "service-basis"
	RuleFlashServiceOnly  = "flash-service-only"
	RuleQuietHours        = "quiet-hours"
	RuleFrequency         = "frequency"
	RuleComplaintCooldown = "complaint-cooldown"
	RuleLineSuspended     = "line-suspended"
	RuleRegionBurst       = "region-burst"
	// RuleRelationshipActive is the rule a query naming a Contract adds:
	// that contract must be active for the tenant and subject, or expired
	// less than the service-basis grace period ago.
	RuleRelationshipActive = "relationship-active"
)

// Rule is one eligibility rule: everything a new rule needs is one more
// value in Rules (and the Config field its numbers are read into).
type Rule struct {
	// ID names the rule in decisions, metrics and reports.
	ID string
	// Fixed rules cannot be listed in Config.Disabled.
	Fixed bool
	// Numbers are the figures of the rules file the rule reads, with their
	// defaults and ranges: Default sets them, Validate checks them.
	Numbers []Number
	// Counts says what the rule counts, when it counts contacts: a
	// reminder's own dispatch feeds it, so a decision made after that
	// dispatch may deny by it with nothing else having changed.
	Counts string
	// Passes is true for a rule whose denial lifts with time alone (the
	// hour, a window sliding): a scheduled reminder it denies is deferred.
	Passes bool
	// Plain says what the rule meant to the customer it was about, on the
	// page at /me.
	Plain Plain
	// eval adds the rule's reasons to a decision.
	eval func(*eval)
}

// Plain is a rule's meaning in plain words, for when it allowed and when
// it denied, in Chinese and English. A rule that never allows leaves the
// allow sentences empty.
type Plain struct {
	AllowZH, AllowEN, DenyZH, DenyEN string
}

// Rules lists every rule in the order Decide evaluates them, which is the
// order of a decision's reasons.
var Rules = []Rule{{
	ID: RuleSuppression,
	Plain: Plain{DenyZH: "您的号码在该企业的免打扰名单上，或在全国免打扰名单上（营销不得联系）。",
		DenyEN: "Your number is on the business's do-not-contact list, or on a national one that forbids marketing."},
	eval: func(e *eval) {
		e.suppression()
		e.erasure()
	},
}, {
	ID:    RuleWithdrawal,
	Plain: Plain{DenyZH: "您曾要求该企业不要再这样联系您。", DenyEN: "You had asked this business not to contact you this way."},
	eval:  (*eval).withdrawal,
}, {
	ID: RuleMarketingConsent,
	Numbers: []Number{
		boolNumber("marketing_consent.bundled_terms_enough", func(c *Config) *bool { return &c.MarketingConsent.BundledTermsEnough }, false),
	},
	Plain: Plain{AllowZH: "您明确同意过接收该企业的营销信息。", AllowEN: "You had clearly agreed to marketing from this business.",
		DenyZH: "您没有有效地同意接收营销信息（应用条款中的捆绑同意不算，过期的同意也不算）。",
		DenyEN: "You had not validly agreed to marketing (consent buried in app terms does not count, nor does an expired one)."},
	eval: (*eval).marketing,
}, {
	ID: RuleServiceBasis,
	Numbers: []Number{
		intNumber("service_basis.grace_days", func(c *Config) *int { return &c.ServiceBasis.GraceDays }, 90, 0, 3650),
	},
	Plain: Plain{AllowZH: "您是该企业的客户（有有效的合同，或合同刚到期不久），或同意过接收服务信息。",
		AllowEN: "You are a customer of the business (a contract that is active or recently expired), or agreed to service messages.",
		DenyZH:  "您不是该企业的客户，也没有同意过接收服务信息。", DenyEN: "You are not a customer of the business and did not agree to service messages."},
	eval: (*eval).service,
}, {
	ID:    RuleFlashServiceOnly,
	Plain: Plain{DenyZH: "闪信只能用于服务提醒，不能用于营销。", DenyEN: "Flash messages may carry service reminders only, never marketing."},
	eval:  (*eval).flash,
}, {
	ID: RuleQuietHours,
	Numbers: []Number{
		clockNumber("quiet_hours.start", func(c *Config) (*string, *int) { return &c.QuietHours.Start, &c.quietStart }, "21:00"),
		clockNumber("quiet_hours.end", func(c *Config) (*string, *int) { return &c.QuietHours.End, &c.quietEnd }, "08:00"),
		zoneNumber("quiet_hours.fallback_zone", "Asia/Shanghai"),
	},
	Passes: true,
	Plain:  Plain{DenyZH: "当时是您当地的休息时间，不得联系。", DenyEN: "It was night-time where you live, when no contact is allowed."},
	eval:   (*eval).quiet,
}, {
	ID: RuleFrequency,
	Numbers: []Number{
		intNumber("frequency.service.max", func(c *Config) *int { return &c.Frequency.Service.Max }, 3, 1, 1000),
		intNumber("frequency.service.days", func(c *Config) *int { return &c.Frequency.Service.Days }, 7, 1, 366),
		intNumber("frequency.marketing.max", func(c *Config) *int { return &c.Frequency.Marketing.Max }, 1, 1, 1000),
		intNumber("frequency.marketing.days", func(c *Config) *int { return &c.Frequency.Marketing.Days }, 30, 1, 366),
		intNumber("frequency.subject_per_day", func(c *Config) *int { return &c.Frequency.SubjectPerDay }, 10, 1, 1000),
	},
	Counts: "contacts per business, customer, channel and purpose over a window of days, and per number per day across businesses",
	Passes: true,
	Plain:  Plain{DenyZH: "短时间内联系您的次数已达上限。", DenyEN: "You had already been contacted as often as the limits allow."},
	eval:   (*eval).frequency,
}, {
	ID: RuleComplaintCooldown,
	Numbers: []Number{
		intNumber("complaint_cooldown.days", func(c *Config) *int { return &c.ComplaintCooldown.Days }, 180, 0, 3650),
	},
	Plain: Plain{DenyZH: "您近期投诉过该企业，它暂时不能向您推销。", DenyEN: "You had recently complained about the business, so it may not market to you for a while."},
	eval:  (*eval).cooldown,
}, {
	ID: RuleLineSuspended,
	Numbers: []Number{
		intNumber("line_suspension.window_days", func(c *Config) *int { return &c.LineSuspension.WindowDays }, 30, 1, 366),
		rateNumber("line_suspension.rate", func(c *Config) *float64 { return &c.LineSuspension.Rate }, 1.0/10000),
		intNumber("line_suspension.min_contacts", func(c *Config) *int { return &c.LineSuspension.MinContacts }, 10000, 1, math.MaxInt),
	},
	Plain: Plain{DenyZH: "这条线路因投诉过多已被暂停。", DenyEN: "The line was suspended for too many complaints."},
	eval:  (*eval).suspended,
}, {
	ID: RuleRegionBurst,
	Numbers: []Number{
		intNumber("region_burst.max_per_hour", func(c *Config) *int { return &c.RegionBurst.MaxPerHour }, 60, 1, 65535),
	},
	Counts: "contacts per line to one region in a clock hour",
	Passes: true,
	Plain:  Plain{DenyZH: "这条线路在一小时内向您所在地区拨打太多，暂时不得再联系。", DenyEN: "The line had contacted your area too often within the hour."},
	eval:   (*eval).burst,
}, {
	// Not switchable: a flash reminder about a relationship the business
	// does not have would be a message to anyone (invariant 4). It reads
	// service_basis.grace_days, which service-basis declares.
	ID:    RuleRelationshipActive,
	Fixed: true,
	Plain: Plain{AllowZH: "提醒说的是您与该企业的有效合同（或刚到期不久的合同）。",
		AllowEN: "The reminder is about your active (or recently expired) contract with the business.",
		DenyZH:  "提醒说的合同不是您与该企业的有效合同。", DenyEN: "The reminder is not about an active contract of yours with the business."},
	eval: func(e *eval) {
		if e.q.Contract != "" {
			e.relationship()
		}
	},
}}

// LookupRule returns the rule with id.
func LookupRule(id string) (Rule, bool) {
	i := slices.IndexFunc(Rules, func(r Rule) bool { return r.ID == id })
	if i < 0 {
		return Rule{}, false
	}
	return Rules[i], true
}

// Number is one figure of the rules file: its path there (as Validate's
// errors name it), how Default sets it and how Validate checks it.
type Number struct {
	Field string
	set   func(*Config)
	check func(*Config) error
}

func badNumber(field string, v any, want string) error {
	return fmt.Errorf("%w: %s = %v: %s", ErrConfig, field, v, want)
}

func intNumber(field string, get func(*Config) *int, def, lo, hi int) Number {
	want := fmt.Sprintf("must be %d..%d", lo, hi)
	if hi == math.MaxInt {
		want = fmt.Sprintf("must be at least %d", lo)
	}
	return Number{Field: field,
		set: func(c *Config) { *get(c) = def },
		check: func(c *Config) error {
			if v := *get(c); v < lo || v > hi {
				return badNumber(field, v, want)
			}
			return nil
		}}
}

func boolNumber(field string, get func(*Config) *bool, def bool) Number {
	return Number{Field: field, set: func(c *Config) { *get(c) = def }, check: func(*Config) error { return nil }}
}

// rateNumber is a fraction in (0, 1].
func rateNumber(field string, get func(*Config) *float64, def float64) Number {
	return Number{Field: field,
		set: func(c *Config) { *get(c) = def },
		check: func(c *Config) error {
			if v := *get(c); !(v > 0 && v <= 1) {
				return badNumber(field, v, "must be in (0, 1]")
			}
			return nil
		}}
}

// clockNumber is an "HH:MM" time of day; Validate keeps it in minutes
// after midnight too.
func clockNumber(field string, get func(*Config) (*string, *int), def string) Number {
	return Number{Field: field,
		set: func(c *Config) { s, _ := get(c); *s = def },
		check: func(c *Config) error {
			s, m := get(c)
			var err error
			if *m, err = clock(*s); err != nil {
				return badNumber(field, *s, err.Error())
			}
			return nil
		}}
}

// zoneNumber is quiet_hours.fallback_zone, an IANA time zone.
func zoneNumber(field, def string) Number {
	return Number{Field: field,
		set: func(c *Config) { c.QuietHours.FallbackZone = def },
		check: func(c *Config) error {
			var err error
			if c.fallback, err = time.LoadLocation(c.QuietHours.FallbackZone); err != nil || c.QuietHours.FallbackZone == "" {
				return badNumber(field, c.QuietHours.FallbackZone, "must be an IANA time zone")
			}
			return nil
		}}
}
