package pii_test

import (
	"path/filepath"
	"testing"

	"github.com/heed/heed/ledger/pii"
	"github.com/heed/heed/ledger/pii/piitest"
)

func TestBoltStore(t *testing.T) {
	piitest.Run(t, func(t *testing.T) pii.KeyStore {
		b, err := pii.OpenBolt(filepath.Join(t.TempDir(), "keys.db"))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	})
}
