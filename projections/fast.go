package projections

import (
	"time"

	"github.com/heed/heed/ledger"
)

// Fast readers for the payloads applied most. Each fills only the fields
// the projection uses, with strings that view the event's data (cloned
// wherever the state keeps them), and reports false so the caller falls
// back to encoding/json on anything it cannot read.

func fastContact(d []byte, p *ledger.ContactMade) bool {
	return members(d, func(k string, v []byte) bool {
		ok := true
		switch k {
		case "line":
			p.Line, ok = str(v)
		case "channel":
			p.Channel, ok = str(v)
		case "purpose":
			p.Purpose, ok = str(v)
		case "region":
			p.Region, ok = str(v)
		case "backfill":
			p.Backfill, ok = boolean(v)
		}
		return ok
	})
}

// fastLine reads the "line" field of a ReminderDispatched or
// ComplaintReceived.
func fastLine(d []byte) (string, bool) {
	var line string
	ok := members(d, func(k string, v []byte) bool {
		if k != "line" {
			return true
		}
		var ok bool
		line, ok = str(v)
		return ok
	})
	return line, ok
}

func fastGrant(d []byte, p *ledger.ConsentGranted) bool {
	return members(d, func(k string, v []byte) bool {
		ok := true
		switch k {
		case "purposes":
			ok = strs(v, func(s string) { p.Purposes = append(p.Purposes, s) })
		case "channels":
			ok = strs(v, func(s string) { p.Channels = append(p.Channels, s) })
		case "source":
			p.Source, ok = str(v)
		case "expires_at":
			var t = p.ExpiresAt
			if string(v) != "null" {
				t = new(time.Time)
				*t, ok = stamp(v)
			}
			p.ExpiresAt = t
		}
		return ok
	})
}

func fastWithdrawal(d []byte, p *ledger.ConsentWithdrawn) bool {
	return members(d, func(k string, v []byte) bool {
		ok := true
		switch k {
		case "purposes":
			ok = strs(v, func(s string) { p.Purposes = append(p.Purposes, s) })
		case "channels":
			ok = strs(v, func(s string) { p.Channels = append(p.Channels, s) })
		case "all":
			p.All, ok = boolean(v)
		}
		return ok
	})
}

func fastStarted(d []byte, p *ledger.RelationshipStarted) bool {
	return members(d, func(k string, v []byte) bool {
		ok := true
		switch k {
		case "contract_ref":
			p.ContractRef, ok = str(v)
		case "starts_at":
			p.StartsAt, ok = stamp(v)
		case "expires_at":
			if string(v) != "null" {
				p.ExpiresAt = new(time.Time)
				*p.ExpiresAt, ok = stamp(v)
			}
		}
		return ok
	})
}

func fastEnded(d []byte, p *ledger.RelationshipEnded) bool {
	return members(d, func(k string, v []byte) bool {
		ok := true
		switch k {
		case "contract_ref":
			p.ContractRef, ok = str(v)
		case "ended_at":
			p.EndedAt, ok = stamp(v)
		}
		return ok
	})
}
