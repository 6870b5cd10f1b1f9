package ledger

import (
	"encoding/json"
	"testing"
	"time"
)

func benchEv() Event {
	data, _ := json.Marshal(&ConsentGranted{Purposes: []string{PurposeService}, Channels: []string{ChannelSMS}, Source: "web_form", Evidence: Evidence{Text: "I agree......................................................................................................................"}})
	return Event{Type: TypeConsentGranted, Tenant: "bench", Subject: "0000000000000000", OccurredAt: time.Now().UTC(), Schema: 1, Data: data}
}

func BenchmarkZValidate(b *testing.B) {
	e := benchEv()
	b.ReportAllocs()
	for b.Loop() {
		if err := Validate(&e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkZUnmarshal(b *testing.B) {
	e := benchEv()
	b.ReportAllocs()
	for b.Loop() {
		var v ConsentGranted
		if err := json.Unmarshal(e.Data, &v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkZValid(b *testing.B) {
	e := benchEv()
	b.ReportAllocs()
	for b.Loop() {
		if !json.Valid(e.Data) {
			b.Fatal()
		}
	}
}
