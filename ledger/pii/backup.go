package pii

import (
	"errors"
	"io"

	bolt "go.etcd.io/bbolt"
)

// ErrNoBackup means the key store is not a local file Backup can copy:
// keys kept in KurrentDB are backed up with the cluster.
var ErrNoBackup = errors.New("pii: this key store is not backed up locally")

// Backup writes a consistent copy of the local key file to w, from one
// read transaction, while keys are created and erased.
func (k *Keys) Backup(w io.Writer) (int64, error) {
	b, ok := k.store.(*BoltStore)
	if !ok {
		return 0, ErrNoBackup
	}
	return b.Backup(w)
}

// Backup writes a consistent copy of the key file to w.
func (s *BoltStore) Backup(w io.Writer) (int64, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var n int64
	err := s.db.View(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}
