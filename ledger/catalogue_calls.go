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

// TypeCallEnded is the event of a call's outcome, from the PBX's or
// SBC's call detail record.
const TypeCallEnded = "CallEnded"

// CallEnded records how a call ended: whether it was answered, how long
// it lasted and why it hung up. Contact is the id of the ContactMade the
// call gate recorded for the same Call-ID; a call with none was never
// gated (Gated false): a trunk that bypassed heed, flagged for the auditor.
type CallEnded struct {
	CallID      string `json:"call_id"`
	Answered    bool   `json:"answered"`
	DurationS   int    `json:"duration_s"`
	HangupCause string `json:"hangup_cause,omitempty"`
	Line        string `json:"line,omitempty"`
	Contact     string `json:"contact,omitempty"`
	Gated       bool   `json:"gated"`
	// Source names the record's format: asterisk, freeswitch or csv.
	Source string `json:"source"`
}

func (c *CallEnded) check() error {
	if c.CallID == "" {
		return fmt.Errorf("call_id is required")
	}
	if c.DurationS < 0 {
		return fmt.Errorf("duration_s must not be negative")
	}
	if c.Gated != (c.Contact != "") {
		return fmt.Errorf("a gated call names its contact, an ungated one none")
	}
	return nil
}

func init() {
	register(TypeCallEnded, map[int]func() any{1: func() any { return new(CallEnded) }})
}
