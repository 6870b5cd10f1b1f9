package projections

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"time"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/atomicfile"
)

// BenchResult holds the figures of one Bench run.
type BenchResult struct {
	Subjects        int     // tracked (tenant, subject) records
	Events          int     // events applied
	ApplyPerS       float64 // events applied per second (payload decoding included)
	DecodePerS      float64 // peer: the same events merely decoded with ledger.Decode
	BytesPerSubject float64 // heap held by the state per tracked record
	Decisions       int
	DecisionsPerS   float64
	P50us, P99us    float64 // Decide latency, in-process, one goroutine
	SnapshotBytes   int64
	SaveS, RestoreS float64
	// HeldS is the longest a save held the state's lock at once: how long
	// an applier, and a decision waiting for the head, could wait on it.
	HeldS float64
}

// synth generates a plausible log: every subject has one tenant, most a
// contract, half a consent, one to three contacts on one of 50 lines to
// one of 30 regions, and a few opt-outs and complaints.
type synth struct {
	rng      *rand.Rand
	pos      uint64
	at       time.Time
	payloads map[string][]json.RawMessage
}

func newSynth(seed uint64, at time.Time) *synth {
	s := &synth{rng: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), at: at, payloads: map[string][]json.RawMessage{}}
	must := func(v any) json.RawMessage {
		b, err := json.Marshal(v)
		if err != nil {
			panic(err)
		}
		return b
	}
	exp := at.Add(200 * 24 * time.Hour)
	for i := range 50 {
		s.payloads[ledger.TypeRelationshipStarted] = append(s.payloads[ledger.TypeRelationshipStarted],
			must(ledger.RelationshipStarted{ContractRef: "POL-" + strconv.Itoa(i), Product: "car insurance", StartsAt: at.Add(-300 * 24 * time.Hour), ExpiresAt: &exp}))
		s.payloads[ledger.TypeContactMade] = append(s.payloads[ledger.TypeContactMade],
			must(ledger.ContactMade{Line: "line-" + strconv.Itoa(i), Channel: ledger.Channels[i%2], Purpose: ledger.Purposes[i%2], Outcome: "answered", DurationS: 40, Region: "region-" + strconv.Itoa(i%30)}))
	}
	s.payloads[ledger.TypeConsentGranted] = []json.RawMessage{
		must(ledger.ConsentGranted{Purposes: []string{"service", "marketing"}, Channels: []string{"call", "sms"}, Source: "web_form", Evidence: ledger.Evidence{URL: "https://example.com/form", ContentHash: "sha256:00"}}),
		must(ledger.ConsentGranted{Purposes: []string{"marketing"}, Channels: []string{"sms"}, Source: "bundled_terms"}),
	}
	s.payloads[ledger.TypeConsentWithdrawn] = []json.RawMessage{must(ledger.ConsentWithdrawn{All: true, Via: "sms_keyword", RawText: "TD"})}
	s.payloads[ledger.TypeComplaintReceived] = []json.RawMessage{must(ledger.ComplaintReceived{Line: "line-7", Channel: "call", Source: "customer"})}
	return s
}

func benchSubject(i int) string {
	sum := sha256.Sum256([]byte(strconv.Itoa(i)))
	return hex.EncodeToString(sum[:])
}

func benchTenant(i int) string { return "tenant-" + strconv.Itoa(i%4) }

// subject appends subject i's events to out.
func (s *synth) subject(i int, out []ledger.Event) []ledger.Event {
	ten, subj := benchTenant(i), benchSubject(i)
	stream := ledger.ContactStream(ten, subj)
	var rev uint64
	add := func(typ string) {
		opts := s.payloads[typ]
		s.pos++
		rev++
		at := s.at.Add(-time.Duration(s.rng.IntN(20*24*60)) * time.Minute)
		out = append(out, ledger.Event{ID: strconv.FormatUint(s.pos, 10), Type: typ, Tenant: ten, Subject: subj, Stream: stream,
			Revision: rev, Position: s.pos, OccurredAt: at, RecordedAt: at, Schema: 1, Data: opts[s.rng.IntN(len(opts))]})
	}
	if s.rng.IntN(10) < 7 {
		add(ledger.TypeRelationshipStarted)
	}
	if s.rng.IntN(2) == 0 {
		add(ledger.TypeConsentGranted)
	}
	for range 1 + s.rng.IntN(3) {
		add(ledger.TypeContactMade)
	}
	if s.rng.IntN(20) == 0 {
		add(ledger.TypeConsentWithdrawn)
	}
	if s.rng.IntN(100) == 0 {
		add(ledger.TypeComplaintReceived)
	}
	return out
}

// timedLock is a lock no one else takes that keeps its longest hold.
type timedLock struct {
	since   time.Time
	longest time.Duration
}

func (l *timedLock) Lock() { l.since = time.Now() }

func (l *timedLock) Unlock() { l.longest = max(l.longest, time.Since(l.since)) }

func heap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// Bench builds state for subjects from generated events, times applying
// them, measures the heap the state holds, times decisions on random
// tracked subjects, and, when dir is not empty, times a snapshot save and
// restore there.
func Bench(ctx context.Context, subjects, decisions int, dir string) (BenchResult, error) {
	var res BenchResult
	now := time.Date(2026, 11, 2, 4, 0, 0, 0, time.UTC)
	before := heap()
	st := NewState(Default())
	syn := newSynth(1, now)
	var applying, decoding time.Duration
	chunk := make([]ledger.Event, 0, 1<<16)
	for i := 0; i < subjects; {
		chunk = chunk[:0]
		for ; i < subjects && len(chunk) < 1<<16-8; i++ {
			chunk = syn.subject(i, chunk)
		}
		if err := ctx.Err(); err != nil {
			return res, err
		}
		start := time.Now()
		for j := range chunk {
			if err := st.Apply(&chunk[j]); err != nil {
				return res, err
			}
		}
		applying += time.Since(start)
		// The peer, in the same run: decoding each payload with the
		// catalogue's validating decoder, which any consumer of the log
		// that used encoding/json would pay.
		start = time.Now()
		for j := range chunk {
			if _, err := ledger.Decode(&chunk[j]); err != nil {
				return res, err
			}
		}
		decoding += time.Since(start)
		res.Events += len(chunk)
	}
	chunk = nil
	res.ApplyPerS = float64(res.Events) / applying.Seconds()
	res.DecodePerS = float64(res.Events) / decoding.Seconds()
	res.Subjects = st.Subjects()
	res.BytesPerSubject = float64(int64(heap())-int64(before)) / float64(res.Subjects)

	rng := rand.New(rand.NewPCG(2, 3))
	lat := make([]time.Duration, decisions)
	q := Query{At: now}
	start := time.Now()
	for i := range decisions {
		n := rng.IntN(subjects)
		q.Tenant, q.Subject = benchTenant(n), benchSubject(n)
		q.Number = "+86138" + fmt.Sprintf("%08d", rng.IntN(1e8))
		q.Channel, q.Purpose, q.Line = ledger.Channels[rng.IntN(2)], ledger.Purposes[rng.IntN(2)], "line-"+strconv.Itoa(rng.IntN(50))
		t0 := time.Now()
		if _, err := st.Decide(q, now); err != nil {
			return res, err
		}
		lat[i] = time.Since(t0)
	}
	total := time.Since(start)
	res.Decisions = decisions
	if decisions > 0 {
		slices.Sort(lat)
		res.DecisionsPerS = float64(decisions) / total.Seconds()
		res.P50us = float64(lat[decisions/2]) / 1e3
		res.P99us = float64(lat[decisions*99/100]) / 1e3
	}
	if dir == "" {
		return res, nil
	}
	t0 := time.Now()
	held := &timedLock{}
	err := atomicfile.Write(filepath.Join(dir, snapshotFile), 0o600, func(w io.Writer) error {
		_, err := st.writeTo(w, held)
		return err
	})
	if err != nil {
		return res, err
	}
	res.SaveS, res.HeldS = time.Since(t0).Seconds(), held.longest.Seconds()
	if fi, err := os.Stat(dir + "/" + snapshotFile); err == nil {
		res.SnapshotBytes = fi.Size()
	}
	st = nil
	runtime.GC()
	t0 = time.Now()
	back, err := Restore(dir, Default())
	if err != nil {
		return res, err
	}
	res.RestoreS = time.Since(t0).Seconds()
	if back.Position() != uint64(res.Events) {
		return res, fmt.Errorf("restored at %d, want %d", back.Position(), res.Events)
	}
	return res, nil
}
