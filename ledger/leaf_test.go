package ledger

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// jsonLeaf is the canonical leaf by encoding/json, the definition the
// leaf codec is held to.
func jsonLeaf(e *Event) ([]byte, error) {
	c := *e
	c.OccurredAt = c.OccurredAt.UTC()
	c.RecordedAt = c.RecordedAt.UTC()
	if len(c.Data) > 0 {
		var buf bytes.Buffer
		if err := json.Compact(&buf, c.Data); err != nil {
			return nil, err
		}
		c.Data = buf.Bytes()
	} else {
		c.Data = json.RawMessage("{}")
	}
	return json.Marshal(&c)
}

// FuzzAppendLeaf holds AppendLeaf to encoding/json byte for byte,
// whatever the strings hold (escapes, invalid UTF-8, HTML characters) and
// however the payload is spaced.
func FuzzAppendLeaf(f *testing.F) {
	f.Add("sub", "ok", []byte(nil), uint64(1), uint64(1), int64(0), "", `{"a":1}`)
	f.Add(`,"revision":0,"position":0,`, `,"recorded_at":"0001-01-01T00:00:00Z"`, []byte{0, 255}, uint64(7), uint64(1<<40), int64(999999999), " ", `{"x":"<&>"}`)
	f.Add("<&>\u2028\xff", `"data":{},"pii":"`, []byte("x"), uint64(1<<63), uint64(3), int64(1), "\t", `[1, 2]`)
	f.Add("a\x01\b\f\n\r\t\"\\<>&\u2028\u2029\x7f é 你", "<b>&amp;\u2029</b> \" x", []byte("xyz"), uint64(2), uint64(9), int64(-5), "\r\n  ", `{bad`)
	f.Fuzz(func(t *testing.T, subject, text string, pii []byte, rev, pos uint64, nanos int64, indent, raw string) {
		v := &ConsentGranted{Purposes: []string{"service"}, Channels: []string{"sms"}, Source: "paper", Evidence: Evidence{Text: text}}
		data, _ := json.Marshal(v)
		if indent != "" {
			data, _ = json.MarshalIndent(v, indent, indent)
		}
		for _, d := range [][]byte{data, []byte(raw), nil} {
			e := Event{ID: subject + "id", Type: TypeConsentGranted, Tenant: text, Subject: subject, Stream: "s-" + text,
				Revision: rev, Position: pos, OccurredAt: time.Unix(1700000000, nanos%1e9), RecordedAt: time.Unix(int64(rev%1e10), nanos),
				Actor: subject, Schema: int(nanos % 7), Data: d, PII: pii}
			want, werr := jsonLeaf(&e)
			got, gerr := AppendLeaf(nil, &e)
			if (werr != nil) != (gerr != nil) {
				t.Fatalf("encoding/json: %v; AppendLeaf: %v", werr, gerr)
			}
			if werr == nil && !bytes.Equal(got, want) {
				t.Fatalf("AppendLeaf\n%s\nencoding/json\n%s", got, want)
			}
		}
	})
}

// FuzzLeafTemplate checks the template's leaf, its revision, position and
// recorded time filled in later, is Event.Leaf's.
func FuzzLeafTemplate(f *testing.F) {
	f.Add("sub", "ok", []byte(nil), uint64(1), uint64(1), int64(0), "")
	f.Add(`,"revision":0,"position":0,`, `,"recorded_at":"0001-01-01T00:00:00Z"`, []byte{0, 255}, uint64(7), uint64(1<<40), int64(999999999), " ")
	f.Add("<&>\u2028", `"data":{},"pii":"`, []byte("x"), uint64(1<<63), uint64(3), int64(1), "\t")
	f.Fuzz(func(t *testing.T, subject, text string, pii []byte, rev, pos uint64, nanos int64, indent string) {
		v := &ConsentGranted{Purposes: []string{"service"}, Channels: []string{"sms"}, Source: "paper", Evidence: Evidence{Text: text}}
		data, _ := json.Marshal(v)
		if indent != "" {
			data, _ = json.MarshalIndent(v, indent, indent)
		}
		e := Event{ID: subject + "id", Type: TypeConsentGranted, Tenant: text, Subject: subject, Stream: "stream-" + subject,
			OccurredAt: time.Unix(1700000000, nanos%1e9).UTC(), Actor: subject, Schema: 1, Data: data, PII: pii}
		if Validate(&e) != nil || !utf8Envelope(&e) {
			t.Skip() // stores refuse it before any leaf is made
		}
		tmpl := NewLeafTemplate(&e)
		recorded := time.Unix(1800000000, nanos%1e9).UTC()
		got := tmpl.Append(nil, rev, pos, recorded)
		want := e
		want.Revision, want.Position, want.RecordedAt = rev, pos, recorded
		wantLeaf, err := jsonLeaf(&want)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, wantLeaf) {
			t.Fatalf("template's leaf\n%s\nwant\n%s", got, wantLeaf)
		}
		back, err := ParseLeaf(got)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(back.Data, tmpl.Data()) {
			t.Fatalf("template's data %s, leaf's %s", tmpl.Data(), back.Data)
		}
	})
}

func utf8Envelope(e *Event) bool {
	for _, s := range []string{e.ID, e.Type, e.Tenant, e.Subject, e.Stream, e.Actor} {
		if !utf8.ValidString(s) {
			return false
		}
	}
	return true
}

// FuzzDecodeLeaf checks the fast leaf decoder against encoding/json.
func FuzzDecodeLeaf(f *testing.F) {
	f.Add("sub", "ok", []byte(nil), "actor", uint64(1), uint64(1))
	f.Add(`a"b\c`, `,"pii":"QQ=="}`, []byte{1, 2, 3}, "", uint64(7), uint64(1<<40))
	f.Add("", "\u2028<&>", []byte{}, `\u0041`, uint64(0), uint64(3))
	f.Fuzz(func(t *testing.T, subject, text string, pii []byte, actor string, rev, pos uint64) {
		data, _ := json.Marshal(map[string]any{"text": text, "pii": text})
		e := Event{ID: subject, Type: text, Tenant: text, Subject: subject, Stream: actor + "s",
			Revision: rev, Position: pos, OccurredAt: time.Unix(1700000000, int64(rev%1e9)),
			RecordedAt: time.Unix(1800000000, int64(pos%1e9)), Actor: actor, Schema: int(rev % 5), Data: data, PII: pii}
		leaf, err := e.Leaf()
		if err != nil {
			t.Skip()
		}
		var want Event
		if err := json.Unmarshal(leaf, &want); err != nil {
			t.Fatal(err)
		}
		got, ok := decodeLeaf(leaf)
		if !ok {
			// The fallback must then be taken, and it is encoding/json.
			if _, err := DecodeLeaf(leaf); err != nil {
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

// TestDecodeLeafTakesCanonicalLeaves guards the speed of reading the log:
// ordinary leaves, with escapes and PII, must not fall back to
// encoding/json.
func TestDecodeLeafTakesCanonicalLeaves(t *testing.T) {
	for _, e := range []Event{
		{ID: "a", Type: "ConsentGranted", Stream: "s", Revision: 1, Position: 1, Schema: 1, Data: json.RawMessage(`{}`)},
		{ID: "b", Type: "ContactMade", Tenant: "t", Subject: `q"uo\te`, Stream: "s", Revision: 9, Position: 12,
			OccurredAt: time.Unix(1, 5), RecordedAt: time.Unix(2, 0), Actor: "k", Schema: 1,
			Data: json.RawMessage(`{"line":"<L1>","pii":"x"}`), PII: []byte("sealed")},
	} {
		leaf, err := e.Leaf()
		if err != nil {
			t.Fatal(err)
		}
		got, ok := decodeLeaf(leaf)
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

// sampleLog is a few ordinary events as a store returns them.
func sampleLog(t testing.TB, n int) []Event {
	t.Helper()
	t0 := time.Date(2026, 11, 27, 3, 0, 0, 0, time.UTC)
	out := make([]Event, n)
	for i := range out {
		e, err := NewEvent("acme", fmt.Sprintf("%064x", i%7), t0.Add(time.Duration(i)*time.Second),
			ContactMade{Line: "L1", Channel: "call", Purpose: "service", Outcome: "answered", DurationS: i % 90})
		if err != nil {
			t.Fatal(err)
		}
		e.ID = fmt.Sprintf("0193a1b2-0000-7000-8000-%012d", i+1)
		e.Stream, e.Revision, e.Position = ContactStream("acme", e.Subject), uint64(i/7+1), uint64(i+1)
		e.RecordedAt, e.Actor = e.OccurredAt.Add(time.Millisecond), "key-1"
		out[i] = e
	}
	return out
}

func TestLeafPositionTakesOrdinaryEvents(t *testing.T) {
	log := sampleLog(t, 50)
	zh, _ := NewEvent("acme", "s", time.Now(), ComplaintReceived{Source: "customer", Reason: "骚扰电话"})
	zh.Position, zh.Stream, zh.RecordedAt, zh.PII = 51, "st", time.Now(), []byte{1, 2, 3}
	log = append(log, zh)
	for _, e := range log {
		leaf, err := e.Leaf()
		if err != nil {
			t.Fatal(err)
		}
		pos, ok := LeafPosition(leaf)
		if !ok || pos != int64(e.Position) {
			t.Fatalf("LeafPosition(%s) = %d, %v; want %d, true", leaf, pos, ok, e.Position)
		}
	}
}

// canonSeeds are real leaves and near misses that encoding/json's
// ParseLeaf refuses.
func canonSeeds(t testing.TB) [][]byte {
	leaf, _ := sampleLog(t, 1)[0].Leaf()
	l := string(leaf)
	seeds := [][]byte{leaf}
	for _, r := range [][2]string{
		{`"position":1,`, `"position":01,`},
		{`"tenant":"acme",`, `"tenant":"",`},
		{`"tenant":"acme",`, ``},
		{`"data":{`, `"data": {`},
		{`"schema":1,`, `"schema":-0,`},
		{`03:00:00Z`, `03:00:00.000Z`},
		{`03:00:00Z`, `03:00:00+00:00`},
		{`"L1"`, `"L\u0031"`},
		{`"L1"`, `"L<1"`},
		{`"call"`, `"c\u0061ll"`},
		{`"acme"`, `"ac\u0000me"`},
		{`}`, `,"x":1}`},
		{`"id":`, `"ID":`},
	} {
		seeds = append(seeds, []byte(strings.Replace(l, r[0], r[1], 1)))
	}
	return append(seeds, append(bytes.Clone(leaf), ' '), []byte(strings.TrimSuffix(l, "}")+`,"pii":"AQID"}`),
		[]byte(strings.TrimSuffix(l, "}")+`,"pii":"AQI="}`), []byte(strings.TrimSuffix(l, "}")+`,"pii":"AQJ="}`))
}

// checkLeafPosition fails when LeafPosition accepts what encoding/json's
// ParseLeaf refuses, or ParseLeaf and its encoding/json form disagree.
func checkLeafPosition(t *testing.T, line []byte) {
	t.Helper()
	want, werr := parseLeafJSON(line)
	got, gerr := ParseLeaf(line)
	if (werr != nil) != (gerr != nil) {
		t.Fatalf("ParseLeaf(%q): %v; by encoding/json: %v", line, gerr, werr)
	}
	if werr == nil {
		g, _ := got.Leaf()
		if !bytes.Equal(g, line) || got.Position != want.Position || !bytes.Equal(got.Data, want.Data) {
			t.Fatalf("ParseLeaf(%q) = %+v; by encoding/json %+v", line, got, want)
		}
	}
	pos, ok := LeafPosition(line)
	if !ok {
		return
	}
	if werr != nil {
		t.Fatalf("LeafPosition accepted %q, ParseLeaf refuses it: %v", line, werr)
	}
	if int64(want.Position) != pos {
		t.Fatalf("LeafPosition read position %d from %q, ParseLeaf %d", pos, line, want.Position)
	}
}

func TestLeafPositionNeverAcceptsWhatParseLeafRefuses(t *testing.T) {
	for _, s := range canonSeeds(t) {
		checkLeafPosition(t, s)
	}
}

func FuzzLeafPosition(f *testing.F) {
	for _, s := range canonSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		checkLeafPosition(t, line)
		// Also try the fuzzed bytes as a payload inside a real leaf.
		if json.Valid(line) && bytes.HasPrefix(bytes.TrimSpace(line), []byte("{")) {
			e := Event{ID: "x", Type: "T", Stream: "s", Position: 7, Data: line}
			if leaf, err := e.Leaf(); err == nil {
				checkLeafPosition(t, leaf)
			}
		}
	})
}

func TestReadLeafHead(t *testing.T) {
	at := time.Date(2026, 11, 27, 4, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		e    Event
		ok   bool // false: the caller decodes the leaf instead
	}{
		{"contact", Event{ID: "e1", Type: TypeContactMade, Tenant: "acme", Subject: "s1",
			Stream: ContactStream("acme", "s1"), Revision: 1, Position: 7}, true},
		{"no tenant", Event{ID: "e2", Type: TypeSubjectErased, Subject: "s1",
			Stream: SubjectStream("s1"), Revision: 3, Position: 12345678901}, true},
		{"line stream", Event{ID: "e3", Type: TypeContactMade, Tenant: "acme",
			Stream: LineStream("acme", "1069"), Revision: 2, Position: 9}, true},
		{"another tenant's stream", Event{ID: "e4", Type: TypeContactMade, Tenant: "acme", Subject: "s1",
			Stream: ContactStream("acme-s1", "s1"), Revision: 1, Position: 10}, true},
		{"escaped tenant", Event{ID: "e5", Type: TypeContactMade, Tenant: `a"b`, Subject: "s1",
			Stream: ContactStream(`a"b`, "s1"), Revision: 1, Position: 11}, false},
		{"unicode subject", Event{ID: "e6", Type: TypeContactMade, Tenant: "acme", Subject: "顾客",
			Stream: ContactStream("acme", "顾客"), Revision: 4, Position: 12}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := tc.e
			e.OccurredAt, e.RecordedAt, e.Schema = at, at, 1
			e.Data = []byte(`{"stream":"contact-x-y","revision":1,"position":99,"tenant":"zz"}`)
			leaf, err := e.Leaf()
			if err != nil {
				t.Fatal(err)
			}
			h, ok := ReadLeafHead(leaf)
			if ok != tc.ok {
				t.Fatalf("ReadLeafHead ok = %v, want %v (%s)", ok, tc.ok, leaf)
			}
			if ok && (string(h.ID) != e.ID || string(h.Type) != e.Type || string(h.Tenant) != e.Tenant || string(h.Subject) != e.Subject || string(h.Stream) != e.Stream || h.Position != e.Position) {
				t.Fatalf("ReadLeafHead = %q %q %q %q %q %d; event %q %q %q %q %q %d", h.ID, h.Type, h.Tenant, h.Subject, h.Stream, h.Position, e.ID, e.Type, e.Tenant, e.Subject, e.Stream, e.Position)
			}
		})
	}
}
