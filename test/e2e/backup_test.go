package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/heed/heed/ledger/bolt"
	"github.com/heed/heed/ledger/kurrent/fake"
)

// TestBackupWhileWriting: 64 clients write contacts through the API while
// heed backup takes a backup through the running server; the backup is
// restored into a new directory, which verifies and serves (the API keys
// came along), and holds every event acknowledged before the backup
// started.
func TestBackupWhileWriting(t *testing.T) {
	dir := t.TempDir()
	s := startServe(t, dir)
	biz := s.must(t, 201, "POST", "/v1/keys", s.admin, map[string]any{"role": "business", "tenant": "acme"})["token"].(string)
	if r := s.do(t, "GET", "/v1/admin/backup?recipient=x", biz, nil); r.status != 403 {
		t.Fatalf("backup with a business key: %d, want 403", r.status)
	}
	if r := s.do(t, "GET", "/v1/admin/backup?recipient=x", s.admin, nil); r.status != 422 {
		t.Fatalf("backup for a malformed recipient: %d, want 422", r.status)
	}

	var mu sync.Mutex
	var acked []string // ids, in the order their acknowledgements arrived
	var failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	for c := range 64 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				body := fmt.Sprintf(`{"number":"+86138%04d%04d","line":"L1","channel":"call","purpose":"service","outcome":"answered"}`, c, i%10000)
				req, _ := http.NewRequest("POST", s.url+"/v1/contacts", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+biz)
				req.Header.Set("Content-Type", "application/json")
				resp, err := client.Do(req)
				if err != nil {
					failed.Add(1)
					continue
				}
				var b bytes.Buffer
				b.ReadFrom(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 201 {
					failed.Add(1)
					continue
				}
				id, _, _ := strings.Cut(strings.TrimPrefix(b.String(), `{"id":"`), `"`)
				mu.Lock()
				acked = append(acked, id)
				mu.Unlock()
			}
		}()
	}
	eventually(t, "writes acknowledged", func() bool { mu.Lock(); defer mu.Unlock(); return len(acked) > 2000 })

	pass := filepath.Join(t.TempDir(), "pass")
	os.WriteFile(pass, []byte("a long enough passphrase\n"), 0o600)
	out := filepath.Join(t.TempDir(), "heed.backup")
	mu.Lock()
	before := append([]string(nil), acked...)
	mu.Unlock()
	cmd := exec.Command(heed(t), "backup", "--server", s.url, "--out", out, "--passphrase-file", pass)
	cmd.Env = append(os.Environ(), "HEED_ADMIN_KEY="+s.admin)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("backup: %v\n%s", err, b)
	}
	mu.Lock()
	during := len(acked) - len(before)
	mu.Unlock()
	close(stop)
	wg.Wait()
	s.stop(t)
	t.Logf("%d events acknowledged before the backup, %d while it ran, %d writes failed", len(before), during, failed.Load())
	if during == 0 {
		t.Error("no write was acknowledged while the backup ran: it did not run under load")
	}
	if failed.Load() > 0 {
		t.Errorf("%d writes failed during the backup", failed.Load())
	}

	restored := filepath.Join(t.TempDir(), "restored")
	if b, err := exec.Command(heed(t), "restore", "--in", out, "--data", restored, "--passphrase-file", pass).CombinedOutput(); err != nil {
		t.Fatalf("restore: %v\n%s", err, b)
	}
	if b, err := exec.Command(heed(t), "verify", "--data", restored, "--allow-unsealed-tail").CombinedOutput(); err != nil {
		t.Fatalf("verify the restored directory: %v\n%s", err, b)
	}
	st, err := bolt.Open(filepath.Join(restored, "ledger.db"), bolt.ReadOnly())
	if err != nil {
		t.Fatal(err)
	}
	missing := 0
	for _, id := range before {
		if _, ok, err := st.Lookup(context.Background(), id); !ok || err != nil {
			missing++
		}
	}
	st.Close()
	if missing > 0 {
		t.Fatalf("%d of %d events acknowledged before the backup are not in it", missing, len(before))
	}

	// The restored directory serves, with the keys it had.
	r := startServe(t, restored)
	if r.admin != "" {
		t.Error("the restored directory made a new admin key: its API keys were not restored")
	}
	r.must(t, 201, "POST", "/v1/contacts", biz, map[string]any{"number": number, "line": "L1", "channel": "call", "purpose": "service", "outcome": "answered"})
	r.stop(t)
	if b, err := exec.Command(heed(t), "verify", "--data", restored).CombinedOutput(); err != nil {
		t.Fatalf("verify after serving: %v\n%s", err, b)
	}
}

// TestKurrentRestartAndEmptiedCluster: on KurrentDB, serve restarts on its
// data dir (its checkpoints promise the cluster's log, not the local
// ledger.db), and refuses a cluster that holds fewer events than it
// signed, as an emptied or wrong cluster does.
func TestKurrentRestartAndEmptiedCluster(t *testing.T) {
	srv, err := fake.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	dir := t.TempDir()
	s := startServe(t, dir, "--store", srv.URL(), "--seal-every", "100ms")
	biz := s.must(t, 201, "POST", "/v1/keys", s.admin, map[string]any{"role": "business", "tenant": "acme"})["token"].(string)
	aud := s.must(t, 201, "POST", "/v1/keys", s.admin, map[string]any{"role": "auditor"})["token"].(string)
	for range 5 {
		s.must(t, 201, "POST", "/v1/contacts", biz, map[string]any{"number": number, "line": "L1", "channel": "call", "purpose": "service", "outcome": "answered"})
	}
	eventually(t, "a checkpoint", func() bool {
		r := s.do(t, "GET", "/v1/audit/checkpoint", aud, nil)
		return r.status == 200 && !strings.Contains(string(r.body), `"size":0`)
	})
	s.stop(t)

	s = startServe(t, dir, "--store", srv.URL())
	s.must(t, 201, "POST", "/v1/contacts", biz, map[string]any{"number": number, "line": "L1", "channel": "call", "purpose": "service", "outcome": "answered"})
	s.stop(t)

	empty, err := fake.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer empty.Close()
	out, err := exec.Command(heed(t), "serve", "--data", dir, "--listen", "127.0.0.1:0", "--store", empty.URL()).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "the KurrentDB cluster holds 0 events, but") {
		t.Fatalf("serve on an empty cluster: %v\n%s", err, out)
	}
}
