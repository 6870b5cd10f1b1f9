package projections

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/heed/heed/ledger"
)

func TestRestartResumesFromSnapshot(t *testing.T) {
	ctx := context.Background()
	store := newClockStore(base)
	dir := t.TempDir()
	r, err := NewRunner(store, Default(), Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	app := func(stream string, ten, subj string, p any) {
		t.Helper()
		e, _ := ledger.NewEvent(ten, subj, base.Add(-days(1)), p)
		if _, err := store.Append(ctx, stream, ledger.Any(), []ledger.Event{e}); err != nil {
			t.Fatal(err)
		}
	}
	app(ledger.ContactStream(tenant, subject), tenant, subject, ledger.RelationshipStarted{ContractRef: "P", StartsAt: base.Add(-days(9))})
	app(ledger.LineStream(tenant, line1), tenant, "", ledger.LineSuspended{Line: line1, Rule: RuleLineSuspended})
	if err := r.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.Snapshot(); err != nil {
		t.Fatal(err)
	}
	// Written after the snapshot: the restarted runner must read it from the log.
	app(ledger.ContactStream(tenant, subject), tenant, subject, ledger.ConsentWithdrawn{All: true, Via: "sms_keyword", RawText: "退订"})

	again, err := NewRunner(store, Default(), Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if again.Position() != 2 {
		t.Fatalf("restored at position %d, want 2", again.Position())
	}
	d, err := again.Decide(ctx, Query{Tenant: tenant, Subject: subject, Number: number, Channel: "call", Purpose: "service", Line: line1, At: base})
	if err != nil {
		t.Fatal(err)
	}
	if d.AsOf != 3 || !d.Denied(RuleWithdrawal) || !d.Denied(RuleLineSuspended) || d.Revision != 2 {
		t.Errorf("after restart: %+v", d)
	}

	// Another rule set ignores the snapshot and starts from position 1.
	strict := Default()
	strict.ServiceBasis.GraceDays = 0
	if err := strict.Validate(); err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(dir, strict); !errors.Is(err, ErrNoSnapshot) {
		t.Errorf("snapshot under other rules: %v, want ErrNoSnapshot", err)
	}
	other, err := NewRunner(store, strict, Options{Dir: dir})
	if err != nil || other.Position() != 0 {
		t.Errorf("runner under other rules at %d, %v", other.Position(), err)
	}

	// A damaged file is reported, not silently used: the state is
	// replayed from the log.
	if err := os.WriteFile(filepath.Join(dir, snapshotFile), []byte(snapshotMagic+"garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(dir, Default()); !errors.Is(err, ErrSnapshot) {
		t.Errorf("damaged snapshot: %v, want ErrSnapshot", err)
	}
	if r, err := NewRunner(store, Default(), Options{Dir: dir}); err != nil || r.Position() != 0 {
		t.Errorf("runner over a damaged snapshot at %d, %v; want a replay from 1", r.Position(), err)
	}
}

func TestRunSavesSnapshotOnExit(t *testing.T) {
	store := newClockStore(base)
	dir := t.TempDir()
	r, err := NewRunner(store, Default(), Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	e, _ := ledger.NewEvent(tenant, subject, base, grant("web_form", call, marketing))
	out, err := store.Append(ctx, ledger.ContactStream(tenant, subject), ledger.Any(), []ledger.Event{e})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.WaitFor(ctx, out[0].Position); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
	st, err := Restore(dir, Default())
	if err != nil || st.Position() != 1 {
		t.Fatalf("snapshot after exit: %v", err)
	}
}
