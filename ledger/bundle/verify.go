package bundle

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"

	"golang.org/x/mod/sumdb/tlog"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/merkle"
)

// Options tune [Verify].
type Options struct {
	// TrustedKey, if set, is the verifier key the auditor trusts; the
	// bundle's own key must be the same.
	TrustedKey string
	// Since, if set, is a signed checkpoint the auditor saw earlier (note
	// text). The bundle must hold at least its events and hash to its root
	// at its size, so a bundle that drops the latest events together with
	// their checkpoints, or rewrites history, is caught.
	Since []byte
	// Progress, if set, is called now and then with events checked so far
	// and the number the header promises.
	Progress func(done, total int64)
	// Workers parse and hash event lines; GOMAXPROCS when zero.
	Workers int
}

// Report describes a bundle that verified.
type Report struct {
	Origin      string
	Key         string
	Events      int64
	Checkpoints int64
	// Keys are the signing keys, first to last (one unless the key has
	// rotated); Key is the last of them.
	Keys []string
	// Root is the root hash signed by the last checkpoint.
	Root tlog.Hash
}

const (
	batchLines = 512
	// growCap bounds the memory reserved on the header's word alone
	// (about 128 MiB of hashes).
	growCap = 1 << 21
	// maxLine bounds one line; an event is a few hundred bytes.
	maxLine = 16 << 20
)

// Verify reads a bundle from r and checks it entirely; see the package
// documentation for what is checked. A failure is an [*Error]; an I/O error
// reading r is returned as is.
func Verify(ctx context.Context, r io.Reader, opt Options) (Report, error) {
	lr := &lineReader{br: bufio.NewReaderSize(r, 1<<20)}
	h, err := readHeader(lr)
	if err != nil {
		return Report{}, err
	}
	chain, err := merkle.NewChain(h.Key)
	if err != nil {
		return Report{}, &Error{Kind: ErrKey, Line: 1, Detail: "the header's key is not a note verifier key"}
	}
	keys := h.Keys
	if len(keys) == 0 {
		keys = []string{chain.Active().Key()}
	}
	if keys[0] != chain.Active().Key() {
		return Report{}, &Error{Kind: ErrKey, Line: 1, Detail: "the header's keys do not start with its key"}
	}
	if opt.TrustedKey != "" {
		tv, err := merkle.NewVerifier(opt.TrustedKey)
		if err != nil {
			return Report{}, &Error{Kind: ErrKey, Detail: "the trusted key is not a note verifier key"}
		}
		// Any key of the chain will do: the chain is checked link by link
		// below, and must end up as the header lists it.
		if !slices.Contains(keys, tv.Key()) {
			return Report{}, &Error{Kind: ErrKey, Line: 1, Detail: fmt.Sprintf(
				"the bundle is signed by %s, not by the trusted key %s", keyIDs(keys), keyID(tv.Key()))}
		}
	}

	var since *merkle.Checkpoint
	if len(opt.Since) > 0 {
		var cp merkle.Checkpoint
		for _, k := range keys {
			v, verr := merkle.NewVerifier(k)
			if verr != nil {
				return Report{}, &Error{Kind: ErrKey, Line: 1, Detail: "the header's keys are not note verifier keys"}
			}
			if cp, err = v.Open(opt.Since); err == nil {
				break
			}
		}
		if err != nil {
			return Report{}, &Error{Kind: ErrSignature, Detail: "the checkpoint seen before: " + err.Error()}
		}
		if cp.Origin != h.Origin {
			return Report{}, &Error{Kind: ErrRollback, Detail: fmt.Sprintf("the checkpoint seen before is for log %q, the bundle for %q", cp.Origin, h.Origin)}
		}
		if cp.Size > h.Events {
			return Report{}, &Error{Kind: ErrRollback, From: h.Events + 1, To: cp.Size, Detail: fmt.Sprintf(
				"a checkpoint seen before signs %d events, the bundle holds %d: events were dropped", cp.Size, h.Events)}
		}
		since = &cp
	}

	var tree merkle.Tree
	tree.Grow(min(h.Events, growCap))
	if err := readEvents(ctx, lr, h.Events, &tree, opt); err != nil {
		return Report{}, err
	}

	if since != nil && since.Size > 0 {
		root, err := tree.Root(since.Size)
		if err != nil {
			return Report{}, err
		}
		if root != since.Root {
			return Report{}, &Error{Kind: ErrRollback, From: 1, To: since.Size, Detail: fmt.Sprintf(
				"the first %d events differ from those the checkpoint seen before signs: history was rewritten", since.Size)}
		}
	}

	rep := Report{Origin: h.Origin, Events: h.Events, Checkpoints: h.Checkpoints}
	var lastGood int64
	var prev int64 = -1
	for i := int64(0); i < h.Checkpoints; i++ {
		line, err := lr.next()
		if errors.Is(err, io.EOF) {
			return Report{}, &Error{Kind: ErrTruncated, Detail: fmt.Sprintf("the bundle ends after %d of the %d checkpoints its header promises", i, h.Checkpoints)}
		}
		if err != nil {
			return Report{}, err
		}
		if bytes.HasPrefix(line, []byte(`{"id":`)) {
			return Report{}, &Error{Kind: ErrSequence, Line: lr.line, Position: h.Events + 1,
				Detail: fmt.Sprintf("an event line beyond the %d events the header promises: an inserted event", h.Events)}
		}
		var cl checkpointLine
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&cl); err != nil || cl.Checkpoint == "" {
			return Report{}, &Error{Kind: ErrFormat, Line: lr.line, Detail: "not a checkpoint line"}
		}
		cp, err := chain.Open([]byte(cl.Checkpoint))
		if err != nil {
			return Report{}, &Error{Kind: ErrSignature, Line: lr.line, Detail: err.Error()}
		}
		if cp.Origin != h.Origin {
			return Report{}, &Error{Kind: ErrSignature, Line: lr.line, Detail: fmt.Sprintf("checkpoint is for log %q, not %q", cp.Origin, h.Origin)}
		}
		if cp.Size <= prev {
			return Report{}, &Error{Kind: ErrFormat, Line: lr.line, Detail: fmt.Sprintf("checkpoint of size %d follows one of size %d", cp.Size, prev)}
		}
		prev = cp.Size
		if cp.Size > h.Events {
			return Report{}, &Error{Kind: ErrSequence, Line: lr.line, From: h.Events + 1, To: cp.Size,
				Detail: fmt.Sprintf("a checkpoint signs %d events but the bundle holds %d: events were dropped", cp.Size, h.Events)}
		}
		root, err := tree.Root(cp.Size)
		if err != nil {
			return Report{}, err
		}
		if root != cp.Root {
			return Report{}, &Error{Kind: ErrTampered, Line: lr.line, From: lastGood + 1, To: cp.Size,
				Detail: tamperDetail(lastGood, cp.Size)}
		}
		lastGood = cp.Size
		rep.Root = cp.Root
	}
	if line, err := lr.next(); !errors.Is(err, io.EOF) {
		if err != nil {
			return Report{}, err
		}
		if bytes.HasPrefix(line, []byte(`{"id":`)) {
			return Report{}, &Error{Kind: ErrSequence, Line: lr.line, Position: h.Events + 1,
				Detail: fmt.Sprintf("an event line beyond the %d events the header promises: an inserted event", h.Events)}
		}
		return Report{}, &Error{Kind: ErrFormat, Line: lr.line, Detail: fmt.Sprintf("a line after the %d checkpoints the header promises", h.Checkpoints)}
	}
	if lastGood < h.Events {
		return Report{}, &Error{Kind: ErrUncovered, From: lastGood + 1, To: h.Events,
			Detail: "no checkpoint signs these events"}
	}
	if got := chain.Keys(); !slices.Equal(got, keys) {
		return Report{}, &Error{Kind: ErrKey, Line: 1, Detail: fmt.Sprintf(
			"the header lists the signing keys %s, the checkpoints announce %s", keyIDs(keys), keyIDs(got))}
	}
	rep.Key, rep.Keys = chain.Active().Key(), chain.Keys()
	return rep, nil
}

func keyIDs(keys []string) string {
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = keyID(k)
	}
	return strings.Join(ids, " → ")
}

func tamperDetail(good, bad int64) string {
	if good == 0 {
		return fmt.Sprintf("the checkpoint of size %d does not match the events (no earlier checkpoint)", bad)
	}
	return fmt.Sprintf("the checkpoint of size %d does not match the events, the one of size %d does", bad, good)
}

// keyID shortens a verifier key to its name and hash for messages.
func keyID(vkey string) string {
	// name+hash+base64, where the base64 may itself contain '+'.
	if p := strings.SplitN(vkey, "+", 3); len(p) == 3 {
		return p[0] + "+" + p[1]
	}
	return vkey
}

// KeyID shortens a verifier key to its name and key hash
// ("heed.example/l-…+1a2b3c4d"), enough to tell keys apart in messages.
func KeyID(vkey string) string { return keyID(vkey) }

func readHeader(lr *lineReader) (Header, error) {
	line, err := lr.next()
	if errors.Is(err, io.EOF) {
		return Header{}, &Error{Kind: ErrTruncated, Detail: "the bundle is empty"}
	}
	if err != nil {
		return Header{}, err
	}
	var h Header
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&h); err != nil {
		return Header{}, &Error{Kind: ErrFormat, Line: 1, Detail: "the first line is not a bundle header"}
	}
	if h.Format != Format {
		return Header{}, &Error{Kind: ErrFormat, Line: 1, Detail: fmt.Sprintf("format %q, want %q", h.Format, Format)}
	}
	if h.Events < 0 || h.Checkpoints < 0 || h.Origin == "" {
		return Header{}, &Error{Kind: ErrFormat, Line: 1, Detail: "bad origin or counts"}
	}
	return h, nil
}

// batch is a run of consecutive event lines, parsed and hashed by a worker.
type batch struct {
	first int64 // position the first line must hold
	line0 int64 // bundle line of the first line
	buf   []byte
	ends  []int
	// Filled by the worker.
	pos    []int64
	hashes []tlog.Hash
	bad    int // index of the first malformed line, or -1
	badErr error
	done   chan struct{}
	// readErr ends the stream after these lines.
	readErr error
}

func (b *batch) line(i int) []byte {
	start := 0
	if i > 0 {
		start = b.ends[i-1]
	}
	return b.buf[start:b.ends[i]]
}

func (b *batch) work() {
	b.bad = -1
	b.pos = make([]int64, len(b.ends))
	b.hashes = make([]tlog.Hash, len(b.ends))
	for i := range b.ends {
		line := b.line(i)
		pos, ok := ledger.LeafPosition(line)
		if !ok {
			e, err := ledger.ParseLeaf(line)
			if err != nil {
				b.bad, b.badErr = i, err
				break
			}
			pos = int64(e.Position)
		}
		b.pos[i] = pos
		b.hashes[i] = tlog.RecordHash(line)
	}
	close(b.done)
}

// readEvents reads n event lines into tree, checking each is a canonical
// leaf at the next position. One goroutine reads; workers parse and hash;
// this goroutine checks order and builds the tree.
func readEvents(ctx context.Context, lr *lineReader, n int64, tree *merkle.Tree, opt Options) error {
	workers := opt.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	work := make(chan *batch)
	ordered := make(chan *batch, 2*workers)
	stop := make(chan struct{})
	defer close(stop)
	for range workers {
		go func() {
			for b := range work {
				b.work()
			}
		}()
	}
	go func() {
		defer close(ordered)
		defer close(work)
		for pos := int64(1); pos <= n; {
			b := &batch{first: pos, line0: lr.line + 1, done: make(chan struct{})}
			for len(b.ends) < batchLines && pos <= n {
				line, err := lr.next()
				if err == nil && bytes.HasPrefix(line, []byte(`{"checkpoint":`)) {
					err = &Error{Kind: ErrSequence, Line: lr.line, From: pos, To: n,
						Detail: fmt.Sprintf("the event lines end at position %d but the header promises %d: events were dropped", pos-1, n)}
				}
				var cut *Error
				switch {
				case errors.Is(err, io.EOF):
					err = &Error{Kind: ErrTruncated, From: pos, To: n,
						Detail: fmt.Sprintf("the bundle ends after position %d of %d", pos-1, n)}
				case errors.As(err, &cut) && cut.Kind == ErrTruncated:
					cut.Position = pos
				}
				if err != nil {
					b.readErr = err
					break
				}
				b.buf = append(b.buf, line...)
				b.ends = append(b.ends, len(b.buf))
				pos++
			}
			select {
			case work <- b:
			case <-stop:
				return
			}
			select {
			case ordered <- b:
			case <-stop:
				return
			}
			if b.readErr != nil {
				return
			}
		}
	}()

	for b := range ordered {
		<-b.done
		for i := range b.ends {
			if i == b.bad {
				return &Error{Kind: ErrFormat, Line: b.line0 + int64(i), Position: b.first + int64(i),
					Detail: "not a canonical event leaf: " + b.badErr.Error()}
			}
			if want := b.first + int64(i); b.pos[i] != want {
				return &Error{Kind: ErrSequence, Line: b.line0 + int64(i), Position: want,
					Detail: fmt.Sprintf("found the event of position %d: an event was dropped, inserted, swapped or renumbered", b.pos[i])}
			}
			tree.AppendRecordHash(b.hashes[i])
		}
		if b.readErr != nil {
			return b.readErr
		}
		if opt.Progress != nil {
			opt.Progress(tree.Size(), n)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// lineReader reads "\n"-terminated lines of any length.
type lineReader struct {
	br   *bufio.Reader
	line int64 // lines returned so far
	long []byte
}

// next returns the next line without its "\n", valid until the next call;
// io.EOF at a clean end, and ErrTruncated for a final line without "\n".
func (lr *lineReader) next() ([]byte, error) {
	b, err := lr.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		lr.long = append(lr.long[:0], b...)
		for errors.Is(err, bufio.ErrBufferFull) {
			if len(lr.long) > maxLine {
				return nil, &Error{Kind: ErrFormat, Line: lr.line + 1, Detail: fmt.Sprintf("line longer than %d bytes", maxLine)}
			}
			b, err = lr.br.ReadSlice('\n')
			lr.long = append(lr.long, b...)
		}
		b = lr.long
	}
	if errors.Is(err, io.EOF) {
		if len(b) == 0 {
			return nil, io.EOF
		}
		return nil, &Error{Kind: ErrTruncated, Line: lr.line + 1, Detail: "the last line is cut off (no newline)"}
	}
	if err != nil {
		return nil, fmt.Errorf("bundle: reading: %w", err)
	}
	lr.line++
	return b[:len(b)-1], nil
}
