package auth

import (
	"io"

	bolt "go.etcd.io/bbolt"
)

// Backup writes a consistent copy of the key file to w, from one read
// transaction, while keys are created.
func (k *Keys) Backup(w io.Writer) (int64, error) {
	var n int64
	err := k.db.View(func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}
