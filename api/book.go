package api

import (
	"cmp"
	"container/heap"
	"context"
	"errors"
	"io"
	"mime"
	"net"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/heed/heed/ledger/book"
	"github.com/heed/heed/projections"
)

// bookPath is where a renewal book is imported.
const bookPath = "/v1/relationships:import"

// MaxBookBody bounds a renewal book sent over HTTP. The body is read as a
// stream, so the bound is not for memory (that is a few MiB whatever the
// size) but for how long one request may run: a book of about ten million
// rows.
const MaxBookBody = 1 << 30

// maxBookErrors bounds the row errors an import answers with.
const maxBookErrors = 1000

// bookIdle is how long a book's upload may stall before it is given up.
const bookIdle = 30 * time.Second

// BookRow is one row of an NDJSON renewal book (a CSV book has the same
// columns, named in its header row).
type BookRow struct {
	Number      string `json:"number" maxLength:"32" doc:"E.164 (+8613800138000) or a national number of the default region"`
	ContractRef string `json:"contract_ref" maxLength:"128"`
	Product     string `json:"product,omitempty" maxLength:"128"`
	StartsAt    string `json:"starts_at" doc:"RFC 3339, or 2026-12-31: that day's midnight in the number's own time zone (the zone parameter's for a number whose zone is unknown or ambiguous)"`
	ExpiresAt   string `json:"expires_at" doc:"after starts_at; same forms"`
	Plan        string `json:"plan,omitempty" maxLength:"64" doc:"a reminder plan of the tenant's, which reminds before expires_at"`
}

// BookRowError is why one row of a book was refused. It never repeats a
// value from the book.
type BookRowError struct {
	Row   int    `json:"row" doc:"1-based line of the book (a CSV header is line 1)"`
	Field string `json:"field" doc:"the column, or row"`
	Why   string `json:"why"`
}

type bookIn struct {
	Zone string `query:"zone" default:"Asia/Shanghai" maxLength:"64" doc:"time zone of dates written without a time, for numbers whose own zone is unknown or ambiguous (a +1 toll-free number); other numbers' bare dates are read in their own zone"`
	body io.Reader
	hctx huma.Context
}

// Resolve keeps the request's body to be read as a stream: the operation
// declares no body to huma, which would read it whole.
func (in *bookIn) Resolve(ctx huma.Context) []error {
	in.body, in.hctx = ctx.BodyReader(), ctx
	return nil
}

type bookOut struct {
	Body struct {
		Rows     int64          `json:"rows" doc:"rows read (the header and blank lines not counted); each is recorded, renewed, already recorded or refused"`
		Recorded int64          `json:"recorded" doc:"new relationships"`
		Renewed  int64          `json:"renewed" doc:"relationships recorded before whose row moves the expiry later (RelationshipRenewed)"`
		Already  int64          `json:"already" doc:"rows recorded before, by an earlier upload"`
		Refused  int64          `json:"refused" doc:"bad rows, each with at least one error"`
		Errors   []BookRowError `json:"errors" doc:"the refused rows' errors, the first 1000 by row"`
		More     int64          `json:"more_errors,omitempty" doc:"errors left out of the list"`
	}
}

func (s *Server) registerBook(mw huma.Middlewares, sec []map[string][]string) {
	huma.Register(s.api, huma.Operation{OperationID: "import-relationships", Method: http.MethodPost, Path: bookPath,
		Summary: "Import a renewal book: relationships with their expiry and reminder plan, from CSV or NDJSON",
		Description: "The body is read as a stream, up to 1 GiB. Each row is recorded as a RelationshipStarted (or, for a contract " +
			"recorded before whose expiry moved later, a RelationshipRenewed) with an id derived from its contract ref, so a " +
			"re-sent book records only what is not yet recorded: after a failure, send it again. A bad row never stops the " +
			"others; wrong columns refuse the whole book before anything is recorded.",
		Tags: []string{"business"}, Middlewares: mw, Security: sec, Errors: []int{400, 401, 403, 408, 413, 415, 422}},
		func(ctx context.Context, in *bookIn) (*bookOut, error) {
			format, err := bookFormat(in.hctx.Header("Content-Type"))
			if err != nil {
				return nil, err
			}
			loc, err := time.LoadLocation(in.Zone)
			if err != nil {
				return nil, huma.Error422UnprocessableEntity("unknown time zone", &huma.ErrorDetail{Location: "query.zone", Message: "not an IANA time zone"})
			}
			p := who(ctx)
			errs := &rowErrors{}
			im, err := book.New(book.Config{Store: s.cfg.Store, Keys: s.cfg.PII, Tenant: p.key.Tenant, Actor: p.key.ID, Zone: projections.Zone, Location: loc, Report: errs.add,
				// A server takes several uploads at once beside its other
				// writes: fewer recorders each than the CLI's bulk default.
				Workers: 256,
				// The numbers go the way of every other write's
				// (Normalize, then the pseudonym), but past the people
				// cache: a book of a million numbers would only flush it.
				Subject: func(number string) (string, string, error) {
					e164, err := Normalize(number, s.cfg.Region)
					if err != nil {
						return "", "", err
					}
					return e164, s.cfg.Pseudonyms.Pseudonym(e164), nil
				}})
			if err != nil {
				return nil, huma.Error503ServiceUnavailable("imports need the data key store")
			}
			c, err := im.Run(ctx, &idleReader{r: in.body, ctx: in.hctx}, format)
			s.cfg.Log.Info("book imported", "tenant", p.key.Tenant, "rows", c.Rows, "recorded", c.Recorded, "renewed", c.Renewed,
				"already", c.Already, "refused", c.Refused, "err", err)
			var tooBig *http.MaxBytesError
			var ne net.Error
			switch {
			case errors.As(err, &tooBig):
				return nil, huma.Error413RequestEntityTooLarge("the book is larger than 1 GiB; the rows before were recorded: send the rest as another book")
			case errors.As(err, &ne) && ne.Timeout():
				return nil, huma.NewError(http.StatusRequestTimeout, "the book stopped arriving; the rows before were recorded: send it again to finish")
			case errors.Is(err, book.ErrColumns), errors.Is(err, book.ErrFormat):
				return nil, huma.Error400BadRequest("the body is not a renewal book; nothing was recorded",
					&huma.ErrorDetail{Location: "body", Message: strings.TrimPrefix(err.Error(), "book: ")})
			case err != nil:
				return nil, s.storeError("import book", err)
			}
			out := &bookOut{}
			out.Body.Rows, out.Body.Recorded, out.Body.Renewed, out.Body.Already, out.Body.Refused = c.Rows, c.Recorded, c.Renewed, c.Already, c.Refused
			out.Body.Errors, out.Body.More = errs.sorted()
			return out, nil
		})
	// The body is read by the handler, so it is documented here rather
	// than declared to huma.
	if item := s.api.OpenAPI().Paths[bookPath]; item != nil && item.Post != nil {
		reg := s.api.OpenAPI().Components.Schemas
		row := huma.SchemaFromType(reg, reflect.TypeFor[BookRow]())
		row.Description = "one line of the body: a JSON object of the columns, every value a string"
		item.Post.RequestBody = &huma.RequestBody{Required: true, Content: map[string]*huma.MediaType{
			"text/csv": {Schema: &huma.Schema{Type: "string", Description: "a header row naming the columns " +
				"(number, contract_ref, product, starts_at, expires_at, plan; product and plan may be left out), then one row per relationship"}},
			"application/x-ndjson": {Schema: row},
		}}
	}
}

func bookFormat(contentType string) (book.Format, error) {
	mt, _, err := mime.ParseMediaType(contentType)
	switch {
	case err != nil:
	case mt == "text/csv":
		return book.CSV, nil
	case mt == "application/x-ndjson":
		return book.NDJSON, nil
	}
	return "", huma.NewError(http.StatusUnsupportedMediaType, "send the book as text/csv or application/x-ndjson")
}

// idleReader gives up on a body that stops arriving: each read must begin
// within bookIdle of the last.
type idleReader struct {
	r   io.Reader
	ctx huma.Context
}

func (r *idleReader) Read(p []byte) (int, error) {
	_ = r.ctx.SetReadDeadline(time.Now().Add(bookIdle))
	return r.r.Read(p)
}

// rowErrors keeps the first maxBookErrors row errors by row (a heap of the
// kept ones, the last on top) and counts the rest.
type rowErrors struct {
	kept []BookRowError
	more int64
}

func (e *rowErrors) add(r book.RowError) {
	x := BookRowError{Row: r.Row, Field: r.Field, Why: r.Why}
	if len(e.kept) < maxBookErrors {
		heap.Push(e, x)
		return
	}
	e.more++
	if before(x, e.kept[0]) {
		e.kept[0] = x
		heap.Fix(e, 0)
	}
}

func (e *rowErrors) sorted() ([]BookRowError, int64) {
	out := make([]BookRowError, 0, len(e.kept))
	for e.Len() > 0 {
		out = append(out, heap.Pop(e).(BookRowError))
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, e.more
}

func before(a, b BookRowError) bool {
	return cmp.Or(cmp.Compare(a.Row, b.Row), cmp.Compare(a.Field, b.Field)) < 0
}

func (e *rowErrors) Len() int           { return len(e.kept) }
func (e *rowErrors) Less(i, j int) bool { return before(e.kept[j], e.kept[i]) }
func (e *rowErrors) Swap(i, j int)      { e.kept[i], e.kept[j] = e.kept[j], e.kept[i] }
func (e *rowErrors) Push(x any)         { e.kept = append(e.kept, x.(BookRowError)) }
func (e *rowErrors) Pop() any {
	x := e.kept[len(e.kept)-1]
	e.kept = e.kept[:len(e.kept)-1]
	return x
}
