package projections

import (
	"context"
	"fmt"
	"maps"
	"os"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
	"pgregory.net/rapid"
)

// genEvent draws one event for a small world of tenants, subjects, lines
// and regions, so that sequences collide on the same state often.
func genEvent(t *rapid.T) (stream string, e ledger.Event) {
	ten := rapid.SampledFrom([]string{"t1", "t2", "t3"}).Draw(t, "tenant")
	subj := rapid.SampledFrom([]string{subject, other, "plain-subject"}).Draw(t, "subject")
	ln := rapid.SampledFrom([]string{"l1", "l2"}).Draw(t, "line")
	at := base.Add(time.Duration(rapid.IntRange(-60*24*40, 60*24*10).Draw(t, "minutes")) * time.Minute)
	chs := rapid.SliceOfDistinct(rapid.SampledFrom(ledger.Channels), rapid.ID[string]).Draw(t, "channels")
	pus := rapid.SliceOfDistinct(rapid.SampledFrom(ledger.Purposes), rapid.ID[string]).Draw(t, "purposes")
	ch := rapid.SampledFrom(ledger.Channels).Draw(t, "channel")
	pu := rapid.SampledFrom(ledger.Purposes).Draw(t, "purpose")
	ref := rapid.SampledFrom([]string{"A", "B", "C"}).Draw(t, "contract")
	var exp *time.Time
	if rapid.Bool().Draw(t, "expires") {
		x := at.Add(days(rapid.IntRange(-100, 100).Draw(t, "days")))
		exp = &x
	}
	stream = ledger.ContactStream(ten, subj)
	var p any
	switch rapid.IntRange(0, 12).Draw(t, "type") {
	case 0:
		if len(chs) == 0 || len(pus) == 0 {
			chs, pus = []string{ch}, []string{pu}
		}
		p = ledger.ConsentGranted{Channels: chs, Purposes: pus, Source: rapid.SampledFrom(ledger.ConsentSources).Draw(t, "source"), ExpiresAt: exp}
	case 1:
		p = ledger.ConsentWithdrawn{Channels: chs, Purposes: pus, All: rapid.Bool().Draw(t, "all"), Via: "api"}
	case 2:
		p = ledger.RelationshipStarted{ContractRef: ref, StartsAt: at, ExpiresAt: exp}
	case 3:
		p = ledger.RelationshipEnded{ContractRef: ref, EndedAt: at}
	case 4:
		p = ledger.SuppressionListed{Scope: "tenant", List: rapid.SampledFrom([]string{"a", "b"}).Draw(t, "list")}
	case 5:
		p = ledger.SuppressionLifted{Scope: "tenant", List: rapid.SampledFrom([]string{"a", "b"}).Draw(t, "list")}
	case 6, 7:
		p = ledger.ContactMade{Line: ln, Channel: ch, Purpose: pu, Region: rapid.SampledFrom([]string{"", "北京市", "上海市"}).Draw(t, "region"),
			Backfill: rapid.IntRange(0, 4).Draw(t, "backfill") == 0}
	case 8:
		p = ledger.ComplaintReceived{Line: ln, Source: "customer"}
	case 9:
		p = ledger.ReminderDispatched{ReminderID: "r", ContractRef: ref, ContentHash: "h", Line: ln}
	case 10:
		if rapid.Bool().Draw(t, "erase") {
			// A business's erasure (its contact stream) or one everywhere.
			p = ledger.SubjectErased{}
			if rapid.Bool().Draw(t, "everywhere") {
				stream, ten = ledger.SubjectStream(subj), ""
			}
		} else {
			stream, ten = ledger.SubjectStream(subj), ""
			p = ledger.SuppressionListed{Scope: "global", List: "national"}
		}
	case 11:
		stream, subj = ledger.LineStream(ten, ln), ""
		p = ledger.LineSuspended{Line: ln, Rule: RuleLineSuspended}
	case 12:
		stream, subj = ledger.LineStream(ten, ln), ""
		p = ledger.LineReinstated{Line: ln}
	}
	e, err := ledger.NewEvent(ten, subj, at, p)
	if err != nil {
		t.Fatal(err)
	}
	return stream, e
}

// TestRebuildEqualsLive is invariant 6: a runner that followed the log,
// restarting from its snapshot along the way, holds exactly the state a
// rebuild from position 1 computes, and answers every question alike.
func TestRebuildEqualsLive(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ctx := context.Background()
		store := newClockStore(base)
		dir := tempDir(t)
		cfg := Default()
		if rapid.Bool().Draw(t, "touchy lines") {
			// Lines cross the complaint-rate threshold within a few events.
			cfg.LineSuspension.MinContacts, cfg.LineSuspension.Rate = 3, 0.2
			if err := cfg.Validate(); err != nil {
				t.Fatal(err)
			}
		}
		live, err := NewRunner(store, cfg, Options{Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		n := rapid.IntRange(1, 60).Draw(t, "events")
		restart := rapid.IntRange(0, n).Draw(t, "restart")
		for i := range n {
			stream, e := genEvent(t)
			store.set(base.Add(time.Duration(i) * time.Minute))
			if _, err := store.Append(ctx, stream, ledger.Any(), []ledger.Event{e}); err != nil {
				t.Fatal(err)
			}
			if err := live.CatchUp(ctx); err != nil {
				t.Fatal(err)
			}
			if i == restart {
				if err := live.Snapshot(); err != nil {
					t.Fatal(err)
				}
				if live, err = NewRunner(store, cfg, Options{Dir: dir}); err != nil {
					t.Fatal(err)
				}
				if live.Position() != uint64(i+1) {
					t.Fatalf("restored at %d, want %d", live.Position(), i+1)
				}
			}
		}
		if err := live.CatchUp(ctx); err != nil {
			t.Fatal(err)
		}
		rebuilt, err := Replay(ctx, store, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if diff := diffStates(live.st, rebuilt.st); diff != "" {
			t.Fatalf("live and rebuilt state differ: %s", diff)
		}
		for _, ten := range []string{"t1", "t2"} {
			for _, subj := range []string{subject, other} {
				for _, ch := range ledger.Channels {
					for _, pu := range ledger.Purposes {
						q := Query{Tenant: ten, Subject: subj, Number: number, Channel: ch, Purpose: pu, Line: "l1", At: base.Add(days(1))}
						a, err1 := live.st.Decide(q, q.At)
						b, err2 := rebuilt.st.Decide(q, q.At)
						if err1 != nil || err2 != nil || !reflect.DeepEqual(a, b) {
							t.Fatalf("%+v: live %+v (%v), rebuilt %+v (%v)", q, a, err1, b, err2)
						}
					}
				}
			}
		}
	})
}

var dirs int

func tempDir(t *rapid.T) string {
	dirs++
	return fmt.Sprintf("%s/%d", testDir, dirs)
}

var testDir string

func TestMain(m *testing.M) {
	d, err := os.MkdirTemp("", "projections-test-")
	if err != nil {
		panic(err)
	}
	testDir = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

// diffStates names the first difference between two states, treating
// empty and nil collections alike.
func diffStates(a, b *State) string {
	switch {
	case a.pos != b.pos:
		return fmt.Sprintf("position %d vs %d", a.pos, b.pos)
	case !a.recorded.Equal(b.recorded):
		return fmt.Sprintf("recorded %v vs %v", a.recorded, b.recorded)
	case a.recs.n != b.recs.n:
		return fmt.Sprintf("%d records vs %d", a.recs.n, b.recs.n)
	case !maps.Equal(a.exps, b.exps) || !maps.Equal(a.globals, b.globals) || !maps.Equal(a.complaints, b.complaints) ||
		!maps.Equal(a.erased, b.erased):
		return "expiries or global facts"
	case a.subjects.len() != b.subjects.len():
		return "subject index size"
	case !slices.Equal(a.tenants.Names, b.tenants.Names) || !slices.Equal(a.lists.Names, b.lists.Names) || !slices.Equal(a.regions.Names, b.regions.Names):
		return "interned names"
	case len(a.more) != len(b.more) || len(a.lines) != len(b.lines):
		return "contracts or lines"
	case !maps.EqualFunc(a.spill, b.spill, slices.Equal):
		return "spilled contacts"
	}
	for _, sl := range a.subjects.slots {
		if v, ok := b.subjects.get(sl.k); sl.v != 0 && (!ok || v != sl.v-1) {
			return fmt.Sprintf("subject %x: record %d vs %d", sl.k, sl.v-1, v)
		}
	}
	for i := range a.recs.n {
		if *a.recs.at(i) != *b.recs.at(i) {
			return fmt.Sprintf("record %d: %+v vs %+v", i, *a.recs.at(i), *b.recs.at(i))
		}
	}
	for k, v := range a.more {
		if !slices.Equal(v, b.more[k]) {
			return fmt.Sprintf("contracts of %d", k)
		}
	}
	for k, l := range a.lines {
		if len(l) != len(b.lines[k]) {
			return fmt.Sprintf("lines of %q", k)
		}
	}
	var diff string
	a.eachLine(func(l *line) {
		m := b.lines[l.Tenant][l.Name]
		k := l.Tenant + "/" + l.Name
		if m == nil || l.Tenant != m.Tenant || l.Name != m.Name || l.Rev != m.Rev || l.Suspended != m.Suspended ||
			l.SuspPos != m.SuspPos || l.Over != m.Over || !slices.Equal(l.Buckets, m.Buckets) || !maps.Equal(l.Regions, m.Regions) || !slices.Equal(l.Trips, m.Trips) {
			diff = fmt.Sprintf("line %q: %+v vs %+v", k, l, m)
		}
	})
	return diff
}

// TestFrequencyCountsEveryContactItNeeds checks the compact ring against a
// plain count of every contact: however contacts arrive (channels mixed,
// out of time order), the frequency rule denies exactly when the log holds
// Max contacts of that channel and purpose within the window.
func TestFrequencyCountsEveryContactItNeeds(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cfg := Default()
		cfg.Frequency.SubjectPerDay = 1000 // this test is about the per-tenant limits
		cfg.Frequency.Service.Max = rapid.IntRange(1, 8).Draw(t, "service max")
		cfg.Frequency.Marketing = Limit{Max: rapid.IntRange(1, 3).Draw(t, "marketing max"), Days: 30}
		if err := cfg.Validate(); err != nil {
			t.Fatal(err)
		}
		b := newBook(t, cfg)
		type made struct {
			c  int
			at uint32
		}
		var log []made
		for range rapid.IntRange(0, 40).Draw(t, "contacts") {
			c := rapid.IntRange(0, combos-1).Draw(t, "combo")
			at := base.Add(-time.Duration(rapid.IntRange(0, 40*24*60).Draw(t, "minutes ago")) * time.Minute)
			b.contact(tenant, subject, at, ledger.ContactMade{Line: "l", Channel: channelOf(c), Purpose: purposeOf(c)})
			log = append(log, made{c, minute(at)})
		}
		now := minute(base)
		for c := range combos {
			lim := b.st.limit(c)
			n := 0
			for _, m := range log {
				if m.c == c && m.at > now-uint32(lim.Days)*1440 && m.at <= now {
					n++
				}
			}
			d := b.decide(Query{Tenant: tenant, Subject: subject, Number: number, Channel: channelOf(c), Purpose: purposeOf(c), At: base})
			if got, want := d.Denied(RuleFrequency), n >= lim.Max; got != want {
				t.Fatalf("%s/%s: %d contacts in %d days (limit %d): denied = %v", channelOf(c), purposeOf(c), n, lim.Days, lim.Max, got)
			}
		}
	})
}
