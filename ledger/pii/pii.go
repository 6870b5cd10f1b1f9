// Package pii keeps personal data out of the log: phone numbers become
// keyed pseudonyms, and personal fields are sealed with a data key per
// (tenant, subject), named by [Owner], that erasure destroys
// (crypto-shredding). [Sealing] is the store every write goes through: it
// moves the personal fields an event type declares out of Data and seals
// them into PII with [Keys.SealEvent], deterministic per event so that a
// retried append stays a no-op. [EraseSubject] erases one tenant's key,
// [EraseEverywhere] every tenant's.
//
// A subject's data key is a random 32-byte AES-256-GCM key, stored wrapped
// (AES-GCM under the key-encryption key) in a [KeyStore]. Sealed data names
// the key it was sealed with, so data sealed before an erasure stays
// unreadable even if the subject later gives new data (sealed under a new
// key).
//
// The default store, [BoltStore], is keys.db, a local bbolt file with a
// bucket per purpose. bbolt never overwrites a page in place: a destroyed
// key's bytes stay in a freed page until that page is reused.
// [Keys.Compact] rewrites the file without them; [Keys.CompactIfErased],
// which heed runs whenever it opens a data directory, does so when keys
// were destroyed since the last time. Instances that share a KurrentDB
// cluster share their keys through kurrent.KeyStore instead.
package pii

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
)

// Pseudonym returns the subject of a phone number in E.164 form: the hex
// HMAC-SHA256 of the number under key. A plain hash would not do: the
// space of 11-digit numbers is small enough to hash exhaustively.
func Pseudonym(key []byte, e164 string) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(e164))
	return hex.EncodeToString(m.Sum(nil))
}

// PseudonymKey is a pseudonym key for the parts that take a pseudonymizer:
// its Pseudonym is [Pseudonym] under the key.
type PseudonymKey []byte

// Pseudonym returns the subject of the number e164.
func (k PseudonymKey) Pseudonym(e164 string) string { return Pseudonym(k, e164) }

// Owner names the data key that seals a tenant's personal fields about one
// subject. Keys are per (tenant, subject) so that one business's erasure
// destroys only what it holds; a customer's erasure destroys every tenant's.
func Owner(tenant, subject string) string { return tenant + "/" + subject }
