package kurrent

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"

	"github.com/heed/heed/ledger"
)

// FuzzBody checks that whatever an event holds, the KurrentDB event data
// written for it decodes back to the same event, whose leaf is the one
// the Merkle tree covers.
func FuzzBody(f *testing.F) {
	f.Add("acme", "subj-1", "api-key-1", `{"purposes":["service"]}`, []byte{1, 2, 3}, int64(1700000000123456789))
	f.Add("", `he said "hi" \ 你好`, "", `{ "a" : [1, 2.50, "x"] }`, []byte(nil), int64(0))
	f.Add("t", "s", "a\u2028b", `{"evidence":{"text":",\"recorded_at\":\"x\""}}`, []byte{0, 255}, int64(-62135596800000000000/1000))
	f.Fuzz(func(t *testing.T, tenant, subject, actor, data string, pii []byte, occurred int64) {
		if !utf8.ValidString(tenant) || !utf8.ValidString(subject) || !utf8.ValidString(actor) || !json.Valid([]byte(data)) {
			t.Skip() // refused by Append before encoding
		}
		e := ledger.Event{
			ID: ledger.NewID(), Type: ledger.TypeContactMade, Tenant: tenant, Subject: subject, Actor: actor,
			OccurredAt: time.Unix(0, occurred).In(time.FixedZone("X", 3600)), Schema: 1, Data: json.RawMessage(data), PII: pii,
		}
		d, err := encode(&e)
		if err != nil {
			t.Fatal(err)
		}
		s := &Store{opts: Options{Prefix: "heed-"}}
		created := time.Unix(1764200000, 123456700).UTC()
		r := &kurrentdb.RecordedEvent{EventID: d.EventID, EventType: d.EventType, StreamID: "heed-contact-x",
			EventNumber: 4, Position: kurrentdb.Position{Commit: 99, Prepare: 99}, CreatedDate: created, Data: d.Data}
		got, err := s.decode(r, 7)
		if err != nil {
			t.Fatal(err)
		}
		want := e
		want.Stream, want.Revision, want.Position, want.RecordedAt = "contact-x", 5, 7, created
		wl, err := want.Leaf()
		if err != nil {
			t.Fatal(err)
		}
		gl, err := got.Leaf()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(gl, wl) {
			t.Fatalf("round trip changed the leaf:\n got %s\nwant %s", gl, wl)
		}
		c, err := canonical(e)
		if err != nil {
			t.Fatal(err)
		}
		if !ledger.SameContent(&got, &c) {
			t.Fatal("round trip changed the content")
		}
	})
}
