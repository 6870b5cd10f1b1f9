package api

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"github.com/heed/heed/ledger"
)

// MaxCDRBody bounds one CDR upload: a day of a large call centre's records.
const MaxCDRBody = 64 << 20

const cdrPath = "/v1/calls:cdr"

// cdrLayout says where a CDR format keeps the fields heed reads.
type cdrLayout struct {
	callID, callee, answer, billsec, cause, line int
	// answered reads the record's disposition.
	answered func(row []string) bool
}

// The layouts of Asterisk's cdr_csv (with loguniqueid and loguserfield on,
// the SIP Call-ID put in the userfield by the dialplan) and of FreeSWITCH's
// mod_cdr_csv "example" template with ${sip_call_id} appended.
var cdrLayouts = map[string]cdrLayout{
	"asterisk": {callID: 17, callee: 2, answer: 10, billsec: 13, cause: 14, line: 1,
		answered: func(r []string) bool { return strings.EqualFold(r[14], "ANSWERED") }},
	"freeswitch": {callID: 15, callee: 2, answer: 5, billsec: 8, cause: 9, line: 1,
		answered: func(r []string) bool { return r[5] != "" }},
}

type cdrIn struct {
	Format  string `query:"format" enum:"asterisk,freeswitch,csv" default:"asterisk" doc:"asterisk: cdr_csv with loguniqueid and loguserfield, the SIP Call-ID in the userfield; freeswitch: mod_cdr_csv's example template with ${sip_call_id} appended; csv: a header row naming call_id, callee, answered (true/false), duration_s, hangup_cause and optionally line"`
	RawBody []byte `contentType:"text/csv" doc:"call detail records, one call a row"`
}

// CDRRowError says why one record was not recorded, never with its number.
type CDRRowError struct {
	Row   int    `json:"row" doc:"1-based row of the upload"`
	Field string `json:"field"`
	Why   string `json:"why"`
}

type cdrOut struct {
	Body struct {
		Rows     int           `json:"rows"`
		Recorded int           `json:"recorded" doc:"new CallEnded events"`
		Replayed int           `json:"replayed" doc:"records already recorded by an earlier upload"`
		Ungated  int           `json:"ungated" doc:"calls with no gated attempt of that Call-ID: a trunk that bypassed the call gate"`
		Errors   []CDRRowError `json:"errors"`
	}
}

func (s *Server) registerCDR(mw huma.Middlewares, sec []map[string][]string) {
	huma.Register(s.api, huma.Operation{OperationID: "record-cdrs", Method: http.MethodPost, Path: cdrPath,
		Summary: "Record call outcomes from a PBX's or SBC's call detail records (CSV)",
		Description: "Each record is matched to the call gate's attempt by SIP Call-ID and recorded as CallEnded. " +
			"A record with no gated attempt is recorded too, with gated false, and flagged for the auditor. " +
			"Re-uploading the same records appends nothing; a bad row is reported and never stops the others.",
		Tags: []string{"business"}, Middlewares: mw, Security: sec, MaxBodyBytes: MaxCDRBody,
		Errors: []int{400, 401, 403, 413}},
		func(ctx context.Context, in *cdrIn) (*cdrOut, error) {
			if !utf8.Valid(in.RawBody) {
				return nil, huma.Error400BadRequest("the upload is not UTF-8 text", &huma.ErrorDetail{Location: "body", Message: "invalid UTF-8"})
			}
			out := &cdrOut{}
			out.Body.Errors = []CDRRowError{}
			r := csv.NewReader(bytes.NewReader(in.RawBody))
			r.FieldsPerRecord = -1
			r.ReuseRecord = true
			layout, ok := cdrLayouts[in.Format]
			for row := 1; ; row++ {
				rec, err := r.Read()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					var pe *csv.ParseError
					if errors.As(err, &pe) {
						out.Body.Errors = append(out.Body.Errors, CDRRowError{Row: row, Field: "row", Why: "not CSV: " + pe.Err.Error()})
						continue
					}
					return nil, huma.Error400BadRequest("unreadable CSV")
				}
				if in.Format == "csv" && !ok {
					l, err := headerLayout(rec)
					if err != nil {
						return nil, huma.Error400BadRequest(err.Error())
					}
					layout, ok = l, true
					continue
				}
				out.Body.Rows++
				res, rowErr := s.recordCDR(ctx, in.Format, layout, rec)
				switch {
				case rowErr != nil:
					rowErr.Row = row
					out.Body.Errors = append(out.Body.Errors, *rowErr)
				case res == "replayed":
					out.Body.Replayed++
				default:
					out.Body.Recorded++
					if res == "ungated" {
						out.Body.Ungated++
					}
				}
				s.cfg.Metrics.cdr(res)
			}
			return out, nil
		})
}

// headerLayout reads a header row.
func headerLayout(h []string) (cdrLayout, error) {
	l := cdrLayout{callID: -1, callee: -1, answer: -1, billsec: -1, cause: -1, line: -1}
	for i, name := range h {
		switch strings.ToLower(strings.TrimSpace(name)) {
		case "call_id":
			l.callID = i
		case "callee", "dst", "destination_number":
			l.callee = i
		case "answered":
			l.answer = i
		case "duration_s", "billsec":
			l.billsec = i
		case "hangup_cause", "disposition":
			l.cause = i
		case "line", "src", "caller_id_number":
			l.line = i
		}
	}
	if l.callID < 0 || l.callee < 0 || l.answer < 0 || l.billsec < 0 {
		return l, fmt.Errorf("the header row must name call_id, callee, answered and duration_s")
	}
	answer := l.answer
	l.answered = func(r []string) bool { b, _ := strconv.ParseBool(r[answer]); return b }
	return l, nil
}

var cdrSpace = uuid.MustParse("6f0c2d4a-91e7-4b38-a5d2-3c8e7f1b9a60")

// recordCDR records one call detail record. It returns "gated",
// "ungated" or "replayed", or the row's error.
func (s *Server) recordCDR(ctx context.Context, format string, l cdrLayout, rec []string) (string, *CDRRowError) {
	width := max(l.callID, l.callee, l.answer, l.billsec, l.cause, l.line) + 1
	if len(rec) < width {
		return "error", &CDRRowError{Field: "row", Why: fmt.Sprintf("%d fields, the %s layout needs %d", len(rec), format, width)}
	}
	callID := strings.TrimSpace(rec[l.callID])
	if callID == "" || len(callID) > 256 {
		return "error", &CDRRowError{Field: "call_id", Why: "missing or longer than 256 bytes"}
	}
	billsec, err := strconv.Atoi(strings.TrimSpace(rec[l.billsec]))
	if err != nil || billsec < 0 {
		return "error", &CDRRowError{Field: "duration_s", Why: "not a whole number of seconds"}
	}
	_, subject, err := s.person("callee", strings.TrimSpace(rec[l.callee]))
	if err != nil {
		return "error", &CDRRowError{Field: "callee", Why: "not a valid phone number"}
	}
	cause, line := "", ""
	if l.cause >= 0 {
		cause = strings.TrimSpace(rec[l.cause])
	}
	if l.line >= 0 {
		line = strings.TrimSpace(rec[l.line])
	}
	if len(cause) > 64 || len(line) > 64 {
		return "error", &CDRRowError{Field: "hangup_cause", Why: "longer than 64 bytes"}
	}
	tenant := who(ctx).key.Tenant
	stream := ledger.ContactStream(tenant, subject)
	contact, err := s.gatedContact(ctx, stream, callID)
	if err != nil {
		return "error", &CDRRowError{Field: "row", Why: "the log could not be read; upload the file again"}
	}
	p := ledger.CallEnded{CallID: callID, Answered: l.answered(rec), DurationS: billsec, HangupCause: cause,
		Line: line, Contact: contact, Gated: contact != "", Source: format}
	ev, err := ledger.NewEvent(tenant, subject, s.cfg.Now(), p)
	if err != nil {
		return "error", &CDRRowError{Field: "row", Why: "invalid record"}
	}
	ev.Actor = who(ctx).key.ID
	ev.ID = uuid.NewSHA1(cdrSpace, []byte(tenant+"\x00"+callID)).String()
	stored, err := s.cfg.Store.Append(ctx, stream, ledger.Any(), []ledger.Event{ev})
	switch {
	case errors.Is(err, ledger.ErrIDConflict):
		return "replayed", nil
	case err != nil:
		return "error", &CDRRowError{Field: "row", Why: "not recorded; upload the file again"}
	case stored[0].Replayed:
		return "replayed", nil
	}
	if !p.Gated {
		s.cfg.Log.Warn("call detail record for a call the gate never saw", "tenant", tenant, "position", stored[0].Position)
		return "ungated", nil
	}
	return "gated", nil
}

// gatedContact finds the ContactMade the call gate recorded for callID in
// stream, and returns its id ("" when there is none).
func (s *Server) gatedContact(ctx context.Context, stream, callID string) (string, error) {
	evs, err := s.cfg.Store.ReadStream(ctx, stream, 1, 0)
	if errors.Is(err, ledger.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	needle := []byte(`"call_id":` + strconv.Quote(callID))
	for _, e := range evs {
		if e.Type != ledger.TypeContactMade || !bytes.Contains(e.Data, needle) {
			continue
		}
		p, err := ledger.Decode(&e)
		if err != nil {
			continue
		}
		if c := p.(*ledger.ContactMade); c.CallID == callID && c.Trunk != "" {
			return e.ID, nil
		}
	}
	return "", nil
}
