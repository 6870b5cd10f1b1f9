package pii

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
)

// ManyKeyStore is a KeyStore that reads and writes many subjects' keys at
// once; Keys.Prepare uses it when the store is one, and otherwise calls
// Get and PutIfAbsent for each subject.
type ManyKeyStore interface {
	KeyStore
	// GetMany returns each subject's current wrapped key, nil for one
	// that has none.
	GetMany(ctx context.Context, subjects []string) ([][]byte, error)
	// PutManyIfAbsent stores each wrapped key as its subject's unless the
	// subject has one, all durably together, and returns the key each
	// subject has afterwards.
	PutManyIfAbsent(ctx context.Context, subjects []string, wrapped [][]byte) ([][]byte, error)
}

// Prepared holds data keys for sealing many events, read or made by
// Keys.Prepare.
type Prepared struct {
	keys map[string]dataKey
}

// Prepare returns the data keys of subjects (Owner names), creating the
// missing ones, all in one durable write when the key store is a
// ManyKeyStore: a bulk import sealing a chunk of new subjects then waits
// for one write of the key file, not one per subject. The keys are
// durable when it returns, so an event sealed with one never outlives
// its key in a crash.
func (k *Keys) Prepare(ctx context.Context, subjects []string) (*Prepared, error) {
	subjects = slices.Clone(subjects)
	slices.Sort(subjects)
	subjects = slices.Compact(subjects)
	p := &Prepared{keys: make(map[string]dataKey, len(subjects))}
	if len(subjects) == 0 {
		return p, nil
	}
	many, _ := k.store.(ManyKeyStore)
	var stored [][]byte
	var err error
	if many != nil {
		stored, err = many.GetMany(ctx, subjects)
	} else {
		stored = make([][]byte, len(subjects))
		for i, s := range subjects {
			if stored[i], err = k.store.Get(ctx, s); err != nil {
				break
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("pii: prepare: %w", err)
	}
	var missing []string
	var wrapped [][]byte
	for i, s := range subjects {
		if stored[i] != nil {
			dk, err := k.unwrap(s, stored[i])
			if err != nil {
				return nil, fmt.Errorf("pii: prepare: %w", err)
			}
			p.keys[s] = dk
			continue
		}
		w, dk, err := k.newKey(s)
		if err != nil {
			return nil, err
		}
		missing, wrapped = append(missing, s), append(wrapped, w)
		p.keys[s] = dk
	}
	if len(missing) == 0 {
		return p, nil
	}
	var got [][]byte
	if many != nil {
		got, err = many.PutManyIfAbsent(ctx, missing, wrapped)
	} else {
		got, err = putEach(ctx, k.store, missing, wrapped)
	}
	if err != nil {
		return nil, fmt.Errorf("pii: prepare: %w", err)
	}
	for i, s := range missing {
		if string(got[i]) == string(wrapped[i]) {
			continue
		}
		// A concurrent writer stored its key first: that one holds.
		dk, err := k.unwrap(s, got[i])
		if err != nil {
			return nil, fmt.Errorf("pii: prepare: %w", err)
		}
		p.keys[s] = dk
	}
	return p, nil
}

// putEach is PutManyIfAbsent on a store that takes one key a call: the
// calls run together, so a store that groups its writes still shares them.
func putEach(ctx context.Context, store KeyStore, subjects []string, wrapped [][]byte) ([][]byte, error) {
	out := make([][]byte, len(subjects))
	errs := make([]error, len(subjects))
	sem := make(chan struct{}, 64)
	var wg sync.WaitGroup
	for i := range subjects {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			out[i], errs[i] = store.PutIfAbsent(ctx, subjects[i], wrapped[i])
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// newKey makes a new data key for subject: wrapped under the kek, and
// ready to seal with.
func (k *Keys) newKey(subject string) ([]byte, dataKey, error) {
	keyID := make([]byte, keyIDLen)
	key := make([]byte, 32)
	if _, err := rand.Read(keyID); err != nil {
		return nil, dataKey{}, err
	}
	if _, err := rand.Read(key); err != nil {
		return nil, dataKey{}, err
	}
	wrapped, err := seal(k.kek, keyID, key, aad("key", subject, keyID))
	if err != nil {
		return nil, dataKey{}, err
	}
	dk, err := dataKeyOf(key, keyID)
	return wrapped, dk, err
}

// dataKeyOf is the data key key, with its id.
func dataKeyOf(key, keyID []byte) (dataKey, error) {
	a, err := newAEAD(key)
	if err != nil {
		return dataKey{}, err
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte("heed-pii/1 nonce key"))
	return dataKey{aead: a, id: append([]byte(nil), keyID...), nonces: m.Sum(nil)}, nil
}

// SealEvent is Keys.SealEvent with a prepared key: the same bytes for
// the same key, subject, id and fields. A subject that was not prepared
// is an error.
func (p *Prepared) SealEvent(subject, id string, fields map[string]string) ([]byte, error) {
	dk, ok := p.keys[subject]
	if !ok {
		return nil, fmt.Errorf("pii: seal: %w: not prepared", ErrNoKey)
	}
	plain, err := json.Marshal(fields)
	if err != nil {
		return nil, err
	}
	return sealEvent(dk, subject, id, plain), nil
}
