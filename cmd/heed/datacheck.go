package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/bolt"
	"github.com/heed/heed/ledger/merkle"
	"github.com/heed/heed/ledger/secrets"
)

// Refusals to open a data directory. Each is wrapped with a message that
// says what happened and what the operator can do.
var (
	// errMissing means an established data directory lacks a file.
	errMissing = errors.New("a file of the data directory is missing")
	// errForeign means a key or store comes from another data directory.
	errForeign = errors.New("the data directory's secrets do not belong to it")
)

// established reports whether dir has ever been used: it holds one of the
// files a first start creates (apikeys.db aside: heed keys create makes it
// alone). Only a directory that is not established gets new keys.
func established(dir, secretsDir string) bool {
	files := []string{storeFile, checkpointsFile, keysFile, anchorFile}
	for _, f := range files {
		if exists(filepath.Join(dir, f)) {
			return true
		}
	}
	if secretsDir == dir {
		for _, f := range []string{secrets.LedgerIDFile, secrets.SigningFile, secrets.PseudonymFile, secrets.KEKFile} {
			if exists(filepath.Join(dir, f)) {
				return true
			}
		}
	}
	return false
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return !errors.Is(err, fs.ErrNotExist)
}

// restoreHelp says what losing each file means and how to get it back.
var restoreHelp = map[string]string{
	storeFile:             "it is the ledger itself; restore it from the newest backup (heed restore)",
	checkpointsFile:       "it holds the checkpoints this ledger signed; restore it from the newest backup (heed restore)",
	keysFile:              "it holds the per-subject data keys, without which personal fields cannot be read; restore it from the newest backup (heed restore)",
	apiKeysFile:           "it holds the API keys; restore it from the newest backup, or create a new admin key with `heed keys create --data DIR --role admin` while the server is stopped and reissue every other key",
	secrets.LedgerIDFile:  "it names this ledger; restore it from the newest backup (heed restore)",
	secrets.SigningFile:   "it signs checkpoints, and auditors trust only its public key; restore it from your backup or secret store (or give it in HEED_SIGNING_KEY)",
	secrets.PseudonymFile: "every subject's history, opt-outs included, is filed under pseudonyms made with it; restore it from your backup or secret store (or give it in HEED_PSEUDONYM_KEY)",
	secrets.KEKFile:       "it unwraps the per-subject data keys; restore it from your backup or secret store (or give it in HEED_KEK)",
	secrets.VerifierFile:  "it is the public half of signing.key",
}

// checkPresent refuses an established directory missing any of files
// (key files are looked for in secretsDir). It only reads.
func checkPresent(dir, secretsDir string, files []string) error {
	var missing []string
	for _, f := range files {
		where := dir
		if secrets.IsSecret(f) || f == secrets.LedgerIDFile {
			where = secretsDir
		}
		if !exists(filepath.Join(where, f)) {
			missing = append(missing, filepath.Join(where, f))
		}
	}
	if len(missing) == 0 {
		return nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%v: %s holds a ledger, but ", errMissing, dir)
	for i, m := range missing {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "%s is missing: %s", m, strings.ReplaceAll(restoreHelp[filepath.Base(m)], "DIR", dir))
	}
	b.WriteString(". Nothing was created or changed: a new key or an empty store in its place would silently lose what the old one held. " +
		"If this directory never served (an interrupted first start), remove it and start again")
	return &refusal{msg: b.String(), err: errMissing}
}

// refusal is an error with an operator's message that still matches its
// sentinels with errors.Is.
type refusal struct {
	msg string
	err error
}

func (r *refusal) Error() string { return r.msg }
func (r *refusal) Unwrap() error { return r.err }

// promise returns the newest checkpoint this directory signed: the later
// of checkpoints.db's latest and the anchor file, its signature checked
// against the signing key's public half (a zero Checkpoint if none was
// ever cut). A checkpoint the key did not sign means the key, or the
// checkpoints, came from another data directory.
func (d *dataDir) promise() (merkle.Checkpoint, error) {
	var best merkle.Checkpoint
	latest, err := d.Checkpoints.Latest()
	switch {
	case err == nil:
		best = latest
	case !errors.Is(err, merkle.ErrNotFound):
		return best, err
	}
	anchor, err := merkle.ReadAnchor(filepath.Join(d.Dir, anchorFile))
	switch {
	case err == nil:
		if anchor.Size > best.Size {
			best = anchor
		}
	case !errors.Is(err, merkle.ErrNotFound):
		return best, &refusal{err: err, msg: fmt.Sprintf("%v (the anchor is a copy of the newest signed checkpoint: restore the directory from the newest backup)", err)}
	}
	if best.Size == 0 {
		return best, nil
	}
	v, err := merkle.NewVerifier(d.Secrets.VerifierKey)
	if err != nil {
		return best, err
	}
	if _, err := v.Open(best.Note); err != nil {
		return best, &refusal{err: errors.Join(errForeign, err), msg: fmt.Sprintf(
			"%v: the signing key in use (%s) did not sign this directory's newest checkpoint (size %d): signing.key, or checkpoints.db and the anchor, were copied from another data directory. "+
				"Put back this directory's own signing.key (from its backup), or restore the whole directory from one backup (heed restore)",
			errForeign, v.Name(), best.Size)}
	}
	if latest.Size < best.Size {
		return best, &refusal{err: ledger.ErrBehind, msg: fmt.Sprintf(
			"%v: %s's newest checkpoint covers %d events, but the anchor holds one signed over %d: checkpoints.db was rolled back or replaced. "+
				"Do not serve: restore the directory from the newest backup (heed restore), or put back the checkpoints.db that belongs with it",
			ledger.ErrBehind, checkpointsFile, latest.Size, best.Size)}
	}
	return best, nil
}

// identity is what ledger.db records of the secrets it was made with:
// ledger.id and keyed check values of the pseudonym key and the KEK.
// Read-only opens may lack the keys; those are not checked.
func identity(s *secrets.Secrets) map[string][]byte {
	m := map[string][]byte{secrets.LedgerIDFile: []byte(s.LedgerID)}
	if s.PseudonymKey != nil {
		m[secrets.PseudonymFile] = secrets.CheckValue(s.PseudonymKey, secrets.PseudonymFile)
	}
	if s.KEK != nil {
		m[secrets.KEKFile] = secrets.CheckValue(s.KEK, secrets.KEKFile)
	}
	return m
}

// explain turns the store's refusals into the operator's message.
func explain(dir string, err error) error {
	switch {
	case errors.Is(err, ledger.ErrBehind):
		return &refusal{err: err, msg: fmt.Sprintf("%v. The ledger was rolled back, truncated or replaced (a damaged bbolt meta page, an old copy, a failed disk): "+
			"events acknowledged and signed are gone, and serving would hand their positions out again. Nothing was written. "+
			"Keep a copy of %s as it is, then restore the newest backup into a new directory (heed restore) and check it with heed verify --data", err, dir)}
	case errors.Is(err, ledger.ErrDiverged):
		return &refusal{err: err, msg: fmt.Sprintf("%v. The ledger's history was rewritten since it was signed. Nothing was written. "+
			"Keep a copy of %s as it is, then restore the newest backup into a new directory (heed restore) and check it with heed verify --data", err, dir)}
	case errors.Is(err, bolt.ErrForeign):
		return &refusal{err: errors.Join(errForeign, err), msg: fmt.Sprintf("%v: the key file it names was copied from another data directory (or its HEED_ environment variable holds another key). "+
			"Nothing was written. Put back this directory's own key from its backup", err)}
	case errors.Is(err, bolt.ErrCorrupt):
		return &refusal{err: err, msg: fmt.Sprintf("%v. Nothing was written. Keep a copy of %s as it is, then restore the newest backup into a new directory (heed restore)", err, dir)}
	}
	return err
}

// header is a store whose head can be asked.
type header interface {
	Head(ctx context.Context) (uint64, error)
}

// checkHead refuses a store kept outside the data directory (a KurrentDB
// cluster) that holds fewer events than the newest checkpoint this
// directory signed over it: a cluster restored from an old backup, or the
// wrong cluster. The roots are compared by the sealer as its local tree
// reaches each signed size.
func (d *dataDir) checkHead(ctx context.Context, name string, s header) error {
	promised, err := d.promise()
	if err != nil || promised.Size == 0 {
		return err
	}
	head, err := s.Head(ctx)
	if err != nil {
		return err
	}
	if head < uint64(promised.Size) {
		return &refusal{err: ledger.ErrBehind, msg: fmt.Sprintf(
			"%v: %s holds %d events, but %s holds a checkpoint signed over %d: the store was rolled back, restored from an old backup, or is not this ledger's. "+
				"Nothing was written. Point --store at the right cluster, or restore the cluster from a backup that holds every signed event",
			ledger.ErrBehind, name, head, d.Dir, promised.Size)}
	}
	return nil
}
