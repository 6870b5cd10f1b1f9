package book

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync/atomic"
	"unicode/utf8"

	jsonv2 "github.com/go-json-experiment/json"
	"github.com/go-json-experiment/json/jsontext"
)

// raw is one row as read, its fields not yet checked.
type raw struct {
	line                                        int
	number, ref, product, starts, expires, plan string
	// errs are what reading the row found wrong; such a row is not
	// recorded.
	errs []fieldError
}

type fieldError struct{ field, why string }

// Column positions in Columns.
const (
	colNumber = iota
	colRef
	colProduct
	colStarts
	colExpires
	colPlan
)

// source splits a book into rows.
type source struct {
	br     *bufio.Reader
	format Format
	line   int
	nbytes *atomic.Int64
	// at maps each CSV field position to its column (-1: none) and
	// ncols is the header's length.
	at    []int
	first *raw // an NDJSON file's first row, read to check its columns
	cells [][]byte
}

// bufSize is the reader's buffer: a line longer than it is skipped
// without being held.
const bufSize = 64 << 10

var bom = []byte("\xef\xbb\xbf")

func newSource(r io.Reader, format Format, nbytes *atomic.Int64) (*source, error) {
	s := &source{br: bufio.NewReaderSize(r, bufSize), format: format, nbytes: nbytes}
	switch format {
	case CSV:
		return s, s.header()
	case NDJSON:
		return s, s.firstObject()
	}
	return nil, fmt.Errorf("%w: unknown format %q (csv or ndjson)", ErrFormat, format)
}

// readLine returns the next line without its line ending, and long when it
// was longer than MaxRow (its bytes are then skipped, not returned).
func (s *source) readLine() (line []byte, long bool, err error) {
	for {
		b, err := s.br.ReadSlice('\n')
		s.nbytes.Add(int64(len(b)))
		if errors.Is(err, bufio.ErrBufferFull) {
			long = true
			continue
		}
		if err != nil && (!errors.Is(err, io.EOF) || len(b) == 0 && !long) {
			if !errors.Is(err, io.EOF) {
				err = fmt.Errorf("%w: reading line %d: %v", ErrFormat, s.line+1, err)
			}
			return nil, false, err
		}
		s.line++
		b = bytes.TrimSuffix(b, []byte("\n"))
		b = bytes.TrimSuffix(b, []byte("\r"))
		if s.line == 1 {
			b = bytes.TrimPrefix(b, bom)
		}
		if long || len(b) > MaxRow {
			return nil, true, nil
		}
		return b, false, nil
	}
}

// notUTF8 is the error of a field that is not UTF-8 text, the commonest
// cause of which is a spreadsheet saved in GBK.
const notUTF8 = "not UTF-8 text (was the file saved as GBK? save it as UTF-8)"

var tooLong = fmt.Sprintf("the row is longer than %d bytes", MaxRow)

// header reads a CSV file's header and maps its columns.
func (s *source) header() error {
	var line []byte
	for len(bytes.TrimSpace(line)) == 0 {
		var long bool
		var err error
		line, long, err = s.readLine()
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: the file is empty; its first row must name the columns (%s)", ErrColumns, strings.Join(Columns, ","))
		}
		if err != nil {
			return err
		}
		if long {
			return fmt.Errorf("%w: the header (line %d) is longer than %d bytes", ErrColumns, s.line, MaxRow)
		}
	}
	if !utf8.Valid(line) {
		return fmt.Errorf("%w: the header is %s", ErrFormat, notUTF8)
	}
	if line[0] == '{' {
		return fmt.Errorf("%w: the first row must name the columns (%s); this looks like NDJSON", ErrColumns, strings.Join(Columns, ","))
	}
	cells, err := splitCSV(line, nil)
	if err != nil {
		return fmt.Errorf("%w: the header is not CSV: %s", ErrColumns, err)
	}
	s.at = make([]int, len(cells))
	seen := make([]bool, len(Columns))
	for i, c := range cells {
		name := strings.ToLower(strings.TrimSpace(string(c)))
		col := slices.Index(Columns, name)
		switch {
		case col < 0:
			return fmt.Errorf("%w: column %d%s is not one of %s", ErrColumns, i+1, quoteName(name), strings.Join(Columns, ","))
		case seen[col]:
			return fmt.Errorf("%w: column %s appears twice", ErrColumns, name)
		}
		seen[col] = true
		s.at[i] = col
	}
	return missing(seen)
}

// missing refuses columns that leave out a required one.
func missing(seen []bool) error {
	var gone []string
	for _, name := range required {
		if !seen[slices.Index(Columns, name)] {
			gone = append(gone, name)
		}
	}
	if len(gone) > 0 {
		return fmt.Errorf("%w: missing column %s (a book has %s; product and plan may be left out)",
			ErrColumns, strings.Join(gone, ", "), strings.Join(Columns, ","))
	}
	return nil
}

// quoteName quotes a column name for an error when it can hold nothing
// personal: letters, '_', '-' and spaces only. A file without a header
// would otherwise have its first customer's number in the message.
func quoteName(name string) string {
	if len(name) == 0 || len(name) > 32 {
		return ""
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r == '_' || r == '-' || r == ' ') {
			return ""
		}
	}
	return fmt.Sprintf(" (%q)", name)
}

// next returns the next row; io.EOF at the end of the file.
func (s *source) next() (raw, error) {
	if s.first != nil {
		r := *s.first
		s.first = nil
		return r, nil
	}
	for {
		line, long, err := s.readLine()
		if err != nil {
			return raw{}, err
		}
		if long {
			return raw{line: s.line, errs: []fieldError{{"row", tooLong}}}, nil
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		if s.format == NDJSON {
			r, _ := s.object(line)
			return r, nil
		}
		return s.csvRow(line), nil
	}
}

func (s *source) csvRow(line []byte) raw {
	r := raw{line: s.line}
	var err error
	s.cells, err = splitCSV(line, s.cells[:0])
	if err != nil {
		r.errs = append(r.errs, fieldError{"row", "not CSV: " + err.Error()})
		return r
	}
	if len(s.cells) != len(s.at) {
		r.errs = append(r.errs, fieldError{"row", fmt.Sprintf("has %d fields, the header names %d", len(s.cells), len(s.at))})
		return r
	}
	for i, c := range s.cells {
		col := s.at[i]
		if !utf8.Valid(c) {
			r.errs = append(r.errs, fieldError{Columns[col], notUTF8})
			continue
		}
		*r.field(col) = string(c)
	}
	return r
}

func (r *raw) field(col int) *string {
	switch col {
	case colNumber:
		return &r.number
	case colRef:
		return &r.ref
	case colProduct:
		return &r.product
	case colStarts:
		return &r.starts
	case colExpires:
		return &r.expires
	}
	return &r.plan
}

// splitCSV splits one line of CSV (RFC 4180, without fields spanning
// lines) into cells, appended to dst. A quoted cell's doubled quotes are
// undone in a copy; other cells point into line.
func splitCSV(line []byte, dst [][]byte) ([][]byte, error) {
	for i := 0; ; {
		if i < len(line) && line[i] == '"' {
			var cell []byte
			j := i + 1
			for {
				k := bytes.IndexByte(line[j:], '"')
				if k < 0 {
					return nil, errors.New("a quoted field is not closed (fields spanning lines are not supported)")
				}
				cell = append(cell, line[j:j+k]...)
				j += k + 1
				if j < len(line) && line[j] == '"' {
					cell = append(cell, '"')
					j++
					continue
				}
				break
			}
			if cell == nil {
				cell = []byte{}
			}
			dst = append(dst, cell)
			switch {
			case j == len(line):
				return dst, nil
			case line[j] != ',':
				return nil, errors.New("text after a quoted field's closing quote")
			}
			i = j + 1
			continue
		}
		k := bytes.IndexByte(line[i:], ',')
		if k < 0 {
			cell := line[i:]
			if bytes.IndexByte(cell, '"') >= 0 {
				return nil, errors.New("a quote inside an unquoted field")
			}
			return append(dst, cell), nil
		}
		cell := line[i : i+k]
		if bytes.IndexByte(cell, '"') >= 0 {
			return nil, errors.New("a quote inside an unquoted field")
		}
		dst = append(dst, cell)
		i += k + 1
	}
}

// jsonRow is one NDJSON row. Members are pointers so that a missing one
// is told from an empty one in the first row, whose members are the
// file's columns.
type jsonRow struct {
	Number      *string                   `json:"number"`
	ContractRef *string                   `json:"contract_ref"`
	Product     *string                   `json:"product"`
	StartsAt    *string                   `json:"starts_at"`
	ExpiresAt   *string                   `json:"expires_at"`
	Plan        *string                   `json:"plan"`
	Unknown     map[string]jsontext.Value `json:",unknown"`
}

// firstObject reads an NDJSON file's first row and refuses the file if
// that row's members are not a book's columns: a file of the wrong shape
// is refused before anything is recorded, as a CSV header would be.
func (s *source) firstObject() error {
	for {
		line, long, err := s.readLine()
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("%w: the file is empty", ErrColumns)
		}
		if err != nil {
			return err
		}
		if long {
			return fmt.Errorf("%w: the first row (line %d) is longer than %d bytes", ErrColumns, s.line, MaxRow)
		}
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		r, j := s.object(line)
		if j == nil {
			why := "not a JSON object"
			if len(r.errs) > 0 {
				why = r.errs[0].why
				if f := r.errs[0].field; f != "row" {
					why = f + ": " + why
				}
			}
			return fmt.Errorf("%w: the first row (line %d) is not a book's row: %s", ErrFormat, s.line, why)
		}
		for name := range j.Unknown {
			return fmt.Errorf("%w: member%s of the first row is not one of %s", ErrColumns, quoteName(name), strings.Join(Columns, ","))
		}
		seen := make([]bool, len(Columns))
		for col := range Columns {
			seen[col] = j.member(col) != nil
		}
		if err := missing(seen); err != nil {
			return err
		}
		s.first = &r
		return nil
	}
}

func (j *jsonRow) member(col int) *string {
	switch col {
	case colNumber:
		return j.Number
	case colRef:
		return j.ContractRef
	case colProduct:
		return j.Product
	case colStarts:
		return j.StartsAt
	case colExpires:
		return j.ExpiresAt
	}
	return j.Plan
}

// object reads one NDJSON row; j is nil when the line is not a JSON
// object of string members.
func (s *source) object(line []byte) (raw, *jsonRow) {
	r := raw{line: s.line}
	if !utf8.Valid(line) {
		r.errs = append(r.errs, fieldError{"row", notUTF8})
		return r, nil
	}
	var j jsonRow
	if err := jsonv2.Unmarshal(line, &j); err != nil {
		r.errs = append(r.errs, jsonError(err))
		return r, nil
	}
	for name := range j.Unknown {
		r.errs = append(r.errs, fieldError{"row", fmt.Sprintf("member%s is not one of %s", quoteName(name), strings.Join(Columns, ","))})
	}
	for col := range Columns {
		if m := j.member(col); m != nil {
			*r.field(col) = *m
		}
	}
	return r, &j
}

// jsonError says what is wrong with a row that is not a JSON object of
// strings, without quoting it.
func jsonError(err error) fieldError {
	var se *jsonv2.SemanticError
	var sy *jsontext.SyntacticError
	switch {
	case errors.Is(err, jsontext.ErrDuplicateName):
		if errors.As(err, &sy) {
			if name := strings.TrimPrefix(string(sy.JSONPointer), "/"); slices.Contains(Columns, name) {
				return fieldError{name, "appears twice"}
			}
		}
		return fieldError{"row", "a member appears twice"}
	case errors.As(err, &se) && se.JSONPointer != "":
		name := strings.TrimPrefix(string(se.JSONPointer), "/")
		if slices.Contains(Columns, name) {
			return fieldError{name, "must be a JSON string"}
		}
	case errors.As(err, &se):
		return fieldError{"row", "not a JSON object"}
	}
	return fieldError{"row", "not a JSON object of string members"}
}
