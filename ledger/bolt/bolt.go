// Package bolt is heed's embedded ledger.Store: one bbolt file holding the
// global log, the stream and id indexes and the Merkle tree hashes.
//
// Appends go through one sequencer goroutine and one committer goroutine
// that do group commit: concurrent appenders share one transaction and one
// commit (bbolt syncs the data pages, then the meta page), and nobody is
// acknowledged before it. Each caller validates its events and encodes their
// canonical leaves in its own goroutine. The sequencer checks expected
// revisions and ids against the file, the batch still committing and the
// earlier requests of its own batch, splices in revision, position and
// recorded time and computes the Merkle tree hashes, while the committer
// commits the previous batch. As soon as that commit is done, the
// committer opens the next batch's transaction and writes each event and
// its index entries as the sequencer prepares them (see stream); once the
// batch is complete it adds the tree hashes and commits.
//
// The file holds seven buckets: events (position → canonical leaf, exactly
// the bytes the tree hashes), tree (a batch's first leaf index → the tlog
// stored hashes its leaves complete, one value per commit), ids (id →
// position), meta, and the stream index (stream, revision → position) in
// runs and filters (see runs.go; streams holds the index of files from
// before runs). Stream index entries reach the file in folds every 65536
// events, a sorted run per fold written a slice per commit (see recent and
// folding), and runs are merged level by level in the background; until a
// fold completes the entries live in memory and Open rebuilds them from
// the events after the folded position. So an append costs the same
// whether the store holds a thousand streams or ten million.
//
// Memory per stream: its run's Bloom filter, 10–20 bits (a filter is
// sized to a power of two), and 10–20 bits in the filter of names
// appended since Open (see names), so 2.5–5 bytes; plus, whatever the
// store's size, up to two generations of unfolded entries (~100 bytes
// each, 13 MiB). A filter of stream names (see names) tells a new stream
// from a stored one without reading the file, and zeros written past the
// file's last page (see keepAhead) spare each commit's fsync the work of
// allocating blocks. Open checks the meta pages and the last leaf against
// the tree before trusting a file, and, given them, the newest checkpoint
// signed over it (Promise) and the secrets it was made with (Identity); it
// writes nothing to a file it refuses. Every read checks each event it
// returns against the tree's leaf hash, so an altered event is refused
// rather than served.
package bolt

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	bolterr "go.etcd.io/bbolt/errors"

	"go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/tlog"

	"github.com/heed/heed/ledger"
)

// Errors specific to the embedded store.
var (
	// ErrCorrupt means the data file is not a readable heed store.
	ErrCorrupt = errors.New("bolt: data file is corrupt or not a heed store")
	// ErrInUse means another process holds the data file open for writing.
	ErrInUse = errors.New("bolt: store in use by another process")
	// ErrReadOnly means the store was opened read-only and cannot append.
	ErrReadOnly = errors.New("bolt: store opened read-only")
	// ErrFailed means a commit failed in a way that leaves the file's state
	// uncertain; the store refuses appends until it is reopened.
	ErrFailed = errors.New("bolt: store failed, reopen it")
)

// Bucket names. Keys of events and hashes are big-endian indexes, so those
// buckets only ever grow at their right edge.
var (
	bucketEvents  = []byte("events")  // position -> canonical leaf bytes
	bucketTree    = []byte("tree")    // a batch's first leaf index -> the stored hashes its leaves complete
	bucketStreams = []byte("streams") // len16|stream|revision -> position
	bucketIDs     = []byte("ids")     // event id -> position
	bucketMeta    = []byte("meta")
	keyFormat     = []byte("format")
	// keyFolded holds the last position whose stream index entry is in
	// the streams bucket; later ones are rebuilt from the events at open
	// (see recent). A file without it predates folding: all indexed.
	keyFolded = []byte("folded")
	formatV1  = []byte("heed-ledger-1")
)

// Option configures Open.
type Option func(*options)

type options struct {
	readOnly bool
	timeout  time.Duration
	maxSize  int
	maxBatch int
	// foldEvery is how many events' stream index entries wait in memory
	// before commits start writing them into the bucket.
	foldEvery int
	// foldAsyncFrom is the generation size from which the entries are
	// gathered and sorted off the committer.
	foldAsyncFrom int
	// promised and root are the newest signed checkpoint (see Promise).
	promised int64
	root     tlog.Hash
	identity map[string][]byte
}

// ReadOnly opens the store for reading only: the file is never written and
// Append fails with ErrReadOnly. Several read-only openers may share a file.
func ReadOnly() Option { return func(o *options) { o.readOnly = true } }

// WithTimeout sets how long Open waits for the file lock held by another
// process before failing with ErrInUse (default 1s).
func WithTimeout(d time.Duration) Option { return func(o *options) { o.timeout = d } }

// WithMaxSize caps the data file at n bytes; a commit that would grow it
// further fails and leaves the store usable.
func WithMaxSize(n int) Option { return func(o *options) { o.maxSize = n } }

// Store is the bbolt-backed ledger.Store. It is also a tlog.HashReader over
// the Merkle tree of its global log.
type Store struct {
	db       *bbolt.DB
	readOnly bool
	maxBatch int

	// rec indexes the streams of events not yet folded into the streams
	// bucket. The committer adds to it and folds; only the sequencer
	// prunes it, before it opens a read transaction, so that transaction
	// sees in the bucket whatever was pruned.
	rec       *recent
	foldEvery uint64
	foldAsync uint64        // generations this big are sorted off the committer
	folded    atomic.Uint64 // last position folded by a committed transaction
	pruned    uint64        // sequencer only: rec holds nothing at or below it
	fold      *folding      // committer only: the fold in progress, or nil
	lastBatch int           // sequencer only: events in the last batch it sealed

	// The runs of the stream index (see runs.go). The committer alone
	// changes live, merges, dead, nextRun and deadPaced, after Open.
	live      []run
	merges    []*merging
	dead      []uint64 // runs to delete, oldest first
	nextRun   uint64
	deadPaced uint64 // head the deletion of dead runs is paced from
	filters   runFilters
	idxCache  atomic.Pointer[indexCache]
	// topID is no less than any id stored or prepared (sequencer only).
	// Time-ordered ids, the kind NewID makes, mostly sort above it, and
	// such an id cannot have been appended before: the sequencer then
	// skips looking it up.
	topID string

	mu     sync.RWMutex // guards closed and sends on reqs
	closed bool
	reqs   chan *request
	done   chan struct{} // closed when the sequencer has exited
	quit   chan struct{} // closed by Close, wakes followers

	head   atomic.Uint64 // last committed position, also the tree size
	failed atomic.Bool
	// inflight counts callers inside Append: the batch the sequencer
	// waits for.
	inflight atomic.Int64
	filling  atomic.Bool   // the sequencer waits for callers inside Append to queue
	left     chan struct{} // a caller left Append while filling
	stats    struct{ commits, events, prepare, commit, folded, foldMax atomic.Int64 }

	// fileMu is held by every commit and while keepAhead writes zeros past
	// the last page, so that those never meet.
	fileMu    sync.Mutex
	committed chan struct{} // a commit succeeded: wakes keepAhead
	aheadDone chan struct{} // closed when keepAhead has exited
	learned   chan struct{} // closed when learnStreams has exited

	notifyMu sync.Mutex
	notify   chan struct{} // closed and replaced after every commit

	// beforeCommit, when set by tests, runs inside the write transaction
	// just before Commit with the number of events written; an error
	// aborts the batch like a failed write.
	beforeCommit atomic.Pointer[func(events int) error]
	// observer, when set, learns each commit's timing (see Observe).
	observer atomic.Pointer[func(commit time.Duration, waited []time.Duration)]
}

// Observe has f called after every commit, on the committer's goroutine,
// with how long the commit took (the tree hashes, writing the pages and
// both fsyncs) and, for each append it made durable, how long that append
// waited from entering the queue until the commit began. Together they say
// where an append's time goes: a long commit is the disk, a long wait with
// short commits is the queue in front of it. f must be quick and must not
// keep waited. A nil f stops the calls.
func (s *Store) Observe(f func(commit time.Duration, waited []time.Duration)) {
	if f == nil {
		s.observer.Store(nil)
		return
	}
	s.observer.Store(&f)
}

// Open opens or creates the store at path.
func Open(path string, opts ...Option) (*Store, error) {
	o := options{timeout: time.Second, maxBatch: 1024, foldEvery: defaultFoldEvery, foldAsyncFrom: 4096}
	for _, f := range opts {
		f(&o)
	}
	if o.readOnly {
		if _, err := os.Stat(path); err != nil {
			return nil, fmt.Errorf("bolt: open %s: %w", path, err)
		}
	}
	if err := checkPromised(path, o); err != nil {
		return nil, err
	}
	if err := checkMeta(path); err != nil {
		return nil, err
	}
	bo := &bbolt.Options{
		Timeout:  o.timeout,
		ReadOnly: o.readOnly,
		MaxSize:  o.maxSize,
		// Remapping a growing file waits for every open read transaction,
		// which would stall the sequencer behind a long Follow or export;
		// reserving address space up front makes remaps rare. It is
		// virtual memory only: the file still grows as data is written.
		InitialMmapSize: initialMmap,
		// The hashmap freelist stays fast as the file grows.
		FreelistType: bbolt.FreelistMapType,
		// NoFreelistSync stays false: it would save a page write per
		// commit but makes every open scan the whole file, and verify and
		// export open big files often.
	}
	db, err := openBolt(path, bo)
	if err != nil {
		return nil, err
	}
	s := &Store{
		db:        db,
		readOnly:  o.readOnly,
		maxBatch:  o.maxBatch,
		rec:       newRecent(),
		filters:   runFilters{m: map[uint64]*layer{}},
		foldEvery: uint64(max(o.foldEvery, 1)),
		foldAsync: uint64(max(o.foldAsyncFrom, 1)),
		reqs:      make(chan *request, 4096),
		done:      make(chan struct{}),
		quit:      make(chan struct{}),
		notify:    make(chan struct{}),
		left:      make(chan struct{}, 1),
		committed: make(chan struct{}, 1),
		aheadDone: make(chan struct{}),
		learned:   make(chan struct{}),
	}
	if err := s.load(path, o); err != nil {
		db.Close()
		return nil, err
	}
	if o.readOnly {
		close(s.done)
		close(s.aheadDone)
		close(s.learned)
	} else {
		go s.learnStreams()
		go s.sequence()
		go s.keepAhead(path, int64(o.maxSize))
	}
	return s, nil
}

// openBolt opens the file and turns bbolt's errors, and its panics on
// garbage pages, into ours.
func openBolt(path string, bo *bbolt.Options) (db *bbolt.DB, err error) {
	// Garbage page ids make bbolt read outside the file; turn that fault
	// into a panic we can recover rather than a crash.
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, path, r)
		}
	}()
	db, err = bbolt.Open(path, 0o600, bo)
	switch {
	case err == nil:
		return db, nil
	case errors.Is(err, bolterr.ErrTimeout):
		return nil, fmt.Errorf("%w: %s", ErrInUse, path)
	case errors.Is(err, bolterr.ErrInvalid), errors.Is(err, bolterr.ErrChecksum),
		errors.Is(err, bolterr.ErrVersionMismatch), errors.Is(err, bolterr.ErrInvalidMapping):
		return nil, fmt.Errorf("%w: %s: %v", ErrCorrupt, path, err)
	default:
		return nil, fmt.Errorf("bolt: open %s: %w", path, err)
	}
}

// load creates the buckets of a new file, checks an existing one is a
// consistent heed store, and caches the head.
func (s *Store) load(path string, o options) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %s: %v", ErrCorrupt, path, r)
		}
	}()
	fresh, unmarked, old, v2 := false, false, false, false
	var record map[string][]byte
	err = s.db.View(func(tx *bbolt.Tx) error {
		m := tx.Bucket(bucketMeta)
		if m == nil {
			empty := true
			_ = tx.ForEach(func([]byte, *bbolt.Bucket) error { empty = false; return nil })
			if !empty {
				return fmt.Errorf("%w: %s: no heed metadata", ErrCorrupt, path)
			}
			fresh = true
			return nil
		}
		switch f := m.Get(keyFormat); string(f) {
		case string(formatV3):
		case string(formatV2):
			v2 = true
		case string(formatV1):
			old = true
		default:
			return fmt.Errorf("%w: %s: unknown format %q", ErrCorrupt, path, f)
		}
		head, err := checkTx(tx)
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrCorrupt, path, err)
		}
		if record, err = checkLoaded(tx, path, head, o); err != nil {
			return err
		}
		s.head.Store(head)
		s.deadPaced = head
		if err := s.loadRuns(tx); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrCorrupt, path, err)
		}
		folded := head
		if f := m.Get(keyFolded); f != nil {
			if len(f) != 8 || binary.BigEndian.Uint64(f) > head {
				return fmt.Errorf("%w: %s: bad folded position", ErrCorrupt, path)
			}
			folded = binary.BigEndian.Uint64(f)
		} else {
			unmarked = true
		}
		s.folded.Store(folded)
		s.pruned = folded
		if k, _ := tx.Bucket(bucketIDs).Cursor().Last(); k != nil {
			s.topID = string(k)
		}
		if t := m.Get(keyTopID); string(t) > s.topID {
			s.topID = string(t)
		}
		return s.rebuild(tx, folded, head)
	})
	if err == nil && (unmarked || old || v2 || len(record) > 0) && !s.readOnly {
		// A file from before folding has every entry in the bucket. Mark
		// it before appending, or a crash before the first fold would
		// leave the new entries neither in the bucket nor rebuilt.
		err = s.db.Update(func(tx *bbolt.Tx) error {
			m := tx.Bucket(bucketMeta)
			for name, v := range record {
				if err := m.Put(identityKey(name), v); err != nil {
					return err
				}
			}
			if old {
				// A file from before runs: its streams bucket is read
				// as the oldest run, and folds go to runs from now on;
				// the new format keeps older code from opening it.
				if err := createRunBuckets(tx); err != nil {
					return err
				}
			}
			if old || v2 {
				// Ids out of order go to the stream index from now on
				// (see ids.go), where older code would not look.
				if err := m.Put(keyFormat, formatV3); err != nil {
					return err
				}
			}
			if !unmarked {
				return nil
			}
			return m.Put(keyFolded, key(s.head.Load()))
		})
	}
	if err != nil || !fresh {
		return err
	}
	if s.readOnly {
		return fmt.Errorf("%w: %s: empty file", ErrCorrupt, path)
	}
	if o.promised > 0 {
		return fmt.Errorf("%w: %s is empty, but a checkpoint signed over it covers %d events", ledger.ErrBehind, path, o.promised)
	}
	return s.db.Update(func(tx *bbolt.Tx) error {
		for _, name := range [][]byte{bucketEvents, bucketTree, bucketStreams, bucketIDs, bucketMeta} {
			if _, err := tx.CreateBucket(name); err != nil {
				return fmt.Errorf("bolt: create %s: %w", name, err)
			}
		}
		if err := createRunBuckets(tx); err != nil {
			return err
		}
		if err := tx.Bucket(bucketMeta).Put(keyFolded, key(0)); err != nil {
			return err
		}
		for name, v := range o.identity {
			if err := tx.Bucket(bucketMeta).Put(identityKey(name), v); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keyFormat, formatV3)
	})
}

// createRunBuckets adds the buckets of the stream index's runs.
func createRunBuckets(tx *bbolt.Tx) error {
	for _, name := range [][]byte{bucketRuns, bucketFilters} {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return fmt.Errorf("bolt: create %s: %w", name, err)
		}
	}
	return nil
}

// defaultFoldEvery bounds the memory the unfolded entries take (~100
// bytes each) and the events Open decodes to rebuild them: up to twice
// this many, one generation being folded while the next gathers.
const defaultFoldEvery = 1 << 16

// rebuild indexes in memory the streams of the events after folded.
func (s *Store) rebuild(tx *bbolt.Tx, folded, head uint64) error {
	s.rec.mu.Lock()
	defer s.rec.mu.Unlock()
	c := tx.Bucket(bucketEvents).Cursor()
	hashes := newLeafHashes(tx)
	for k, v := c.Seek(key(folded + 1)); k != nil; k, v = c.Next() {
		if len(k) != 8 {
			return fmt.Errorf("%w: bad event key", ErrCorrupt)
		}
		if err := hashes.check(binary.BigEndian.Uint64(k), v); err != nil {
			return err
		}
		e, err := decode(v)
		if err != nil {
			return fmt.Errorf("%w: event %d: %v", ErrCorrupt, binary.BigEndian.Uint64(k), err)
		}
		if e.Position != binary.BigEndian.Uint64(k) || e.Position > head {
			return fmt.Errorf("%w: event %d is stored under another position", ErrCorrupt, e.Position)
		}
		if last, ok := s.rec.lastLocked(e.Stream); ok && e.Revision != last+1 {
			return fmt.Errorf("%w: stream revisions out of order at position %d", ErrCorrupt, e.Position)
		}
		s.rec.add(e.Stream, e.Revision, e.Position)
		s.rec.add(idStream(e.ID), 1, e.Position)
	}
	return nil
}

// checkTx is the cheap consistency check run on every open: the buckets
// exist, the events are numbered 1..head, the tree holds exactly the hashes
// of head leaves, and the last leaf's hash is the hash of the last event.
func checkTx(tx *bbolt.Tx) (uint64, error) {
	for _, name := range [][]byte{bucketEvents, bucketTree, bucketStreams, bucketIDs} {
		if tx.Bucket(name) == nil {
			return 0, fmt.Errorf("bucket %s missing", name)
		}
	}
	ev := tx.Bucket(bucketEvents)
	var head uint64
	k, v := ev.Cursor().Last()
	if k != nil {
		if len(k) != 8 {
			return 0, fmt.Errorf("bad event key")
		}
		head = binary.BigEndian.Uint64(k)
		if fk, _ := ev.Cursor().First(); len(fk) != 8 || binary.BigEndian.Uint64(fk) != 1 {
			return 0, fmt.Errorf("log does not start at position 1")
		}
	}
	// The last tree value holds the hashes of leaves first..head-1.
	tk, tv := tx.Bucket(bucketTree).Cursor().Last()
	if head == 0 {
		if tk != nil {
			return 0, fmt.Errorf("tree has leaves but the log is empty")
		}
		return 0, nil
	}
	if len(tk) != 8 || binary.BigEndian.Uint64(tk) > head-1 {
		return 0, fmt.Errorf("tree and log end at different leaves")
	}
	first := int64(binary.BigEndian.Uint64(tk))
	if int64(len(tv)) != (tlog.StoredHashCount(int64(head))-tlog.StoredHashCount(first))*tlog.HashSize {
		return 0, fmt.Errorf("tree and log end at different leaves")
	}
	last := (tlog.StoredHashCount(int64(head-1)) - tlog.StoredHashCount(first)) * tlog.HashSize
	if tlog.RecordHash(v) != tlog.Hash(tv[last:last+tlog.HashSize]) {
		return 0, fmt.Errorf("last event does not match its tree leaf")
	}
	return head, nil
}

// initialMmap reserves 1 GiB of address space.
const initialMmap = 1 << 30

func key(n uint64) []byte {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], n)
	return b[:]
}

func streamKey(stream string, rev uint64) []byte {
	b := make([]byte, 2+len(stream)+8)
	binary.BigEndian.PutUint16(b, uint16(len(stream)))
	copy(b[2:], stream)
	binary.BigEndian.PutUint64(b[2+len(stream):], rev)
	return b
}

func (s *Store) isClosed() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.closed
}

// view runs fn in a read transaction unless the store is closed.
func (s *Store) view(fn func(*bbolt.Tx) error) error {
	if s.isClosed() {
		return ledger.ErrClosed
	}
	err := s.db.View(fn)
	if errors.Is(err, bolterr.ErrDatabaseNotOpen) {
		return ledger.ErrClosed
	}
	return err
}

// Lookup returns the stored event with the given id, through the id index,
// and whether there is one: a question answered in one index read, where a
// ledger.Store can only scan.
func (s *Store) Lookup(ctx context.Context, id string) (ledger.Event, bool, error) {
	if err := ctx.Err(); err != nil {
		return ledger.Event{}, false, err
	}
	head := s.head.Load()
	var e ledger.Event
	var found bool
	err := s.view(func(tx *bbolt.Tx) error {
		x, err := s.index(tx)
		if err != nil {
			return err
		}
		// A commit is visible before its fsync returns; its events are
		// not acknowledged, or in the log as readers see it, until then.
		p := x.position(s.rec, tx.Bucket(bucketIDs), id, head)
		if p == 0 {
			return nil
		}
		leaf := tx.Bucket(bucketEvents).Get(key(p))
		if err := newLeafHashes(tx).check(p, leaf); err != nil {
			return err
		}
		if e, err = decode(leaf); err != nil {
			return err
		}
		found = true
		return nil
	})
	return e, found, err
}

// ReadStream implements ledger.Store.
func (s *Store) ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]ledger.Event, error) {
	if from < 1 {
		from = 1
	}
	head := s.head.Load()
	// The unfolded tail before the transaction: whatever a fold has
	// taken from it since is in the bucket the transaction reads.
	first, tail := s.rec.tail(stream, head)
	var out []ledger.Event
	err := s.view(func(tx *bbolt.Tx) error {
		x, err := s.index(tx)
		if err != nil {
			return err
		}
		if len(tail) == 0 && x.revision(stream, head, true) == 0 {
			return fmt.Errorf("%w: stream %s", ledger.ErrNotFound, stream)
		}
		ev := tx.Bucket(bucketEvents)
		hashes := newLeafHashes(tx)
		read := func(pos []byte) error {
			leaf := ev.Get(pos)
			if len(pos) != 8 {
				return fmt.Errorf("%w: bad stream index entry", ErrCorrupt)
			}
			if err := hashes.check(binary.BigEndian.Uint64(pos), leaf); err != nil {
				return err
			}
			e, err := decode(leaf)
			if err != nil {
				return err
			}
			out = append(out, e)
			return nil
		}
		prefix := streamKey(stream, 0)[:2+len(stream)]
		// Older runs hold earlier revisions. An entry in two (a fold a
		// crash interrupted, redone) is read once.
		var last uint64
	runs:
		for _, b := range x.buckets(stream) {
			c := b.Cursor()
			for k, v := c.Seek(streamKey(stream, max(from, last+1))); k != nil && hasPrefix(k, prefix) && len(k) == len(prefix)+8; k, v = c.Next() {
				rev := binary.BigEndian.Uint64(k[len(prefix):])
				if len(tail) > 0 && rev >= first {
					break runs // folded but not yet pruned: read from the tail
				}
				if (limit > 0 && len(out) >= limit) || binary.BigEndian.Uint64(v) > head {
					break runs
				}
				if err := read(v); err != nil {
					return err
				}
				last = rev
			}
		}
		for i, pos := range tail {
			if first+uint64(i) < from {
				continue
			}
			if limit > 0 && len(out) >= limit {
				break
			}
			if err := read(key(pos)); err != nil {
				return err
			}
		}
		return nil
	})
	return out, err
}

// visibleRevision is the stream's revision counting only events at or
// below head. bbolt lets a reader see a commit as soon as its meta page is
// written, before that page's fsync returns; readers stop at the head the
// sequencer publishes after the commit, so nothing reads an event that is
// not yet durable (a projection could otherwise act on an event a power
// cut then takes back).
func visibleRevision(b *bbolt.Bucket, stream string, head uint64) uint64 {
	c := b.Cursor()
	end := streamKey(stream, math.MaxUint64)
	n := len(end) - 8
	k, v := c.Seek(end)
	if k == nil || string(k) != string(end) {
		k, v = c.Prev()
	}
	for ; len(k) == len(end) && string(k[:n]) == string(end[:n]); k, v = c.Prev() {
		if binary.BigEndian.Uint64(v) <= head {
			return binary.BigEndian.Uint64(k[n:])
		}
	}
	return 0
}

func hasPrefix(b, p []byte) bool { return len(b) >= len(p) && string(b[:len(p)]) == string(p) }

// StreamRevision implements ledger.Store.
func (s *Store) StreamRevision(ctx context.Context, stream string) (uint64, error) {
	head := s.head.Load()
	if first, tail := s.rec.tail(stream, head); len(tail) > 0 {
		if s.isClosed() {
			return 0, ledger.ErrClosed
		}
		return first + uint64(len(tail)) - 1, nil
	}
	var rev uint64
	err := s.view(func(tx *bbolt.Tx) error {
		x, err := s.index(tx)
		if err != nil {
			return err
		}
		rev = x.revision(stream, head, true)
		return nil
	})
	return rev, err
}

// ReadAll implements ledger.Store.
func (s *Store) ReadAll(ctx context.Context, from uint64, limit int) ([]ledger.Event, error) {
	// Events are big; growing the slice would copy them over and over.
	var out []ledger.Event
	if head := s.head.Load(); max(from, 1) <= head {
		n := head - max(from, 1) + 1
		if limit > 0 {
			n = min(n, uint64(limit))
		}
		out = make([]ledger.Event, 0, min(n, 1<<16))
	}
	err := s.scan(from, limit, func(leaf []byte) error {
		e, err := decode(leaf)
		out = append(out, e)
		return err
	})
	return out, err
}

// ReadLeaves returns the stored canonical bytes of up to limit events with
// position >= from, without decoding them: the fast path for exports and
// verifiers, which need exactly these bytes.
func (s *Store) ReadLeaves(ctx context.Context, from uint64, limit int) ([][]byte, error) {
	var out [][]byte
	var buf []byte
	err := s.scan(from, limit, func(leaf []byte) error {
		// One backing array per call instead of one allocation per leaf.
		if cap(buf)-len(buf) < len(leaf) {
			buf = make([]byte, 0, max(64<<10, len(leaf)))
		}
		start := len(buf)
		buf = append(buf, leaf...)
		out = append(out, buf[start:len(buf):len(buf)])
		return nil
	})
	return out, err
}

// scan calls fn with the leaf bytes of each committed event from position
// from on; the bytes are only valid during the call.
func (s *Store) scan(from uint64, limit int, fn func([]byte) error) error {
	if from < 1 {
		from = 1
	}
	head := s.head.Load()
	if from > head {
		if s.isClosed() {
			return ledger.ErrClosed
		}
		return nil
	}
	return s.view(func(tx *bbolt.Tx) error {
		c := tx.Bucket(bucketEvents).Cursor()
		hashes := newLeafHashes(tx)
		n := 0
		for k, v := c.Seek(key(from)); k != nil; k, v = c.Next() {
			// Stop at the published head: see visibleRevision.
			pos := binary.BigEndian.Uint64(k)
			if (limit > 0 && n >= limit) || pos > head {
				break
			}
			if err := hashes.check(pos, v); err != nil {
				return err
			}
			if err := fn(v); err != nil {
				return err
			}
			n++
		}
		return nil
	})
}

// Head implements ledger.Store.
func (s *Store) Head(ctx context.Context) (uint64, error) {
	if s.isClosed() {
		return 0, ledger.ErrClosed
	}
	return s.head.Load(), nil
}

// TreeSize returns the number of leaves in the Merkle tree, which is the
// head position.
func (s *Store) TreeSize() int64 { return int64(s.head.Load()) }

// ReadHashes implements tlog.HashReader over the committed tree, so
// tlog.TreeHash(n, store) and the proof functions work on the store.
func (s *Store) ReadHashes(indexes []int64) ([]tlog.Hash, error) {
	out := make([]tlog.Hash, len(indexes))
	// Only the tree of the published head: see visibleRevision.
	limit := tlog.StoredHashCount(int64(s.head.Load()))
	for _, x := range indexes {
		if x >= limit {
			return nil, fmt.Errorf("%w: hash index %d", ledger.ErrNotFound, x)
		}
	}
	err := s.view(func(tx *bbolt.Tx) error { return readHashes(tx.Bucket(bucketTree), indexes, out) })
	if err != nil {
		return nil, err
	}
	return out, nil
}

// readHashes fills out with the stored hashes at indexes. A batch stores
// the hashes its leaves complete, which are consecutive stored-hash
// indexes, as one value under its first leaf's index; a file from before
// that has one leaf per key, which reads the same way.
func readHashes(b *bbolt.Bucket, indexes []int64, out []tlog.Hash) error {
	c := b.Cursor()
	for i, x := range indexes {
		if x < 0 {
			return fmt.Errorf("%w: hash index %d", ledger.ErrNotFound, x)
		}
		level, n := tlog.SplitStoredHashIndex(x)
		leaf := uint64((n+1)<<level - 1)
		k, v := c.Seek(key(leaf))
		if k == nil || binary.BigEndian.Uint64(k) > leaf {
			k, v = c.Prev()
		}
		if len(k) != 8 {
			return fmt.Errorf("%w: hash index %d", ledger.ErrNotFound, x)
		}
		off := (x - tlog.StoredHashCount(int64(binary.BigEndian.Uint64(k)))) * tlog.HashSize
		if off < 0 || off+tlog.HashSize > int64(len(v)) {
			return fmt.Errorf("%w: hash index %d", ledger.ErrNotFound, x)
		}
		copy(out[i][:], v[off:])
	}
	return nil
}

// Follow implements ledger.Store.
func (s *Store) Follow(ctx context.Context, from uint64, fn func(ledger.Event) error) error {
	if from < 1 {
		from = 1
	}
	for {
		// Take the notification channel before reading so a commit that
		// lands after the read still wakes us.
		s.notifyMu.Lock()
		changed := s.notify
		s.notifyMu.Unlock()
		batch, err := s.ReadAll(ctx, from, 1024)
		if err != nil {
			return err
		}
		for _, e := range batch {
			if err := fn(e); err != nil {
				return err
			}
			from = e.Position + 1
		}
		if len(batch) > 0 {
			continue
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.quit:
			return ledger.ErrClosed
		case <-changed:
		}
	}
}

// Stats counts the sequencer's work since Open.
type Stats struct {
	Commits int64         // transactions committed
	Events  int64         // events they wrote
	Prepare time.Duration // time spent checking and preparing batches
	Commit  time.Duration // time spent writing and committing them
	// Folded counts stream index entries written into runs by folds;
	// FoldMax is the most one commit wrote.
	Folded, FoldMax int64
	// Written is the bytes of pages bbolt allocated, and so wrote, for
	// commits: data, branches, freelist.
	Written int64
}

// Stats returns the sequencer's counters; Events/Commits is the mean batch.
func (s *Store) Stats() Stats {
	return Stats{
		Commits: s.stats.commits.Load(),
		Events:  s.stats.events.Load(),
		Prepare: time.Duration(s.stats.prepare.Load()),
		Commit:  time.Duration(s.stats.commit.Load()),
		Folded:  s.stats.folded.Load(),
		FoldMax: s.stats.foldMax.Load(),
		Written: written(s.db),
	}
}

// written is the bytes of pages db's commits allocated.
func written(db *bbolt.DB) int64 {
	st := db.Stats()
	return st.TxStats.GetPageAlloc()
}

// Close implements ledger.Store. It waits for queued appends to finish.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	if !s.readOnly {
		close(s.reqs)
	}
	s.mu.Unlock()
	close(s.quit)
	<-s.done
	<-s.aheadDone
	<-s.learned
	return s.db.Close()
}
