package notify

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/bolt"
	"github.com/heed/heed/ledger/ledgertest"
	"github.com/heed/heed/ledger/mem"
)

// minReads records the lowest position ReadAll was asked for.
type minReads struct {
	ledger.Store
	from uint64
}

func (m *minReads) ReadAll(ctx context.Context, from uint64, limit int) ([]ledger.Event, error) {
	if m.from == 0 || from < m.from {
		m.from = from
	}
	return m.Store.ReadAll(ctx, from, limit)
}

// TestRecoverResumesFromCheckpoint: a restart after a checkpoint reads
// only the log after it, yet marks what was dispatched since and still
// resolves a reminder that was awaiting its receipt before it.
func TestRecoverResumesFromCheckpoint(t *testing.T) {
	for name, open := range ledgertest.Stores {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			testRecoverResumesFromCheckpoint(t, st)
		})
	}
}

func testRecoverResumesFromCheckpoint(t *testing.T, st ledger.Store) {
	ctx := context.Background()
	approveRenewal(t, st)
	relate(t, st, tenant, number)
	sender := &fakeSender{}
	n := New(Config{Store: st, Decider: &streamDecider{store: st}, Sender: sender,
		Lines: map[string]string{line: tenant}, DefaultLine: line, Pseudonym: pseudo, SMSC: "sim"})
	subject := pseudo(number)
	lost := func(id string) {
		ev, _ := ledger.NewEvent(tenant, subject, time.Now(), ledger.ReminderDispatched{ReminderID: id, ContractRef: "P-1", ContentHash: "sha256:x"})
		if _, err := st.Append(ctx, ledger.ContactStream(tenant, subject), ledger.Any(), []ledger.Event{ev}); err != nil {
			t.Fatal(err)
		}
	}
	lost("lost-1")
	waiting, err := n.Remind(ctx, req("waiting"))
	if err != nil || waiting.State != StateSubmitted {
		t.Fatalf("waiting: %s, %v", waiting.State, err)
	}
	cfg := n.cfg
	cfg.CheckpointEvery = 1
	if marked, err := New(cfg).Recover(ctx); err != nil || marked != 1 {
		t.Fatalf("first restart marked %d, %v; want 1", marked, err)
	}
	cps, err := st.ReadStream(ctx, ledger.NotifierStream, 1, 0)
	if err != nil || len(cps) != 1 {
		t.Fatalf("checkpoints after the first restart: %d, %v", len(cps), err)
	}
	p, err := ledger.Decode(&cps[0])
	if err != nil {
		t.Fatal(err)
	}
	cp := p.(*ledger.NotifierCheckpoint)
	if len(cp.Open) != 1 || cp.Open[0].ReminderID != "waiting" {
		t.Fatalf("checkpoint carries %+v, want the reminder awaiting its receipt", cp.Open)
	}

	lost("lost-2")
	counting := &minReads{Store: st}
	cfg.Store = counting
	restarted := New(cfg)
	if marked, err := restarted.Recover(ctx); err != nil || marked != 1 {
		t.Fatalf("second restart marked %d, %v; want 1 (lost-2 only)", marked, err)
	}
	if counting.from <= cp.Through {
		t.Fatalf("the second restart read the log from %d; the checkpoint covers through %d", counting.from, cp.Through)
	}
	for id, want := range map[string]string{"lost-1": StateUnknown, "lost-2": StateUnknown} {
		if got, err := restarted.Get(ctx, tenant, id); err != nil || got.State != want {
			t.Errorf("%s: %s, %v; want %s", id, got.State, err, want)
		}
	}
	if err := restarted.OnReceipt(ctx, Receipt{MessageID: waiting.MessageIDs[0], Delivered: true}); err != nil {
		t.Fatal(err)
	}
	if got, _ := restarted.Get(ctx, tenant, "waiting"); got.State != StateDelivered {
		t.Fatalf("the reminder awaiting its receipt across a checkpoint: %s, want delivered", got.State)
	}
	if sender.count() != 1 {
		t.Fatalf("recovery resubmitted: %d submits", sender.count())
	}
}

// TestCheckpointedFoldEqualsWholeFold: for random reminder histories, what
// recovery carries after folding the whole log equals what it carries
// after folding to a random point, writing a checkpoint there, reading it
// back and folding the rest.
func TestCheckpointedFoldEqualsWholeFold(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	for seed := range uint64(40) {
		rnd := rand.New(rand.NewPCG(seed, 7))
		st := mem.New()
		n := New(Config{Store: st, Decider: &streamDecider{store: st}, Sender: &fakeSender{}, Pseudonym: pseudo, Now: func() time.Time { return now }})
		history(t, st, rnd)
		head, _ := st.Head(ctx)
		whole := &recovery{open: map[string]*track{}}
		if err := n.fold(ctx, whole, head); err != nil {
			t.Fatal(err)
		}
		split := 1 + rnd.Uint64N(head)
		part := &recovery{open: map[string]*track{}}
		if err := n.fold(ctx, part, split); err != nil {
			t.Fatal(err)
		}
		if err := n.checkpoint(ctx, part, now); err != nil {
			t.Fatal(err)
		}
		resumed, err := n.lastCheckpoint(ctx, head+1)
		if err != nil {
			t.Fatal(err)
		}
		if err := n.fold(ctx, resumed, head+1); err != nil {
			t.Fatal(err)
		}
		if got, want := kept(n, resumed, now), kept(n, whole, now); !reflect.DeepEqual(got, want) {
			t.Fatalf("seed %d, checkpoint at %d of %d:\nresumed %v\nwhole   %v", seed, split, head, got, want)
		}
	}
}

// history appends the events of 30 reminders, each stopped at a random
// stage of its life, interleaved with one another.
func history(t *testing.T, st ledger.Store, rnd *rand.Rand) {
	t.Helper()
	type step struct {
		id      string
		payload any
	}
	var lives [][]step
	for i := range 30 {
		id := fmt.Sprintf("r%d", i)
		life := []step{{id, ledger.ReminderRequested{ReminderID: id, ContractRef: "P-1"}}}
		switch rnd.IntN(6) {
		case 0:
			life = append(life, step{id, ledger.ReminderDenied{ReminderID: id}})
		case 1: // requested only
		default:
			life = append(life, step{id, ledger.ReminderDispatched{ReminderID: id, ContractRef: "P-1", ContentHash: "sha256:x"}})
			switch rnd.IntN(5) {
			case 0: // dispatched, no outcome
			case 1:
				life = append(life, step{id, ledger.ReminderOutcomeUnknown{ReminderID: id}})
			default:
				life = append(life, step{id, ledger.ReminderSubmitted{ReminderID: id, MessageIDs: []string{"m" + id}}})
				switch rnd.IntN(3) {
				case 0:
					life = append(life, step{id, ledger.ReminderDelivered{ReminderID: id, MessageID: "m" + id}})
				case 1:
					life = append(life, step{id, ledger.ReminderFailed{ReminderID: id, MessageID: "m" + id}})
				}
			}
		}
		lives = append(lives, life)
	}
	for len(lives) > 0 {
		i := rnd.IntN(len(lives))
		s := lives[i][0]
		if lives[i] = lives[i][1:]; len(lives[i]) == 0 {
			lives = append(lives[:i], lives[i+1:]...)
		}
		ev, err := ledger.NewEvent(tenant, pseudo(number), time.Now(), s.payload)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Append(context.Background(), ledger.ContactStream(tenant, pseudo(number)), ledger.Any(), []ledger.Event{ev}); err != nil {
			t.Fatal(err)
		}
	}
}

// kept is what r carries that recovery acts on, by reminder id.
func kept(n *Notifier, r *recovery, now time.Time) map[string]string {
	out := map[string]string{}
	for _, t := range r.open {
		if n.keep(t, now) {
			out[t.id] = fmt.Sprintf("dispatched=%v outcome=%v ids=%v at=%d", t.dispatched, t.outcome, t.ids, t.at.UnixNano())
		}
	}
	return out
}

// BenchmarkRecover times a restart's recovery over a log of 200,000
// events: reading all of it, against resuming from a checkpoint written
// near its end.
func BenchmarkRecover(b *testing.B) {
	ctx := context.Background()
	open := func(b *testing.B) ledger.Store {
		st, err := bolt.Open(filepath.Join(b.TempDir(), "ledger.db"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { st.Close() })
		for i := range 200 {
			evs := make([]ledger.Event, 0, 1000)
			for j := range 1000 {
				ev, _ := ledger.NewEvent(tenant, fmt.Sprintf("s%d-%d", i, j), time.Now(), ledger.ConsentGranted{Purposes: []string{ledger.PurposeService},
					Channels: []string{ledger.ChannelSMS}, Source: "web_form"})
				evs = append(evs, ev)
			}
			if _, err := st.Append(ctx, ledger.ContactStream(tenant, fmt.Sprintf("s%d", i)), ledger.Any(), evs); err != nil {
				b.Fatal(err)
			}
		}
		return st
	}
	for _, c := range []struct {
		name       string
		checkpoint bool
	}{{"whole-log", false}, {"from-checkpoint", true}} {
		b.Run(c.name, func(b *testing.B) {
			st := open(b)
			cfg := Config{Store: st, Decider: &streamDecider{store: st}, Sender: &fakeSender{}, Pseudonym: pseudo, CheckpointEvery: math.MaxUint64}
			if c.checkpoint {
				cfg.CheckpointEvery = 1
				if _, err := New(cfg).Recover(ctx); err != nil {
					b.Fatal(err)
				}
				cfg.CheckpointEvery = math.MaxUint64
			}
			for b.Loop() {
				if _, err := New(cfg).Recover(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestLeafFoldEqualsEventFold: recovery over the stored leaves, which
// skips every event that is no reminder's unread, carries what recovery
// over the decoded events carries.
func TestLeafFoldEqualsEventFold(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	for seed := range uint64(10) {
		rnd := rand.New(rand.NewPCG(seed, 9))
		st := ledgertest.Bolt(t)
		grant, err := ledger.NewEvent(tenant, pseudo(number), now, ledger.ConsentGranted{Purposes: []string{"service"}, Channels: []string{"sms"}, Source: "web_form"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Append(ctx, ledger.ContactStream(tenant, pseudo(number)), ledger.Any(), []ledger.Event{grant}); err != nil {
			t.Fatal(err)
		}
		history(t, st, rnd)
		head, _ := st.Head(ctx)
		cfg := Config{Store: st, Decider: &streamDecider{store: st}, Sender: &fakeSender{}, Pseudonym: pseudo, Now: func() time.Time { return now }}
		byEvents := New(cfg)
		cfg.Leaves = st
		byLeaves := New(cfg)
		for _, upto := range []uint64{1 + rnd.Uint64N(head), head} {
			a, b := &recovery{open: map[string]*track{}}, &recovery{open: map[string]*track{}}
			if err := byEvents.fold(ctx, a, upto); err != nil {
				t.Fatal(err)
			}
			if err := byLeaves.fold(ctx, b, upto); err != nil {
				t.Fatal(err)
			}
			if got, want := kept(byLeaves, b, now), kept(byEvents, a, now); !reflect.DeepEqual(got, want) || b.through != a.through {
				t.Fatalf("seed %d, through %d:\nleaves %v\nevents %v", seed, upto, got, want)
			}
		}
	}
}
