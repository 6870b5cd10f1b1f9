package ledger

import (
	"fmt"
	"slices"
	"strings"
)

// TypeInboundUnmatched is the type of InboundUnmatched events.
const TypeInboundUnmatched = "InboundUnmatched"

// Why an inbound message was not acted on.
const (
	// UnmatchedSender: the sender address is not a number heed can read.
	UnmatchedSender = "sender"
	// UnmatchedLine: no tenant owns the line and none sent to the sender
	// from it, so no business can be told.
	UnmatchedLine = "line"
	// UnmatchedKeyword: the text is no opt-out keyword.
	UnmatchedKeyword = "keyword"
	// UnmatchedIncomplete: parts of a multi-part message never came, and
	// those that did are no opt-out keyword.
	UnmatchedIncomplete = "incomplete"
)

// UnmatchedReasons lists the reasons of InboundUnmatched.
var UnmatchedReasons = []string{UnmatchedSender, UnmatchedLine, UnmatchedKeyword, UnmatchedIncomplete}

// InboundUnmatched records a mobile-originated message heed did not turn
// into a withdrawal, so that no reply is lost without trace. Tenant is the
// line's owner when there is one; the subject is the sender's pseudonym
// (of the address as delivered when it is not a number).
type InboundUnmatched struct {
	Line   string `json:"line"`
	Reason string `json:"reason"`
	SMSC   string `json:"smsc,omitempty"`
	// Parts and Total count the parts of a multi-part message: received
	// and announced.
	Parts int `json:"parts,omitempty"`
	Total int `json:"total,omitempty"`
	// From (the sender's address as delivered) and Text are personal:
	// sealed in the envelope's PII, never left in Data.
	From string `json:"from,omitempty"`
	Text string `json:"text,omitempty"`
}

func (p *InboundUnmatched) personal() map[string]*string {
	return map[string]*string{"from": &p.From, "text": &p.Text}
}

func (p *InboundUnmatched) check() error {
	if !slices.Contains(UnmatchedReasons, p.Reason) {
		return fmt.Errorf("reason %q is not one of %s", p.Reason, strings.Join(UnmatchedReasons, ", "))
	}
	if p.Parts < 0 || p.Total < 0 || p.Parts > p.Total {
		return fmt.Errorf("parts %d of %d", p.Parts, p.Total)
	}
	return nil
}

// InboundStream is the stream of the messages to a line that no tenant
// acted on.
func InboundStream(line string) string { return "inbound-" + line }

func init() {
	register(TypeInboundUnmatched, map[int]func() any{1: func() any { return new(InboundUnmatched) }})
}
