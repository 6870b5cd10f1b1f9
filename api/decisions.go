package api

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"strings"
	"time"

	"github.com/heed/heed/ledger"
)

// A decision id carries what the decision said, so heed can check a
// contact's citation without keeping every decision it answered:
//
//	"d1." + base64url(nonce[16] | allowed[1] | as_of[8] | at[8] unix ns |
//	                  bind[8] | rules version)
//
// bind is a keyed hash of (tenant, subject, channel, purpose, line): it
// ties the decision to the question without putting the subject in the id.
// The tag is an HMAC over the tenant and the id, so it covers the whole
// content; only heed holds the key (derived from the data dir's pseudonym
// key).
const decisionPrefix = "d1."

// decisionTTL is how long an allowing decision stays good for a contact.
const defaultDecisionTTL = 15 * time.Minute

type tagger struct{ key []byte }

func newTagger(key []byte) tagger {
	if len(key) == 0 {
		// Without a configured key, ids verify for this process's life only.
		key = make([]byte, 32)
		_, _ = rand.Read(key)
	}
	return tagger{key: key}
}

func (t tagger) mac(parts ...string) []byte {
	m := hmac.New(sha256.New, t.key)
	for _, p := range parts {
		m.Write([]byte(p))
		m.Write([]byte{0})
	}
	return m.Sum(nil)
}

func (t tagger) bind(tenant, subject, channel, purpose, line string) []byte {
	return t.mac("heed decision bind v1", tenant, subject, channel, purpose, line)[:8]
}

func (t tagger) tag(tenant, id string) string {
	return base64.RawURLEncoding.EncodeToString(t.mac("heed decision tag v1", tenant, id)[:16])
}

// question is what a decision was asked.
type question struct{ tenant, subject, channel, purpose, line string }

// issue returns the id and tag of a decision answering q.
func (t tagger) issue(q question, allowed bool, rulesVersion string, asOf uint64, at time.Time) (id, tag string) {
	b := make([]byte, 41, 41+len(rulesVersion))
	_, _ = rand.Read(b[:16])
	if allowed {
		b[16] = 1
	}
	binary.BigEndian.PutUint64(b[17:], asOf)
	binary.BigEndian.PutUint64(b[25:], uint64(at.UnixNano()))
	copy(b[33:], t.bind(q.tenant, q.subject, q.channel, q.purpose, q.line))
	b = append(b, rulesVersion...)
	id = decisionPrefix + base64.RawURLEncoding.EncodeToString(b)
	return id, t.tag(q.tenant, id)
}

// verify says what the decision a contact of q at occurred cites.
func (t tagger) verify(q question, occurred time.Time, id, tag string, ttl, skew time.Duration) *ledger.CitedDecision {
	if id == "" {
		return &ledger.CitedDecision{Status: ledger.CitedNone}
	}
	forged := &ledger.CitedDecision{ID: id, Status: ledger.CitedForged}
	raw, ok := strings.CutPrefix(id, decisionPrefix)
	if !ok || subtle.ConstantTimeCompare([]byte(tag), []byte(t.tag(q.tenant, id))) != 1 {
		return forged
	}
	b, err := base64.RawURLEncoding.DecodeString(raw)
	if err != nil || len(b) < 41 {
		return forged
	}
	at := time.Unix(0, int64(binary.BigEndian.Uint64(b[25:]))).UTC()
	c := &ledger.CitedDecision{ID: id, Allowed: b[16] == 1, AsOf: binary.BigEndian.Uint64(b[17:]), At: &at,
		RulesVersion: string(b[41:])}
	switch {
	case !hmac.Equal(b[33:41], t.bind(q.tenant, q.subject, q.channel, q.purpose, q.line)), at.After(occurred.Add(skew)):
		c.Status = ledger.CitedMismatch
	case !c.Allowed:
		c.Status = ledger.CitedDenied
	case occurred.Sub(at) > ttl:
		c.Status = ledger.CitedExpired
	default:
		c.Status = ledger.CitedValid
	}
	return c
}
