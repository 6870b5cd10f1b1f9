package ledger

import "fmt"

// TypeCallRefused is the event of a call the call gate refused.
const TypeCallRefused = "CallRefused"

// CallRefused records an outbound call attempt that the call gate (a PBX
// or SBC asking heed before each INVITE) refused, and why. An allowed
// attempt is a ContactMade with its CallID.
type CallRefused struct {
	Line         string   `json:"line"`
	Purpose      string   `json:"purpose"`
	CallID       string   `json:"call_id"`
	Trunk        string   `json:"trunk"`
	Reasons      []Reason `json:"reasons"`
	RulesVersion string   `json:"rules_version"`
	AsOf         uint64   `json:"as_of"`
	// Contact is the id of the ContactMade this refusal overturns, when a
	// fact that arrived between the decision and its record denied the
	// call after all.
	Contact string `json:"contact,omitempty"`
}

func (c *CallRefused) check() error {
	if c.CallID == "" || c.Trunk == "" {
		return fmt.Errorf("call_id and trunk are required")
	}
	if len(c.Reasons) == 0 {
		return fmt.Errorf("reasons are required")
	}
	for _, p := range Purposes {
		if c.Purpose == p {
			return nil
		}
	}
	return fmt.Errorf("purpose %q is not one of service, marketing", c.Purpose)
}

func init() {
	register(TypeCallRefused, map[int]func() any{1: func() any { return new(CallRefused) }})
}
