// Package book records a renewal book: a file of a tenant's customer
// relationships, one per row (number, contract_ref, product, starts_at,
// expires_at, plan), as RelationshipStarted events.
//
// A book is read as a stream, a chunk of rows at a time, and never held
// whole: one chunk is read while the one before is checked and the one
// before that recorded, its rows appended together so that they share
// the store's group commits. The rows of one ref, and of one number, are
// recorded in file order. At most a few chunks of rows are in memory,
// each row at most MaxRow bytes, whatever the file's size.
//
// Each row is one event in one append: a row is recorded whole or not at
// all. Its event id derives from the tenant and the contract ref, so
// running a file again appends nothing new, and a run killed half-way is
// finished by running it again: which rows are done is read from the log
// itself, never from a side file that could disagree with it. A ref the
// ledger already holds for another number is refused, in the same file or
// across files, because the store refuses an id in a second stream.
//
// A row naming a plan carries the customer's number, sealed with the
// subject's data key, for the scheduler that sends the plan's reminders; a
// later export of the book with a contract's expiry moved later records a
// RelationshipRenewed.
//
// A bad row never stops the good ones: it is reported with its row number,
// the field and why, and never with a value from the file (a column of
// phone numbers in the wrong place would otherwise reach logs).
package book

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/heed/heed/ledger"
	"github.com/heed/heed/ledger/pii"
)

// Errors of a whole file. A file that fails with one of them has had
// nothing recorded.
var (
	// ErrColumns means the file's columns are wrong: a CSV header (or the
	// first NDJSON row) names an unknown or repeated column, or misses a
	// required one.
	ErrColumns = errors.New("book: wrong columns")
	// ErrFormat means the file is not in the format it was read as.
	ErrFormat = errors.New("book: unreadable file")
)

// Format is how a book is written.
type Format string

// The formats a book can take.
const (
	// CSV is comma-separated values with a header row naming the columns,
	// in any order; product and plan may be left out.
	CSV Format = "csv"
	// NDJSON is one JSON object per line, its members named as the
	// columns, every value a string.
	NDJSON Format = "ndjson"
)

// Columns are the columns of a book, in their usual order.
var Columns = []string{"number", "contract_ref", "product", "starts_at", "expires_at", "plan"}

// required are the columns every book has.
var required = []string{"number", "contract_ref", "starts_at", "expires_at"}

// Limits of a row, in bytes.
const (
	// MaxRow bounds a row: anything longer is refused unread.
	MaxRow = 4096
	// MaxNumber, MaxRef, MaxProduct and MaxPlan bound their fields (those
	// of POST /v1/relationships).
	MaxNumber  = 32
	MaxRef     = 128
	MaxProduct = 128
	MaxPlan    = 64
	maxDate    = 64
)

// Config says where and as whom a book is recorded.
type Config struct {
	// Store receives the events, through a pii.Sealing on Keys: a row
	// naming a plan carries its number, sealed for the scheduler.
	Store ledger.Store
	Keys  *pii.Keys
	// Tenant owns the relationships; Actor is recorded as their writer.
	Tenant string
	Actor  string
	// Subject turns a number as written in the file into its E.164 form
	// and its subject, the way every other writer does (normalise, then
	// pseudonymise). Whatever its error says, the row is reported as "not
	// a valid phone number", never with the number.
	Subject func(number string) (e164, subject string, err error)
	// Zone returns the time zone of a number (its E.164 form): a date
	// written without a time of day is that day's midnight in the
	// customer's own zone, as every rule about the customer reads time.
	// nil, or a nil answer (a number whose zone is unknown or ambiguous),
	// means Location.
	Zone func(e164 string) *time.Location
	// Location is the time zone of a date written without a time when
	// Zone gives none; nil means UTC.
	Location *time.Location
	// Now is the clock [time.Now]. A relationship that starts in the
	// future is recorded as occurring now.
	Now func() time.Time
	// Workers is how many rows are recorded at once [4096]: concurrent
	// appends share the store's commits.
	Workers int
	// Report receives each refused row's errors, one call per field, from
	// one goroutine at a time, in the order rows finish (not file order).
	Report func(RowError)
}

// RowError is why one field of one row was refused. It never holds a
// value from the file.
type RowError struct {
	// Row is the 1-based line of the file (a CSV header is line 1).
	Row int `json:"row"`
	// Field is the column, or "row" for the row as a whole.
	Field string `json:"field"`
	Why   string `json:"why"`
}

func (e RowError) String() string { return fmt.Sprintf("row %d: %s: %s", e.Row, e.Field, e.Why) }

// Counts is what an import has done so far.
type Counts struct {
	// Rows is how many rows were read (blank lines and the header not
	// counted); every row ends up in exactly one of the three others.
	Rows int64 `json:"rows"`
	// Recorded rows were new relationships, recorded by this run.
	Recorded int64 `json:"recorded"`
	// Renewed rows moved the expiry of a relationship recorded before to
	// a later one (RelationshipRenewed): a later export of the same book.
	Renewed int64 `json:"renewed"`
	// Already rows were in the ledger before: an earlier run of this file
	// or one repeating its rows.
	Already int64 `json:"already"`
	// Refused rows were bad; each has at least one RowError.
	Refused int64 `json:"refused"`
	// Bytes is how much of the file was read.
	Bytes int64 `json:"bytes"`
}

// Done is how many rows have an outcome.
func (c Counts) Done() int64 { return c.Recorded + c.Renewed + c.Already + c.Refused }

// Importer records books. Progress may be called while Run runs.
type Importer struct {
	cfg                                               Config
	store                                             ledger.Store
	rows, recorded, renewed, already, refused, nbytes atomic.Int64
	reportMu                                          sync.Mutex
	plans                                             *planCache
}

// New returns an Importer for cfg.
func New(cfg Config) (*Importer, error) {
	if cfg.Store == nil || cfg.Keys == nil || cfg.Subject == nil {
		return nil, errors.New("book: Store, Keys and Subject are required")
	}
	if cfg.Tenant == "" {
		return nil, errors.New("book: a tenant is required")
	}
	if cfg.Location == nil {
		cfg.Location = time.UTC
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Workers <= 0 {
		cfg.Workers = chunkRows
	}
	store := pii.Seal(cfg.Store, cfg.Keys)
	return &Importer{cfg: cfg, store: store, plans: newPlanCache(store, cfg.Tenant)}, nil
}

// Progress returns the counts so far.
func (im *Importer) Progress() Counts {
	return Counts{Rows: im.rows.Load(), Recorded: im.recorded.Load(), Renewed: im.renewed.Load(), Already: im.already.Load(),
		Refused: im.refused.Load(), Bytes: im.nbytes.Load()}
}

// Run reads a book from r and records its rows. It returns ErrColumns or
// ErrFormat, with nothing recorded, for a file it cannot take; an error of
// the store or ctx stops it, with the rows before recorded and the rest
// left to a later run. Bad rows are counted and reported, not returned.
//
// Rows go through three stages, each on its own chunk of the file at a
// time: reading; checking (on every core) and making the data keys of
// the chunk's new subjects (one write of the key store for the chunk);
// recording (the chunk's rows appended together, so they share the
// store's commits). A chunk's keys are durable before any of its events
// is appended, and a chunk is recorded only once the one before it is.
func (im *Importer) Run(ctx context.Context, r io.Reader, format Format) (Counts, error) {
	src, err := newSource(r, format, &im.nbytes)
	if err != nil {
		return im.Progress(), err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	read := make(chan []raw, 1)
	checked := make(chan *chunk, 1)
	var readErr error
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(read)
		readErr = im.read(ctx, src, read)
	})
	wg.Go(func() {
		defer close(checked)
		for rows := range read {
			c, err := im.prepare(ctx, rows)
			if err != nil {
				cancel(err)
				continue // drain: the run is over
			}
			select {
			case checked <- c:
			case <-ctx.Done():
			}
		}
	})
	// Recorders live for the run: one goroutine a row would grow a new
	// stack for every row.
	jobs := make(chan job)
	var recorders sync.WaitGroup
	for range im.cfg.Workers {
		recorders.Go(func() {
			for j := range jobs {
				if ctx.Err() == nil {
					if err := im.record(ctx, j.row, j.keys); err != nil {
						cancel(err)
					}
				}
				j.done.Done()
			}
		})
	}
	for c := range checked {
		for _, rows := range c.rounds {
			if ctx.Err() != nil {
				break
			}
			var round sync.WaitGroup
			round.Add(len(rows))
			for _, r := range rows {
				jobs <- job{r, c.keys, &round}
			}
			round.Wait()
		}
	}
	close(jobs)
	recorders.Wait()
	wg.Wait()
	if readErr != nil {
		return im.Progress(), readErr
	}
	if err := context.Cause(ctx); err != nil {
		return im.Progress(), err
	}
	return im.Progress(), nil
}

// chunkRows is how many rows a chunk holds: enough to fill several of
// the store's group commits and to share one write of the key store.
const chunkRows = 4096

// read splits the file into chunks of rows, refusing the rows that
// reading alone finds bad.
func (im *Importer) read(ctx context.Context, src *source, out chan<- []raw) error {
	rows := make([]raw, 0, chunkRows)
	send := func() bool {
		if len(rows) == 0 {
			return true
		}
		select {
		case out <- rows:
			rows = make([]raw, 0, chunkRows)
			return true
		case <-ctx.Done():
			return false
		}
	}
	for ctx.Err() == nil {
		row, err := src.next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			send()
			return err
		}
		im.rows.Add(1)
		if len(row.errs) > 0 {
			im.refuse(row.line, row.errs...)
			continue
		}
		if rows = append(rows, row); len(rows) == chunkRows && !send() {
			return nil
		}
	}
	send()
	return nil
}

// chunk is a checked chunk: its good rows, in file order, in rounds (a
// row's round follows that of every earlier row of the chunk with its
// contract ref or its stream), and the data keys of their subjects.
type chunk struct {
	rounds [][]*row
	keys   *pii.Prepared
}

// prepare checks a chunk's rows on every core, refuses the bad ones, and
// makes the data keys that sealing the good ones needs.
func (im *Importer) prepare(ctx context.Context, rows []raw) (*chunk, error) {
	good := make([]*row, len(rows))
	errs := make([][]fieldError, len(rows))
	fail := make([]error, len(rows))
	n := min(runtime.GOMAXPROCS(0), (len(rows)+63)/64)
	var wg sync.WaitGroup
	for w := range n {
		wg.Go(func() {
			for i := w; i < len(rows); i += n {
				good[i], errs[i], fail[i] = im.check(ctx, &rows[i])
			}
		})
	}
	wg.Wait()
	c := &chunk{}
	round := map[string]int{} // ref and stream → round after their last row
	var owners []string
	for i := range rows {
		if fail[i] != nil {
			return nil, fail[i]
		}
		if len(errs[i]) > 0 {
			im.refuse(rows[i].line, errs[i]...)
			continue
		}
		r := good[i]
		stream := ledger.ContactStream(im.cfg.Tenant, r.subject)
		k := max(round["r\x00"+r.rel.ContractRef], round["s\x00"+stream])
		round["r\x00"+r.rel.ContractRef], round["s\x00"+stream] = k+1, k+1
		if k == len(c.rounds) {
			c.rounds = append(c.rounds, nil)
		}
		c.rounds[k] = append(c.rounds[k], r)
		if r.rel.Number != "" {
			owners = append(owners, pii.Owner(im.cfg.Tenant, r.subject))
		}
	}
	var err error
	if c.keys, err = im.cfg.Keys.Prepare(ctx, owners); err != nil {
		return nil, err
	}
	return c, nil
}

// job is one row for a recorder, in a round that done counts down.
type job struct {
	row  *row
	keys *pii.Prepared
	done *sync.WaitGroup
}

// refuse counts a bad row and reports its errors.
func (im *Importer) refuse(line int, errs ...fieldError) {
	im.refused.Add(1)
	if im.cfg.Report == nil {
		return
	}
	im.reportMu.Lock()
	defer im.reportMu.Unlock()
	for _, e := range errs {
		im.cfg.Report(RowError{Row: line, Field: e.field, Why: e.why})
	}
}

// idSpace namespaces the event ids of imported relationships.
var idSpace = uuid.MustParse("5f0c3a8e-9b7d-4c21-8e6f-2a4b1d9c7e53")

// EventID is the id of the RelationshipStarted an import records for a
// tenant's contract ref: the same in every run, so a repeated row is a
// retry the store recognises, and a ref given to a second number is an id
// the store refuses in a second stream.
func EventID(tenant, ref string) string {
	return uuid.NewSHA1(idSpace, []byte(tenant+"\x00"+ref)).String()
}
