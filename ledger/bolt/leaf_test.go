package bolt

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
)

// FuzzLeaf checks the leaf the sequencer writes is byte for byte what Event.Leaf gives
// for the same event, whatever the strings hold and however the payload is
// spaced.
func FuzzLeaf(f *testing.F) {
	f.Add("sub", "ok", []byte(nil), uint64(1), uint64(1), int64(0), "")
	f.Add(`,"revision":0,"position":0,`, `,"recorded_at":"0001-01-01T00:00:00Z"`, []byte{0, 255}, uint64(7), uint64(1<<40), int64(999999999), " ")
	f.Add("<&>\u2028\xff", `"data":{},"pii":"`, []byte("x"), uint64(1<<63), uint64(3), int64(1), "\t")
	f.Add("a\x01\b\f\n\r\t\"\\<>&\u2028\u2029\x7f é 你", "<b>&amp;\u2029</b> \" x", []byte("xyz"), uint64(2), uint64(9), int64(-5), "\r\n  ")
	f.Fuzz(func(t *testing.T, subject, text string, pii []byte, rev, pos uint64, nanos int64, indent string) {
		v := &ledger.ConsentGranted{
			Purposes: []string{"service"}, Channels: []string{"sms"}, Source: "paper",
			Evidence: ledger.Evidence{Text: text},
		}
		data, _ := json.Marshal(v)
		if indent != "" {
			// Spaced payloads are compacted into the leaf; compact ones
			// are copied as they are.
			data, _ = json.MarshalIndent(v, indent, indent)
		}
		e := ledger.Event{ID: subject + "id", Type: ledger.TypeConsentGranted, Tenant: text, Subject: subject,
			OccurredAt: time.Unix(1700000000, nanos%1e9), Actor: subject, Schema: 1, Data: data, PII: pii}
		p, err := propose("stream-"+subject, e)
		if err != nil {
			t.Skip() // not a valid event; Append refuses it before any leaf is made
		}
		recorded := time.Unix(1800000000, nanos%1e9).UTC()
		got := p.leaf(nil, rev, pos, recorded)
		want := p.ev
		want.Revision, want.Position, want.RecordedAt = rev, pos, recorded
		wantLeaf, err := want.Leaf()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, wantLeaf) {
			t.Fatalf("spliced leaf\n%s\nwant\n%s", got, wantLeaf)
		}
		back, err := ledger.ParseLeaf(got)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(back.Data, p.ev.Data) {
			t.Fatalf("returned data %s, stored %s", p.ev.Data, back.Data)
		}
	})
}
