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

// Default returns the rule numbers of DESIGN.md, as Rules declares them.
func Default() *Config {
	c := &Config{Version: "default"}
	for _, r := range Rules {
		for _, n := range r.Numbers {
			n.set(c)
		}
	}
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
	if c.Version == "" {
		return badNumber("version", `""`, "must name the rule set")
	}
	for _, id := range c.Disabled {
		if r, ok := LookupRule(id); !ok || r.Fixed {
			return badNumber("disabled", id, "is not a rule id")
		}
	}
	for _, r := range Rules {
		for _, n := range r.Numbers {
			if err := n.check(c); err != nil {
				return err
			}
		}
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
