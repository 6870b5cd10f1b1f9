package kurrent

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/heed/heed/ledger/merkle"
)

// TreeFile is the local Merkle tree file an instance keeps in its data
// directory.
const TreeFile = "tree.db"

// Cluster is what one heed instance needs to run on a KurrentDB cluster:
// the store, the local tree that proofs are served from, and the sealer
// that keeps the tree and the checkpoint list current.
type Cluster struct {
	Store  *Store
	Tree   *merkle.Log
	Sealer *Sealer
}

// OpenCluster opens the store at url and the tree file in dir, and
// prepares a sealer that signs with signer under origin and keeps cps
// current. Run the sealer with go c.Sealer.Run(ctx); serve inclusion and
// consistency proofs from c.Tree (not from the store), and read
// checkpoints from cps, never sealing on demand: only the lease holder
// signs.
func OpenCluster(ctx context.Context, url, dir string, cps *merkle.Checkpoints, signer *merkle.Signer, origin string, opts Options) (*Cluster, error) {
	if cps == nil || signer == nil {
		return nil, errors.New("kurrent: a cluster instance needs its checkpoints file and signing key")
	}
	s, err := Open(ctx, url, opts)
	if err != nil {
		return nil, err
	}
	tree, err := merkle.OpenLog(filepath.Join(dir, TreeFile))
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("kurrent: %w", err)
	}
	return &Cluster{
		Store:  s,
		Tree:   tree,
		Sealer: &Sealer{Store: s, Tree: tree, Checkpoints: cps, Signer: signer, Origin: origin, Log: opts.Log},
	}, nil
}

// Close closes the store and the tree; stop the sealer first.
func (c *Cluster) Close() error {
	return errors.Join(c.Store.Close(), c.Tree.Close())
}
