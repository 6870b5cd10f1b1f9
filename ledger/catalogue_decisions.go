package ledger

import (
	"fmt"
	"slices"
	"strings"
	"time"
)

// Statuses of a decision a contact cites, as heed found it when the contact
// was recorded.
const (
	// CitedValid: a decision heed issued to this tenant for this number,
	// channel, purpose and line, that allowed the contact, shortly before it.
	CitedValid = "valid"
	// CitedNone: the contact cites no decision.
	CitedNone = "none"
	// CitedDenied: the cited decision refused the contact.
	CitedDenied = "denied"
	// CitedForged: the cited id or tag is not one heed issued to this tenant.
	CitedForged = "forged"
	// CitedMismatch: heed issued the decision, but for another number,
	// channel, purpose or line, or after the contact.
	CitedMismatch = "mismatch"
	// CitedExpired: the decision is older than a decision stays good for.
	CitedExpired = "expired"
)

// CitedStatuses lists every status, CitedValid first.
var CitedStatuses = []string{CitedValid, CitedNone, CitedDenied, CitedForged, CitedMismatch, CitedExpired}

// CitedDecision is the decision a ContactMade relied on. ID, Allowed,
// RulesVersion, AsOf and At are read from the decision heed issued (empty
// when the citation is forged); Status says whether it held.
type CitedDecision struct {
	ID           string     `json:"id,omitempty"`
	Allowed      bool       `json:"allowed,omitempty"`
	RulesVersion string     `json:"rules_version,omitempty"`
	AsOf         uint64     `json:"as_of,omitempty"`
	At           *time.Time `json:"at,omitempty"`
	Status       string     `json:"status"`
}

// Flagged reports whether an auditor should look at the contact: it did
// not rest on a valid decision.
func (c *CitedDecision) Flagged() bool { return c == nil || c.Status != CitedValid }

func (c *CitedDecision) check() error {
	if !slices.Contains(CitedStatuses, c.Status) {
		return fmt.Errorf("decision.status %q is not one of %s", c.Status, strings.Join(CitedStatuses, ", "))
	}
	return nil
}
