package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/kurrent"
	"github.com/heed/heed/ledger/kurrent/fake"
)

// TestKeysCLIWithKurrent: with --store, the key events go to the cluster,
// where every instance's follower reads them.
func TestKeysCLIWithKurrent(t *testing.T) {
	srv, err := fake.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	dir := filepath.Join(t.TempDir(), "data")
	out := stdout(t, func() {
		for _, args := range [][]string{
			{"keys", "create", "--data", dir, "--store", srv.URL(), "--role", "admin"},
			{"keys", "create", "--data", dir, "--store", srv.URL(), "--role", "business", "--tenant", "acme"},
		} {
			if code := run(args); code != 0 {
				t.Fatalf("%v: exit %d", args, code)
			}
		}
	})
	toks := strings.Fields(out)
	if len(toks) != 2 {
		t.Fatalf("printed %q", out)
	}
	id := "key_" + toks[1][len("heed_"):len("heed_")+8]
	if code := run([]string{"keys", "revoke", "--data", dir, "--store", srv.URL(), id}); code != 0 {
		t.Fatalf("revoke exit %d", code)
	}
	ctx := context.Background()
	ks, err := kurrent.Open(ctx, srv.URL(), kurrent.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer ks.Close()
	evs, err := ks.ReadStream(ctx, ledger.KeysStream, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range evs {
		types = append(types, e.Type)
	}
	if got := strings.Join(types, ","); got != "KeyCreated,KeyCreated,KeyRevoked" || !strings.Contains(string(evs[2].Data), id) {
		t.Fatalf("events in the cluster: %s", got)
	}
}
