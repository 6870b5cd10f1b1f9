package ledger

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	jsonv2 "github.com/go-json-experiment/json"
)

// TypePersonalDataAccessed records that staff read a subject's opened
// personal fields.
const TypePersonalDataAccessed = "PersonalDataAccessed"

// PersonalDataAccessed records one read of an event's opened personal
// fields by staff (an auditor, an admin or the business itself); the
// reader is the envelope's Actor. It is appended to the contact stream of
// the event read, before the fields are returned, so the customer sees it.
type PersonalDataAccessed struct {
	EventID  string `json:"event_id"`
	Position uint64 `json:"position"`
	Role     string `json:"role"`
	Purpose  string `json:"purpose"`
}

// MaxPurposeLen bounds the stated purpose of an access.
const MaxPurposeLen = 500

func (p *PersonalDataAccessed) check() error {
	switch {
	case p.EventID == "" || p.Position == 0:
		return fmt.Errorf("event_id and position are required")
	case p.Role == "":
		return fmt.Errorf("role is required")
	case p.Purpose == "" || len(p.Purpose) > MaxPurposeLen:
		return fmt.Errorf("purpose is required, at most %d bytes", MaxPurposeLen)
	}
	return nil
}

func init() {
	register(TypePersonalDataAccessed, map[int]func() any{1: func() any { return new(PersonalDataAccessed) }})
}

// personal is a payload with personal fields: free text about the subject
// that belongs sealed in the envelope's PII, never in Data. It names each
// field as the key it has in the sealed map.
type personal interface{ personal() map[string]*string }

func (p *ConsentGranted) personal() map[string]*string {
	return map[string]*string{"evidence.text": &p.Evidence.Text, "evidence.url": &p.Evidence.URL,
		"evidence.recording_id": &p.Evidence.RecordingID}
}

func (p *ConsentWithdrawn) personal() map[string]*string {
	return map[string]*string{"raw_text": &p.RawText}
}

func (p *RelationshipEnded) personal() map[string]*string {
	return map[string]*string{"reason": &p.Reason}
}

func (p *ContactMade) personal() map[string]*string {
	return map[string]*string{"campaign": &p.Campaign, "outcome": &p.Outcome}
}

func (p *ComplaintReceived) personal() map[string]*string {
	return map[string]*string{"reason": &p.Reason}
}

func (p *SuppressionListed) personal() map[string]*string {
	return map[string]*string{"source": &p.Source}
}

func (p *SuppressionLifted) personal() map[string]*string {
	return map[string]*string{"reason": &p.Reason}
}

// Outcomes are the contact outcomes kept in Data: codes from a dialer, not
// text about a person. Any other outcome is free text, and sealed.
var Outcomes = []string{"answered", "no_answer", "busy", "voicemail", "rejected", "failed", "cancelled",
	"completed", "declined", "unreachable", "delivered", "redirected"}

// public reports whether a personal field's value may stay in Data.
func public(typ, field, value string) bool {
	return typ == TypeContactMade && field == "outcome" && slices.Contains(Outcomes, value)
}

// PersonalFields lists, sorted, the personal fields an event of type typ
// may carry (the keys SplitPersonal returns), or nil if it has none.
func PersonalFields(typ string) []string {
	v, err := payload(&Event{Type: typ, Schema: 1})
	if err != nil {
		return nil
	}
	p, ok := v.(personal)
	if !ok {
		return nil
	}
	return slices.Sorted(maps.Keys(p.personal()))
}

// SplitPersonal moves the personal fields out of e.Data and returns them,
// keyed as PersonalFields names them; the caller seals them into e.PII.
// Empty fields are left out, and an event without personal fields is left
// as it is and yields nil. Data is read as strictly as Validate reads it.
func SplitPersonal(e *Event) (map[string]string, error) {
	v, err := payload(e)
	if err != nil {
		return nil, err
	}
	p, ok := v.(personal)
	if !ok {
		return nil, nil
	}
	data := e.Data
	if len(data) == 0 {
		data = json.RawMessage("{}")
	}
	if err := jsonv2.Unmarshal(data, v, strict); err != nil {
		return nil, fmt.Errorf("%w: %s data: %v", ErrInvalid, e.Type, err)
	}
	var out map[string]string
	for name, f := range p.personal() {
		if *f == "" || public(e.Type, name, *f) {
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[name], *f = *f, ""
	}
	if out == nil {
		return nil, nil
	}
	if e.Data, err = json.Marshal(v); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, e.Type, err)
	}
	return out, nil
}
