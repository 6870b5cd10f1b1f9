package main

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/heed/heed/ledger/merkle"
)

func init() {
	register("seal", "sign a checkpoint over events no checkpoint covers yet, while the server is stopped", seal)
}

// seal cuts the checkpoint the sealer of a crashed server did not get to:
// the same checks and signature as the running sealer's.
func seal(ctx context.Context, args []string) error {
	fs := newFlags("seal")
	data := addDataFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if !exists(filepath.Join(*data.dir, storeFile)) {
		return fmt.Errorf("%w: %s holds no ledger", errUsage, *data.dir)
	}
	d, err := data.open(false)
	if err != nil {
		return fmt.Errorf("%w (is heed serve running on this data directory?)", err)
	}
	defer d.Close()
	before, err := d.Checkpoints.Latest()
	if err != nil && !errors.Is(err, merkle.ErrNotFound) {
		return err
	}
	cp, err := d.Sealer().Seal(ctx)
	if errors.Is(err, merkle.ErrNotFound) {
		fmt.Println("nothing to seal: the ledger is empty")
		return nil
	}
	if err != nil {
		return err
	}
	if cp.Size == before.Size {
		fmt.Printf("nothing to seal: checkpoint of %d events already covers the ledger\n", cp.Size)
		return nil
	}
	fmt.Printf("sealed: checkpoint of %d events (was %d)\n", cp.Size, before.Size)
	return nil
}
