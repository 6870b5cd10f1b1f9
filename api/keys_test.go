package api

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heed/heed/api/auth"
	"github.com/heed/heed/ledger"
)

// keyID returns the id of the key a token grants.
func (h *harness) keyID(tok string) string {
	h.t.Helper()
	k, err := h.keys.Lookup(tok)
	if k.ID == "" {
		h.t.Fatal(err)
	}
	return k.ID
}

// keyEvents returns the key lifecycle events in the log.
func (h *harness) keyEvents() []ledger.Event {
	h.t.Helper()
	evs, err := h.store.ReadStream(context.Background(), ledger.KeysStream, 1, 0)
	if err != nil {
		h.t.Fatal(err)
	}
	return evs
}

func TestRevokedKeyIsRefusedOnTheNextRequest(t *testing.T) {
	h := newHarness(t)
	tok := h.newKey(map[string]any{"role": "business", "tenant": "tenanta", "reason": "onboarding"})
	id := h.keyID(tok)
	decide := map[string]any{"number": shared, "channel": "sms", "purpose": "service"}
	if r := h.do("POST", "/v1/decisions", tok, decide); r.status != 200 {
		t.Fatalf("before revocation: %d %s", r.status, r.body)
	}
	r := h.do("DELETE", "/v1/keys/"+id+"?reason=leaked", h.admin, nil)
	if r.status != 200 {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	r = h.do("POST", "/v1/decisions", tok, decide)
	if r.status != http.StatusUnauthorized || r.json(t)["detail"] != "API key revoked" {
		t.Fatalf("the request after revocation: %d %s, want 401 'API key revoked'", r.status, r.body)
	}
	// Unknown ids are 404; a repeat answers as the first time did.
	if r := h.do("DELETE", "/v1/keys/key_nothere", h.admin, nil); r.status != 404 {
		t.Fatalf("revoke unknown: %d %s", r.status, r.body)
	}
	if r := h.do("DELETE", "/v1/keys/"+id+"?reason=again", h.admin, nil); r.status != 200 || r.json(t)["key"].(map[string]any)["reason"] != "leaked" {
		t.Fatalf("repeat revoke: %d %s", r.status, r.body)
	}
	// The log tells who could write when: created by the admin, revoked by
	// the admin, once each, and no token in either.
	adminID := h.keyID(h.admin)
	var created, revoked int
	for _, e := range h.keyEvents() {
		if strings.Contains(string(e.Data), "heed_") {
			t.Fatalf("a key event carries a token: %s", e.Data)
		}
		if !strings.Contains(string(e.Data), id) {
			continue
		}
		if e.Actor != adminID {
			t.Errorf("%s actor = %q, want %q", e.Type, e.Actor, adminID)
		}
		switch e.Type {
		case ledger.TypeKeyCreated:
			created++
			if !strings.Contains(string(e.Data), `"reason":"onboarding"`) || !strings.Contains(string(e.Data), `"tenant":"tenanta"`) {
				t.Errorf("KeyCreated = %s", e.Data)
			}
		case ledger.TypeKeyRevoked:
			revoked++
			if !strings.Contains(string(e.Data), `"reason":"leaked"`) {
				t.Errorf("KeyRevoked = %s", e.Data)
			}
		}
	}
	if created != 1 || revoked != 1 {
		t.Fatalf("events of the key: %d KeyCreated, %d KeyRevoked; want 1 and 1", created, revoked)
	}
}

func TestLastAdminKeyCannotBeRevoked(t *testing.T) {
	h := newHarness(t)
	if r := h.do("DELETE", "/v1/keys/"+h.keyID(h.admin), h.admin, nil); r.status != http.StatusConflict {
		t.Fatalf("revoking the only admin key: %d %s, want 409", r.status, r.body)
	}
	second := h.newKey(map[string]any{"role": "admin"})
	if r := h.do("DELETE", "/v1/keys/"+h.keyID(h.admin), second, nil); r.status != 200 {
		t.Fatalf("revoking an admin key with another left: %d %s", r.status, r.body)
	}
	if r := h.do("GET", "/v1/keys", h.admin, nil); r.status != http.StatusUnauthorized {
		t.Fatalf("the revoked admin key lists keys: %d", r.status)
	}
}

func TestExpiredKeyIsRefused(t *testing.T) {
	h := newHarness(t)
	var clock atomic.Pointer[time.Time]
	now := time.Now()
	clock.Store(&now)
	h.keys.Now = func() time.Time { return *clock.Load() }
	tok := h.newKey(map[string]any{"role": "auditor", "expires_in": "1h"})
	if r := h.do("GET", "/v1/audit/checkpoint", tok, nil); r.status == http.StatusUnauthorized {
		t.Fatalf("fresh key: %d %s", r.status, r.body)
	}
	// Past the expiry, whichever way the creation time was rounded.
	now = now.Add(time.Hour + time.Second)
	clock.Store(&now)
	r := h.do("GET", "/v1/audit/checkpoint", tok, nil)
	if r.status != http.StatusUnauthorized || !strings.HasPrefix(r.json(t)["detail"].(string), "API key expired at ") {
		t.Fatalf("expired key: %d %s, want 401 'API key expired at ...'", r.status, r.body)
	}
	for _, body := range []map[string]any{
		{"role": "auditor", "expires_in": "soon"},
		{"role": "auditor", "expires_at": now.Add(-time.Minute).Format(time.RFC3339)},
		{"role": "auditor", "expires_in": "1h", "expires_at": now.Add(time.Hour).Format(time.RFC3339)},
	} {
		if r := h.do("POST", "/v1/keys", h.admin, body); r.status != 422 {
			t.Errorf("create %v: %d %s, want 422", body, r.status, r.body)
		}
	}
	at := now.Add(48 * time.Hour).UTC().Truncate(time.Second)
	r = h.do("POST", "/v1/keys", h.admin, map[string]any{"role": "auditor", "expires_at": at.Format(time.RFC3339)})
	if r.status != 201 || r.json(t)["key"].(map[string]any)["expires"] != at.Format(time.RFC3339) {
		t.Fatalf("create with expires_at: %d %s", r.status, r.body)
	}
}

func TestListKeysShowsLifecycleNeverSecrets(t *testing.T) {
	h := newHarness(t)
	if r := h.do("POST", "/v1/decisions", h.a, map[string]any{"number": shared, "channel": "sms", "purpose": "service"}); r.status != 200 {
		t.Fatal(r.status)
	}
	if r := h.do("DELETE", "/v1/keys/"+h.keyID(h.b), h.admin, nil); r.status != 200 {
		t.Fatal(r.status)
	}
	r := h.do("GET", "/v1/keys", h.admin, nil)
	if r.status != 200 {
		t.Fatalf("%d %s", r.status, r.body)
	}
	for _, tok := range []string{h.a, h.b, h.admin, h.auditor} {
		h := sha256.Sum256([]byte(tok))
		sum := hex.EncodeToString(h[:])
		if strings.Contains(string(r.body), tok) || strings.Contains(string(r.body), sum) {
			t.Fatal("the list shows a token or its hash")
		}
	}
	var out struct {
		Keys []auth.Key `json:"keys"`
	}
	if err := json.Unmarshal(r.body, &out); err != nil {
		t.Fatal(err)
	}
	got := map[string]auth.Key{}
	for _, k := range out.Keys {
		got[k.ID] = k
	}
	a, b, aud := got[h.keyID(h.a)], got[h.keyID(h.b)], got[h.keyID(h.auditor)]
	if a.Tenant != "tenanta" || a.Role != "business" || a.Created.IsZero() || time.Since(a.LastUsed) > time.Minute {
		t.Errorf("tenant A's key = %+v, want its tenant, role, creation and a recent last use", a)
	}
	if !aud.LastUsed.IsZero() {
		t.Errorf("the unused auditor key shows a last use: %v", aud.LastUsed)
	}
	if b.Revoked.IsZero() || b.RevokedBy != h.keyID(h.admin) {
		t.Errorf("tenant B's key = %+v, want revoked by the admin", b)
	}
	if len(out.Keys) != 5 { // the harness's admin, auditor, reviewer and two business keys
		t.Errorf("listed %d keys, want 5", len(out.Keys))
	}
}

// newKey creates a key through the API and returns its token.
func (h *harness) newKey(body map[string]any) string {
	h.t.Helper()
	r := h.do("POST", "/v1/keys", h.admin, body)
	if r.status != 201 {
		h.t.Fatalf("create key %v: %d %s", body, r.status, r.body)
	}
	var out struct{ Token string }
	if err := json.Unmarshal(r.body, &out); err != nil {
		h.t.Fatal(err)
	}
	return out.Token
}
