package sip

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	gosip "github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
)

// Digest authentication of trunks (RFC 3261 section 22, RFC 8760 for
// SHA-256). A trunk configured with a username and password must answer
// a challenge on every INVITE, so a forged source address alone cannot
// place calls on its tenant's behalf. The gate keeps no per-call state for
// it: a nonce carries its own issue time and a MAC, and the only memory is
// the highest nonce count seen per nonce, which stops a captured
// Authorization header from being replayed.

// Digest outcomes, the values of heed_sip_auth_total's result label.
const (
	authChallenged = "challenged" // no credentials: 401 with a challenge
	authStale      = "stale"      // an expired or reused nonce: a fresh challenge
	authFailed     = "failed"     // wrong credentials: 403
	authOK         = "ok"
)

// nonceLife is how long a challenge may be answered: long enough for a
// UAC to retry at once, short enough that the replay memory stays small.
const nonceLife = 5 * time.Minute

var errStale = errors.New("sip: stale nonce")

// digests issues and checks nonces.
type digests struct {
	realm     string
	algorithm string
	key       [32]byte

	mu   sync.Mutex
	used map[string]usedNonce // nonce → highest nonce count accepted
}

type usedNonce struct {
	nc     int
	issued time.Time
}

func newDigests(realm, algorithm string) (*digests, error) {
	d := &digests{realm: realm, algorithm: algorithm, used: map[string]usedNonce{}}
	if _, err := rand.Read(d.key[:]); err != nil {
		return nil, err
	}
	return d, nil
}

// challenge is the WWW-Authenticate value of a 401.
func (d *digests) challenge(now time.Time, stale bool) string {
	var b [8 + 16]byte
	binary.BigEndian.PutUint64(b[:8], uint64(now.UnixNano()))
	copy(b[8:], d.mac(b[:8]))
	c := digest.Challenge{Realm: d.realm, Nonce: base64.RawURLEncoding.EncodeToString(b[:]), Algorithm: d.algorithm,
		QOP: []string{"auth"}, Stale: stale}
	return c.String()
}

func (d *digests) mac(issued []byte) []byte {
	m := hmac.New(sha256.New, d.key[:])
	m.Write(issued)
	m.Write([]byte(d.realm))
	return m.Sum(nil)[:16]
}

// issued reads the time a nonce of ours was issued.
func (d *digests) issued(nonce string) (time.Time, bool) {
	b, err := base64.RawURLEncoding.DecodeString(nonce)
	if err != nil || len(b) != 24 || !hmac.Equal(b[8:], d.mac(b[:8])) {
		return time.Time{}, false
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(b[:8]))), true
}

// credentials reads a request's digest Authorization, if any.
func credentials(req *gosip.Request) (*digest.Credentials, bool) {
	h := req.GetHeader("Authorization")
	if h == nil {
		return nil, false
	}
	c, err := digest.ParseCredentials(h.Value())
	if err != nil {
		return nil, false
	}
	return c, true
}

// check verifies cred for req against trunk t's password. errStale means
// the nonce is ours but too old or already used at that count: the UAC
// should be challenged again rather than refused.
func (d *digests) check(req *gosip.Request, t *Trunk, cred *digest.Credentials, now time.Time) error {
	issued, ok := d.issued(cred.Nonce)
	if !ok || cred.Realm != d.realm {
		return errors.New("sip: nonce or realm not ours")
	}
	if now.Sub(issued) > nonceLife || issued.After(now.Add(time.Minute)) {
		return errStale
	}
	if !equalAlgorithm(cred.Algorithm, d.algorithm) || (cred.QOP != "auth" && cred.QOP != "") {
		return errors.New("sip: algorithm or qop not offered")
	}
	if err := sameTarget(cred.URI, &req.Recipient); err != nil {
		return err
	}
	chal := &digest.Challenge{Realm: d.realm, Nonce: cred.Nonce, Algorithm: cred.Algorithm, Opaque: cred.Opaque}
	if cred.QOP != "" {
		chal.QOP = []string{cred.QOP}
	}
	want, err := digest.Digest(chal, digest.Options{Method: string(req.Method), URI: cred.URI, Username: t.Username,
		Password: t.Password, Cnonce: cred.Cnonce, Count: cred.Nc})
	if err != nil {
		return err
	}
	if subtle.ConstantTimeCompare([]byte(want.Response), []byte(cred.Response)) != 1 {
		return errors.New("sip: wrong digest response")
	}
	return d.count(cred.Nonce, cred.Nc, issued, now)
}

// count accepts nonce count nc for nonce only above the highest accepted
// so far (a nonce without qop has no count: it is good once).
func (d *digests) count(nonce string, nc int, issued, now time.Time) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if u, ok := d.used[nonce]; ok && nc <= u.nc {
		return errStale
	}
	if len(d.used) >= 1<<16 {
		for k, u := range d.used {
			if now.Sub(u.issued) > nonceLife {
				delete(d.used, k)
			}
		}
		if len(d.used) >= 1<<16 {
			return errStale // a flood of fresh nonces: make the next one wait its turn
		}
	}
	d.used[nonce] = usedNonce{nc: nc, issued: issued}
	return nil
}

// equalAlgorithm compares algorithm names; an absent one means MD5.
func equalAlgorithm(a, b string) bool {
	norm := func(s string) string {
		if s == "" {
			return "MD5"
		}
		return s
	}
	return strings.EqualFold(norm(a), norm(b))
}

// sameTarget checks that the digest-uri names the request's own target,
// so credentials for one callee cannot be moved to another.
func sameTarget(uri string, ruri *gosip.Uri) error {
	var u gosip.Uri
	if err := gosip.ParseUri(uri, &u); err != nil {
		return fmt.Errorf("sip: digest uri unreadable")
	}
	if u.User != ruri.User || !sameHost(u.Host, ruri.Host) {
		return errors.New("sip: digest uri is not the request's")
	}
	return nil
}

func sameHost(a, b string) bool {
	if a == b {
		return true
	}
	x, err1 := netip.ParseAddr(a)
	y, err2 := netip.ParseAddr(b)
	return err1 == nil && err2 == nil && x.Unmap() == y.Unmap()
}

// trunkFor finds the trunk of an INVITE: among the trunks whose sources
// hold its address, and the trunks that accept any source because they
// authenticate, the one its credentials name, else the first that matches
// by address.
func (s *Server) trunkFor(req *gosip.Request) (t *Trunk, cred *digest.Credentials) {
	host, _, err := net.SplitHostPort(req.Source())
	if err != nil {
		host = req.Source()
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return nil, nil
	}
	a = a.Unmap()
	cred, _ = credentials(req)
	var byAddr *Trunk
	for i := range s.cfg.Trunks {
		tr := &s.cfg.Trunks[i]
		if !tr.admits(a) {
			continue
		}
		if cred != nil && tr.Username != "" && tr.Username == cred.Username {
			return tr, cred
		}
		if byAddr == nil && (len(tr.prefixes) > 0 || cred == nil) {
			byAddr = tr
		}
	}
	return byAddr, cred
}

// admits says whether an INVITE from a may be the trunk's: it comes from
// one of its sources, or the trunk has none and authenticates instead.
func (t *Trunk) admits(a netip.Addr) bool {
	if len(t.prefixes) == 0 {
		return t.Username != ""
	}
	for _, p := range t.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// authenticate answers an INVITE whose trunk wants digest credentials and
// did not prove itself: a challenge, or a refusal of wrong credentials.
// It returns nil when the request may go on.
func (s *Server) authenticate(req *gosip.Request, t *Trunk, cred *digest.Credentials) *gosip.Response {
	if t.Username == "" {
		return nil
	}
	now := time.Now()
	if cred == nil || cred.Username != t.Username {
		s.m.auth.WithLabelValues(authChallenged).Inc()
		return s.unauthorized(req, now, false)
	}
	switch err := s.digests.check(req, t, cred, now); {
	case err == nil:
		s.m.auth.WithLabelValues(authOK).Inc()
		return nil
	case errors.Is(err, errStale):
		s.m.auth.WithLabelValues(authStale).Inc()
		return s.unauthorized(req, now, true)
	default:
		s.m.auth.WithLabelValues(authFailed).Inc()
		res := gosip.NewResponseFromRequest(req, 403, "Forbidden", nil)
		res.AppendHeader(gosip.NewHeader("Warning", `399 heed "认证失败 / authentication failed"`))
		return res
	}
}

func (s *Server) unauthorized(req *gosip.Request, now time.Time, stale bool) *gosip.Response {
	res := gosip.NewResponseFromRequest(req, 401, "Unauthorized", nil)
	res.AppendHeader(gosip.NewHeader("WWW-Authenticate", s.digests.challenge(now, stale)))
	return res
}
