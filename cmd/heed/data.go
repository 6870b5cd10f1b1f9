package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/heed/heed/api/auth"
	"github.com/heed/heed/ledger/bolt"
	"github.com/heed/heed/ledger/merkle"
	"github.com/heed/heed/ledger/pii"
	"github.com/heed/heed/ledger/secrets"
)

// Files of a data directory besides the key files of ledger/secrets.
const (
	storeFile       = "ledger.db"
	keysFile        = "keys.db"
	checkpointsFile = "checkpoints.db"
	// anchorFile holds a copy of the newest signed checkpoint, apart from
	// ledger.db and checkpoints.db (see merkle.ReadAnchor).
	anchorFile = "anchor"
)

// dataDir is an opened heed data directory: its keys, the embedded store,
// the per-subject key store and the checkpoint log. Close releases all.
//
// Layout: ledger.db (events, indexes, tree hashes), checkpoints.db (signed
// checkpoints), anchor (the newest of them), keys.db (wrapped
// per-subject data keys), apikeys.db (hashed API keys), ledger.id, the
// secrets signing.key, pseudonym.key and kek.key (0600; see ledger/secrets,
// possibly kept elsewhere with --secrets or the environment), and
// verifier.key, the public key to give auditors.
type dataDir struct {
	Dir string
	// SecretsDir holds the key files (Dir unless --secrets says).
	SecretsDir string
	Secrets    *secrets.Secrets
	// Origin is the checkpoint origin line.
	Origin      string
	Store       *bolt.Store
	Checkpoints *merkle.Checkpoints // nil when read-only and none were ever cut
	Keys        *pii.Keys           // nil when read-only
	Signer      *merkle.Signer      // nil when read-only
	// SealEvery is the interval of the sealer Sealer returns.
	SealEvery time.Duration
	// finishedRotation says the open finished an interrupted signing-key
	// rotation (see checkSigningKey).
	finishedRotation bool
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
	return f.openFor(readOnly, false)
}

// openFor is open for a server whose log is in KurrentDB when external:
// the checkpoints then promise the cluster's log, not ledger.db's (see
// checkHead).
func (f dataFlags) openFor(readOnly, external bool) (*dataDir, error) {
	d, err := openDataFor(*f.dir, *f.secrets, *f.origin, readOnly, external)
	if err == nil {
		d.SealEvery = *f.sealEvery
	}
	return d, err
}

// openData opens the data directory dir, creating it and its keys on first
// start unless readOnly. A read-only open writes nothing and needs the
// store to exist; it leaves Keys and Signer nil. secretsDir defaults to dir.
//
// A directory that holds any of its files is established: it must hold
// all of them (see checkPresent), and is opened against the newest
// checkpoint it signed (see promise) and the identity of its secrets
// (see identity). Every check that can refuse it runs before anything in
// it is written.
func openData(dir, secretsDir, origin string, readOnly bool) (*dataDir, error) {
	return openDataFor(dir, secretsDir, origin, readOnly, false)
}

// treeFile is the local Merkle tree of a log kept in KurrentDB.
const treeFile = "tree.db"

// openDataFor is openData for a log kept outside ledger.db when external
// (or when the directory has a KurrentDB tree): ledger.db is then not
// held to the checkpoints.
func openDataFor(dir, secretsDir, origin string, readOnly, external bool) (_ *dataDir, err error) {
	external = external || exists(filepath.Join(dir, treeFile))
	if secretsDir == "" {
		secretsDir = dir
	}
	o := secrets.FromEnv()
	d := &dataDir{Dir: dir, SecretsDir: secretsDir}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	switch {
	case readOnly:
		if _, err := os.Stat(filepath.Join(dir, storeFile)); err != nil {
			return nil, fmt.Errorf("no ledger in %s: %w", dir, err)
		}
		if err := checkPresent(dir, secretsDir, []string{checkpointsFile}); err != nil {
			return nil, err
		}
		d.Secrets, err = secrets.Open(secretsDir, o)
	case established(dir, secretsDir):
		need := append([]string{storeFile, checkpointsFile, keysFile, apiKeysFile}, secrets.Files(o)...)
		if err := checkPresent(dir, secretsDir, need); err != nil {
			return nil, err
		}
		if err := secrets.CheckExposed(secretsDir, o); err != nil {
			return nil, err
		}
		// Open, not Load: it creates nothing.
		d.Secrets, err = secrets.Open(secretsDir, o)
	default:
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
		d.Secrets, err = secrets.Load(secretsDir, o)
	}
	if err != nil {
		return nil, err
	}
	d.Origin = origin
	if d.Origin == "" {
		d.Origin = secrets.Origin(d.Secrets.LedgerID)
	}
	if d.Checkpoints, err = merkle.OpenCheckpoints(filepath.Join(dir, checkpointsFile), readOnly); err != nil {
		return nil, err
	}
	if !readOnly {
		if d.finishedRotation, err = checkSigningKey(d, secretsDir); err != nil {
			return nil, err
		}
	}
	promised, err := d.promise()
	if err != nil {
		return nil, err
	}
	opts := []bolt.Option{bolt.Identity(identity(d.Secrets))}
	if !external {
		opts = append(opts, bolt.Promise(promised.Size, promised.Root))
	}
	if readOnly {
		opts = append(opts, bolt.ReadOnly())
	}
	if d.Store, err = bolt.Open(filepath.Join(dir, storeFile), opts...); err != nil {
		return nil, explain(dir, err)
	}
	if readOnly {
		return d, nil
	}
	anchor := filepath.Join(dir, anchorFile)
	if a, err := merkle.ReadAnchor(anchor); promised.Size > 0 && (err != nil || a.Size < promised.Size) {
		// A directory from before anchors, or a crash between the two
		// writes of a seal.
		if err := merkle.WriteAnchor(anchor, promised); err != nil {
			return nil, err
		}
	}
	d.Checkpoints.Anchor(anchor)
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
	if !exists(filepath.Join(dir, apiKeysFile)) {
		// First start: the API key store is one of the files an
		// established directory must hold; serve adds the admin key.
		keys, err := auth.Open(filepath.Join(dir, apiKeysFile))
		if err != nil {
			return nil, err
		}
		if err := keys.Close(); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// Sealer returns a sealer that cuts checkpoints of the store; run it with
// go s.Run(ctx). Read-write opens only.
func (d *dataDir) Sealer() *merkle.Sealer {
	return &merkle.Sealer{Source: d.Store, Signer: d.Signer, Origin: d.Origin, Checkpoints: d.Checkpoints, Interval: d.SealEvery}
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
