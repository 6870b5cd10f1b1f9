// Package storetest is the conformance suite every ledger.Store must pass:
// a backend is correct when Run passes against it.
package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/heed/heed/ledger"
)

// Run runs the suite. open returns a new, empty store for each subtest;
// Run closes it.
func Run(t *testing.T, open func(t *testing.T) ledger.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s ledger.Store)
	}{
		{"AppendAssigns", testAppendAssigns},
		{"EmptyIDsGetUUIDv7", testEmptyIDs},
		{"ExpectedRevision", testExpected},
		{"RetryReturnsOriginal", testRetry},
		{"RetryIsReplayed", testReplayed},
		{"IDConflict", testIDConflict},
		{"Invalid", testInvalid},
		{"ReadStream", testReadStream},
		{"ReadAll", testReadAll},
		{"LeavesAreCanonical", testCanonical},
		{"ConcurrentRetries", testConcurrentRetries},
		{"ConcurrentExact", testConcurrentExact},
		{"ConcurrentStreams", testConcurrentStreams},
		{"CancelledContext", testCancelled},
		{"FollowHandoff", testFollowHandoff},
		{"FollowResume", testFollowResume},
		{"FollowStops", testFollowStops},
		{"Closed", testClosed},
		{"Lookup", testLookup},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() { s.Close() })
			tc.fn(t, s)
		})
	}
}

var t0 = time.Date(2026, 11, 1, 9, 30, 0, 123456789, time.UTC)

// Consent returns a valid ConsentGranted proposal with a fresh id. When
// size is positive its evidence text is padded so the event's canonical
// encoding in its contact stream is about size bytes (at least ~340: the
// envelope alone is that big).
func Consent(tenant, subject string, size int) ledger.Event {
	mk := func(text string) ledger.Event {
		data, _ := json.Marshal(&ledger.ConsentGranted{
			Purposes: []string{ledger.PurposeService},
			Channels: []string{ledger.ChannelSMS},
			Source:   "web_form",
			Evidence: ledger.Evidence{Text: text},
		})
		return ledger.Event{
			ID: ledger.NewID(), Type: ledger.TypeConsentGranted, Tenant: tenant, Subject: subject,
			OccurredAt: t0, Schema: 1, Data: data,
		}
	}
	e := mk("I agree")
	if size <= 0 {
		return e
	}
	m := e
	m.Stream, m.Revision, m.Position, m.RecordedAt = ledger.ContactStream(tenant, subject), 1, 100000, time.Now()
	leaf, _ := m.Leaf()
	if pad := size - len(leaf); pad > 0 {
		e.Data = mk("I agree" + strings.Repeat(".", pad)).Data
	}
	return e
}

func consents(n int) []ledger.Event {
	out := make([]ledger.Event, n)
	for i := range out {
		out[i] = Consent("acme", fmt.Sprintf("subj-%d", i), 0)
	}
	return out
}

func leaf(t *testing.T, e ledger.Event) []byte {
	t.Helper()
	b, err := e.Leaf()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sameEvents fails unless got and want encode to the same leaves.
func sameEvents(t *testing.T, what string, got, want []ledger.Event) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d events, want %d", what, len(got), len(want))
	}
	for i := range got {
		if g, w := leaf(t, got[i]), leaf(t, want[i]); !bytes.Equal(g, w) {
			t.Fatalf("%s: event %d\n got %s\nwant %s", what, i, g, w)
		}
	}
}

func mustAppend(t *testing.T, s ledger.Store, stream string, exp ledger.Expected, evs []ledger.Event) []ledger.Event {
	t.Helper()
	out, err := s.Append(context.Background(), stream, exp, evs)
	if err != nil {
		t.Fatalf("append to %s: %v", stream, err)
	}
	return out
}

func head(t *testing.T, s ledger.Store) uint64 {
	t.Helper()
	h, err := s.Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func testAppendAssigns(t *testing.T, s ledger.Store) {
	ctx := context.Background()
	if h := head(t, s); h != 0 {
		t.Fatalf("empty store head = %d", h)
	}
	in := consents(2)
	before := time.Now().Add(-time.Second)
	out := mustAppend(t, s, "contact-acme-a", ledger.NoStream(), in)
	other := mustAppend(t, s, "contact-acme-b", ledger.Any(), consents(1))
	more := mustAppend(t, s, "contact-acme-a", ledger.Exact(2), consents(1))
	for i, e := range out {
		if e.ID != in[i].ID || e.Stream != "contact-acme-a" || e.Revision != uint64(i+1) || e.Position != uint64(i+1) {
			t.Fatalf("event %d stored as id=%s stream=%s rev=%d pos=%d", i, e.ID, e.Stream, e.Revision, e.Position)
		}
		if e.RecordedAt.Before(before) || e.RecordedAt.After(time.Now().Add(time.Second)) {
			t.Fatalf("recorded_at %v is not now", e.RecordedAt)
		}
		if !e.OccurredAt.Equal(t0) {
			t.Fatalf("occurred_at changed to %v", e.OccurredAt)
		}
	}
	if other[0].Position != 3 || other[0].Revision != 1 || more[0].Position != 4 || more[0].Revision != 3 {
		t.Fatalf("positions %d,%d revisions %d,%d; want 3,4 and 1,3", other[0].Position, more[0].Position, other[0].Revision, more[0].Revision)
	}
	if h := head(t, s); h != 4 {
		t.Fatalf("head = %d, want 4", h)
	}
	got, err := s.ReadStream(ctx, "contact-acme-a", 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	sameEvents(t, "read back", got, append(out, more...))
	rev, err := s.StreamRevision(ctx, "contact-acme-a")
	if err != nil || rev != 3 {
		t.Fatalf("StreamRevision = %d, %v; want 3", rev, err)
	}
	if rev, err := s.StreamRevision(ctx, "contact-acme-none"); err != nil || rev != 0 {
		t.Fatalf("StreamRevision of absent stream = %d, %v; want 0", rev, err)
	}
}

func testEmptyIDs(t *testing.T, s ledger.Store) {
	in := consents(3)
	for i := range in {
		in[i].ID = ""
	}
	out := mustAppend(t, s, "st", ledger.Any(), in)
	seen := map[string]bool{}
	for _, e := range out {
		u, err := uuid.Parse(e.ID)
		if err != nil || u.Version() != 7 {
			t.Fatalf("assigned id %q is not a UUIDv7 (%v)", e.ID, err)
		}
		if seen[e.ID] {
			t.Fatalf("id %s assigned twice", e.ID)
		}
		seen[e.ID] = true
	}
	got, err := s.ReadAll(context.Background(), 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	sameEvents(t, "stored", got, out)
}

func testExpected(t *testing.T, s ledger.Store) {
	mustAppend(t, s, "two", ledger.Any(), consents(2))
	tests := []struct {
		name   string
		stream string
		exp    ledger.Expected
		ok     bool
	}{
		{"any on new stream", "new-any", ledger.Any(), true},
		{"any on existing", "two", ledger.Any(), true},
		{"no stream on new", "new-none", ledger.NoStream(), true},
		{"exact 0 on new", "new-exact", ledger.Exact(0), true},
		{"no stream on existing", "two", ledger.NoStream(), false},
		{"exact behind", "two", ledger.Exact(1), false},
		{"exact ahead", "two", ledger.Exact(9), false},
		{"exact on new", "new-ahead", ledger.Exact(1), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			rev, _ := s.StreamRevision(ctx, tc.stream)
			h := head(t, s)
			out, err := s.Append(ctx, tc.stream, tc.exp, consents(1))
			if tc.ok {
				if err != nil {
					t.Fatalf("append with %v at revision %d: %v", tc.exp, rev, err)
				}
				if out[0].Revision != rev+1 {
					t.Fatalf("revision %d, want %d", out[0].Revision, rev+1)
				}
				return
			}
			if !errors.Is(err, ledger.ErrWrongRevision) {
				t.Fatalf("append with %v at revision %d: err = %v, want ErrWrongRevision", tc.exp, rev, err)
			}
			if head(t, s) != h {
				t.Fatal("a refused append changed the head")
			}
		})
	}
	// After "any on existing" the stream is at 3.
	mustAppend(t, s, "two", ledger.Exact(3), consents(1))
}

func testRetry(t *testing.T, s ledger.Store) {
	ctx := context.Background()
	in := consents(3)
	out := mustAppend(t, s, "st", ledger.NoStream(), in)
	mustAppend(t, s, "st", ledger.Any(), consents(1))
	h := head(t, s)
	retry := append([]ledger.Event(nil), in...)
	// Same content in another layout and time zone is still the same.
	var pretty bytes.Buffer
	json.Indent(&pretty, retry[0].Data, "", "  ")
	retry[0].Data = pretty.Bytes()
	retry[1].OccurredAt = retry[1].OccurredAt.In(time.FixedZone("CST", 8*3600))
	for _, exp := range []ledger.Expected{ledger.NoStream(), ledger.Exact(0), ledger.Any(), ledger.Exact(4)} {
		again, err := s.Append(ctx, "st", exp, retry)
		if err != nil {
			t.Fatalf("retry with %v: %v", exp, err)
		}
		sameEvents(t, "retry", again, out)
	}
	if head(t, s) != h {
		t.Fatalf("retries changed the head from %d to %d", h, head(t, s))
	}
}

// replayedAll reports whether every event is marked Replayed, and fails
// the test if only some are.
func replayedAll(t *testing.T, what string, evs []ledger.Event) bool {
	t.Helper()
	n := 0
	for _, e := range evs {
		if e.Replayed {
			n++
		}
	}
	if n != 0 && n != len(evs) {
		t.Fatalf("%s: %d of %d events marked replayed", what, n, len(evs))
	}
	return n > 0
}

// testReplayed: an append that stores its events says so, a retry of it
// under any expectation says it stored nothing, and no event read is
// marked.
func testReplayed(t *testing.T, s ledger.Store) {
	ctx := context.Background()
	in := consents(2)
	out := mustAppend(t, s, "st", ledger.NoStream(), in)
	if replayedAll(t, "first append", out) {
		t.Fatal("the first append of its events is marked replayed")
	}
	mustAppend(t, s, "st", ledger.Any(), consents(1))
	for _, exp := range []ledger.Expected{ledger.NoStream(), ledger.Any(), ledger.Exact(3), ledger.Exact(1)} {
		again, err := s.Append(ctx, "st", exp, in)
		if err != nil {
			t.Fatalf("retry with %v: %v", exp, err)
		}
		if !replayedAll(t, "retry", again) {
			t.Errorf("retry with %v is not marked replayed", exp)
		}
	}
	fresh := mustAppend(t, s, "st", ledger.Exact(3), consents(1))
	if replayedAll(t, "append after retries", fresh) {
		t.Error("a new event after retries is marked replayed")
	}
	read, err := s.ReadStream(ctx, "st", 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	all, err := s.ReadAll(ctx, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(read) != 4 || len(all) != 4 || replayedAll(t, "stream read", read) || replayedAll(t, "log read", all) {
		t.Errorf("reads: %d stream events, %d log events, some marked replayed", len(read), len(all))
	}
}

// Looker is a store that finds an event by its id (ledger/bolt and
// ledger/mem do; a KurrentDB store does not).
type Looker interface {
	Lookup(ctx context.Context, id string) (ledger.Event, bool, error)
}

func testLookup(t *testing.T, s ledger.Store) {
	l, ok := s.(Looker)
	if !ok {
		t.Skip("the store does not look events up by id")
	}
	ctx := context.Background()
	out := mustAppend(t, s, "st", ledger.NoStream(), consents(3))
	mustAppend(t, s, "other", ledger.NoStream(), consents(2))
	for _, want := range out {
		got, found, err := l.Lookup(ctx, want.ID)
		if err != nil || !found {
			t.Fatalf("Lookup(%s): found %v, %v", want.ID, found, err)
		}
		sameEvents(t, "lookup", []ledger.Event{got}, []ledger.Event{want})
	}
	if _, found, err := l.Lookup(ctx, ledger.NewID()); err != nil || found {
		t.Fatalf("Lookup of an unknown id: found %v, %v", found, err)
	}
	s.Close()
	if _, _, err := l.Lookup(ctx, out[0].ID); !errors.Is(err, ledger.ErrClosed) {
		t.Fatalf("Lookup on a closed store: %v, want ErrClosed", err)
	}
}

func testIDConflict(t *testing.T, s ledger.Store) {
	ctx := context.Background()
	in := consents(2)
	mustAppend(t, s, "st", ledger.Any(), in)
	h := head(t, s)
	changed := in[0]
	changed.Actor = "someone-else"
	fresh := consents(1)[0]
	dup := consents(1)[0]
	tests := []struct {
		name   string
		stream string
		events []ledger.Event
	}{
		{"different content", "st", []ledger.Event{changed}},
		{"different payload", "st", []ledger.Event{{ID: in[0].ID, Type: in[0].Type, Tenant: in[0].Tenant, Subject: in[0].Subject,
			OccurredAt: t0, Actor: in[0].Actor, Schema: 1, Data: json.RawMessage(`{"purposes":["marketing"],"channels":["sms"],"source":"web_form"}`)}}},
		{"other stream", "elsewhere", []ledger.Event{in[0]}},
		{"partial retry", "st", []ledger.Event{in[0], fresh}},
		{"subset retry", "st", []ledger.Event{in[1], in[0], fresh}},
		{"twice in one append", "st", []ledger.Event{dup, dup}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Append(ctx, tc.stream, ledger.Any(), tc.events)
			if !errors.Is(err, ledger.ErrIDConflict) {
				t.Fatalf("err = %v, want ErrIDConflict", err)
			}
			if head(t, s) != h {
				t.Fatal("a conflicting append wrote events")
			}
		})
	}
	// The fresh event was not written by the partial retry, so it can
	// still be appended on its own.
	mustAppend(t, s, "st", ledger.Exact(2), []ledger.Event{fresh})
}

func testInvalid(t *testing.T, s ledger.Store) {
	ctx := context.Background()
	good := consents(1)[0]
	unknown := consents(1)[0]
	unknown.Type = "ConsentGrunted"
	noTime := consents(1)[0]
	noTime.OccurredAt = time.Time{}
	badData := consents(1)[0]
	badData.Data = json.RawMessage(`{"purposes":["spam"],"channels":["sms"],"source":"web_form"}`)
	notJSON := consents(1)[0]
	notJSON.Data = json.RawMessage(`{"purposes":`)
	badSchema := consents(1)[0]
	badSchema.Schema = 99
	badUTF8 := consents(1)[0]
	badUTF8.Subject = "subj-\xff"
	longID := consents(1)[0]
	longID.ID = strings.Repeat("i", 40<<10) // past bbolt's largest key
	tests := []struct {
		name   string
		stream string
		events []ledger.Event
		says   string
	}{
		{"unknown type", "st", []ledger.Event{unknown}, "ConsentGrunted"},
		{"unknown schema", "st", []ledger.Event{badSchema}, "99"},
		{"missing occurred_at", "st", []ledger.Event{noTime}, "occurred_at"},
		{"bad payload value", "st", []ledger.Event{badData}, "spam"},
		{"payload not JSON", "st", []ledger.Event{notJSON}, "ConsentGranted"},
		{"one bad in a batch", "st", []ledger.Event{good, unknown}, "ConsentGrunted"},
		{"subject not UTF-8", "st", []ledger.Event{badUTF8}, ""},
		{"id too long", "st", []ledger.Event{longID}, "id longer than"},
		{"no events", "st", nil, ""},
		{"no stream", "", []ledger.Event{good}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Append(ctx, tc.stream, ledger.Any(), tc.events)
			if !errors.Is(err, ledger.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("error %q does not name %q", err, tc.says)
			}
			if head(t, s) != 0 {
				t.Fatal("an invalid append wrote events")
			}
		})
	}
}

func testReadStream(t *testing.T, s ledger.Store) {
	ctx := context.Background()
	var a, b []ledger.Event
	for i := 0; i < 5; i++ {
		a = append(a, mustAppend(t, s, "a", ledger.Any(), consents(1))...)
		b = append(b, mustAppend(t, s, "b", ledger.Any(), consents(1))...)
	}
	tests := []struct {
		name  string
		from  uint64
		limit int
		want  []ledger.Event
	}{
		{"all", 1, 0, a},
		{"from zero means from one", 0, 0, a},
		{"middle", 2, 2, a[1:3]},
		{"limit past end", 4, 10, a[3:]},
		{"last", 5, 1, a[4:]},
		{"past end", 6, 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ReadStream(ctx, "a", tc.from, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			sameEvents(t, "stream a", got, tc.want)
		})
	}
	got, err := s.ReadStream(ctx, "b", 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	sameEvents(t, "stream b", got, b)
	if _, err := s.ReadStream(ctx, "", 1, 0); !errors.Is(err, ledger.ErrNotFound) {
		t.Fatalf("empty stream name: err = %v, want ErrNotFound", err)
	}
	for _, name := range []string{"c", "aa", "A"} {
		if _, err := s.ReadStream(ctx, name, 1, 0); !errors.Is(err, ledger.ErrNotFound) {
			t.Fatalf("absent stream %q: err = %v, want ErrNotFound", name, err)
		}
	}
	// A stream whose name extends another's is still its own stream.
	mustAppend(t, s, "aa", ledger.NoStream(), consents(1))
	if got, _ := s.ReadStream(ctx, "a", 1, 0); len(got) != 5 {
		t.Fatalf("stream a has %d events after appending to aa", len(got))
	}
}

func testReadAll(t *testing.T, s ledger.Store) {
	ctx := context.Background()
	if got, err := s.ReadAll(ctx, 1, 0); err != nil || len(got) != 0 {
		t.Fatalf("empty log: %d events, %v", len(got), err)
	}
	var all []ledger.Event
	for i := 0; i < 4; i++ {
		all = append(all, mustAppend(t, s, fmt.Sprintf("s%d", i%2), ledger.Any(), consents(i+1))...)
	}
	tests := []struct {
		name  string
		from  uint64
		limit int
		want  []ledger.Event
	}{
		{"all", 1, 0, all},
		{"from zero", 0, 0, all},
		{"window", 3, 4, all[2:6]},
		{"tail", 10, 5, all[9:]},
		{"past head", 11, 0, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.ReadAll(ctx, tc.from, tc.limit)
			if err != nil {
				t.Fatal(err)
			}
			sameEvents(t, "log", got, tc.want)
			for i, e := range got {
				if e.Position != max(tc.from, 1)+uint64(i) {
					t.Fatalf("event %d at position %d", i, e.Position)
				}
			}
		})
	}
}

func testCanonical(t *testing.T, s ledger.Store) {
	ctx := context.Background()
	odd := consents(1)[0]
	odd.Subject = `he said "hi" \ ,"revision":0,"position":0, 你好`
	odd.Data = json.RawMessage(`{ "purposes" : ["service"], "channels":["flash"], "source":"paper",
		"evidence": {"text": ",\"recorded_at\":\"0001-01-01T00:00:00Z\""} }`)
	odd.PII = []byte{0, 1, 2, 255}
	odd.OccurredAt = time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("X", -5*3600))
	out := mustAppend(t, s, "odd", ledger.Any(), []ledger.Event{odd})
	got, err := s.ReadAll(ctx, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	sameEvents(t, "stored", got, out)
	b := leaf(t, got[0])
	back, err := ledger.ParseLeaf(b)
	if err != nil {
		t.Fatalf("stored leaf is not canonical: %v", err)
	}
	if back.Subject != odd.Subject || !bytes.Equal(back.PII, odd.PII) || !back.OccurredAt.Equal(odd.OccurredAt) {
		t.Fatalf("content changed on the way: %s", b)
	}
}

// testConcurrentRetries sends the same append from many callers at once,
// as a client retrying on timeouts would: one copy is stored and every
// caller gets its positions.
func testConcurrentRetries(t *testing.T, s ledger.Store) {
	ctx := context.Background()
	in := consents(3)
	const n = 16
	outs := make([][]ledger.Event, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { outs[i], errs[i] = s.Append(ctx, "retried", ledger.NoStream(), in) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		sameEvents(t, "retried append", outs[i], outs[0])
	}
	// The caller that stored the events is never told it replayed them.
	// (KurrentDB may skip a concurrent copy without saying so, so more than
	// one caller may be told it stored them.)
	written := 0
	for i := range n {
		if !replayedAll(t, "concurrent retry", outs[i]) {
			written++
		}
	}
	if written == 0 {
		t.Error("every caller was told its append was a retry; one stored the events")
	}
	if h := head(t, s); h != 3 {
		t.Fatalf("head %d after %d identical appends of 3 events, want 3", h, n)
	}
}

func testConcurrentExact(t *testing.T, s ledger.Store) {
	ctx := context.Background()
	mustAppend(t, s, "race", ledger.Any(), consents(2))
	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() { _, errs[i] = s.Append(ctx, "race", ledger.Exact(2), consents(1)) })
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, ledger.ErrWrongRevision):
			t.Fatalf("loser got %v, want ErrWrongRevision", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d appends at the same expected revision won, want exactly 1", wins)
	}
	if rev, _ := s.StreamRevision(ctx, "race"); rev != 3 {
		t.Fatalf("stream at %d, want 3", rev)
	}
}

func testConcurrentStreams(t *testing.T, s ledger.Store) {
	ctx := context.Background()
	const workers, each = 8, 25
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				if _, err := s.Append(ctx, fmt.Sprintf("w%d", w%4), ledger.Any(), consents(1+i%2)); err != nil {
					errc <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Fatal(err)
	}
	all, err := s.ReadAll(ctx, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	want := workers * (each + each/2)
	if len(all) != want || head(t, s) != uint64(want) {
		t.Fatalf("%d events, head %d; want %d", len(all), head(t, s), want)
	}
	revs := map[string]uint64{}
	for i, e := range all {
		if e.Position != uint64(i+1) {
			t.Fatalf("gap: event %d at position %d", i, e.Position)
		}
		revs[e.Stream]++
		if e.Revision != revs[e.Stream] {
			t.Fatalf("stream %s: revision %d after %d", e.Stream, e.Revision, revs[e.Stream]-1)
		}
	}
}

func testCancelled(t *testing.T, s ledger.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := s.Append(ctx, "st", ledger.Any(), consents(1)); !errors.Is(err, context.Canceled) {
		t.Fatalf("append with a cancelled context: %v", err)
	}
	if head(t, s) != 0 {
		t.Fatal("a cancelled append wrote events")
	}
}

// follow follows s from from until it has seen want events or times out.
func follow(s ledger.Store, from uint64, want int) ([]ledger.Event, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var got []ledger.Event
	stop := errors.New("enough")
	err := s.Follow(ctx, from, func(e ledger.Event) error {
		got = append(got, e)
		if len(got) == want {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) {
		return got, fmt.Errorf("follow stopped after %d of %d events: %w", len(got), want, err)
	}
	return got, nil
}

func collect(t *testing.T, s ledger.Store, from uint64, want int) []ledger.Event {
	t.Helper()
	got, err := follow(s, from, want)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func testFollowHandoff(t *testing.T, s ledger.Store) {
	ctx := context.Background()
	for range 10 {
		mustAppend(t, s, "pre", ledger.Any(), consents(5))
	}
	const workers, each = 4, 30
	total := 50 + workers*each*2
	start := make(chan struct{})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			<-start
			for range each {
				if _, err := s.Append(ctx, fmt.Sprintf("live-%d", w), ledger.Any(), consents(2)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	type result struct {
		evs []ledger.Event
		err error
	}
	done := make(chan result)
	go func() {
		evs, err := follow(s, 1, total)
		done <- result{evs, err}
	}()
	close(start)
	res := <-done
	wg.Wait()
	if res.err != nil {
		t.Fatal(res.err)
	}
	got := res.evs
	for i, e := range got {
		if e.Position != uint64(i+1) {
			t.Fatalf("follow delivered position %d as event %d: gap or duplicate", e.Position, i+1)
		}
	}
	all, err := s.ReadAll(ctx, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	sameEvents(t, "followed vs stored", got, all)
}

func testFollowResume(t *testing.T, s ledger.Store) {
	for range 4 {
		mustAppend(t, s, "st", ledger.Any(), consents(10))
	}
	got := collect(t, s, 30, 11)
	if got[0].Position != 30 || got[10].Position != 40 {
		t.Fatalf("resumed at %d..%d, want 30..40", got[0].Position, got[10].Position)
	}
	// Resuming past the head waits for the next append.
	go func() {
		time.Sleep(20 * time.Millisecond)
		mustAppend(t, s, "st", ledger.Any(), consents(1))
	}()
	if got := collect(t, s, 41, 1); got[0].Position != 41 {
		t.Fatalf("live event at %d, want 41", got[0].Position)
	}
}

func testFollowStops(t *testing.T, s ledger.Store) {
	mustAppend(t, s, "st", ledger.Any(), consents(3))
	boom := errors.New("boom")
	n := 0
	err := s.Follow(context.Background(), 1, func(ledger.Event) error {
		n++
		if n == 2 {
			return boom
		}
		return nil
	})
	if !errors.Is(err, boom) || n != 2 {
		t.Fatalf("fn error: Follow returned %v after %d events", err, n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Follow(ctx, 1, func(ledger.Event) error { return nil }); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("done context: Follow returned %v", err)
	}
	errc := make(chan error, 1)
	go func() { errc <- s.Follow(context.Background(), 1, func(ledger.Event) error { return nil }) }()
	time.Sleep(20 * time.Millisecond)
	s.Close()
	select {
	case err := <-errc:
		if !errors.Is(err, ledger.ErrClosed) {
			t.Fatalf("Close: Follow returned %v, want ErrClosed", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Follow did not return after Close")
	}
}

func testClosed(t *testing.T, s ledger.Store) {
	ctx := context.Background()
	mustAppend(t, s, "st", ledger.Any(), consents(1))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	calls := map[string]func() error{
		"Append":         func() error { _, err := s.Append(ctx, "st", ledger.Any(), consents(1)); return err },
		"ReadStream":     func() error { _, err := s.ReadStream(ctx, "st", 1, 0); return err },
		"StreamRevision": func() error { _, err := s.StreamRevision(ctx, "st"); return err },
		"ReadAll":        func() error { _, err := s.ReadAll(ctx, 1, 0); return err },
		"Head":           func() error { _, err := s.Head(ctx); return err },
		"Follow":         func() error { return s.Follow(ctx, 1, func(ledger.Event) error { return nil }) },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, ledger.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
}
