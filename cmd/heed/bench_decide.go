package main

import (
	"context"
	"fmt"
	"os"

	"github.com/heed/heed/projections"
)

func init() {
	register("bench decide", "time eligibility decisions over generated subjects", benchDecide)
}

func benchDecide(ctx context.Context, args []string) error {
	fs := newFlags("bench decide")
	subjects := fs.Int("subjects", 1_000_000, "tracked (tenant, subject) pairs to generate")
	decisions := fs.Int("decisions", 1_000_000, "decisions to time")
	snapshot := fs.Bool("snapshot", true, "also time saving and restoring a snapshot (in a temporary directory)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *subjects < 1 || *decisions < 1 {
		return fmt.Errorf("%w: --subjects and --decisions must be positive", errUsage)
	}
	dir := ""
	if *snapshot {
		d, err := os.MkdirTemp("", "heed-bench-decide-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(d)
		dir = d
	}
	r, err := projections.Bench(ctx, *subjects, *decisions, dir)
	if err != nil {
		return err
	}
	fmt.Printf("events=%d apply_events_per_s=%.0f peer_decode_events_per_s=%.0f ratio=%.2f\n",
		r.Events, r.ApplyPerS, r.DecodePerS, r.ApplyPerS/r.DecodePerS)
	if dir != "" {
		fmt.Printf("snapshot_bytes=%d save_s=%.3f held_ms=%.3f restore_s=%.3f\n", r.SnapshotBytes, r.SaveS, r.HeldS*1e3, r.RestoreS)
	}
	fmt.Printf("decisions_per_s=%.0f p50_us=%.2f p99_us=%.2f bytes_per_subject=%.0f subjects=%d\n",
		r.DecisionsPerS, r.P50us, r.P99us, r.BytesPerSubject, r.Subjects)
	return nil
}
