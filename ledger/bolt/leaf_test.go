package bolt

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
)

// FuzzLeaf checks the spliced leaf is byte for byte what Event.Leaf gives
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

// FuzzDecode checks the fast leaf decoder against encoding/json.
func FuzzDecode(f *testing.F) {
	f.Add("sub", "ok", []byte(nil), "actor", uint64(1), uint64(1))
	f.Add(`a"b\c`, `,"pii":"QQ=="}`, []byte{1, 2, 3}, "", uint64(7), uint64(1<<40))
	f.Add("", "\u2028<&>", []byte{}, `\u0041`, uint64(0), uint64(3))
	f.Fuzz(func(t *testing.T, subject, text string, pii []byte, actor string, rev, pos uint64) {
		data, _ := json.Marshal(map[string]any{"text": text, "pii": text})
		e := ledger.Event{ID: subject, Type: text, Tenant: text, Subject: subject, Stream: actor + "s",
			Revision: rev, Position: pos, OccurredAt: time.Unix(1700000000, int64(rev%1e9)),
			RecordedAt: time.Unix(1800000000, int64(pos%1e9)), Actor: actor, Schema: int(rev % 5), Data: data, PII: pii}
		leaf, err := e.Leaf()
		if err != nil {
			t.Skip()
		}
		var want ledger.Event
		if err := json.Unmarshal(leaf, &want); err != nil {
			t.Fatal(err)
		}
		got, ok := decodeFast(leaf)
		if !ok {
			// The fallback must then be taken, and it is encoding/json.
			if _, err := decode(leaf); err != nil {
				t.Fatal(err)
			}
			return
		}
		g, _ := got.Leaf()
		w, _ := want.Leaf()
		if !bytes.Equal(g, w) || got.ID != want.ID || got.Subject != want.Subject || got.Actor != want.Actor ||
			!bytes.Equal(got.PII, want.PII) || !bytes.Equal(got.Data, want.Data) || got.Schema != want.Schema {
			t.Fatalf("fast decode differs\n got %+v\nwant %+v", got, want)
		}
	})
}

// TestDecodeFastTakesCanonicalLeaves guards the speed of ReadAll: ordinary
// leaves, with escapes and PII, must not fall back to encoding/json.
func TestDecodeFastTakesCanonicalLeaves(t *testing.T) {
	for _, e := range []ledger.Event{
		{ID: "a", Type: "ConsentGranted", Stream: "s", Revision: 1, Position: 1, Schema: 1, Data: json.RawMessage(`{}`)},
		{ID: "b", Type: "ContactMade", Tenant: "t", Subject: `q"uo\te`, Stream: "s", Revision: 9, Position: 12,
			OccurredAt: time.Unix(1, 5), RecordedAt: time.Unix(2, 0), Actor: "k", Schema: 1,
			Data: json.RawMessage(`{"line":"<L1>","pii":"x"}`), PII: []byte("sealed")},
	} {
		leaf, err := e.Leaf()
		if err != nil {
			t.Fatal(err)
		}
		got, ok := decodeFast(leaf)
		if !ok {
			t.Fatalf("fast decoder refused %s", leaf)
		}
		if again, _ := got.Leaf(); !bytes.Equal(again, leaf) {
			t.Fatalf("decoded %s as %s", leaf, again)
		}
	}
}

func FuzzParseUTC(f *testing.F) {
	f.Add(int64(0), int64(0))
	f.Add(int64(1700000000), int64(123456789))
	f.Add(int64(-62135596800), int64(100))
	f.Fuzz(func(t *testing.T, sec, nsec int64) {
		want := time.Unix(sec, nsec).UTC()
		if want.Year() < 0 || want.Year() > 9999 {
			return
		}
		text := want.Format(time.RFC3339Nano)
		got, ok := parseUTC([]byte(text))
		if !ok || !got.Equal(want) || got.Location() != time.UTC {
			t.Fatalf("parseUTC(%s) = %v, %v", text, got, ok)
		}
		for _, bad := range []string{text[:len(text)-1] + "+", "2026-02-31T00:00:00Z", "2026-01-01T24:00:00Z", "2026-01-01T00:00:00.10Z"} {
			if _, ok := parseUTC([]byte(bad)); ok {
				t.Fatalf("parseUTC accepted %s", bad)
			}
		}
	})
}
