package api

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heed/heed/api/auth"
	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/mem"
	"github.com/heed/heed/ledger/pii"
	"github.com/heed/heed/notify"
	"github.com/heed/heed/projections"
)

// recent is a business time inside the API's back-dating window.
var recent = time.Now().UTC().Add(-24 * time.Hour).Truncate(time.Second).Format(time.RFC3339)

// hmacPseudonyms stands in for ledger/pii in these tests.
type hmacPseudonyms struct{}

func (hmacPseudonyms) Pseudonym(n string) string {
	m := hmac.New(sha256.New, []byte("test key"))
	m.Write([]byte(n))
	return hex.EncodeToString(m.Sum(nil))[:32]
}

// streamDecider allows when the contact stream has a relationship or a
// grant and no withdrawal; it names the events it relied on.
type streamDecider struct{ store ledger.Store }

func (d streamDecider) Decide(ctx context.Context, q notify.Query) (notify.Decision, error) {
	evs, err := d.store.ReadStream(ctx, ledger.ContactStream(q.Tenant, q.Subject), 1, 0)
	if err != nil && !errors.Is(err, ledger.ErrNotFound) {
		return notify.Decision{}, err
	}
	var basis, withdrawal []string
	contract := false // the named contract was started and not ended
	for _, e := range evs {
		if !q.At.IsZero() && e.OccurredAt.After(q.At) {
			continue
		}
		switch e.Type {
		case ledger.TypeRelationshipStarted, ledger.TypeConsentGranted:
			basis = append(basis, e.ID)
		case ledger.TypeConsentWithdrawn:
			withdrawal = append(withdrawal, e.ID)
		}
		if p, err := ledger.Decode(&e); err == nil {
			switch p := p.(type) {
			case *ledger.RelationshipStarted:
				contract = contract || p.ContractRef == q.Contract
			case *ledger.RelationshipEnded:
				contract = contract && p.ContractRef != q.Contract
			}
		}
	}
	dec := notify.Decision{RulesVersion: "test", Revision: uint64(len(evs)), AsOf: uint64(len(evs))}
	switch {
	case q.Contract != "" && !contract:
		dec.Reasons = []ledger.Reason{{Rule: "relationship-active", Effect: "deny", Text: "no such active contract"}}
	case len(withdrawal) > 0:
		dec.Reasons = []ledger.Reason{{Rule: "withdrawal", Effect: "deny", Text: "opted out", Events: withdrawal}}
	case len(basis) > 0:
		dec.Allowed = true
		dec.Reasons = []ledger.Reason{{Rule: "service-basis", Effect: "allow", Text: "has a basis", Events: basis}}
	default:
		dec.Reasons = []ledger.Reason{{Rule: "service-basis", Effect: "deny", Text: "no basis"}}
	}
	return dec, nil
}

type fakeSender struct {
	mu   sync.Mutex
	n    int
	sent []notify.Message
	fail error // what Submit answers, when set: nothing is sent
}

func (s *fakeSender) Submit(_ context.Context, m notify.Message) ([]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail != nil {
		return nil, s.fail
	}
	s.n++
	s.sent = append(s.sent, m)
	return []string{fmt.Sprint(s.n)}, nil
}

type fakeTexter struct {
	mu    sync.Mutex
	texts map[string]string
}

func (t *fakeTexter) SendText(_ context.Context, n, text string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.texts[n] = text
	return nil
}

func (t *fakeTexter) code(n string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, w := range strings.Fields(t.texts[n]) {
		if len(w) == 6 && strings.Trim(w, "0123456789") == "" {
			return w
		}
	}
	return ""
}

func (t *fakeTexter) text(n string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.texts[n]
}

type harness struct {
	t       testing.TB
	srv     *httptest.Server
	store   *mem.Store
	keys    *auth.Keys
	texter  *fakeTexter
	sender  *fakeSender
	notify  *notify.Notifier
	api     *Server
	pii     *pii.Keys
	admin   string
	auditor string
	review  string // a reviewer's key
	a, b    string // business keys of tenants "tenanta" and "tenantb"
	// bPlanned and bDay are tenant B's planned reminder and its local due
	// day, for the tenancy checks.
	bPlanned, bDay string
}

func newHarness(t testing.TB) *harness { return newHarnessOn(t, nil) }

// newHarnessOn is newHarness with the API and the notifier writing through
// wrap(store) when wrap is set.
func newHarnessOn(t testing.TB, wrap func(ledger.Store) ledger.Store) *harness {
	t.Helper()
	return newHarnessWith(t, wrap, nil)
}

// newHarnessWith is newHarnessOn with the API's config edited first;
// edit sees the harness's store and keys.
func newHarnessWith(t testing.TB, wrap func(ledger.Store) ledger.Store, edit func(*harness, *Config)) *harness {
	t.Helper()
	st := mem.New()
	var log ledger.Store = st
	if wrap != nil {
		log = wrap(st)
	}
	keys, err := auth.Open(filepath.Join(t.TempDir(), "apikeys.db"))
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{t: t, store: st, keys: keys, texter: &fakeTexter{texts: map[string]string{}}, sender: &fakeSender{}}
	dataKeys, err := pii.OpenKeys(filepath.Join(t.TempDir(), "keys.db"), bytes.Repeat([]byte{9}, 32))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dataKeys.Close() })
	h.pii = dataKeys
	dec := streamDecider{st}
	h.notify = notify.New(notify.Config{Store: pii.Seal(log, dataKeys), Decider: dec, Sender: h.sender, DefaultLine: "10690001",
		Sealer: dataKeys, Lines: map[string]string{"10690001": "tenanta", "10690002": "tenantb"}, Pseudonym: hmacPseudonyms{}.Pseudonym})
	runner, err := projections.NewRunner(st, projections.Default(), projections.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Store: log, Keys: keys, Pseudonyms: hmacPseudonyms{}, Decider: dec, Reminders: h.notify, PII: dataKeys,
		Texter: h.texter, Auditor: fakeAuditor{st}, Gate: h.notify, Leaves: memLeaves{st},
		Lines: map[string]string{"10690001": "tenanta", "10690002": "tenantb"}, LineStates: runner}
	if edit != nil {
		edit(h, &cfg)
	}
	h.api = New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { _ = h.api.Run(ctx) }()
	h.srv = httptest.NewServer(h.api)
	t.Cleanup(func() { h.srv.Close(); cancel(); st.Close(); keys.Close() })
	mk := func(role, tenant string) string {
		tok, _, err := keys.Create(role, tenant)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	h.admin, h.auditor = mk(auth.RoleAdmin, ""), mk(auth.RoleAuditor, "")
	h.a, h.b = mk(auth.RoleBusiness, "tenanta"), mk(auth.RoleBusiness, "tenantb")
	h.review = mk(auth.RoleReviewer, "")
	return h
}

// renewalText is a service template that passes the automatic review.
const renewalText = "您的{product}保单{policy:ref}将于{expires_on:date}到期，请及时续保。"

// approved has the business of token propose template id with text and a
// reviewer approve it, and returns the approved version.
func (h *harness) approved(token, id, text string) int {
	h.t.Helper()
	r := h.do("POST", "/v1/templates", token, map[string]any{"id": id, "signature": "平安保险", "text": text})
	if r.status != 201 && r.status != 200 {
		h.t.Fatalf("propose: %d %s", r.status, r.body)
	}
	var m struct {
		Version int `json:"version"`
	}
	if err := json.Unmarshal(r.body, &m); err != nil {
		h.t.Fatal(err)
	}
	tenant := "tenanta"
	if token == h.b {
		tenant = "tenantb"
	}
	r = h.do("POST", fmt.Sprintf("/v1/review/templates/%s/%s/versions/%d/approve", tenant, id, m.Version), h.review, map[string]any{})
	if r.status != 201 {
		h.t.Fatalf("approve: %d %s", r.status, r.body)
	}
	return m.Version
}

// renewal is a reminder body using the approved renewal template.
func renewal(id, number, contract string) map[string]any {
	b := map[string]any{"number": number, "relationship_ref": contract, "template_id": "renewal", "template_version": 1,
		"params": map[string]string{"product": "车险", "policy": contract, "expires_on": "2026-12-31"}}
	if id != "" {
		b["id"] = id
	}
	return b
}

type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body is not a JSON object (%v): %s", err, r.body)
	}
	return m
}

// do sends a request; body may be a string (sent as is) or a value (JSON).
func (h *harness) do(method, path, token string, body any, hdr ...string) resp {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, h.srv.URL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp{status: res.StatusCode, header: res.Header, body: b}
}

func (h *harness) head() uint64 {
	h.t.Helper()
	n, err := h.store.Head(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	return n
}

// fakeAuditor serves proofs from the in-memory store's tree.
type fakeAuditor struct{ st *mem.Store }

func (a fakeAuditor) Checkpoint(ctx context.Context) (Checkpoint, error) {
	n, err := a.st.Head(ctx)
	return Checkpoint{Size: int64(n), Note: fmt.Sprintf("test\n%d\n", n)}, err
}

// Inclusion and Consistency fail as the tree does past its stored hashes,
// with an error naming an internal index.
func (a fakeAuditor) Inclusion(ctx context.Context, _, size int64) ([][]byte, error) {
	return a.proof(ctx, size)
}
func (a fakeAuditor) Consistency(ctx context.Context, _, newer int64) ([][]byte, error) {
	return a.proof(ctx, newer)
}
func (a fakeAuditor) proof(ctx context.Context, size int64) ([][]byte, error) {
	if n, err := a.st.Head(ctx); err != nil || uint64(size) > n {
		return nil, fmt.Errorf("merkle: inclusion proof: tlog: hash index %d not found", 2*size+1)
	}
	return [][]byte{}, nil
}
func (a fakeAuditor) Bundle(_ context.Context, w io.Writer) error {
	_, err := io.WriteString(w, "bundle\n")
	return err
}

// memLeaves gives the in-memory store bolt's undecoded leaf reads, so the
// API's tests run the contact index the way heed serve does.
type memLeaves struct{ st ledger.Store }

func (m memLeaves) ReadLeaves(ctx context.Context, from uint64, limit int) ([][]byte, error) {
	evs, err := m.st.ReadAll(ctx, from, limit)
	out := make([][]byte, 0, len(evs))
	for i := range evs {
		l, err := evs[i].Leaf()
		if err != nil {
			return nil, err
		}
		out = append(out, l)
	}
	return out, err
}
