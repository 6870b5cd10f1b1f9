package ledger_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
)

func TestDecodeRefuses(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name   string
		event  ledger.Event
		naming string // the error must name this
	}{
		{"unknown type", ledger.Event{Type: "ConsentGrantd", Schema: 1, OccurredAt: at, Data: json.RawMessage(`{}`)}, `"ConsentGrantd"`},
		{"unknown schema", ledger.Event{Type: ledger.TypeConsentGranted, Schema: 7, OccurredAt: at,
			Data: json.RawMessage(`{"purposes":["service"],"channels":["sms"],"source":"paper"}`)}, "schema version 7"},
		{"unknown field", ledger.Event{Type: ledger.TypeConsentGranted, Schema: 1, OccurredAt: at,
			Data: json.RawMessage(`{"purposes":["service"],"channels":["sms"],"source":"paper","colour":1}`)}, "colour"},
		// Two readers of the leaf could disagree on these: encoding/json
		// takes the last duplicate and matches names in any case.
		{"duplicate member", ledger.Event{Type: ledger.TypeConsentGranted, Schema: 1, OccurredAt: at,
			Data: json.RawMessage(`{"purposes":["service"],"channels":["sms"],"source":"paper","purposes":["marketing"]}`)}, "purposes"},
		{"member in other case", ledger.Event{Type: ledger.TypeConsentGranted, Schema: 1, OccurredAt: at,
			Data: json.RawMessage(`{"Purposes":["service"],"channels":["sms"],"source":"paper"}`)}, "Purposes"},
		{"invalid UTF-8", ledger.Event{Type: ledger.TypeConsentGranted, Schema: 1, OccurredAt: at,
			Data: json.RawMessage("{\"purposes\":[\"service\"],\"channels\":[\"sms\"],\"source\":\"pa\xffper\"}")}, "UTF-8"},
		{"not JSON", ledger.Event{Type: ledger.TypeConsentGranted, Schema: 1, OccurredAt: at,
			Data: json.RawMessage(`{"purposes":["service"],`)}, "ConsentGranted"},
		{"bad enum", ledger.Event{Type: ledger.TypeConsentGranted, Schema: 1, OccurredAt: at,
			Data: json.RawMessage(`{"purposes":["spam"],"channels":["sms"],"source":"paper"}`)}, `"spam"`},
		{"id too long", ledger.Event{ID: strings.Repeat("x", ledger.MaxIDLen+1), Type: ledger.TypeSubjectErased, Schema: 1, OccurredAt: at,
			Data: json.RawMessage(`{}`)}, "id longer than 256 bytes"},
		{"missing occurred_at", ledger.Event{Type: ledger.TypeSubjectErased, Schema: 1, Data: json.RawMessage(`{}`)}, "occurred_at"},
		{"missing line", ledger.Event{Type: ledger.TypeContactMade, Schema: 1, OccurredAt: at,
			Data: json.RawMessage(`{"channel":"call","purpose":"service"}`)}, "line"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ledger.Validate(&tt.event)
			if !errors.Is(err, ledger.ErrInvalid) {
				t.Fatalf("Validate = %v, want ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tt.naming) {
				t.Fatalf("error %q does not name %s", err, tt.naming)
			}
		})
	}
}

func TestNewEventValidates(t *testing.T) {
	e, err := ledger.NewEvent("acme", "s", time.Now(), &ledger.RelationshipStarted{ContractRef: "P-1", StartsAt: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if e.Type != ledger.TypeRelationshipStarted || e.Schema != 1 || e.ID == "" {
		t.Fatalf("NewEvent = %+v", e)
	}
	if err := ledger.Validate(&e); err != nil {
		t.Fatal(err)
	}
}

func TestLeafIsCanonical(t *testing.T) {
	loc := time.FixedZone("CST", 8*3600)
	e := ledger.Event{ID: "0190", Type: ledger.TypeSubjectErased, Stream: "subject-x", Revision: 1, Position: 9,
		OccurredAt: time.Date(2026, 1, 2, 11, 0, 0, 5, loc), RecordedAt: time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC),
		Schema: 1, Data: json.RawMessage("{ \"reason\" : \"asked\" }")}
	a, err := e.Leaf()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"id":"0190","type":"SubjectErased","stream":"subject-x","revision":1,"position":9,` +
		`"occurred_at":"2026-01-02T03:00:00.000000005Z","recorded_at":"2026-01-02T03:00:00Z","schema":1,"data":{"reason":"asked"}}`
	if string(a) != want {
		t.Fatalf("leaf\n got %s\nwant %s", a, want)
	}
	back, err := ledger.ParseLeaf(a)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := back.Leaf(); string(b) != want {
		t.Fatalf("round trip changed the leaf: %s", b)
	}
	// A reordered or padded line is not the leaf that was hashed.
	if _, err := ledger.ParseLeaf([]byte(strings.Replace(want, `"schema":1,`, `"schema":1, `, 1))); !errors.Is(err, ledger.ErrInvalid) {
		t.Fatalf("non-canonical leaf accepted: %v", err)
	}
}

func TestExpected(t *testing.T) {
	tests := []struct {
		exp     ledger.Expected
		current uint64
		ok      bool
	}{
		{ledger.Any(), 0, true}, {ledger.Any(), 5, true},
		{ledger.NoStream(), 0, true}, {ledger.NoStream(), 1, false},
		{ledger.Exact(3), 3, true}, {ledger.Exact(3), 2, false}, {ledger.Exact(3), 4, false},
	}
	for _, tt := range tests {
		err := tt.exp.Check("s", tt.current)
		if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ledger.ErrWrongRevision)) {
			t.Errorf("%v at %d: %v", tt.exp, tt.current, err)
		}
	}
}

func TestSameContentIgnoresEscaping(t *testing.T) {
	at := time.Unix(1700000000, 0)
	a := ledger.Event{ID: "x", Type: ledger.TypeComplaintReceived, OccurredAt: at, Schema: 1,
		Data: json.RawMessage(`{"source":"customer","reason":"calls <at night> & weekends"}`)}
	b := a
	b.Data = json.RawMessage(`{ "source": "customer", "reason": "calls \u003cat night\u003e \u0026 weekends" }`)
	if !ledger.SameContent(&a, &b) {
		t.Fatal("the same payload with other escaping is reported as different content")
	}
	b.Data = json.RawMessage(`{"source":"customer","reason":"calls at night"}`)
	if ledger.SameContent(&a, &b) {
		t.Fatal("different payloads reported as the same content")
	}
}
