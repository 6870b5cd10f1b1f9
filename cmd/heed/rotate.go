package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/bundle"
	"github.com/heed/heed/ledger/kurrent"
	"github.com/heed/heed/ledger/merkle"
	"github.com/heed/heed/ledger/secrets"
)

func init() {
	register("keys rotate-signing", "replace the checkpoint signing key, announced in a checkpoint signed by the old and the new key (server stopped)", rotateSigning)
}

// checkSigningKey makes sure a read-write open signs with the key the
// checkpoints' chain of trust has reached; it runs before the signer is
// made from d.Secrets. A rotation interrupted after
// its announcement was stored is finished here (signing.key.next replaces
// signing.key); any other disagreement is refused, since a checkpoint
// signed by a retired key would not verify. It reports whether it
// finished a rotation.
func checkSigningKey(d *dataDir, secretsDir string) (bool, error) {
	if d.Checkpoints == nil {
		return false, nil
	}
	rots, err := d.Checkpoints.Rotations()
	if err != nil || len(rots) == 0 {
		return false, err
	}
	last := rots[len(rots)-1].Rotation
	own := d.Secrets.VerifierKey
	if own == last.New {
		return false, nil
	}
	pending, err := secrets.PendingSigningKey(secretsDir)
	if err != nil {
		return false, err
	}
	pendingV := ""
	if pending != "" {
		pendingV, _ = secrets.VerifierKey(pending)
	}
	if own != last.Old || pendingV != last.New || os.Getenv(secrets.EnvSigningKey) != "" {
		return false, fmt.Errorf("the checkpoints are now signed by %s (rotated from %s at size %d), but the signing key given is %s: install the new signing key",
			shortKey(last.New), shortKey(last.Old), rots[len(rots)-1].Size, shortKey(own))
	}
	if err := secrets.CommitSigningKey(secretsDir); err != nil {
		return false, err
	}
	fmt.Fprintf(os.Stderr, "finished an interrupted signing-key rotation: %s now signs checkpoints\n", shortKey(last.New))
	d.Secrets.SigningKey, d.Secrets.VerifierKey = pending, last.New
	return true, nil
}

func shortKey(vkey string) string { return bundle.KeyID(vkey) }

func rotateSigning(ctx context.Context, args []string) error {
	fs := newFlags("keys rotate-signing")
	data := addDataFlags(fs)
	reason := fs.String("reason", "", "why, recorded in the SigningKeyRotated event")
	storeURL := fs.String("store", "", "the KurrentDB cluster the server uses, if any: the announcement is published there")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if os.Getenv(secrets.EnvSigningKey) != "" {
		return fmt.Errorf("%w: the signing key comes from %s; rotate-signing rotates the key file of the data directory", errUsage, secrets.EnvSigningKey)
	}
	secretsDir := *data.secrets
	if secretsDir == "" {
		secretsDir = *data.dir
	}
	d, err := data.open(false)
	if err != nil {
		return err
	}
	defer d.Close()
	if d.finishedRotation {
		fmt.Println(d.Secrets.VerifierKey)
		return nil
	}
	skey, err := secrets.NextSigningKey(secretsDir, d.Secrets.LedgerID)
	if err != nil {
		return err
	}
	vkey, err := secrets.VerifierKey(skey)
	if err != nil {
		return err
	}
	next, err := merkle.NewSigner(skey, vkey)
	if err != nil {
		return err
	}
	ev, err := ledger.NewEvent("", "", time.Now(), &ledger.SigningKeyRotated{Old: d.Secrets.VerifierKey, New: vkey, Reason: *reason})
	if err != nil {
		return err
	}
	ev.Actor = cliActor()

	var cp merkle.Checkpoint
	if *storeURL != "" {
		cp, err = rotateKurrent(ctx, d, *storeURL, next, ev)
	} else {
		if _, err = d.Store.Append(ctx, ledger.KeysStream, ledger.Any(), []ledger.Event{ev}); err != nil {
			return err
		}
		cp, err = d.Sealer().Rotate(ctx, next)
	}
	if err != nil {
		return err
	}
	if err := secrets.CommitSigningKey(secretsDir); err != nil {
		return fmt.Errorf("the rotation checkpoint is stored but %s could not replace %s (the next start finishes it): %w",
			secrets.NextSigningFile, secrets.SigningFile, err)
	}
	fmt.Println(vkey)
	fmt.Fprintf(os.Stderr, "checkpoints are now signed by %s; the checkpoint of size %d, signed by %s and by it, announces it. "+
		"Auditors holding the old key follow the rotation; give them the new key (above, and in %s) too.\n",
		shortKey(vkey), cp.Size, shortKey(cp.Rotation.Old), secrets.VerifierFile)
	return nil
}

// rotateKurrent runs the rotation through the cluster's sealer: the
// announcement is published where every instance imports it.
func rotateKurrent(ctx context.Context, d *dataDir, url string, next *merkle.Signer, ev ledger.Event) (merkle.Checkpoint, error) {
	if !kurrent.IsURL(url) {
		return merkle.Checkpoint{}, fmt.Errorf("%w: --store must be a kurrentdb:// or esdb:// connection string", errUsage)
	}
	ks, err := kurrent.Open(ctx, url, kurrent.Options{IndexPath: filepath.Join(d.Dir, "kurrent-index.db")})
	if err != nil {
		return merkle.Checkpoint{}, err
	}
	defer ks.Close()
	tree, err := merkle.OpenLog(filepath.Join(d.Dir, "tree.db"))
	if err != nil {
		return merkle.Checkpoint{}, err
	}
	defer tree.Close()
	s := &kurrent.Sealer{Store: ks, Tree: tree, Checkpoints: d.Checkpoints, Signer: d.Signer, Origin: d.Origin}
	cp, err := s.Rotate(ctx, next, ev)
	if errors.Is(err, context.DeadlineExceeded) {
		return cp, fmt.Errorf("%w: is another instance holding the sealer lease?", err)
	}
	return cp, err
}

// rotations describes a chain of signing keys for verify's report.
func rotations(keys []string) string {
	if len(keys) < 2 {
		return ""
	}
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = bundle.KeyID(k)
	}
	return " (key rotated: " + strings.Join(ids, " → ") + ")"
}
