package projections

import (
	"encoding/json"
	"testing"

	"github.com/heed/heed/ledger"
)

// FuzzFastPayloads checks the fast readers against encoding/json.
func FuzzFastPayloads(f *testing.F) {
	for _, s := range []string{
		`{"line":"pbx-1","channel":"call","purpose":"service","region":"北京市","duration_s":40}`,
		`{ "line" : "a\"b", "channel":"sms"}`,
		`{"purposes":["service","marketing"],"channels":["call"],"source":"web_form","evidence":{"url":"x","text":"}]"},"expires_at":"2027-01-02T03:04:05.123Z"}`,
		`{"all":true,"via":"sms_keyword","raw_text":"TD"}`,
		`{"contract_ref":"P-1","starts_at":"2026-01-01T00:00:00+08:00","expires_at":null}`,
		`{"contract_ref":"P-1","ended_at":"2026-03-01T00:00:00Z","reason":"lapsed"}`,
		`{"reminder_id":"r","reasons":[{"rule":"x","events":["a","b"]}],"line":"l"}`,
		`{}`, `[]`, `{"line":1}`, `{"line":"x",}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, d []byte) {
		check := func(name string, fast func() bool, fastV any, slow json.Unmarshaler, slowV any) {
			if !fast() {
				return
			}
			// The fast readers skip fields they do not need, so they may
			// accept what encoding/json refuses (the store validates
			// payloads on append); where both read it, they must agree.
			if json.Unmarshal(d, slow) != nil {
				return
			}
			// Compared as JSON, where a nil and an empty list read alike.
			a, _ := json.Marshal(fastV)
			b, _ := json.Marshal(slowV)
			if string(a) != string(b) {
				t.Fatalf("%s read %q as %+v, encoding/json as %+v", name, d, fastV, slowV)
			}
		}
		var c1, c2 ledger.ContactMade
		check("contact", func() bool { return fastContact(d, &c1) }, &c1, &project[ledger.ContactMade]{v: &c2, keep: func(c *ledger.ContactMade) {
			*c = ledger.ContactMade{Line: c.Line, Channel: c.Channel, Purpose: c.Purpose, Region: c.Region}
		}}, &c2)
		var w1, w2 ledger.ConsentWithdrawn
		check("withdrawal", func() bool { return fastWithdrawal(d, &w1) }, &w1, &project[ledger.ConsentWithdrawn]{v: &w2, keep: func(w *ledger.ConsentWithdrawn) {
			*w = ledger.ConsentWithdrawn{Purposes: w.Purposes, Channels: w.Channels, All: w.All}
		}}, &w2)
		var e1, e2 ledger.RelationshipEnded
		check("ended", func() bool { return fastEnded(d, &e1) }, &e1, &project[ledger.RelationshipEnded]{v: &e2, keep: func(e *ledger.RelationshipEnded) {
			*e = ledger.RelationshipEnded{ContractRef: e.ContractRef, EndedAt: e.EndedAt}
		}}, &e2)
	})
}

// project decodes into v with encoding/json, then keeps only the fields
// the fast reader fills, so the two can be compared whole.
type project[T any] struct {
	v    *T
	keep func(*T)
}

func (p *project[T]) UnmarshalJSON(b []byte) error {
	if err := json.Unmarshal(b, p.v); err != nil {
		return err
	}
	p.keep(p.v)
	return nil
}
