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
	"time"

	bolt "go.etcd.io/bbolt"
)

// Roles a key can hold.
const (
	RoleAdmin    = "admin"
	RoleBusiness = "business"
	RoleAuditor  = "auditor"
)

// Roles lists the accepted roles.
var Roles = []string{RoleAdmin, RoleBusiness, RoleAuditor}

// Sentinel errors.
var (
	// ErrUnknownKey means the token matches no stored key.
	ErrUnknownKey = errors.New("auth: unknown key")
	// ErrInvalidRole means a key was asked for with a bad role or tenant.
	ErrInvalidRole = errors.New("auth: invalid role or tenant")
)

// Key is what a token grants.
type Key struct {
	// ID is the public part of the token; it is the actor of events the key writes.
	ID      string    `json:"id"`
	Role    string    `json:"role"`
	Tenant  string    `json:"tenant,omitempty"`
	Created time.Time `json:"created"`
}

// Keys is a file of hashed API keys. Lookups are served from memory: the
// file is read once at open and written through on create.
type Keys struct {
	db   *bolt.DB
	mu   sync.RWMutex
	byID map[string]Key // keyed by hex SHA-256 of the token
}

var bucket = []byte("apikeys")

// Open opens or creates the key file at path. The file is locked while
// open, so `heed keys create` runs only while the server is stopped.
func Open(path string) (*Keys, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, fmt.Errorf("auth: open %s: %w", path, err)
	}
	k := &Keys{db: db, byID: map[string]Key{}}
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
			k.byID[string(h)] = key
			return nil
		})
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("auth: read %s: %w", path, err)
	}
	return k, nil
}

// Close closes the file.
func (k *Keys) Close() error { return k.db.Close() }

// Len returns the number of stored keys.
func (k *Keys) Len() int {
	k.mu.RLock()
	defer k.mu.RUnlock()
	return len(k.byID)
}

// Create stores a new key and returns its token, which is shown once and
// never stored. A business key needs a tenant; other roles must not have one.
func (k *Keys) Create(role, tenant string) (string, Key, error) {
	if !slices.Contains(Roles, role) {
		return "", Key{}, fmt.Errorf("%w: role %q is not one of %s", ErrInvalidRole, role, strings.Join(Roles, ", "))
	}
	if (role == RoleBusiness) != (tenant != "") {
		return "", Key{}, fmt.Errorf("%w: a business key needs a tenant and only a business key has one", ErrInvalidRole)
	}
	if tenant != "" && !ValidTenant(tenant) {
		return "", Key{}, fmt.Errorf("%w: tenant %q must be 1-64 letters, digits, '_' or '.'", ErrInvalidRole, tenant)
	}
	id := randomText(6)
	token := "heed_" + id + "_" + randomText(24)
	key := Key{ID: "key_" + id, Role: role, Tenant: tenant, Created: time.Now().UTC().Truncate(time.Second)}
	h := hash(token)
	v, err := json.Marshal(key)
	if err != nil {
		return "", Key{}, err
	}
	if err := k.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put([]byte(h), v) }); err != nil {
		return "", Key{}, fmt.Errorf("auth: store key: %w", err)
	}
	k.mu.Lock()
	k.byID[h] = key
	k.mu.Unlock()
	return token, key, nil
}

// Lookup returns the key a token grants.
func (k *Keys) Lookup(token string) (Key, error) {
	k.mu.RLock()
	key, ok := k.byID[hash(token)]
	k.mu.RUnlock()
	if !ok {
		return Key{}, ErrUnknownKey
	}
	return key, nil
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
