package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/heed/heed/api/auth"
)

// The OpenAPI document as the bad-input table reads it.
type oaSchema struct {
	Ref                  string               `json:"$ref"`
	Type                 any                  `json:"type"`
	Format               string               `json:"format"`
	Enum                 []any                `json:"enum"`
	MinLength            *int                 `json:"minLength"`
	MaxLength            *int                 `json:"maxLength"`
	Minimum              *float64             `json:"minimum"`
	MinItems             *int                 `json:"minItems"`
	Items                *oaSchema            `json:"items"`
	Properties           map[string]*oaSchema `json:"properties"`
	Required             []string             `json:"required"`
	AdditionalProperties any                  `json:"additionalProperties"`
}

func (s *oaSchema) typ() string {
	switch t := s.Type.(type) {
	case string:
		return t
	case []any:
		for _, x := range t {
			if x != "null" {
				return fmt.Sprint(x)
			}
		}
	}
	return ""
}

type oaParam struct {
	Name   string    `json:"name"`
	In     string    `json:"in"`
	Schema *oaSchema `json:"schema"`
}

type oaOp struct {
	OperationID string                `json:"operationId"`
	Parameters  []oaParam             `json:"parameters"`
	Security    []map[string][]string `json:"security"`
	RequestBody *struct {
		Content map[string]struct {
			Schema *oaSchema `json:"schema"`
		} `json:"content"`
	} `json:"requestBody"`
	method, path string
}

type oaDoc struct {
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Schemas map[string]*oaSchema `json:"schemas"`
	} `json:"components"`
}

func (d *oaDoc) deref(s *oaSchema) *oaSchema {
	for i := 0; s != nil && s.Ref != "" && i < 8; i++ {
		s = d.Components.Schemas[strings.TrimPrefix(s.Ref, "#/components/schemas/")]
	}
	return s
}

func (d *oaDoc) operations(t *testing.T) []*oaOp {
	var ops []*oaOp
	for path, item := range d.Paths {
		for method, raw := range item {
			switch method {
			case "get", "post", "put", "patch", "delete":
			default:
				continue
			}
			op := &oaOp{method: strings.ToUpper(method), path: path}
			if err := json.Unmarshal(raw, op); err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			ops = append(ops, op)
		}
	}
	sort.Slice(ops, func(i, j int) bool { return ops[i].OperationID < ops[j].OperationID })
	return ops
}

// badInputValues are values an operation's valid-looking request starts
// from where the schema alone would not get past the handler's first
// checks to the one a case is about (an import line needs an importable
// type before its number is read). Operations not listed get values made
// from their schema.
var badInputValues = map[string]map[string]any{
	"import-events": {"type": "ComplaintReceived", "data": map[string]any{"source": "customer"}},
}

// badInputStatus overrides the status a case expects for one operation.
var badInputStatus = map[string]map[string]int{
	// An import line is decoded by the handler, not validated by huma, so
	// a wrong type is an undecodable line.
	"import-events": {"wrong type": 400},
	// A book's first line names its columns: one that cannot be read is
	// a book refused whole, whatever its size below the book's limit.
	"import-relationships": {"wrong type": 400, "body too large": 400},
}

// rowReports are the operations that record the good rows of a body and
// answer for each bad one: a case refused as an unprocessable value (422)
// is there a row refused, with the field named, in a 200 answer.
var rowReports = map[string]bool{"import-relationships": true}

// badNumbers are spellings of numA (or no number at all) that must not be
// taken for it.
var badNumbers = []string{
	"++8613800138000",
	"+86 138 0013 8000 ext 99",
	"+8613800138000 ext 99",
	"＋８６１３８００１３８０００",
	"+86-138-0013-8000",
	" +8613800138000",
	"+8613800138000\n",
	"008613800138000",
	"8613800138000",
	"+86013800138000",
	"+8613800138000;ext=99",
	"tel:+8613800138000",
}

type badCase struct {
	name   string
	method string
	path   string // with query
	ctype  string
	body   []byte
	status int
	// mention, when set, must appear in the problem's detail location or
	// message: the member or parameter the problem is about.
	mention string
}

type member struct {
	name string
	raw  []byte
}

func encodeObject(ms []member) []byte {
	var b bytes.Buffer
	b.WriteByte('{')
	for i, m := range ms {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteByte('"')
		b.WriteString(m.name) // names here need no escaping, or carry raw bytes on purpose
		b.WriteString(`":`)
		b.Write(m.raw)
	}
	b.WriteByte('}')
	return b.Bytes()
}

func mustJSON(t *testing.T, v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sample makes a value that satisfies s, numA for a number.
func (d *oaDoc) sample(s *oaSchema, name string) any {
	s = d.deref(s)
	if s == nil {
		return map[string]any{}
	}
	if name == "number" && s.typ() == "string" {
		return numA
	}
	if name == "tenant" && s.typ() == "string" {
		return "tenanta"
	}
	if len(s.Enum) > 0 {
		return s.Enum[0]
	}
	switch s.typ() {
	case "string":
		switch s.Format {
		case "date-time":
			return time.Now().UTC().Format(time.RFC3339)
		case "uuid":
			return uuid.NewString()
		}
		v := "P-1"
		for s.MinLength != nil && len(v) < *s.MinLength {
			v += "x"
		}
		return v
	case "integer", "number":
		if s.Minimum != nil && *s.Minimum > 0 {
			return *s.Minimum
		}
		return 1
	case "boolean":
		return false
	case "array":
		n := 1
		if s.MinItems != nil && *s.MinItems > 1 {
			n = *s.MinItems
		}
		out := make([]any, n)
		for i := range out {
			out[i] = d.sample(s.Items, "")
		}
		return out
	}
	obj := map[string]any{}
	for _, r := range s.Required {
		obj[r] = d.sample(s.Properties[r], r)
	}
	// Optional members a handler may need before it reads the number.
	for _, k := range []string{"number", "tenant"} {
		if p, ok := s.Properties[k]; ok {
			obj[k] = d.sample(p, k)
		}
	}
	return obj
}

// bodyCases are the bad bodies for an operation whose body (or each NDJSON
// line) is an object of schema s.
func (d *oaDoc) bodyCases(t *testing.T, op *oaOp, path, ctype string, s *oaSchema) []badCase {
	s = d.deref(s)
	if s == nil || len(s.Properties) == 0 {
		return nil
	}
	base, _ := d.sample(s, "").(map[string]any)
	for k, v := range badInputValues[op.OperationID] {
		base[k] = v
	}
	var names []string
	for k := range s.Properties {
		names = append(names, k)
	}
	sort.Strings(names)
	if len(base) == 0 {
		base[names[0]] = d.sample(s.Properties[names[0]], names[0])
	}
	keys := make([]string, 0, len(base))
	for k := range base {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	p := keys[0]
	if _, ok := base["number"]; ok {
		p = "number"
	}
	members := func() []member {
		ms := make([]member, 0, len(keys))
		for _, k := range keys {
			ms = append(ms, member{k, mustJSON(t, base[k])})
		}
		return ms
	}
	ndjson := ctype == "application/x-ndjson"
	wrap := func(obj []byte) []byte {
		if ndjson {
			return append(obj, '\n')
		}
		return obj
	}
	with := func(change func([]member) []member) []byte { return wrap(encodeObject(change(members()))) }
	set := func(name string, raw []byte) func([]member) []member {
		return func(ms []member) []member {
			for i := range ms {
				if ms[i].name == name {
					ms[i].raw = raw
				}
			}
			return ms
		}
	}
	rename := func(from, to string) func([]member) []member {
		return func(ms []member) []member {
			for i := range ms {
				if ms[i].name == from {
					ms[i].name = to
				}
			}
			return ms
		}
	}
	other := mustJSON(t, base[p])
	if p == "number" {
		other = []byte(`"+8613700000022"`)
	}
	cs := []badCase{
		{name: "duplicate member", body: with(func(ms []member) []member { return append(ms, member{p, other}) }), status: 400, mention: p},
		{name: "case-variant duplicate", body: with(func(ms []member) []member { return append(ms, member{strings.ToUpper(p), other}) }), status: 400, mention: p},
		{name: "case-variant member", body: with(rename(p, strings.ToUpper(p))), status: 400, mention: p},
		{name: "invalid UTF-8 in a member name", body: with(func(ms []member) []member { return append(ms, member{"\xff", []byte("1")}) }), status: 400},
		{name: "truncated", body: wrap(bytes.TrimSuffix(encodeObject(members()), []byte("}"))), status: 400},
		{name: "body too large", body: with(func(ms []member) []member {
			return append(ms, member{"padding", mustJSON(t, strings.Repeat("x", MaxBody))})
		}), status: 413},
	}
	wrong := []byte(`12345`)
	if d.deref(s.Properties[p]).typ() != "string" {
		wrong = []byte(`"x"`)
	}
	cs = append(cs, badCase{name: "wrong type", body: with(set(p, wrong)), status: 422, mention: p})
	// A name encoding/json folds onto a field: long s, Kelvin sign.
	for _, k := range keys {
		if i := strings.IndexAny(k, "sk"); i >= 0 {
			alias := k[:i] + map[byte]string{'s': "ſ", 'k': "\u212a"}[k[i]] + k[i+1:]
			cs = append(cs, badCase{name: "Unicode case-variant member", body: with(rename(k, alias)), status: 400, mention: k})
			break
		}
	}
	// Free text first: the number's own check would refuse a bad number
	// whatever the strict check did.
	texts := append(slices.DeleteFunc(slices.Clone(keys), func(k string) bool { return k == "number" }), "number")
	for _, k := range texts {
		if _, ok := base[k].(string); !ok || (ndjson && k == "type") {
			continue
		}
		cs = append(cs,
			badCase{name: "invalid UTF-8 in a string", body: with(set(k, []byte("\"P\xff\""))), status: 400},
			badCase{name: "lone surrogate escape", body: with(set(k, []byte(`"P\ud800"`))), status: 400})
		break
	}
	for _, k := range keys {
		if ps := d.deref(s.Properties[k]); ps != nil && ps.MaxLength != nil {
			cs = append(cs, badCase{name: "string too long", body: with(set(k, mustJSON(t, strings.Repeat("x", *ps.MaxLength+1)))), status: 422, mention: k})
			break
		}
	}
	if _, ok := base["number"]; ok {
		for _, n := range badNumbers {
			cs = append(cs, badCase{name: "number " + n, body: with(set("number", mustJSON(t, n))), status: 422, mention: "number"})
		}
	}
	for i := range cs {
		cs[i].method, cs[i].path, cs[i].ctype = op.method, path, ctype
	}
	return cs
}

// cases are every bad request made for op.
func (d *oaDoc) cases(t *testing.T, op *oaOp) []badCase {
	values := map[string]string{}
	for _, p := range op.Parameters {
		if p.In != "path" {
			continue
		}
		v := fmt.Sprint(d.sample(p.Schema, p.Name))
		values[p.Name] = url.PathEscape(v)
	}
	fill := func(override map[string]string) string {
		path := op.path
		for name, v := range values {
			if o, ok := override[name]; ok {
				v = o
			}
			path = strings.ReplaceAll(path, "{"+name+"}", v)
		}
		return path
	}
	path := fill(nil)
	cs := []badCase{{name: "invalid UTF-8 in an undeclared query parameter", path: path + "?x=%FF", status: 400}}
	for _, p := range op.Parameters {
		switch p.In {
		case "path":
			cs = append(cs, badCase{name: "invalid UTF-8 in path parameter " + p.Name, path: fill(map[string]string{p.Name: "P%FF"}), status: 400})
			if p.Name == "number" {
				for _, n := range badNumbers {
					cs = append(cs, badCase{name: "path number " + n, path: fill(map[string]string{p.Name: url.PathEscape(n)}), status: 422, mention: "number"})
				}
			}
		case "query":
			v := fmt.Sprint(d.sample(p.Schema, p.Name))
			cs = append(cs,
				badCase{name: "repeated query parameter " + p.Name, path: path + "?" + p.Name + "=" + v + "&" + p.Name + "=" + v, status: 400, mention: p.Name},
				badCase{name: "invalid UTF-8 in query parameter " + p.Name, path: path + "?" + p.Name + "=%FF", status: 400, mention: p.Name})
			if s := d.deref(p.Schema); s != nil && s.typ() == "integer" {
				cs = append(cs, badCase{name: "non-integer query parameter " + p.Name, path: path + "?" + p.Name + "=1x", status: 422, mention: p.Name})
			}
		}
	}
	for i := range cs {
		cs[i].method = op.method
	}
	if op.RequestBody != nil {
		found := false
		for ct, mt := range op.RequestBody.Content {
			if ct == "text/csv" {
				// A CSV upload reports bad rows one by one; what it
				// refuses whole is a body that is not text.
				cs = append(cs, badCase{name: "invalid UTF-8 in a CSV body", method: op.method, path: path, ctype: ct,
					body: []byte("call_id,callee,answered,duration_s\nc-1,\xff\xfe,true,1\n"), status: 400, mention: "body"})
				found = true
				continue
			}
			if ct != "application/json" && ct != "application/x-ndjson" {
				continue
			}
			bcs := d.bodyCases(t, op, path, ct, mt.Schema)
			found = found || len(bcs) > 0
			cs = append(cs, bcs...)
		}
		if !found {
			t.Errorf("%s: its request body yields no bad-input cases; describe it in the document as an object", op.OperationID)
		}
	}
	for i := range cs {
		if st, ok := badInputStatus[op.OperationID][cs[i].name]; ok {
			cs[i].status = st
		}
	}
	return cs
}

// TestEveryOperationRefusesBadInput reads the OpenAPI document the server
// serves and sends every operation bad input derived from its parameters
// and body schema: repeated, case-variant and Unicode-folded members,
// invalid UTF-8 and lone surrogates, wrong types, strings and bodies too
// large, truncated JSON, loose spellings of a number, repeated and
// malformed parameters. Each is refused with the status the case names and
// a problem document that does not repeat the number, and appends nothing.
// An operation added later is covered by the same derivation; one whose
// body yields no case fails the test.
func TestEveryOperationRefusesBadInput(t *testing.T) {
	h := newHarness(t)
	if r := h.do("POST", "/v1/relationships", h.a, map[string]any{"number": numA, "contract_ref": "P-1"}); r.status != 201 {
		t.Fatalf("setup: %d %s", r.status, r.body)
	}
	tokens := map[string]string{auth.RoleBusiness: h.a}
	for _, role := range auth.Roles {
		if _, ok := tokens[role]; ok {
			continue
		}
		tok, _, err := h.keys.Create(role, "")
		if err != nil {
			tok, _, err = h.keys.Create(role, "tenanta")
		}
		if err != nil {
			t.Fatalf("a key for role %s: %v", role, err)
		}
		tokens[role] = tok
	}
	tokens["customer"] = signIn(t, h, numB)

	var doc oaDoc
	if r := h.do("GET", "/openapi.json", "", nil); r.status != 200 || json.Unmarshal(r.body, &doc) != nil {
		t.Fatalf("the OpenAPI document: %d", r.status)
	}
	ops := doc.operations(t)
	if len(ops) < 20 {
		t.Fatalf("the document lists %d operations", len(ops))
	}
	roles := make([]string, 0, len(tokens))
	for r := range tokens {
		roles = append(roles, r)
	}
	sort.Strings(roles)
	for _, op := range ops {
		t.Run(op.OperationID, func(t *testing.T) {
			cs := doc.cases(t, op)
			// The credential that gets through authentication: the
			// strict check runs after it and refuses a bad query.
			tok := ""
			if len(op.Security) > 0 {
				probe := strings.NewReplacer("{", "", "}", "").Replace(op.path) + "?x=%FF"
				for _, role := range roles {
					if r := h.do(op.method, probe, tokens[role], nil); r.status == 400 {
						tok = tokens[role]
						break
					}
				}
				if tok == "" {
					t.Fatalf("no key or session gets through %s's authentication", op.OperationID)
				}
			}
			for _, c := range cs {
				before := h.head()
				var body any
				var hdr []string
				if c.body != nil {
					body = c.body
					hdr = []string{"Content-Type", c.ctype}
				}
				r := h.do(c.method, c.path, tok, body, hdr...)
				if rowReports[op.OperationID] && c.status == http.StatusUnprocessableEntity && c.body != nil {
					checkRowRefused(t, c.name, r, c.mention)
					if after := h.head(); after != before {
						t.Errorf("%s: a refused row appended: head %d → %d", c.name, before, after)
					}
					continue
				}
				if r.status != c.status {
					t.Errorf("%s: %d, want %d: %.300s", c.name, r.status, c.status, r.body)
				}
				checkProblem(t, c.name, r, c.status, c.mention)
				if after := h.head(); after != before {
					t.Errorf("%s: a refused request appended: head %d → %d", c.name, before, after)
				}
			}
		})
	}
}

// checkRowRefused asserts r answers 200 with the one row refused, an
// error naming mention, and no number.
func checkRowRefused(t *testing.T, name string, r resp, mention string) {
	t.Helper()
	var a struct {
		Refused int `json:"refused"`
		Errors  []struct {
			Field string `json:"field"`
		} `json:"errors"`
	}
	if r.status != http.StatusOK || json.Unmarshal(r.body, &a) != nil || a.Refused != 1 {
		t.Errorf("%s: %d, want the row refused in a 200 answer: %.300s", name, r.status, r.body)
	}
	named := mention == ""
	for _, e := range a.Errors {
		named = named || e.Field == mention
	}
	if !named {
		t.Errorf("%s: no error of field %q: %s", name, mention, r.body)
	}
	for _, n := range []string{"13800138000", "13700000011", "13700000022", "１３８００１３８０００"} {
		if strings.Contains(string(r.body), n) {
			t.Errorf("%s: the answer repeats a number: %s", name, r.body)
		}
	}
}

// checkProblem asserts r is an RFC 9457 problem of status that names
// mention (when set) and repeats no number.
func checkProblem(t *testing.T, name string, r resp, status int, mention string) {
	t.Helper()
	if ct := r.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Errorf("%s: Content-Type %q, want application/problem+json", name, ct)
	}
	var p struct {
		Title  string `json:"title"`
		Status int    `json:"status"`
		Detail string `json:"detail"`
		Errors []struct {
			Location string `json:"location"`
			Message  string `json:"message"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(r.body, &p); err != nil || p.Status != status || p.Title == "" {
		t.Errorf("%s: not a problem document of status %d: %.300s", name, status, r.body)
	}
	for _, n := range []string{"13800138000", "13700000011", "13700000022", "１３８００１３８０００"} {
		if strings.Contains(string(r.body), n) {
			t.Errorf("%s: the problem repeats a number: %s", name, r.body)
		}
	}
	if mention == "" {
		return
	}
	named := strings.Contains(p.Detail, mention)
	for _, e := range p.Errors {
		named = named || strings.Contains(e.Location, mention) || strings.Contains(e.Message, mention)
	}
	if !named {
		t.Errorf("%s: the problem does not name %q: %s", name, mention, r.body)
	}
}

const numB = "+8613700000011"

// signIn gets a customer session for number through the challenge.
func signIn(t *testing.T, h *harness, number string) string {
	t.Helper()
	if r := h.do("POST", "/v1/me/challenge", "", map[string]any{"number": number}); r.status != 202 {
		t.Fatalf("challenge: %d %s", r.status, r.body)
	}
	r := h.do("POST", "/v1/me/session", "", map[string]any{"number": number, "code": h.texter.code(number)})
	if r.status != 200 {
		t.Fatalf("session: %d %s", r.status, r.body)
	}
	tok, _ := r.json(t)["token"].(string)
	return tok
}

// TestAmbiguousBodiesRecordNothing: the bodies issue 12 names, which
// encoding/json reads as their last or case-folded member, are refused
// whole, while the same body without the ambiguity is recorded.
func TestAmbiguousBodiesRecordNothing(t *testing.T) {
	h := newHarness(t)
	const n22 = "+8613700000022"
	for _, c := range []struct {
		name, path, body string
		status           int
		mention          string
	}{
		{"control: one number", "/v1/complaints", `{"number":"` + numB + `","source":"customer"}`, 201, ""},
		{"number then Number", "/v1/complaints", `{"number":"` + numB + `","Number":"` + n22 + `","source":"customer"}`, 400, "number"},
		{"number twice", "/v1/complaints", `{"number":"` + numB + `","number":"` + n22 + `","source":"customer"}`, 400, "number"},
		{"Number alone", "/v1/complaints", `{"Number":"` + n22 + `","source":"customer"}`, 400, "number"},
		{"NUMBER alone", "/v1/complaints", `{"NUMBER":"` + n22 + `","source":"customer"}`, 400, "number"},
		{"channel then CHANNEL", "/v1/contacts", `{"number":"` + n22 + `","line":"L1","channel":"call","CHANNEL":"sms","purpose":"service"}`, 400, "channel"},
		{"long s in source", "/v1/complaints", `{"number":"` + n22 + `","ſource":"customer"}`, 400, "source"},
		{"case variant inside evidence", "/v1/consents", `{"number":"` + n22 + `","purposes":["service"],"channels":["sms"],"source":"paper","evidence":{"Text":"x"}}`, 400, "text"},
		{"params differing in case", "/v1/reminders", `{"number":"` + n22 + `","relationship_ref":"P-1","template_id":"renewal","template_version":1,"params":{"policy":"A","Policy":"B"}}`, 400, "params"},
		{"invalid UTF-8 in a reason", "/v1/complaints", "{\"number\":\"" + n22 + "\",\"source\":\"customer\",\"reason\":\"bad \xff\"}", 400, "body"},
		{"escaped lone surrogate in a reason", "/v1/complaints", `{"number":"` + n22 + `","source":"customer","reason":"bad \udc00"}`, 400, "reason"},
	} {
		t.Run(c.name, func(t *testing.T) {
			status, mention := c.status, c.mention
			before := h.head()
			r := h.do("POST", c.path, h.a, c.body)
			if r.status != status {
				t.Fatalf("%d, want %d: %s", r.status, status, r.body)
			}
			if status == 201 {
				return
			}
			checkProblem(t, c.name, r, status, mention)
			if h.head() != before {
				t.Errorf("appended: head %d → %d", before, h.head())
			}
		})
	}
	// Nothing but the control was recorded about either number.
	for n, want := range map[string]int{numB: 1, n22: 0} {
		r := h.do("GET", "/v1/subjects/"+url.PathEscape(n)+"/history", h.a, nil)
		if got := len(r.json(t)["events"].([]any)); got != want {
			t.Errorf("%d events about a number, want %d", got, want)
		}
	}
}

// TestNormalizeTakesTwoSpellings: E.164 and the region's national digits
// are read; every other spelling of the same number is refused, so one
// subject has one spelling.
func TestNormalizeTakesTwoSpellings(t *testing.T) {
	for _, c := range []struct {
		raw, region, want string
	}{
		{"+8613800138000", "CN", numA},
		{"13800138000", "CN", numA},
		{"01012345678", "CN", "+861012345678"},
		{"+442079460958", "CN", "+442079460958"},
		{"02079460958", "GB", "+442079460958"},
		{"13800138000", "", ""},
		{"+86 138 0013 8000", "CN", ""},
		{"+86 139 1234 5678 ext 99", "CN", ""},
		{"+8613800138000 ext 99", "CN", ""},
		{"++8613800138000", "CN", ""},
		{"＋８６１３８００１３８０００", "CN", ""},
		{"１３８００１３８０００", "CN", ""},
		{"+86-138-0013-8000", "CN", ""},
		{"(010) 1234 5678", "CN", ""},
		{" +8613800138000", "CN", ""},
		{"+8613800138000 ", "CN", ""},
		{"008613800138000", "CN", ""},
		{"8613800138000", "CN", ""},
		{"+86013800138000", "CN", ""},
		{"+8613800138000;ext=99", "CN", ""},
		{"tel:+8613800138000", "CN", ""},
		{"+8610000000000", "CN", ""},
		{"+999123456789", "CN", ""},
		{"+861380013800012345", "CN", ""},
	} {
		got, err := Normalize(c.raw, c.region)
		if got != c.want || (err == nil) != (c.want != "") {
			t.Errorf("Normalize(%q, %q) = %q, %v; want %q", c.raw, c.region, got, err, c.want)
		}
	}
}

// TestEndingARelationship: ending a relationship the tenant never started
// for the number is 404 and appends nothing; a started one ends, and a
// retry of the end with its id is a replay.
func TestEndingARelationship(t *testing.T) {
	h := newHarness(t)
	end := func(tok, ref string, body map[string]any) resp {
		return h.do("POST", "/v1/relationships/"+ref+"/end", tok, body)
	}
	if r := h.do("POST", "/v1/relationships", h.b, map[string]any{"number": numA, "contract_ref": "B-1"}); r.status != 201 {
		t.Fatalf("B's relationship: %d %s", r.status, r.body)
	}
	if r := h.do("POST", "/v1/relationships", h.a, map[string]any{"number": numB, "contract_ref": "A-1"}); r.status != 201 {
		t.Fatalf("A's relationship with another number: %d %s", r.status, r.body)
	}
	const endID = "0b1a4d9e-7c2f-4e8a-9d3b-5f6e7a8b9c0d"
	for _, c := range []struct {
		name, tok, ref string
		body           map[string]any
		status         int
	}{
		{"never started", h.a, "NO-SUCH-CONTRACT", map[string]any{"number": numA}, 404},
		{"another tenant's", h.a, "B-1", map[string]any{"number": numA}, 404},
		{"started for another number", h.a, "A-1", map[string]any{"number": numA}, 404},
		{"started", h.a, "A-1", map[string]any{"number": numB, "id": endID}, 201},
		{"retried with its id", h.a, "A-1", map[string]any{"number": numB, "id": endID}, 200},
		{"ended again, correcting the first", h.a, "A-1", map[string]any{"number": numB, "reason": "moved abroad"}, 201},
	} {
		before := h.head()
		r := end(c.tok, c.ref, c.body)
		if r.status != c.status {
			t.Fatalf("%s: %d, want %d: %s", c.name, r.status, c.status, r.body)
		}
		if c.status >= 400 {
			checkProblem(t, c.name, r, c.status, "ref")
		}
		if grew := h.head() != before; grew != (c.status == 201) {
			t.Errorf("%s: head %d → %d", c.name, before, h.head())
		}
	}
}

// TestProofSizeBeyondCheckpoint: a proof asked against a tree larger than
// the newest checkpoint is a 422 that says so, not the tree's internal
// error.
func TestProofSizeBeyondCheckpoint(t *testing.T) {
	h := newHarness(t)
	for i := range 3 {
		h.do("POST", "/v1/relationships", h.a, map[string]any{"number": numA, "contract_ref": fmt.Sprint("P-", i)})
	}
	for _, c := range []struct{ path, want string }{
		{"/v1/audit/proofs/inclusion?position=1&size=30", "size 30 is beyond the newest checkpoint 3"},
		{"/v1/audit/proofs/consistency?old=1&new=30", "new 30 is beyond the newest checkpoint 3"},
	} {
		r := h.do("GET", c.path, h.auditor, nil)
		if r.status != 422 || !strings.Contains(string(r.body), c.want) || strings.Contains(string(r.body), "hash") {
			t.Errorf("%s: %d %s, want 422 saying %q", c.path, r.status, r.body, c.want)
		}
	}
	if r := h.do("GET", "/v1/audit/proofs/inclusion?position=2&size=3", h.auditor, nil); r.status != 200 {
		t.Errorf("a proof within the checkpoint: %d %s", r.status, r.body)
	}
}

// TestProblemsMaskQuotedValues: a value the ledger's validation quotes back
// (here a number put where an enum goes) is masked in the problem.
func TestProblemsMaskQuotedValues(t *testing.T) {
	h := newHarness(t)
	now := time.Now().UTC().Format(time.RFC3339)
	for _, c := range []struct {
		name, path, body string
		hdr              []string
	}{
		{"import data", "/v1/events:import", `{"type":"ComplaintReceived","number":"` + numB + `","occurred_at":"` + now + `","data":{"source":"` + numA + `"}}`, []string{"Content-Type", "application/x-ndjson"}},
		{"import unknown member", "/v1/events:import", `{"type":"ComplaintReceived","number":"` + numB + `","occurred_at":"` + now + `","data":{"source":"customer","` + numA + `":1}}`, []string{"Content-Type", "application/x-ndjson"}},
		{"key tenant", "/v1/keys", `{"role":"business","tenant":"` + numA + `"}`, nil},
	} {
		tok := h.a
		if c.path == "/v1/keys" {
			tok = h.admin
		}
		r := h.do("POST", c.path, tok, c.body, c.hdr...)
		if r.status != 422 || !strings.Contains(string(r.body), `\"…\"`) {
			t.Errorf("%s: %d %s, want 422 with the value masked", c.name, r.status, r.body)
		}
		checkProblem(t, c.name, r, r.status, "")
	}
	if got := mask(`source "+8613800138000" is not one of "a, b"`); got != `source "…" is not one of "a, b"` {
		t.Errorf("mask: %s", got)
	}
}

// BenchmarkStrictBody is the strict check of a typical contact body, the
// cost every JSON request now pays before huma reads it.
func BenchmarkStrictBody(b *testing.B) {
	h := newHarness(b)
	op := h.api.API().OpenAPI().Paths["/v1/contacts"].Post
	_, schema := bodyKind("application/json", op)
	body := []byte(`{"number":"+8613800138000","line":"10690001","channel":"call","purpose":"service","campaign":"renewals-2026","outcome":"answered","duration_s":42}`)
	b.ReportAllocs()
	for b.Loop() {
		if p := checkBody("json", body, schema, h.api.API().OpenAPI().Components.Schemas); p != nil {
			b.Fatal(p)
		}
	}
}
