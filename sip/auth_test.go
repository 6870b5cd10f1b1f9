package sip

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	gosip "github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/heed/heed/ledger/mem"
)

func authTrunk() Trunk {
	t := acmeTrunk()
	t.Username, t.Password = "acme-pbx", "s3cret-trunk-password"
	return t
}

// authorize answers the gate's challenge in res for req as a PBX would.
func (h *harness) authorize(t *testing.T, req *gosip.Request, res *gosip.Response, password string) *gosip.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := h.client.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: "acme-pbx", Password: password})
	if err != nil {
		t.Fatalf("authorized INVITE: %v", err)
	}
	return out
}

func TestDigestTrunk(t *testing.T) {
	for _, alg := range []string{"MD5", "SHA-256"} {
		t.Run(alg, func(t *testing.T) {
			h := newHarness(t, []Trunk{authTrunk()}, nil)
			h.srv.digests.algorithm = alg
			h.customer(t, "+8613900000061")

			req := h.request(t, call{callee: "13900000061"})
			res := h.send(t, req)
			if res.StatusCode != 401 || !strings.Contains(header(res, "WWW-Authenticate"), `realm="heed"`) {
				t.Fatalf("unauthenticated INVITE: %d %q, want a 401 challenge", res.StatusCode, header(res, "WWW-Authenticate"))
			}
			if head, _ := h.st.Head(context.Background()); head != 1 {
				t.Fatalf("a challenged INVITE was recorded (head %d)", head)
			}
			if res = h.authorize(t, req, res, "s3cret-trunk-password"); res.StatusCode != 302 {
				t.Fatalf("authorized INVITE: %d, want 302", res.StatusCode)
			}
			if contacts, _ := h.recorded(t, "+8613900000061"); len(contacts) != 1 || contacts[0].Trunk != "pbx1" {
				t.Fatalf("recorded %+v, want one contact on pbx1", contacts)
			}

			// A captured Authorization replayed in a new transaction is
			// challenged again, not obeyed.
			replay := req.Clone()
			replay.RemoveHeader("Via")
			replay.ReplaceHeader(gosip.NewHeader("Call-ID", "replayed-"+gosip.GenerateTagN(8)))
			if res := h.send(t, replay); res.StatusCode != 401 || !strings.Contains(header(res, "WWW-Authenticate"), "stale=true") {
				t.Fatalf("replayed credentials: %d %q, want 401 stale", res.StatusCode, header(res, "WWW-Authenticate"))
			}

			// A wrong password is refused, and nothing is recorded.
			req = h.request(t, call{callee: "13900000061"})
			if res := h.authorize(t, req, h.send(t, req), "guess"); res.StatusCode != 403 {
				t.Fatalf("wrong password: %d, want 403", res.StatusCode)
			}
			if contacts, refusals := h.recorded(t, "+8613900000061"); len(contacts) != 1 || len(refusals) != 0 {
				t.Fatalf("after a wrong password: %d contacts, %d refusals recorded, want 1 and 0", len(contacts), len(refusals))
			}
			for result, want := range map[string]float64{authChallenged: 2, authOK: 1, authStale: 1, authFailed: 1} {
				if got := testutil.ToFloat64(h.srv.m.auth.WithLabelValues(result)); got != want {
					t.Errorf("heed_sip_auth_total{result=%q} = %v, want %v", result, got, want)
				}
			}
		})
	}
}

// TestDigestCredentialsBoundToCallee: credentials computed for one callee
// do not authorize a call to another.
func TestDigestCredentialsBoundToCallee(t *testing.T) {
	h := newHarness(t, []Trunk{authTrunk()}, nil)
	h.customer(t, "+8613900000062")
	req := h.request(t, call{callee: "13900000062"})
	chal, err := digest.ParseChallenge(header(h.send(t, req), "WWW-Authenticate"))
	if err != nil {
		t.Fatal(err)
	}
	cred, err := digest.Digest(chal, digest.Options{Method: "INVITE", URI: req.Recipient.Addr(), Username: "acme-pbx", Password: "s3cret-trunk-password"})
	if err != nil {
		t.Fatal(err)
	}
	other := h.request(t, call{callee: "13900000063"})
	other.AppendHeader(gosip.NewHeader("Authorization", cred.String()))
	if res := h.send(t, other); res.StatusCode != 403 {
		t.Fatalf("credentials of another callee: %d, want 403", res.StatusCode)
	}
	if head, _ := h.st.Head(context.Background()); head != 1 {
		t.Fatalf("the refused INVITE was recorded (head %d)", head)
	}
}

// TestTrunksByCredentials: trunks without sources are told apart by their
// usernames, each calling for its own tenant.
func TestTrunksByCredentials(t *testing.T) {
	a := Trunk{Name: "a", Tenant: tenant, Username: "acme-pbx", Password: "s3cret-trunk-password", Carrier: carrier, Purpose: "service"}
	b := Trunk{Name: "b", Tenant: "other", Username: "other-pbx", Password: "another-password", Carrier: carrier, Purpose: "service"}
	h := newHarnessOn(t, mem.New(), []Trunk{b, a}, nil)
	h.customer(t, "+8613900000064")
	req := h.request(t, call{callee: "13900000064"})
	if res := h.authorize(t, req, h.send(t, req), a.Password); res.StatusCode != 302 {
		t.Fatalf("trunk a: %d, want 302", res.StatusCode)
	}
	if contacts, _ := h.recorded(t, "+8613900000064"); len(contacts) != 1 || contacts[0].Trunk != "a" {
		t.Fatalf("recorded %+v, want one contact through trunk a for %s", contacts, tenant)
	}
}

func TestNonceExpires(t *testing.T) {
	d, err := newDigests("heed", "MD5")
	if err != nil {
		t.Fatal(err)
	}
	tr := authTrunk()
	issued := time.Now()
	chal, err := digest.ParseChallenge(d.challenge(issued, false))
	if err != nil {
		t.Fatal(err)
	}
	var to gosip.Uri
	if err := gosip.ParseUri("sip:13900000065@127.0.0.1:5070", &to); err != nil {
		t.Fatal(err)
	}
	req := gosip.NewRequest(gosip.INVITE, to)
	cred, err := digest.Digest(chal, digest.Options{Method: "INVITE", URI: to.Addr(), Username: tr.Username, Password: tr.Password})
	if err != nil {
		t.Fatal(err)
	}
	if err := d.check(req, &tr, cred, issued.Add(nonceLife+time.Second)); err != errStale {
		t.Fatalf("an answer after the nonce's life: %v, want stale", err)
	}
	if err := d.check(req, &tr, cred, issued.Add(time.Second)); err != nil {
		t.Fatalf("a timely answer: %v", err)
	}
	forged := *chal
	forged.Nonce = strings.Repeat("A", len(chal.Nonce))
	cred, _ = digest.Digest(&forged, digest.Options{Method: "INVITE", URI: to.Addr(), Username: tr.Username, Password: tr.Password})
	if err := d.check(req, &tr, cred, issued.Add(time.Second)); err == nil || err == errStale {
		t.Fatalf("a nonce the gate never issued: %v, want refused", err)
	}
}

func TestTrunkCredentialsConfig(t *testing.T) {
	for name, tr := range map[string]Trunk{
		"username without password":  {Name: "x", Tenant: tenant, Sources: []string{"127.0.0.1"}, Username: "u"},
		"no sources, no credentials": {Name: "x", Tenant: tenant},
	} {
		if err := tr.prepare(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
