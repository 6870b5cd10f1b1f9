package api

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/heed/heed/api/auth"
	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/ledgertest"
)

var pingan = map[string]any{"display_name": "平安保险", "display_name_en": "Ping An Insurance", "service_phone": "95511", "lines": []string{"10690001"}}

// TestTenantProfileIsSetByAnAdminAndRecorded: an admin sets a business's
// profile, which is recorded as a TenantProfileSet event by that admin;
// the same profile again records nothing; the business reads its own and
// no other; nobody else sets one.
func TestTenantProfileIsSetByAnAdminAndRecorded(t *testing.T) {
	h := newHarness(t)
	if r := h.do("GET", "/v1/tenants/tenanta/profile", h.admin, nil); r.status != 404 {
		t.Fatalf("profile before any was set: %d %s", r.status, r.body)
	}
	before := h.head()
	r := h.do("PUT", "/v1/tenants/tenanta/profile", h.admin, pingan)
	if r.status != 201 {
		t.Fatalf("set: %d %s", r.status, r.body)
	}
	evs, err := h.store.ReadStream(context.Background(), ledger.ProfileStream("tenanta"), 1, 0)
	if err != nil || len(evs) != 1 || h.head() != before+1 {
		t.Fatalf("recorded %d events (%v), head %d → %d", len(evs), err, before, h.head())
	}
	var adminKey string
	for _, k := range h.keys.List() {
		if k.Role == auth.RoleAdmin {
			adminKey = k.ID
		}
	}
	if e := evs[0]; e.Type != ledger.TypeTenantProfileSet || e.Tenant != "tenanta" || e.Subject != "" || e.Actor != adminKey {
		t.Errorf("event %s tenant %q subject %q actor %q, want the admin %q", e.Type, e.Tenant, e.Subject, e.Actor, adminKey)
	}
	if m := r.json(t); m["event"] != evs[0].ID || m["display_name"] != "平安保险" {
		t.Errorf("answer %s", r.body)
	}
	if r := h.do("PUT", "/v1/tenants/tenanta/profile", h.admin, pingan); r.status != 200 || r.json(t)["replayed"] != true || h.head() != before+1 {
		t.Errorf("the same profile again: %d %s, head %d", r.status, r.body, h.head())
	}
	changed := map[string]any{"display_name": "平安产险", "lines": []string{"10690001", "95511"}}
	if r := h.do("PUT", "/v1/tenants/tenanta/profile", h.admin, changed); r.status != 201 {
		t.Fatalf("change: %d %s", r.status, r.body)
	}
	r = h.do("GET", "/v1/tenants/tenanta/profile", h.a, nil)
	var p Profile
	if r.status != 200 || json.Unmarshal(r.body, &p) != nil {
		t.Fatalf("the business reads its profile: %d %s", r.status, r.body)
	}
	if p.DisplayName != "平安产险" || p.DisplayNameEN != "" || p.ServicePhone != "" || len(p.Lines) != 2 {
		t.Errorf("the last profile set holds, whole: %+v", p)
	}
	for _, c := range []struct {
		name, method, token string
		status              int
	}{
		{"another business reads it", "GET", h.b, 403},
		{"a business sets its own", "PUT", h.a, 403},
		{"a reviewer sets it", "PUT", h.review, 403},
		{"an auditor reads it", "GET", h.auditor, 403},
		{"nobody sets it", "PUT", "", 401},
		{"nobody reads it", "GET", "", 401},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := h.head()
			var body any
			if c.method == "PUT" {
				body = pingan
			}
			r := h.do(c.method, "/v1/tenants/tenanta/profile", c.token, body)
			checkProblem(t, c.name, r, c.status, "")
			if r.status != c.status || h.head() != before {
				t.Errorf("%d, want %d; head %d → %d", r.status, c.status, before, h.head())
			}
		})
	}
}

// TestTenantProfileRefusesBadInput: names that could pass for another
// business's, lines that are another business's, malformed phones.
func TestTenantProfileRefusesBadInput(t *testing.T) {
	h := newHarness(t)
	for _, c := range []struct {
		name    string
		path    string
		body    map[string]any
		status  int
		mention string
	}{
		{"no name", "/v1/tenants/tenanta/profile", map[string]any{"service_phone": "95511"}, 422, "display_name"},
		{"empty name", "/v1/tenants/tenanta/profile", map[string]any{"display_name": ""}, 422, "display_name"},
		{"name too long", "/v1/tenants/tenanta/profile", map[string]any{"display_name": strings.Repeat("名", 101)}, 422, "display_name"},
		{"right-to-left override in the name", "/v1/tenants/tenanta/profile", map[string]any{"display_name": "平安\u202e保险"}, 422, "display_name"},
		{"control character in the English name", "/v1/tenants/tenanta/profile", map[string]any{"display_name": "平安", "display_name_en": "Ping\x07An"}, 422, "display_name_en"},
		{"name padded with spaces", "/v1/tenants/tenanta/profile", map[string]any{"display_name": " 平安保险"}, 422, "display_name"},
		{"letters in the service phone", "/v1/tenants/tenanta/profile", map[string]any{"display_name": "平安", "service_phone": "call us"}, 422, "service_phone"},
		{"another business's line", "/v1/tenants/tenanta/profile", map[string]any{"display_name": "平安", "lines": []string{"10690002"}}, 422, "lines[0]"},
		{"a line twice", "/v1/tenants/tenanta/profile", map[string]any{"display_name": "平安", "lines": []string{"L1", "L1"}}, 422, "lines[1]"},
		{"an empty line", "/v1/tenants/tenanta/profile", map[string]any{"display_name": "平安", "lines": []string{""}}, 422, "lines[0]"},
		{"a line with a space", "/v1/tenants/tenanta/profile", map[string]any{"display_name": "平安", "lines": []string{"1069 0001"}}, 422, "lines[0]"},
		{"a tenant that cannot be", "/v1/tenants/ten%20ant/profile", pingan, 422, "tenant"},
		{"an unknown field", "/v1/tenants/tenanta/profile", map[string]any{"display_name": "平安", "logo": "x"}, 422, "logo"},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := h.head()
			r := h.do("PUT", c.path, h.admin, c.body)
			if r.status != c.status {
				t.Fatalf("%d, want %d: %s", r.status, c.status, r.body)
			}
			checkProblem(t, c.name, r, c.status, c.mention)
			if h.head() != before {
				t.Errorf("a refused profile appended")
			}
		})
	}
}

// TestTenantProfileOnEveryStore: a profile set through the API reads back
// the same from the in-memory store, bbolt and KurrentDB (its fake).
func TestTenantProfileOnEveryStore(t *testing.T) {
	stores := ledgertest.Stores
	for name, open := range stores {
		t.Run(name, func(t *testing.T) {
			st := open(t)
			keys, err := auth.Open(filepath.Join(t.TempDir(), "apikeys.db"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { keys.Close() })
			admin, _, err := keys.Create(auth.RoleAdmin, "")
			if err != nil {
				t.Fatal(err)
			}
			s := New(Config{Store: st, Keys: keys, Pseudonyms: hmacPseudonyms{}, Decider: streamDecider{st}})
			ctx := context.Background()
			for _, name := range []string{"平安保险", "平安产险"} {
				if _, err := callJSON(t, s, "PUT", "/v1/tenants/acme/profile", admin, map[string]any{"display_name": name, "lines": []string{"95511"}}, 201); err != nil {
					t.Fatal(err)
				}
			}
			p, ok, err := s.profile(ctx, "acme")
			if err != nil || !ok || p.DisplayName != "平安产险" || len(p.Lines) != 1 || p.Event == "" {
				t.Fatalf("profile read back: %+v %v %v", p, ok, err)
			}
			if _, ok, err := s.profile(ctx, "nobody"); ok || err != nil {
				t.Fatalf("a business without a profile: %v %v", ok, err)
			}
		})
	}
}

// callJSON serves one JSON request through s without a listener and
// fails unless it answers status.
func callJSON(t *testing.T, s *Server, method, path, token string, body any, status int) ([]byte, error) {
	t.Helper()
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	req := httptest.NewRequest(method, path, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	w := httptest.NewRecorder()
	s.ServeHTTP(w, req)
	if w.Code != status {
		return nil, fmt.Errorf("%s %s: %d, want %d: %s", method, path, w.Code, status, w.Body)
	}
	return w.Body.Bytes(), nil
}
