package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/heed/heed/ledger/bolt"
	"github.com/heed/heed/ledger/bundle"
	"github.com/heed/heed/ledger/merkle"
	"github.com/heed/heed/ledger/pii"
	"github.com/heed/heed/ledger/secrets"
)

// Files of a data directory besides the key files of ledger/secrets.
const (
	storeFile       = "ledger.db"
	keysFile        = "keys.db"
	checkpointsFile = "checkpoints.db"
)

// dataDir is an opened heed data directory: its keys, the embedded store,
// the per-subject key store and the checkpoint log. Close releases all.
//
// Layout: ledger.db (events, indexes, tree hashes), checkpoints.db (signed
// checkpoints), keys.db (wrapped per-subject data keys), ledger.id, the
// secrets signing.key, pseudonym.key and kek.key (0600; see ledger/secrets,
// possibly kept elsewhere with --secrets or the environment), and
// verifier.key, the public key to give auditors.
type dataDir struct {
	Dir     string
	Secrets *secrets.Secrets
	// Origin is the checkpoint origin line.
	Origin      string
	Store       *bolt.Store
	Checkpoints *merkle.Checkpoints // nil when read-only and none were ever cut
	Keys        *pii.Keys           // nil when read-only
	Signer      *merkle.Signer      // nil when read-only
	// SealEvery is the interval of the sealer Sealer returns.
	SealEvery time.Duration
}

// dataFlags are the flags every command that opens a data dir shares.
type dataFlags struct {
	dir       *string
	secrets   *string
	origin    *string
	sealEvery *time.Duration
}

// addDataFlags registers --data, --secrets, --origin and --seal-every on
// fs. Keys can also come from HEED_SIGNING_KEY, HEED_PSEUDONYM_KEY and
// HEED_KEK.
func addDataFlags(fs *flag.FlagSet) dataFlags {
	return dataFlags{
		dir:       fs.String("data", "heed-data", "data directory"),
		secrets:   fs.String("secrets", "", "directory of the key files (default: the data directory); HEED_SIGNING_KEY, HEED_PSEUDONYM_KEY and HEED_KEK override them"),
		origin:    fs.String("origin", "", "checkpoint origin (default heed.example/<ledger id>)"),
		sealEvery: fs.Duration("seal-every", merkle.DefaultInterval, "how often to cut a signed checkpoint when there are new events"),
	}
}

// open opens the data directory the flags name.
func (f dataFlags) open(readOnly bool) (*dataDir, error) {
	d, err := openData(*f.dir, *f.secrets, *f.origin, readOnly)
	if err == nil {
		d.SealEvery = *f.sealEvery
	}
	return d, err
}

// openData opens the data directory dir, creating it and its keys on first
// start unless readOnly. A read-only open writes nothing and needs the
// store to exist; it leaves Keys and Signer nil. secretsDir defaults to dir.
func openData(dir, secretsDir, origin string, readOnly bool) (_ *dataDir, err error) {
	if secretsDir == "" {
		secretsDir = dir
	}
	d := &dataDir{Dir: dir}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	if readOnly {
		if _, err := os.Stat(filepath.Join(dir, storeFile)); err != nil {
			return nil, fmt.Errorf("no ledger in %s: %w", dir, err)
		}
		d.Secrets, err = secrets.Open(secretsDir, secrets.FromEnv())
	} else {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		d.Secrets, err = secrets.Load(secretsDir, secrets.FromEnv())
	}
	if err != nil {
		return nil, err
	}
	d.Origin = origin
	if d.Origin == "" {
		d.Origin = secrets.Origin(d.Secrets.LedgerID)
	}
	var opts []bolt.Option
	if readOnly {
		opts = append(opts, bolt.ReadOnly())
	}
	if d.Store, err = bolt.Open(filepath.Join(dir, storeFile), opts...); err != nil {
		return nil, err
	}
	cpPath := filepath.Join(dir, checkpointsFile)
	if _, statErr := os.Stat(cpPath); !readOnly || !errors.Is(statErr, fs.ErrNotExist) {
		if d.Checkpoints, err = merkle.OpenCheckpoints(cpPath, readOnly); err != nil {
			return nil, err
		}
	}
	if readOnly {
		return d, nil
	}
	if d.Keys, err = pii.OpenKeys(filepath.Join(dir, keysFile), d.Secrets.KEK); err != nil {
		return nil, err
	}
	// Destroyed keys linger in freed bbolt pages until compaction.
	if _, err := d.Keys.CompactIfErased(); err != nil {
		return nil, err
	}
	if d.Signer, err = merkle.NewSigner(d.Secrets.SigningKey, d.Secrets.VerifierKey); err != nil {
		return nil, err
	}
	return d, nil
}

// Sealer returns a sealer that cuts checkpoints of the store; run it with
// go s.Run(ctx). Read-write opens only.
func (d *dataDir) Sealer() *merkle.Sealer {
	return &merkle.Sealer{Source: d.Store, Signer: d.Signer, Origin: d.Origin, Checkpoints: d.Checkpoints, Interval: d.SealEvery}
}

// checkpoints returns the checkpoints an export of the first size events
// carries: at most bundle.DefaultMaxCheckpoints, spread evenly, the latest
// included.
func (d *dataDir) checkpoints(size int64) ([]merkle.Checkpoint, error) {
	return d.checkpointsN(size, bundle.DefaultMaxCheckpoints)
}

// checkpointsN returns at most n checkpoints of trees up to size (all of
// them when n < 0), in size order.
func (d *dataDir) checkpointsN(size int64, n int) ([]merkle.Checkpoint, error) {
	if d.Checkpoints == nil {
		return nil, nil
	}
	if n >= 0 {
		return d.Checkpoints.Spread(size, n)
	}
	var out []merkle.Checkpoint
	err := d.Checkpoints.List(1, size, func(c merkle.Checkpoint) error {
		out = append(out, c)
		return nil
	})
	return out, err
}

// Close closes whatever was opened.
func (d *dataDir) Close() error {
	var errs []error
	if d.Keys != nil {
		errs = append(errs, d.Keys.Close())
	}
	if d.Checkpoints != nil {
		errs = append(errs, d.Checkpoints.Close())
	}
	if d.Store != nil {
		errs = append(errs, d.Store.Close())
	}
	return errors.Join(errs...)
}
