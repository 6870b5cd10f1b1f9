package main

import (
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
)

// stdout runs fn and returns what it printed on stdout.
func stdout(t *testing.T, fn func()) string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	old := os.Stdout
	os.Stdout = w
	done := make(chan string)
	go func() {
		b, _ := io.ReadAll(r)
		done <- string(b)
	}()
	defer func() { os.Stdout = old }()
	fn()
	w.Close()
	return <-done
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestKeysCLIOnStoppedDataDir: keys made and revoked with the server
// stopped are listed, recorded in the log, and honoured when serve starts.
func TestKeysCLIOnStoppedDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	var admin, biz, spare string
	out := stdout(t, func() {
		for _, args := range [][]string{
			{"keys", "create", "--data", dir, "--role", "admin"},
			{"keys", "create", "--data", dir, "--role", "business", "--tenant", "acme", "--reason", "onboarding"},
			{"keys", "create", "--data", dir, "--role", "auditor", "--expires", "90d"},
		} {
			if code := run(args); code != 0 {
				t.Errorf("%v: exit %d", args, code)
			}
		}
	})
	toks := strings.Fields(out)
	if len(toks) != 3 {
		t.Fatalf("printed %q, want three tokens", out)
	}
	admin, biz, spare = toks[0], toks[1], toks[2]
	// A token is "heed_" + 8 characters of id + "_" + secret; the id's
	// base64url characters may themselves be '_'.
	idOf := func(tok string) string { return "key_" + tok[len("heed_"):len("heed_")+8] }

	if code := run([]string{"keys", "revoke", "--data", dir, "--reason", "leaked", idOf(biz)}); code != 0 {
		t.Fatalf("revoke exit %d", code)
	}
	if code := run([]string{"keys", "revoke", "--data", dir, idOf(admin)}); code != 2 {
		t.Fatalf("revoking the last admin key: exit %d, want 2", code)
	}
	if code := run([]string{"keys", "revoke", "--data", dir, "key_nothere"}); code != 2 {
		t.Fatalf("revoking an unknown key: exit %d, want 2", code)
	}
	list := stdout(t, func() {
		if code := run([]string{"keys", "list", "--data", dir}); code != 0 {
			t.Fatalf("list exit %d", code)
		}
	})
	lines := strings.Split(strings.TrimSpace(list), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "ID") {
		t.Fatalf("list:\n%s", list)
	}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		switch f[0] {
		case idOf(biz):
			if f[2] != "acme" || f[6] == "-" || !strings.Contains(l, "by cli") {
				t.Errorf("the revoked key's line: %s", l)
			}
		case idOf(spare):
			if f[4] == "-" || f[6] != "-" {
				t.Errorf("the expiring key's line: %s", l)
			}
		}
	}
	for _, tok := range toks {
		if strings.Contains(list, tok) {
			t.Fatal("list shows a token")
		}
	}

	// serve starts on the directory and refuses the revoked key.
	addr := freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- serve(ctx, []string{"--data", dir, "--listen", addr}) }()
	get := func(tok string) int {
		req, _ := http.NewRequest("GET", "http://"+addr+"/v1/keys", nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	deadline := time.Now().Add(30 * time.Second)
	for get(admin) != 200 {
		if time.Now().After(deadline) {
			t.Fatal("serve did not answer in 30 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code := get(biz); code != http.StatusUnauthorized {
		t.Errorf("the key revoked while stopped: %d, want 401", code)
	}
	if code := get(spare); code != http.StatusForbidden {
		t.Errorf("the auditor key on an admin route: %d, want 403", code)
	}
	cancel()
	if err := <-served; err != nil {
		t.Fatalf("serve: %v", err)
	}

	// The log records each creation and the revocation, by the command line.
	d, err := openData(dir, "", "", true)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	evs, err := d.Store.ReadStream(context.Background(), ledger.KeysStream, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, e := range evs {
		types = append(types, e.Type)
		if !strings.HasPrefix(e.Actor, "cli") {
			t.Errorf("%s actor = %q, want the command line", e.Type, e.Actor)
		}
	}
	if got := strings.Join(types, ","); got != "KeyCreated,KeyCreated,KeyCreated,KeyRevoked" {
		t.Fatalf("key events = %s", got)
	}
}
