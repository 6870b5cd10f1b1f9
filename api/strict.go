package api

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/danielgtaylor/huma/v2"
	"github.com/go-json-experiment/json/jsontext"
)

// strictInput is an OnAddOperation hook: it gives every operation a last
// middleware, run after authentication and before huma reads the request,
// that refuses input encoding/json would read leniently. encoding/json keeps
// the last of two members with the same name, binds a member to a field
// whose name differs only in case, and replaces invalid UTF-8 with U+FFFD,
// so `{"number":A,"Number":B}` would record B while a proxy or a log reader
// saw A. Such requests get a 400 naming the member, never its value.
func (s *Server) strictInput(oapi *huma.OpenAPI, op *huma.Operation) {
	reg := oapi.Components.Schemas
	// The body is read here, so its read deadline is set here and huma's
	// is turned off: once the body is read, net/http waits on the
	// connection for the client going away, and a deadline huma set then
	// would end that wait and cancel the request's context mid-handler.
	timeout := op.BodyReadTimeout
	// Whether the operation has a body huma reads is known now: one that
	// streams its body (a renewal book) declares none and documents it
	// after registration, and is left to read it itself.
	reads := op.RequestBody != nil
	if reads {
		op.BodyReadTimeout = -1
	}
	op.Middlewares = append(op.Middlewares, func(ctx huma.Context, next func(huma.Context)) {
		if d := checkParams(ctx, op); d != nil {
			_ = huma.WriteErr(s.api, ctx, http.StatusBadRequest, d.title, &huma.ErrorDetail{Location: d.location, Message: d.message})
			return
		}
		if !reads {
			next(ctx)
			return
		}
		if timeout > 0 {
			_ = ctx.SetReadDeadline(time.Now().Add(timeout))
		}
		body, err := io.ReadAll(ctx.BodyReader())
		_ = ctx.SetReadDeadline(time.Time{})
		if err != nil {
			var tooBig *http.MaxBytesError
			var ne net.Error
			switch {
			case errors.As(err, &tooBig):
				_ = huma.WriteErr(s.api, ctx, http.StatusRequestEntityTooLarge, "request body is larger than 1 MiB")
			case errors.As(err, &ne) && ne.Timeout():
				_ = huma.WriteErr(s.api, ctx, http.StatusRequestTimeout, "the request body was not received in time")
			default:
				_ = huma.WriteErr(s.api, ctx, http.StatusBadRequest, "the request body could not be read")
			}
			return
		}
		// A type the operation does not take is left to huma (415).
		if kind, schema := bodyKind(ctx.Header("Content-Type"), op); kind != "" {
			if d := checkBody(kind, body, schema, reg); d != nil {
				_ = huma.WriteErr(s.api, ctx, http.StatusBadRequest, d.title, &huma.ErrorDetail{Location: d.location, Message: d.message})
				return
			}
		}
		next(bodyContext{humaContext: ctx, body: bytes.NewReader(body)})
	})
}

// bodyContext serves a body already read. It embeds huma.Context under
// another name because the interface has a method called Context.
type bodyContext struct {
	humaContext
	body io.Reader
}

type humaContext = huma.Context

func (c bodyContext) BodyReader() io.Reader { return c.body }

// bodyKind says how a request body is checked: "json", "ndjson" (each line
// a JSON value) or "" (not at all), and against which schema. Without a
// Content-Type huma reads the body as the operation's JSON, else as its
// only type, and so is it checked.
func bodyKind(contentType string, op *huma.Operation) (string, *huma.Schema) {
	schema := func(ct string) *huma.Schema {
		if mt := op.RequestBody.Content[ct]; mt != nil {
			return mt.Schema
		}
		return nil
	}
	mt := ""
	if contentType != "" {
		var err error
		if mt, _, err = mime.ParseMediaType(contentType); err != nil {
			return "", nil
		}
	} else {
		for ct := range op.RequestBody.Content {
			if mt == "" || ct == "application/json" {
				mt = ct
			}
		}
	}
	switch {
	case mt == "application/x-ndjson":
		return "ndjson", schema(mt)
	case mt == "application/json" || strings.HasSuffix(mt, "+json"):
		return "json", schema("application/json")
	}
	return "", nil
}

// checkParams refuses path, query and header values that are not valid
// UTF-8, for declared and undeclared query parameters alike.
func checkParams(ctx huma.Context, op *huma.Operation) *refusal {
	u := ctx.URL()
	if !utf8.ValidString(u.Path) {
		return &refusal{"the path is not valid UTF-8", "path", "invalid bytes are not replaced"}
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return &refusal{"the query string is malformed", "query", "not a URL-encoded query"}
	}
	for k, vs := range q {
		if !utf8.ValidString(k) {
			return &refusal{"a query parameter is not valid UTF-8", "query", "a name is not valid UTF-8"}
		}
		for _, v := range vs {
			if !utf8.ValidString(v) {
				return &refusal{"a query parameter is not valid UTF-8", "query." + safeName(k, op), "invalid bytes are not replaced"}
			}
		}
	}
	for _, p := range op.Parameters {
		switch {
		case p.In == "header" && !utf8.ValidString(ctx.Header(p.Name)):
			return &refusal{"a header is not valid UTF-8", "header." + p.Name, "invalid bytes are not replaced"}
		case p.In == "query" && len(q[p.Name]) > 1 && (p.Schema == nil || p.Schema.Type != huma.TypeArray):
			// huma would read the first and drop the rest.
			return &refusal{"a query parameter is repeated", "query." + p.Name, "given more than once; it takes one value"}
		}
	}
	return nil
}

// safeName is a query parameter's name as a problem may show it: declared
// names only, as a caller's own could be anything, a number included.
func safeName(k string, op *huma.Operation) string {
	for _, p := range op.Parameters {
		if p.In == "query" && p.Name == k {
			return k
		}
	}
	return "*"
}

// refusal is why a request is refused.
type refusal struct{ title, location, message string }

// maxDepth bounds nesting: no body of this API nests deeper than a few
// levels, and the check recurses.
const maxDepth = 32

// checkBody checks a JSON (or NDJSON) body: valid UTF-8, well formed, no two
// members of an object whose names are equal or differ only in case, and
// no member that matches a field of schema only when case is ignored.
func checkBody(kind string, body []byte, schema *huma.Schema, reg huma.Registry) *refusal {
	if !utf8.Valid(body) {
		return &refusal{"the request body is not valid UTF-8", "body", "JSON text must be UTF-8; invalid bytes are not replaced"}
	}
	if kind == "ndjson" {
		for i, line := range bytes.Split(body, []byte("\n")) {
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			if p := checkValue(line, schema, reg, fmt.Sprintf("body line %d", i+1)); p != nil {
				return p
			}
		}
		return nil
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil // huma decides whether a body is required
	}
	return checkValue(body, schema, reg, "body")
}

// decoders are reused: a new one allocates its buffers.
var decoders = sync.Pool{New: func() any {
	d := &pooledDecoder{}
	d.dec = jsontext.NewDecoder(&d.r)
	return d
}}

type pooledDecoder struct {
	r   bytes.Reader
	dec *jsontext.Decoder
}

func checkValue(data []byte, schema *huma.Schema, reg huma.Registry, loc string) *refusal {
	d := decoders.Get().(*pooledDecoder)
	d.r.Reset(data)
	d.dec.Reset(&d.r, jsontext.AllowDuplicateNames(true))
	defer func() {
		d.r.Reset(nil)
		decoders.Put(d)
	}()
	w := walker{dec: d.dec, reg: reg}
	return w.value(deref(schema, reg), loc, 0)
}

type walker struct {
	dec *jsontext.Decoder
	reg huma.Registry
}

func (w *walker) syntax(err error, loc string) *refusal {
	var se *jsontext.SyntacticError
	if errors.As(err, &se) && se.Err != nil && strings.Contains(se.Err.Error(), "UTF-8") {
		return &refusal{"a string is not valid UTF-8", loc, "an escape names half a surrogate pair; invalid text is not replaced"}
	}
	return &refusal{"malformed JSON", loc, "not well-formed JSON"}
}

func (w *walker) value(s *huma.Schema, loc string, depth int) *refusal {
	if k := w.dec.PeekKind(); k != '{' && k != '[' && k != 0 {
		// A scalar: checked, not decoded.
		if err := w.dec.SkipValue(); err != nil {
			return w.syntax(err, loc)
		}
		return nil
	}
	tok, err := w.dec.ReadToken()
	if err != nil {
		return w.syntax(err, loc)
	}
	switch tok.Kind() {
	case '{':
		if depth >= maxDepth {
			return &refusal{"the body nests too deeply", loc, fmt.Sprintf("more than %d levels", maxDepth)}
		}
		seen := map[string]string{}
		for w.dec.PeekKind() != '}' {
			nt, err := w.dec.ReadToken()
			if err != nil {
				return w.syntax(err, loc)
			}
			name := nt.String()
			field, known := property(s, name)
			folded := fold(name)
			if prev, dup := seen[folded]; dup {
				return duplicate(loc, prev, name, field, known)
			}
			seen[folded] = name
			if known && field != name {
				return &refusal{"a member name differs from a field's only in case", loc + "." + field,
					fmt.Sprintf("member %q is not a field: names are case-sensitive (%q)", name, field)}
			}
			sub, where := (*huma.Schema)(nil), loc+".*"
			switch {
			case known:
				sub, where = s.Properties[field], loc+"."+field
			case s != nil:
				if addl, ok := s.AdditionalProperties.(*huma.Schema); ok {
					sub = addl
				}
			}
			if p := w.value(deref(sub, w.reg), where, depth+1); p != nil {
				return p
			}
		}
		if _, err := w.dec.ReadToken(); err != nil {
			return w.syntax(err, loc)
		}
	case '[':
		if depth >= maxDepth {
			return &refusal{"the body nests too deeply", loc, fmt.Sprintf("more than %d levels", maxDepth)}
		}
		var items *huma.Schema
		if s != nil {
			items = deref(s.Items, w.reg)
		}
		for i := 0; w.dec.PeekKind() != ']'; i++ {
			if p := w.value(items, fmt.Sprintf("%s[%d]", loc, i), depth+1); p != nil {
				return p
			}
		}
		if _, err := w.dec.ReadToken(); err != nil {
			return w.syntax(err, loc)
		}
	}
	return nil
}

// duplicate describes two members whose names fold to the same. Names are
// shown only when they are a field's: a caller's own names could be
// anything, a number included.
func duplicate(loc, prev, name, field string, known bool) *refusal {
	switch {
	case !known:
		return &refusal{"a member appears twice", loc, "two members have the same name, or names that differ only in case"}
	case prev == name:
		return &refusal{"a member appears twice", loc + "." + field, fmt.Sprintf("member %q appears twice", name)}
	}
	return &refusal{"a member appears twice", loc + "." + field, fmt.Sprintf("members %q and %q differ only in case: names are case-sensitive", prev, name)}
}

// property returns the field of s that name matches exactly or, failing
// that, when case is ignored the way encoding/json ignores it.
func property(s *huma.Schema, name string) (string, bool) {
	if s == nil || len(s.Properties) == 0 {
		return "", false
	}
	if _, ok := s.Properties[name]; ok {
		return name, true
	}
	f := fold(name)
	for field := range s.Properties {
		if fold(field) == f {
			return field, true
		}
	}
	return "", false
}

// fold is encoding/json's key for matching names regardless of case: ASCII
// letters upper-cased, any other rune the smallest of its fold set (so
// "ſource", with a long s, is "SOURCE").
func fold(name string) string {
	var b strings.Builder
	b.Grow(len(name))
	for _, r := range name {
		if r < utf8.RuneSelf {
			if 'a' <= r && r <= 'z' {
				r -= 'a' - 'A'
			}
			b.WriteRune(r)
			continue
		}
		for {
			r2 := unicode.SimpleFold(r)
			if r2 <= r {
				r = r2
				break
			}
			r = r2
		}
		b.WriteRune(r)
	}
	return b.String()
}

// deref follows a schema's $ref.
func deref(s *huma.Schema, reg huma.Registry) *huma.Schema {
	for i := 0; s != nil && s.Ref != "" && i < 8; i++ {
		s = reg.SchemaFromRef(s.Ref)
	}
	return s
}
