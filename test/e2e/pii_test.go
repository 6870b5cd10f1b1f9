package e2e

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/heed/heed/ledger/kurrent/fake"
)

// TestMarkerNeverInClear is invariant 7 as a user can check it: a random
// marker written through the API into every personal field is in no file
// of the data directory, the export bundle or the audit log; staff can
// read it only through the recorded operation, the customer sees that
// read, and after the customer's erasure no operation returns it.
func TestMarkerNeverInClear(t *testing.T) {
	markerNeverInClear(t, nil, nil)
}

// TestMarkerNeverInClearOnKurrentDB runs the same with the log and the
// subject keys in KurrentDB (the in-process fake), and also searches
// everything the cluster holds.
func TestMarkerNeverInClearOnKurrentDB(t *testing.T) {
	srv, err := fake.Start()
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	markerNeverInClear(t, []string{"--store", srv.URL()}, srv.Bytes)
}

func markerNeverInClear(t *testing.T, extra []string, cluster func() []byte) {
	dir := t.TempDir()
	s := startServe(t, dir, append([]string{"--sim-dev"}, extra...)...)
	mb := make([]byte, 8)
	if _, err := rand.Read(mb); err != nil {
		t.Fatal(err)
	}
	marker := "MK" + hex.EncodeToString(mb)
	const idCard = "110101199003071234"
	clear := []string{marker, idCard}

	aud := s.must(t, 201, "POST", "/v1/keys", s.admin, map[string]any{"role": "auditor"})["token"].(string)
	var bizs []string
	for _, tenant := range []string{"acme", "globex"} {
		bizs = append(bizs, s.must(t, 201, "POST", "/v1/keys", s.admin, map[string]any{"role": "business", "tenant": tenant})["token"].(string))
	}
	var sealed []int // positions of events that carry personal fields
	for i, biz := range bizs {
		tag := fmt.Sprintf("%s-%d", marker, i)
		for _, w := range []struct {
			path string
			body map[string]any
		}{
			{"/v1/consents", map[string]any{"number": number, "purposes": []string{"service"}, "channels": []string{"sms"}, "source": "web_form",
				"evidence": map[string]any{"text": "本人张伟（身份证" + idCard + "）同意 " + tag, "url": "https://forms.example/" + tag,
					"recording_id": "rec-" + tag, "content_hash": "sha256:0f"}}},
			{"/v1/withdrawals", map[string]any{"number": number, "via": "call", "channels": []string{"call"}, "raw_text": "别再打了 " + tag}},
			{"/v1/relationships", map[string]any{"number": number, "contract_ref": "POL-1"}},
			{"/v1/relationships/POL-1/end", map[string]any{"number": number, "reason": "moved " + tag}},
			{"/v1/contacts", map[string]any{"number": number, "line": "L1", "channel": "sms", "purpose": "service",
				"campaign": "c-" + tag, "outcome": "said " + tag}},
			{"/v1/complaints", map[string]any{"number": number, "source": "customer", "reason": "called at 23:00 " + tag}},
			{"/v1/suppressions", map[string]any{"number": number, "list": "dnc", "source": "asked " + tag}},
			{"/v1/suppressions", map[string]any{"number": number, "list": "dnc", "action": "lift", "reason": "agreed " + tag}},
		} {
			r := s.must(t, 201, "POST", w.path, biz, w.body)
			if w.path != "/v1/relationships" {
				sealed = append(sealed, int(r["position"].(float64)))
			}
		}
	}
	// A reply heed does not act on is recorded with its text sealed.
	s.must(t, 202, "POST", "/dev/sim/mo", s.admin, map[string]any{"From": strings.TrimPrefix(number, "+"), "To": line, "Text": "你们是谁 " + marker})
	var inbound int
	eventually(t, "the unmatched reply", func() bool {
		for _, l := range strings.Split(string(s.do(t, "GET", "/v1/audit/events?limit=1000", aud, nil).body), "\n") {
			if strings.Contains(l, `"type":"InboundUnmatched"`) {
				fmt.Sscanf(l[strings.Index(l, `"position":`):], `"position":%d`, &inbound)
			}
		}
		return inbound > 0
	})
	sealed = append(sealed, inbound)

	// Staff read an opened field through the recorded operation, and the
	// customer sees it.
	read := s.must(t, 200, "GET", fmt.Sprintf("/v1/audit/events/%d/personal?purpose=dispute+D-1", sealed[0]), aud, nil)
	if !strings.Contains(fmt.Sprint(read["fields"]), marker) {
		t.Fatalf("the staff read does not return what was written: %v", read["fields"])
	}
	tok := signIn(t, s)
	me := s.do(t, "GET", "/v1/me/contacts", tok, nil)
	if !strings.Contains(string(me.body), "dispute D-1") {
		t.Fatalf("the customer does not see the staff read: %s", me.body)
	}

	noMarker := func(where string, b []byte) {
		t.Helper()
		for _, c := range clear {
			if bytes.Contains(b, []byte(c)) {
				t.Errorf("%s holds %q in clear", where, c)
			}
		}
	}
	reads := func(when string) {
		t.Helper()
		noMarker(when+": /v1/audit/events", s.do(t, "GET", "/v1/audit/events?limit=100000", aud, nil).body)
		noMarker(when+": /v1/me/contacts", s.do(t, "GET", "/v1/me/contacts", tok, nil).body)
		for _, biz := range bizs {
			noMarker(when+": subject history", s.do(t, "GET", "/v1/subjects/%2B8613912345678/history", biz, nil).body)
		}
		path, err := bundleTo(s, aud, filepath.Join(t.TempDir(), "bundle"))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		noMarker(when+": /v1/audit/bundle", b)
	}
	reads("before erasure")

	// The customer erases at every business.
	er := s.must(t, 201, "POST", "/v1/me/erasure", tok, nil)
	if n := len(er["erased"].([]any)); n != 3 {
		t.Fatalf("erasure everywhere recorded %d erasures, want 3 (acme, globex, none)", n)
	}
	reads("after erasure")
	for _, pos := range sealed {
		r := s.do(t, "GET", fmt.Sprintf("/v1/audit/events/%d/personal?purpose=again", pos), aud, nil)
		if r.status != 410 {
			t.Errorf("staff read of position %d after erasure: %d %s", pos, r.status, r.body)
		}
		noMarker("staff read after erasure", r.body)
	}
	// The opt-outs still hold, through the pseudonym.
	for _, biz := range bizs {
		d := s.must(t, 200, "POST", "/v1/decisions", biz, map[string]any{"number": number, "channel": "call", "purpose": "service"})
		if d["allowed"] != false || !strings.Contains(fmt.Sprint(d["reasons"]), "withdrawal") {
			t.Fatalf("decision after erasure: %v", d)
		}
	}
	s.stop(t)
	noMarker("the server log", []byte(s.stderr.String()))

	if cluster != nil {
		b := cluster()
		if !bytes.Contains(b, []byte("InboundUnmatched")) {
			t.Fatal("the cluster does not hold the log")
		}
		noMarker("the KurrentDB cluster", b)
	}

	// No file of the data directory holds it, nor a bundle exported
	// offline (heed export reads the embedded store; on KurrentDB the
	// bundle was read from the API above).
	if cluster == nil {
		out := filepath.Join(t.TempDir(), "export.ndjson")
		if b, err := exec.Command(heed(t), "export", "--data", dir, "--out", out).CombinedOutput(); err != nil {
			t.Fatalf("heed export: %v\n%s", err, b)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		noMarker("heed export", b)
		if out, err := exec.Command(heed(t), "verify", out).CombinedOutput(); err != nil {
			t.Fatalf("heed verify of the bundle after erasure: %v\n%s", err, out)
		}
	}
	files := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		noMarker(path, b)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if files < 3 {
		t.Fatalf("only %d files in the data directory", files)
	}
}

// signIn proves the number with the code the simulator received.
func signIn(t *testing.T, s *server) string {
	t.Helper()
	s.must(t, 202, "POST", "/v1/me/challenge", "", map[string]any{"number": number})
	var code string
	eventually(t, "the verification code", func() bool {
		for _, w := range strings.Fields(builtin{}.lastText(t, s, number)) {
			if len(w) == 6 && strings.Trim(w, "0123456789") == "" {
				code = w
			}
		}
		return code != ""
	})
	return s.must(t, 200, "POST", "/v1/me/session", "", map[string]any{"number": number, "code": code})["token"].(string)
}
