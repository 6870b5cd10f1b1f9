package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/heed/heed/ledger/atomicfile"
	"github.com/heed/heed/ledger/bundle"
	"github.com/heed/heed/ledger/merkle"
)

func init() {
	register("export", "write an audit bundle of the ledger (events, signed checkpoints, public key)", export)
}

func export(ctx context.Context, args []string) error {
	fs := newFlags("export")
	data := addDataFlags(fs)
	out := fs.String("out", "", "bundle file to write (- for stdout)")
	maxCps := fs.Int("checkpoints", bundle.DefaultMaxCheckpoints, "at most this many checkpoints, spread evenly, the last always included (-1: all)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("%w: --out is required", errUsage)
	}
	if *maxCps == 0 {
		return fmt.Errorf("%w: --checkpoints must be positive, or -1 for all", errUsage)
	}
	d, err := data.open(false)
	if err != nil {
		return err
	}
	defer d.Close()

	// Cover every event: a bundle with an unsigned tail would not verify.
	cp, err := d.Sealer().Seal(ctx)
	if errors.Is(err, merkle.ErrNotFound) {
		cp = merkle.Checkpoint{}
	} else if err != nil {
		return err
	}
	cps, err := d.checkpointsN(cp.Size, *maxCps)
	if err != nil {
		return err
	}
	origin := d.Origin
	if cp.Origin != "" {
		origin = cp.Origin // what the checkpoints say, whatever --origin says now
	}
	bar := &progress{}
	if *out != "-" {
		bar = newProgress("export", cp.Size)
	}
	write := func(w io.Writer) error {
		return bundle.Export(ctx, w, d.Store, origin, d.Secrets.VerifierKey, cps,
			bundle.ExportOptions{Size: cp.Size, MaxCheckpoints: -1, Progress: bar.set})
	}
	if *out == "-" {
		err = write(os.Stdout)
	} else {
		err = atomicfile.Write(*out, 0o600, write)
	}
	bar.finish()
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "exported %d events to %s\n", cp.Size, *out)
	return nil
}

// progress is a progress bar on stdout when stdout is a terminal, and
// nothing otherwise. Long runs (export, verify, bench) use it.
type progress struct{ bar *progressbar.ProgressBar }

// newProgress starts a bar counting to total items.
func newProgress(desc string, total int64) *progress {
	if !term.IsTerminal(int(os.Stdout.Fd())) {
		return &progress{}
	}
	return &progress{bar: progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(os.Stdout),
		progressbar.OptionSetDescription(desc),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("events"),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)}
}

// set records that done items are finished.
func (p *progress) set(done int64) {
	if p.bar != nil {
		p.bar.Set64(done)
	}
}

// clear wipes the bar off its line so a line printed next stands alone;
// the bar redraws itself on its next update.
func (p *progress) clear() {
	if p.bar != nil {
		p.bar.Clear()
	}
}

// finish removes the bar.
func (p *progress) finish() {
	if p.bar != nil {
		p.bar.Finish()
	}
}
