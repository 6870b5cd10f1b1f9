package api

import (
	"context"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
)

// skewedClock is a store on a host whose clock is off by skew, as a
// KurrentDB node may be: the events it records carry its time.
type skewedClock struct {
	ledger.Store
	skew time.Duration
}

func (s skewedClock) Append(ctx context.Context, stream string, exp ledger.Expected, evs []ledger.Event) ([]ledger.Event, error) {
	out, err := s.Store.Append(ctx, stream, exp, evs)
	for i := range out {
		out[i].RecordedAt = out[i].RecordedAt.Add(s.skew)
	}
	return out, err
}

// TestReplayedWhateverTheStoreClock: a write is 201 and its retry 200
// "replayed", whether the store's clock is ahead of the API's or behind it.
func TestReplayedWhateverTheStoreClock(t *testing.T) {
	for _, skew := range []time.Duration{-time.Hour, 0, time.Hour} {
		t.Run(skew.String(), func(t *testing.T) {
			h := newHarnessOn(t, func(s ledger.Store) ledger.Store { return skewedClock{s, skew} })
			consent := map[string]any{"number": numA, "purposes": []string{"service"}, "channels": []string{"sms"}, "source": "web_form"}
			imported := `{"type":"ComplaintReceived","number":"` + numA + `","occurred_at":"` + recent + `","data":{"source":"customer"}}` + "\n"
			for i, want := range []struct {
				status   int
				replayed bool
			}{{201, false}, {200, true}, {200, true}} {
				r := h.do("POST", "/v1/consents", h.a, consent, "Idempotency-Key", "k1")
				if got, _ := r.json(t)["replayed"].(bool); r.status != want.status || got != want.replayed {
					t.Errorf("consent, attempt %d: %d replayed=%v, want %d replayed=%v", i+1, r.status, got, want.status, want.replayed)
				}
				r = h.do("POST", "/v1/subjects/"+numA+"/erasure", h.a, map[string]any{})
				if got, _ := r.json(t)["replayed"].(bool); r.status != want.status || got != want.replayed {
					t.Errorf("erasure, attempt %d: %d replayed=%v %s", i+1, r.status, got, r.body)
				}
				r = h.do("POST", "/v1/events:import", h.a, imported, "Content-Type", "application/x-ndjson", "Idempotency-Key", "i1")
				evs, _ := r.json(t)["events"].([]any)
				if len(evs) != 1 {
					t.Fatalf("import, attempt %d: %d %s", i+1, r.status, r.body)
				}
				if got, _ := evs[0].(map[string]any)["replayed"].(bool); got != want.replayed {
					t.Errorf("import, attempt %d: replayed=%v, want %v", i+1, got, want.replayed)
				}
			}
		})
	}
}
