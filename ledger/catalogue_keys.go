package ledger

import (
	"errors"
	"strings"
	"time"
)

// Event types of key lifecycle: who could write when, and which key signs
// the checkpoints.
const (
	TypeKeyCreated        = "KeyCreated"
	TypeKeyRevoked        = "KeyRevoked"
	TypeSigningKeyRotated = "SigningKeyRotated"
)

// KeysStream is the global stream of key lifecycle events. Every instance
// reads it to honour revocations made on another.
const KeysStream = "apikeys"

// KeyCreated records that an API key was issued. It never carries the
// token or its hash; the event's Actor is whoever issued it.
type KeyCreated struct {
	Key     string     `json:"key"`
	Role    string     `json:"role"`
	Tenant  string     `json:"tenant,omitempty"`
	Expires *time.Time `json:"expires,omitempty"`
	Reason  string     `json:"reason,omitempty"`
	// Backfill: the key may record history older than the API's
	// back-dating window.
	Backfill bool `json:"backfill,omitempty"`
}

// KeyRevoked records that an API key stopped being accepted; the event's
// Actor is whoever revoked it.
type KeyRevoked struct {
	Key    string `json:"key"`
	Role   string `json:"role"`
	Tenant string `json:"tenant,omitempty"`
	Reason string `json:"reason,omitempty"`
}

// SigningKeyRotated records that checkpoints are from now on signed by New
// instead of Old (note verifier keys). The checkpoint that first covers it
// is signed by both and announces New, which is what auditors check; the
// event says who rotated and why.
type SigningKeyRotated struct {
	Old    string `json:"old"`
	New    string `json:"new"`
	Reason string `json:"reason,omitempty"`
}

func (p *KeyCreated) check() error { return checkKey(p.Key, p.Role) }

func (p *KeyRevoked) check() error { return checkKey(p.Key, p.Role) }

func (p *SigningKeyRotated) check() error {
	if p.Old == "" || p.New == "" || p.Old == p.New || strings.ContainsAny(p.Old+p.New, " \n") {
		return errors.New("old and new must be two different verifier keys")
	}
	return nil
}

func checkKey(id, role string) error {
	if id == "" || role == "" {
		return errors.New("key and role are required")
	}
	return nil
}

func init() {
	register(TypeKeyCreated, map[int]func() any{1: func() any { return new(KeyCreated) }})
	register(TypeKeyRevoked, map[int]func() any{1: func() any { return new(KeyRevoked) }})
	register(TypeSigningKeyRotated, map[int]func() any{1: func() any { return new(SigningKeyRotated) }})
}
