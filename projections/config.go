package projections

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"time"
)

// ErrConfig means a rules configuration file is malformed or out of range.
var ErrConfig = errors.New("projections: invalid rules configuration")

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
)

// Rules lists every rule id in the order Decide evaluates them.
var Rules = []string{
	RuleSuppression, RuleWithdrawal, RuleMarketingConsent, RuleServiceBasis,
	RuleFlashServiceOnly, RuleQuietHours, RuleFrequency, RuleComplaintCooldown,
	RuleLineSuspended, RuleRegionBurst,
}

// ringSize is how many recent contacts a (tenant, subject) keeps in its
// record; the few subjects that need more spill into a side map.
const ringSize = 6

// Limit is "at most Max contacts per Days days".
type Limit struct {
	Max  int `json:"max"`
	Days int `json:"days"`
}

// Config holds every number the rules use. It is read from a JSON file,
// validated at start, and its Version is recorded in every decision.
type Config struct {
	// Version is the operator's name for this rule set, e.g. "2026-11".
	Version string `json:"version"`
	// Disabled lists rule ids switched off entirely.
	Disabled []string `json:"disabled,omitempty"`

	MarketingConsent struct {
		// BundledTermsEnough lets consent hidden in app terms count for
		// marketing; off by default (PIPL: a pre-ticked policy is no consent).
		BundledTermsEnough bool `json:"bundled_terms_enough"`
	} `json:"marketing_consent"`
	ServiceBasis struct {
		// GraceDays is how long after a contract expires service contact
		// stays allowed (renewal reminders).
		GraceDays int `json:"grace_days"`
	} `json:"service_basis"`
	QuietHours struct {
		// Start and End are "HH:MM" in the callee's own time zone; contact
		// is refused from Start until End (wrapping midnight).
		Start string `json:"start"`
		End   string `json:"end"`
		// FallbackZone is used when the number gives no time zone.
		FallbackZone string `json:"fallback_zone"`
	} `json:"quiet_hours"`
	Frequency struct {
		Service   Limit `json:"service"`
		Marketing Limit `json:"marketing"`
		// SubjectPerDay caps contacts to one subject across all tenants per
		// UTC calendar day.
		SubjectPerDay int `json:"subject_per_day"`
	} `json:"frequency"`
	ComplaintCooldown struct {
		Days int `json:"days"`
	} `json:"complaint_cooldown"`
	LineSuspension struct {
		WindowDays  int     `json:"window_days"`
		Rate        float64 `json:"rate"`
		MinContacts int     `json:"min_contacts"`
	} `json:"line_suspension"`
	RegionBurst struct {
		MaxPerHour int `json:"max_per_hour"`
	} `json:"region_burst"`

	quietStart, quietEnd int // minutes after midnight
	fallback             *time.Location
	version              string
}

// Default returns the rule numbers of DESIGN.md.
func Default() *Config {
	c := &Config{Version: "default"}
	c.ServiceBasis.GraceDays = 90
	c.QuietHours.Start, c.QuietHours.End = "21:00", "08:00"
	c.QuietHours.FallbackZone = "Asia/Shanghai"
	c.Frequency.Service = Limit{Max: 3, Days: 7}
	c.Frequency.Marketing = Limit{Max: 1, Days: 30}
	c.Frequency.SubjectPerDay = 10
	c.ComplaintCooldown.Days = 180
	c.LineSuspension.WindowDays = 30
	c.LineSuspension.Rate = 1.0 / 10000
	c.LineSuspension.MinContacts = 10000
	c.RegionBurst.MaxPerHour = 60
	if err := c.Validate(); err != nil {
		panic(err)
	}
	return c
}

// LoadConfig reads and validates a rules file. Unknown fields are refused so a
// misspelt number never silently falls back to zero.
func LoadConfig(path string) (*Config, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	return ParseConfig(b)
}

// ParseConfig decodes and validates a rules configuration.
func ParseConfig(b []byte) (*Config, error) {
	c := new(Config)
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(c); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

// Validate checks every field and prepares derived values; the error names
// the offending field.
func (c *Config) Validate() error {
	bad := func(field string, v any, want string) error {
		return fmt.Errorf("%w: %s = %v: %s", ErrConfig, field, v, want)
	}
	if c.Version == "" {
		return bad("version", `""`, "must name the rule set")
	}
	for _, r := range c.Disabled {
		if !slices.Contains(Rules, r) {
			return bad("disabled", r, "is not a rule id")
		}
	}
	if c.ServiceBasis.GraceDays < 0 || c.ServiceBasis.GraceDays > 3650 {
		return bad("service_basis.grace_days", c.ServiceBasis.GraceDays, "must be 0..3650")
	}
	var err error
	if c.quietStart, err = clock(c.QuietHours.Start); err != nil {
		return bad("quiet_hours.start", c.QuietHours.Start, err.Error())
	}
	if c.quietEnd, err = clock(c.QuietHours.End); err != nil {
		return bad("quiet_hours.end", c.QuietHours.End, err.Error())
	}
	if c.fallback, err = time.LoadLocation(c.QuietHours.FallbackZone); err != nil || c.QuietHours.FallbackZone == "" {
		return bad("quiet_hours.fallback_zone", c.QuietHours.FallbackZone, "must be an IANA time zone")
	}
	for _, l := range []struct {
		name string
		l    Limit
	}{{"frequency.service", c.Frequency.Service}, {"frequency.marketing", c.Frequency.Marketing}} {
		if l.l.Max < 1 || l.l.Max > 1000 {
			return bad(l.name+".max", l.l.Max, "must be 1..1000")
		}
		if l.l.Days < 1 || l.l.Days > 366 {
			return bad(l.name+".days", l.l.Days, "must be 1..366")
		}
	}
	if c.Frequency.SubjectPerDay < 1 || c.Frequency.SubjectPerDay > 1000 {
		return bad("frequency.subject_per_day", c.Frequency.SubjectPerDay, "must be 1..1000")
	}
	if c.ComplaintCooldown.Days < 0 || c.ComplaintCooldown.Days > 3650 {
		return bad("complaint_cooldown.days", c.ComplaintCooldown.Days, "must be 0..3650")
	}
	if c.LineSuspension.WindowDays < 1 || c.LineSuspension.WindowDays > 366 {
		return bad("line_suspension.window_days", c.LineSuspension.WindowDays, "must be 1..366")
	}
	if !(c.LineSuspension.Rate > 0 && c.LineSuspension.Rate <= 1) {
		return bad("line_suspension.rate", c.LineSuspension.Rate, "must be in (0, 1]")
	}
	if c.LineSuspension.MinContacts < 1 {
		return bad("line_suspension.min_contacts", c.LineSuspension.MinContacts, "must be at least 1")
	}
	if c.RegionBurst.MaxPerHour < 1 || c.RegionBurst.MaxPerHour > 65535 {
		return bad("region_burst.max_per_hour", c.RegionBurst.MaxPerHour, "must be 1..65535")
	}
	// The hash covers the numbers, not the name, so two files with the
	// same numbers share it whatever they are called.
	numbers := *c
	numbers.Version = ""
	numbers.Disabled = slices.Sorted(slices.Values(c.Disabled))
	canon, err := json.Marshal(&numbers)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrConfig, err)
	}
	sum := sha256.Sum256(canon)
	c.version = c.Version + "+" + hex.EncodeToString(sum[:6])
	return nil
}

// RulesVersion is the operator's version plus a hash of every number, so
// two files that differ in any figure never share a version.
func (c *Config) RulesVersion() string { return c.version }

// over reports whether a line with these figures over the window has
// reached the complaint rate that suspends it.
func (c *Config) over(contacts, complaints uint32) bool {
	cfg := c.LineSuspension
	return int(contacts) >= cfg.MinContacts && float64(complaints) >= cfg.Rate*float64(contacts)*(1-1e-9)
}

func (c *Config) enabled(rule string) bool { return !slices.Contains(c.Disabled, rule) }

func clock(s string) (int, error) {
	t, err := time.Parse("15:04", s)
	if err != nil {
		return 0, errors.New("must be HH:MM")
	}
	return t.Hour()*60 + t.Minute(), nil
}
