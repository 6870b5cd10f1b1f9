package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/heed/heed/api"
	"github.com/heed/heed/api/auth"
	"github.com/heed/heed/ledger/book"
	"github.com/heed/heed/ledger/merkle"
	"github.com/heed/heed/ledger/pii"
	"github.com/heed/heed/projections"
)

func init() {
	register("import", "record a renewal book (CSV or NDJSON of number, contract_ref, product, starts_at, expires_at, plan) into a stopped server's data directory", importBook)
}

// refusedRows is the exit of an import that refused some rows: 1, the
// rows it could record recorded.
type refusedRows struct{ n int64 }

func (e refusedRows) Error() string {
	return fmt.Sprintf("%d rows refused (see the report); the others are recorded", e.n)
}
func (refusedRows) ExitCode() int { return 1 }

func importBook(ctx context.Context, args []string) error {
	fs := newFlags("import")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: heed import --data DIR FILE [--tenant T] [--format csv|ndjson] [--errors FILE]\n\n"+
			"Records each row of a renewal book as a relationship, with the server stopped. Running a\n"+
			"book again records only what is not yet recorded. Exit status: 0 every row recorded,\n"+
			"1 some rows refused (or the run was stopped), 2 a usage or whole-file error.")
		fs.PrintDefaults()
	}
	data := addDataFlags(fs)
	tenant := fs.String("tenant", "", "the business the relationships belong to (default: the tenant of the data directory's business keys, if there is only one)")
	format := fs.String("format", "", "csv or ndjson (default: from the file's extension, .csv, .ndjson or .jsonl)")
	errorsTo := fs.String("errors", "", "write the rows' errors to this file, as CSV (row,field,why), instead of to stderr")
	region := fs.String("region", "CN", "default region for numbers written without a country code")
	zone := fs.String("zone", "Asia/Shanghai", "time zone of dates written without a time, for numbers whose own zone is unknown or ambiguous (2026-12-31 is that day's midnight in the number's zone)")
	every := fs.Duration("progress-every", time.Second, "how often to print a progress line when stdout is not a terminal (0: only the summary)")
	file, err := parseWithFile(fs, args)
	if err != nil {
		return err
	}
	f, err := bookFormat(*format, file)
	if err != nil {
		return err
	}
	loc, err := time.LoadLocation(*zone)
	if err != nil {
		return fmt.Errorf("%w: --zone %q is not an IANA time zone", errUsage, *zone)
	}
	if !exists(filepath.Join(*data.dir, storeFile)) {
		return fmt.Errorf("%w: %s holds no ledger (start heed serve on it once first)", errUsage, *data.dir)
	}
	if exists(filepath.Join(*data.dir, treeFile)) {
		return fmt.Errorf("%w: the log of %s is in KurrentDB; import through the running server (POST /v1/relationships:import)", errUsage, *data.dir)
	}
	in, size, err := openBook(file)
	if err != nil {
		return err
	}
	defer in.Close()
	report, closeReport, err := newRowReport(*errorsTo)
	if err != nil {
		return err
	}
	d, err := data.open(false)
	if err != nil {
		closeReport()
		return fmt.Errorf("%w: %w (is heed serve running on this data directory?)", errUsage, err)
	}
	defer d.Close()
	// After the open, which refuses a directory missing its key file
	// rather than letting auth.Open make an empty one.
	t, err := importTenant(*data.dir, *tenant)
	if err != nil {
		closeReport()
		return err
	}
	im, err := book.New(book.Config{
		Store: d.Store, Keys: d.Keys, Tenant: t, Actor: cliActor(), Zone: projections.Zone, Location: loc, Report: report.add,
		Subject: func(number string) (string, string, error) {
			e164, err := api.Normalize(number, *region)
			if err != nil {
				return "", "", err
			}
			return e164, pii.PseudonymKey(d.Secrets.PseudonymKey).Pseudonym(e164), nil
		},
	})
	if err != nil {
		closeReport()
		return err
	}
	start := time.Now()
	stop := showProgress(im, size, *every, start)
	c, runErr := im.Run(ctx, in, f)
	stop()
	if err := closeReport(); err != nil && runErr == nil {
		runErr = err
	}
	// Sign what was recorded now, as a running server would within
	// seconds, so the directory verifies before the next start.
	if c.Recorded > 0 {
		if _, err := d.Sealer().Seal(ctx); err != nil && !errors.Is(err, merkle.ErrNotFound) && runErr == nil {
			runErr = fmt.Errorf("seal: %w", err)
		}
	}
	fmt.Println(summary("imported", c, time.Since(start)))
	switch {
	case errors.Is(runErr, book.ErrColumns), errors.Is(runErr, book.ErrFormat):
		return fmt.Errorf("%w: %w", errUsage, runErr)
	case runErr != nil:
		return fmt.Errorf("%w; the rows before were recorded: run the import again to finish", runErr)
	case c.Refused > 0:
		return refusedRows{c.Refused}
	}
	return nil
}

// parseWithFile parses flags given before and after the one argument,
// the file.
func parseWithFile(fs *flag.FlagSet, args []string) (string, error) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return "", err
		}
		return "", fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() == 0 {
		return "", fmt.Errorf("%w: name the book to import (a file, or - for stdin)", errUsage)
	}
	file := fs.Arg(0)
	if err := parseFlags(fs, fs.Args()[1:]); err != nil {
		return "", err
	}
	return file, nil
}

func bookFormat(format, file string) (book.Format, error) {
	if format == "" {
		switch strings.ToLower(filepath.Ext(file)) {
		case ".csv":
			return book.CSV, nil
		case ".ndjson", ".jsonl":
			return book.NDJSON, nil
		}
		return "", fmt.Errorf("%w: say --format csv or --format ndjson (the file's name does not)", errUsage)
	}
	if f := book.Format(format); f == book.CSV || f == book.NDJSON {
		return f, nil
	}
	return "", fmt.Errorf("%w: --format is csv or ndjson", errUsage)
}

// importTenant is --tenant, or the one tenant the directory's business
// keys name.
func importTenant(dir, tenant string) (string, error) {
	if tenant != "" {
		if !auth.ValidTenant(tenant) {
			return "", fmt.Errorf("%w: --tenant: 1-64 letters, digits, '_' or '.'", errUsage)
		}
		return tenant, nil
	}
	keys, err := auth.Open(filepath.Join(dir, apiKeysFile))
	if err != nil {
		return "", fmt.Errorf("%w: %w (is heed serve running on this data directory?)", errUsage, err)
	}
	defer keys.Close()
	var tenants []string
	for _, k := range keys.List() {
		if k.Role == auth.RoleBusiness && k.Revoked.IsZero() && !slices.Contains(tenants, k.Tenant) {
			tenants = append(tenants, k.Tenant)
		}
	}
	if len(tenants) != 1 {
		return "", fmt.Errorf("%w: name the tenant with --tenant (the data directory's business keys name %d tenants)", errUsage, len(tenants))
	}
	return tenants[0], nil
}

// openBook opens the file (- for stdin) and returns its size, or -1.
func openBook(file string) (io.ReadCloser, int64, error) {
	if file == "-" {
		return io.NopCloser(os.Stdin), -1, nil
	}
	f, err := os.Open(file)
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %w", errUsage, err)
	}
	size := int64(-1)
	if st, err := f.Stat(); err == nil && st.Mode().IsRegular() {
		size = st.Size()
	}
	return f, size, nil
}

// rowReport writes the rows' errors: lines on stderr, or CSV to a file.
type rowReport struct {
	mu  sync.Mutex
	w   *bufio.Writer
	csv *csv.Writer
	err error
}

func newRowReport(path string) (*rowReport, func() error, error) {
	if path == "" {
		r := &rowReport{w: bufio.NewWriter(os.Stderr)}
		return r, r.flush, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: --errors: %w", errUsage, err)
	}
	r := &rowReport{w: bufio.NewWriter(f)}
	r.csv = csv.NewWriter(r.w)
	r.err = r.csv.Write([]string{"row", "field", "why"})
	return r, func() error {
		err := r.flush()
		return errors.Join(err, f.Close())
	}, nil
}

func (r *rowReport) add(e book.RowError) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return
	}
	if r.csv != nil {
		r.err = r.csv.Write([]string{strconv.Itoa(e.Row), e.Field, e.Why})
		return
	}
	_, r.err = fmt.Fprintln(r.w, e.String())
}

func (r *rowReport) flush() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.csv != nil {
		r.csv.Flush()
		r.err = errors.Join(r.err, r.csv.Error())
	}
	return errors.Join(r.err, r.w.Flush())
}

// summary is the line a progress report and the final count print.
func summary(what string, c book.Counts, el time.Duration) string {
	rate := 0.0
	if s := el.Seconds(); s > 0 {
		rate = float64(c.Done()) / s
	}
	return fmt.Sprintf("%s rows=%d recorded=%d renewed=%d already=%d refused=%d rows_per_s=%.0f", what, c.Rows, c.Recorded, c.Renewed, c.Already, c.Refused, rate)
}

// showProgress shows the import's progress until the returned stop is
// called: a bar over the file's bytes on a terminal, a line every interval
// otherwise.
func showProgress(im *book.Importer, size int64, every time.Duration, start time.Time) (stop func()) {
	tty := term.IsTerminal(int(os.Stdout.Fd()))
	if !tty && every <= 0 {
		return func() {}
	}
	var bar *progressbar.ProgressBar
	tick := every
	if tty {
		bar = progressbar.NewOptions64(size, progressbar.OptionSetWriter(os.Stdout), progressbar.OptionShowBytes(true),
			progressbar.OptionThrottle(100*time.Millisecond), progressbar.OptionClearOnFinish(), progressbar.OptionSetPredictTime(true))
		tick = 200 * time.Millisecond
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(tick)
		defer t.Stop()
		for {
			select {
			case <-done:
				if bar != nil {
					_ = bar.Finish()
				}
				return
			case <-t.C:
				c := im.Progress()
				if bar == nil {
					fmt.Println(summary("progress", c, time.Since(start)))
					continue
				}
				rate := float64(c.Done()) / time.Since(start).Seconds()
				bar.Describe(fmt.Sprintf("rows %d, %.0f rows/s, %d refused", c.Done(), rate, c.Refused))
				_ = bar.Set64(c.Bytes)
			}
		}
	}()
	return func() {
		close(done)
		<-finished
	}
}
