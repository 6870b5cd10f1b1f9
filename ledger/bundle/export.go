package bundle

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/merkle"
)

// Events reads the global log; every ledger.Store is one.
type Events interface {
	ReadAll(ctx context.Context, from uint64, limit int) ([]ledger.Event, error)
}

// LeafReader is the optional fast path of an Events: the stored leaf bytes
// themselves, so the bundle holds exactly what was hashed rather than a
// re-encoding.
type LeafReader interface {
	ReadLeaves(ctx context.Context, from uint64, limit int) ([][]byte, error)
}

// ExportOptions tune [Export].
type ExportOptions struct {
	// Size is the number of events to write; 0 means exactly those the
	// last checkpoint covers.
	Size int64
	// MaxCheckpoints caps the checkpoint lines: a sealer cutting one a
	// second makes 86,400 a day, each costing the verifier a signature
	// check. Zero means DefaultMaxCheckpoints, negative means all. The last
	// checkpoint is always kept; the others are spread evenly by position,
	// so fewer checkpoints only widen the range a tampered event is
	// located to.
	MaxCheckpoints int
	// Progress, if set, is called now and then with events written so far.
	Progress func(done int64)
}

// DefaultMaxCheckpoints is the checkpoint lines an export keeps at most
// unless told otherwise.
const DefaultMaxCheckpoints = 1024

// thin keeps at most max checkpoints of cps (in increasing size): the last
// one, and others spread evenly; and every one that announces a key
// rotation, on which the trust in the later ones rests.
func thin(cps []merkle.Checkpoint, max int) []merkle.Checkpoint {
	if max == 0 {
		max = DefaultMaxCheckpoints
	}
	if max < 0 || len(cps) <= max {
		return cps
	}
	out := make([]merkle.Checkpoint, 0, max)
	next := 1 // of the max evenly spread picks
	for i, c := range cps {
		if pick := next*len(cps)/max - 1; i == pick || c.Rotation != nil {
			out = append(out, c)
		}
		for next <= max && next*len(cps)/max-1 <= i {
			next++
		}
	}
	return out
}

// chain returns the signing keys of cps, first to last, from their
// rotation announcements; just vkey when there are none.
func chain(cps []merkle.Checkpoint, vkey string) []string {
	var keys []string
	for _, c := range cps {
		if c.Rotation == nil {
			continue
		}
		if len(keys) == 0 {
			keys = append(keys, c.Rotation.Old)
		}
		keys = append(keys, c.Rotation.New)
	}
	if len(keys) == 0 {
		return []string{vkey}
	}
	return keys
}

// readBatch is how many events Export reads at a time.
const readBatch = 4096

// Export writes a bundle of the first events of log to w, with the given
// checkpoints (in increasing size) signed by the key vkey. Checkpoints
// beyond the exported size are left out. If the checkpoints announce key
// rotations, the header names the first key and lists them all; vkey is
// then not needed.
func Export(ctx context.Context, w io.Writer, log Events, origin, vkey string, cps []merkle.Checkpoint, opt ExportOptions) error {
	for i := 1; i < len(cps); i++ {
		if cps[i].Size <= cps[i-1].Size {
			return fmt.Errorf("bundle: export: checkpoints not in increasing size")
		}
	}
	n := opt.Size
	if n == 0 && len(cps) > 0 {
		n = cps[len(cps)-1].Size
	}
	for len(cps) > 0 && cps[len(cps)-1].Size > n {
		cps = cps[:len(cps)-1]
	}
	cps = thin(cps, opt.MaxCheckpoints)
	bw := bufio.NewWriterSize(w, 1<<20)
	hdr := Header{Format: Format, Origin: origin, Key: vkey, Events: n, Checkpoints: int64(len(cps))}
	if keys := chain(cps, vkey); len(keys) > 1 {
		hdr.Key, hdr.Keys = keys[0], keys
	}
	h, err := json.Marshal(hdr)
	if err != nil {
		return err
	}
	bw.Write(h)
	bw.WriteByte('\n')
	read := func(from int64, limit int) ([][]byte, error) {
		if lr, ok := log.(LeafReader); ok {
			return lr.ReadLeaves(ctx, uint64(from), limit)
		}
		evs, err := log.ReadAll(ctx, uint64(from), limit)
		if err != nil {
			return nil, err
		}
		leaves := make([][]byte, len(evs))
		for i := range evs {
			if evs[i].Position != uint64(from)+uint64(i) {
				return nil, fmt.Errorf("log returned position %d, want %d", evs[i].Position, from+int64(i))
			}
			if leaves[i], err = evs[i].Leaf(); err != nil {
				return nil, err
			}
		}
		return leaves, nil
	}
	for next := int64(1); next <= n; {
		leaves, err := read(next, int(min(readBatch, n-next+1)))
		if err != nil {
			return fmt.Errorf("bundle: export: reading from position %d: %w", next, err)
		}
		if len(leaves) == 0 {
			return fmt.Errorf("bundle: export: log ends at position %d, want %d", next-1, n)
		}
		for _, leaf := range leaves {
			bw.Write(leaf)
			bw.WriteByte('\n')
			next++
		}
		if opt.Progress != nil {
			opt.Progress(next - 1)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	for _, c := range cps {
		line, err := json.Marshal(checkpointLine{Checkpoint: string(c.Note)})
		if err != nil {
			return err
		}
		bw.Write(line)
		bw.WriteByte('\n')
	}
	// bufio keeps the first write error; Flush reports it.
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("bundle: export: %w", err)
	}
	return nil
}
