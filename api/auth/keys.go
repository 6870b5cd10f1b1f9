// Package auth holds heed's API keys and customer sessions.
//
// API keys are bearer tokens. Only their SHA-256 hash is stored, so a copy
// of the key file does not let anyone call the API.
package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Roles a key can hold.
const (
	RoleAdmin    = "admin"
	RoleBusiness = "business"
	RoleAuditor  = "auditor"
	// RoleRegulator records complaints from outside a business (an
	// operator, a regulator) against any business's line.
	RoleRegulator = "regulator"
	// RoleReviewer reviews every business's flash templates (approve,
	// reject, revoke); it reads nothing else.
	RoleReviewer = "reviewer"
)

// Roles lists the accepted roles.
var Roles = []string{RoleAdmin, RoleBusiness, RoleAuditor, RoleRegulator, RoleReviewer}

// Sentinel errors.
var (
	// ErrUnknownKey means the token or id matches no stored key.
	ErrUnknownKey = errors.New("auth: unknown key")
	// ErrInvalidRole means a key was asked for with a bad role or tenant.
	ErrInvalidRole = errors.New("auth: invalid role or tenant")
	// ErrInvalidExpiry means a key was asked for with an expiry not in the
	// future.
	ErrInvalidExpiry = errors.New("auth: expiry must be in the future")
	// ErrRevoked means the token's key was revoked.
	ErrRevoked = errors.New("auth: key revoked")
	// ErrExpired means the token's key has expired.
	ErrExpired = errors.New("auth: key expired")
	// ErrLastAdmin means a revocation would leave no usable admin key.
	ErrLastAdmin = errors.New("auth: the last usable admin key cannot be revoked")
)

// Key is what a token grants, and its lifecycle. Neither the token nor its
// hash is part of it, so a Key may be shown to admins and written to the log.
type Key struct {
	// ID is the public part of the token; it is the actor of events the key writes.
	ID      string    `json:"id"`
	Role    string    `json:"role"`
	Tenant  string    `json:"tenant,omitempty"`
	Created time.Time `json:"created"`
	// Expires is when the key stops working; zero for never.
	Expires time.Time `json:"expires,omitzero"`
	// Backfill lets a business key record history older than the API's
	// back-dating window, marked as backfilled.
	Backfill bool `json:"backfill,omitempty"`
	// LastUsed is the last second the key was accepted (kept in memory and
	// written now and then, so it may lag by a flush after a crash).
	LastUsed time.Time `json:"last_used,omitzero"`
	// Revoked is when the key was revoked; zero while it is not.
	Revoked time.Time `json:"revoked,omitzero"`
	// RevokedBy is the actor that revoked it.
	RevokedBy string `json:"revoked_by,omitempty"`
	// Reason is why it was revoked.
	Reason string `json:"reason,omitempty"`
}

// usable reports whether the key is neither revoked nor expired at now.
func (k Key) usable(now time.Time) bool {
	return k.Revoked.IsZero() && (k.Expires.IsZero() || now.Before(k.Expires))
}

// Keys is a file of hashed API keys. Lookups are served from memory: the
// file is read once at open and written through on create and revoke.
// Last-used times are kept in memory and written by Flush.
type Keys struct {
	// Now is the clock; time.Now when nil. Set it before use.
	Now func() time.Time

	db *bolt.DB
	// wmu serialises writers (create, revoke, flush), each of which reads
	// a key, writes it to the file and then to memory, so none undoes
	// another's change. Lookups take only mu.
	wmu    sync.Mutex
	mu     sync.RWMutex
	byHash map[string]*entry // keyed by hex SHA-256 of the token
	byID   map[string]string // key id → hash
}

type entry struct {
	key  Key          // under Keys.mu
	used atomic.Int64 // unix second of the last accepted lookup
}

var bucket = []byte("apikeys")

// Open opens or creates the key file at path. The file is locked while
// open, so `heed keys` commands run only while the server is stopped.
func Open(path string) (*Keys, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("auth: open %s: %w", path, err)
	}
	k := &Keys{db: db, byHash: map[string]*entry{}, byID: map[string]string{}}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists(bucket)
		if err != nil {
			return err
		}
		return b.ForEach(func(h, v []byte) error {
			var key Key
			if err := json.Unmarshal(v, &key); err != nil {
				return err
			}
			e := &entry{key: key}
			e.used.Store(unix(key.LastUsed))
			k.byHash[string(h)] = e
			k.byID[key.ID] = string(h)
			return nil
		})
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("auth: read %s: %w", path, err)
	}
	return k, nil
}

// Close writes the last-used times and closes the file.
func (k *Keys) Close() error {
	return errors.Join(k.Flush(), k.db.Close())
}

func (k *Keys) now() time.Time {
	if k.Now != nil {
		return k.Now()
	}
	return time.Now()
}

// Len returns the number of stored keys, revoked ones included.
func (k *Keys) Len() int {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return len(k.byHash)
}

// Spec is what a new key grants.
type Spec struct {
	Role   string
	Tenant string
	// Expires, if set, is when the key stops working; it must be in the
	// future.
	Expires time.Time
	// Backfill lets a business key record history older than the API's
	// back-dating window.
	Backfill bool
}

// Create stores a new key that never expires; see Issue.
func (k *Keys) Create(role, tenant string) (string, Key, error) {
	return k.Issue(Spec{Role: role, Tenant: tenant})
}

// Issue stores a new key and returns its token, which is shown once and
// never stored. A business key needs a tenant; other roles must not have one.
func (k *Keys) Issue(s Spec) (string, Key, error) {
	if !slices.Contains(Roles, s.Role) {
		return "", Key{}, fmt.Errorf("%w: role %q is not one of %s", ErrInvalidRole, s.Role, strings.Join(Roles, ", "))
	}
	if (s.Role == RoleBusiness) != (s.Tenant != "") {
		return "", Key{}, fmt.Errorf("%w: a business key needs a tenant and only a business key has one", ErrInvalidRole)
	}
	if s.Backfill && s.Role != RoleBusiness {
		return "", Key{}, fmt.Errorf("%w: only a business key may backfill", ErrInvalidRole)
	}
	if s.Tenant != "" && !ValidTenant(s.Tenant) {
		return "", Key{}, fmt.Errorf("%w: tenant %q must be 1-64 letters, digits, '_' or '.'", ErrInvalidRole, s.Tenant)
	}
	now := k.now().UTC()
	if !s.Expires.IsZero() && !s.Expires.After(now) {
		return "", Key{}, fmt.Errorf("%w: %s is not after %s", ErrInvalidExpiry, s.Expires.UTC().Format(time.RFC3339), now.Format(time.RFC3339))
	}
	id := randomText(6)
	token := "heed_" + id + "_" + randomText(24)
	key := Key{ID: "key_" + id, Role: s.Role, Tenant: s.Tenant, Created: now.Truncate(time.Second), Backfill: s.Backfill}
	if !s.Expires.IsZero() {
		key.Expires = s.Expires.UTC().Truncate(time.Second)
	}
	h := hash(token)
	k.wmu.Lock()
	defer k.wmu.Unlock()
	if err := k.put(h, key); err != nil {
		return "", Key{}, err
	}
	k.mu.Lock()
	k.byHash[h] = &entry{key: key}
	k.byID[key.ID] = h
	k.mu.Unlock()
	return token, key, nil
}

// Discard deletes a key that was never handed out, as if it had not been
// created: for a creation whose event could not be recorded.
func (k *Keys) Discard(id string) error {
	k.wmu.Lock()
	defer k.wmu.Unlock()
	k.mu.Lock()
	h, ok := k.byID[id]
	delete(k.byID, id)
	delete(k.byHash, h)
	k.mu.Unlock()
	if !ok {
		return ErrUnknownKey
	}
	return k.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Delete([]byte(h)) })
}

func (k *Keys) put(h string, key Key) error {
	v, err := json.Marshal(key)
	if err != nil {
		return err
	}
	if err := k.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put([]byte(h), v) }); err != nil {
		return fmt.Errorf("auth: store key: %w", err)
	}
	return nil
}

// Lookup returns the key a token grants. A revoked or expired key's token
// yields the key with ErrRevoked or ErrExpired. It records the use in
// memory only: an atomic store at most once a second per key.
func (k *Keys) Lookup(token string) (Key, error) {
	h := hash(token)
	k.mu.RLock()
	e := k.byHash[h]
	var key Key
	if e != nil {
		key = e.key
	}
	k.mu.RUnlock()
	if e == nil {
		return Key{}, ErrUnknownKey
	}
	if !key.Revoked.IsZero() {
		return key, ErrRevoked
	}
	now := k.now()
	if !key.Expires.IsZero() && !now.Before(key.Expires) {
		return key, ErrExpired
	}
	if s := now.Unix(); e.used.Load() < s {
		e.used.Store(s)
	}
	return key, nil
}

// Get returns the key with id, its last use included.
func (k *Keys) Get(id string) (Key, error) {
	k.mu.RLock()
	defer k.mu.RUnlock()
	h, ok := k.byID[id]
	if !ok {
		return Key{}, ErrUnknownKey
	}
	return k.byHash[h].current(), nil
}

// current is the entry's key with its last use from memory; under Keys.mu.
func (e *entry) current() Key {
	key := e.key
	if u := e.used.Load(); u > unix(key.LastUsed) {
		key.LastUsed = time.Unix(u, 0).UTC()
	}
	return key
}

// List returns every key, revoked and expired ones included, oldest first.
func (k *Keys) List() []Key {
	k.mu.RLock()
	out := make([]Key, 0, len(k.byHash))
	for _, e := range k.byHash {
		out = append(out, e.current())
	}
	k.mu.RUnlock()
	slices.SortFunc(out, func(a, b Key) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	return out
}

// Revocation says who revokes a key and why.
type Revocation struct {
	ID     string
	By     string // the actor: an admin key id, or the command line's user
	Reason string
	// At is when; the clock's now when zero.
	At time.Time
	// Force allows revoking the last usable admin key; the log follower
	// uses it, since the revocation already happened elsewhere.
	Force bool
}

// Revoke revokes a key: from the moment it returns (and, in memory, before
// the file is written) its token is refused. It returns the key as revoked
// and whether this call revoked it; a key revoked before is returned
// unchanged with false, so a retry is harmless. Revoking the last usable
// admin key fails with ErrLastAdmin unless r.Force is set.
func (k *Keys) Revoke(r Revocation) (Key, bool, error) {
	k.wmu.Lock()
	defer k.wmu.Unlock()
	at := r.At
	if at.IsZero() {
		at = k.now()
	}
	at = at.UTC().Truncate(time.Second)
	k.mu.Lock()
	h, ok := k.byID[r.ID]
	if !ok {
		k.mu.Unlock()
		return Key{}, false, ErrUnknownKey
	}
	e := k.byHash[h]
	if !e.key.Revoked.IsZero() {
		key := e.current()
		k.mu.Unlock()
		return key, false, nil
	}
	if !r.Force && e.key.Role == RoleAdmin && e.key.usable(k.now()) && k.usableAdmins() == 1 {
		k.mu.Unlock()
		return Key{}, false, fmt.Errorf("%w: create another admin key first", ErrLastAdmin)
	}
	e.key.Revoked, e.key.RevokedBy, e.key.Reason = at, r.By, r.Reason
	key := e.current()
	k.mu.Unlock()
	if err := k.put(h, key); err != nil {
		// Still revoked in memory: the safe direction.
		return key, true, err
	}
	return key, true, nil
}

// usableAdmins counts admin keys neither revoked nor expired; under mu.
func (k *Keys) usableAdmins() int {
	now := k.now()
	n := 0
	for _, e := range k.byHash {
		if e.key.Role == RoleAdmin && e.key.usable(now) {
			n++
		}
	}
	return n
}

// Flush writes the last-used times that changed since the last flush, in
// one transaction.
func (k *Keys) Flush() error {
	k.wmu.Lock()
	defer k.wmu.Unlock()
	type dirty struct {
		h   string
		key Key
	}
	var ds []dirty
	k.mu.RLock()
	for h, e := range k.byHash {
		if e.used.Load() > unix(e.key.LastUsed) {
			ds = append(ds, dirty{h, e.current()})
		}
	}
	k.mu.RUnlock()
	if len(ds) == 0 {
		return nil
	}
	err := k.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		for _, d := range ds {
			v, err := json.Marshal(d.key)
			if err != nil {
				return err
			}
			if err := b.Put([]byte(d.h), v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("auth: write last-used times: %w", err)
	}
	k.mu.Lock()
	for _, d := range ds {
		if e := k.byHash[d.h]; e != nil {
			e.key.LastUsed = d.key.LastUsed
		}
	}
	k.mu.Unlock()
	return nil
}

func unix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// ValidTenant reports whether t is usable as a tenant name (it becomes part
// of stream names, so it may not contain '-').
func ValidTenant(t string) bool {
	if len(t) == 0 || len(t) > 64 {
		return false
	}
	for _, r := range t {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '.'
		if !ok {
			return false
		}
	}
	return true
}

func hash(token string) string {
	h := sha256.Sum256([]byte(token))
	return hex.EncodeToString(h[:])
}

func randomText(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return base64.RawURLEncoding.EncodeToString(b)
}

// ParseLifetime reads a key lifetime: a Go duration ("720h") or a whole
// number of days ("90d").
func ParseLifetime(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		var n int
		if _, err := fmt.Sscanf(d, "%d", &n); err != nil || n <= 0 || fmt.Sprint(n) != d || n > 100*366 {
			return 0, fmt.Errorf("%w: %q is not a number of days", ErrInvalidExpiry, s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("%w: %q is not a positive duration such as 720h or 90d", ErrInvalidExpiry, s)
	}
	return d, nil
}
