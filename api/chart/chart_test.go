package chart

import (
	"bytes"
	"encoding/csv"
	"encoding/xml"
	"io"
	"strconv"
	"strings"
	"testing"
)

// drawn is what an SVG shows: each bar's title, and the reference line's.
type drawn struct {
	bars  []string // "label[, series]: value"
	refs  []string
	texts []string
	ids   map[string]bool
	label string // aria-labelledby
}

func parse(t *testing.T, svg []byte) drawn {
	t.Helper()
	d := drawn{ids: map[string]bool{}}
	dec := xml.NewDecoder(bytes.NewReader(svg))
	var stack []string
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("not well-formed XML: %v\n%s", err, svg)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			for _, a := range tok.Attr {
				switch a.Name.Local {
				case "id":
					d.ids[a.Value] = true
				case "aria-labelledby":
					d.label = a.Value
				case "style":
					t.Errorf("a style attribute, refused by a strict CSP: %s", a.Value)
				}
			}
			if tok.Name.Local == "script" || tok.Name.Local == "style" {
				t.Errorf("a %s element", tok.Name.Local)
			}
			cls := ""
			for _, a := range tok.Attr {
				if a.Name.Local == "class" {
					cls = a.Value
				}
			}
			stack = append(stack, tok.Name.Local+"."+cls)
		case xml.EndElement:
			stack = stack[:len(stack)-1]
		case xml.CharData:
			if len(stack) < 2 {
				continue
			}
			switch s := string(tok); {
			case stack[len(stack)-1] == "title." && stack[len(stack)-2] == "rect.bar":
				d.bars = append(d.bars, s)
			case stack[len(stack)-1] == "title." && stack[len(stack)-2] == "line.ref":
				d.refs = append(d.refs, s)
			case strings.HasPrefix(stack[len(stack)-1], "text."):
				d.texts = append(d.texts, s)
			}
		}
	}
	return d
}

func TestChartDrawsWhatItsCSVSays(t *testing.T) {
	cases := []struct {
		name      string
		c         Chart
		bars, csv []string
		refs      []string
	}{{
		name: "one series",
		c: Chart{ID: "outcomes", Title: "Reminders by outcome", Keys: []string{"outcome"}, Series: []string{"reminders"},
			Rows: []Row{{Label: "delivered", Keys: []string{"delivered"}, Values: []float64{12}}, {Label: "failed", Keys: []string{"failed"}, Values: []float64{0}}}},
		bars: []string{"delivered: 12", "failed: 0"},
		csv:  []string{"outcome,reminders", "delivered,12", "failed,0"},
	}, {
		name: "series, notes and a threshold",
		c: Chart{ID: "rates", Title: "Complaints", Keys: []string{"tenant", "line"}, Series: []string{"per 10,000", "limit"}, Notes: []string{"contacts"},
			Rows: []Row{{Label: "a · L1", Keys: []string{"a", "L1"}, Values: []float64{2.5, 1}, Notes: []string{"4000"}}},
			Ref:  &Ref{Label: "threshold", Value: 1}},
		bars: []string{"a · L1, per 10,000: 2.5", "a · L1, limit: 1"},
		csv:  []string{"tenant,line,\"per 10,000\",limit,contacts", "a,L1,2.5,1,4000"},
		refs: []string{"threshold: 1"},
	}, {
		name: "text is escaped, not markup",
		c: Chart{ID: "x", Title: "<script>", Keys: []string{"rule"}, Series: []string{"n"},
			Rows: []Row{{Label: `a<b>&"c"`, Keys: []string{`a<b>&"c"`}, Values: []float64{0.125}}}},
		bars: []string{`a<b>&"c": 0.125`},
		csv:  []string{"rule,n", `"a<b>&""c""",0.125`},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := parse(t, c.c.SVG())
			if strings.Join(d.bars, "|") != strings.Join(c.bars, "|") {
				t.Errorf("bars %q, want %q", d.bars, c.bars)
			}
			if strings.Join(d.refs, "|") != strings.Join(c.refs, "|") {
				t.Errorf("reference lines %q, want %q", d.refs, c.refs)
			}
			for _, id := range strings.Fields(d.label) {
				if !d.ids[id] {
					t.Errorf("aria-labelledby names %q, which is not in the SVG", id)
				}
			}
			if got := strings.TrimSpace(string(c.c.CSV())); got != strings.Join(c.csv, "\n") {
				t.Errorf("CSV\n%s\nwant\n%s", got, strings.Join(c.csv, "\n"))
			}
			// Every drawn value is in the CSV's row for it.
			recs, err := csv.NewReader(bytes.NewReader(c.c.CSV())).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			for i, r := range c.c.Rows {
				for j := range c.c.Series {
					v, err := strconv.ParseFloat(recs[i+1][len(c.c.Keys)+j], 64)
					if err != nil || v != r.Values[j] {
						t.Errorf("row %d series %d: CSV %q, drawn %v", i, j, recs[i+1][len(c.c.Keys)+j], r.Values[j])
					}
				}
			}
		})
	}
}

func TestEmptyChartSaysSo(t *testing.T) {
	c := Chart{ID: "e", Title: "Denials", Keys: []string{"rule"}, Series: []string{"denials"}, Empty: "No denials in this period."}
	d := parse(t, c.SVG())
	if len(d.bars) != 0 || !strings.Contains(strings.Join(d.texts, " "), "No denials in this period.") {
		t.Errorf("empty chart: bars %q, text %q", d.bars, d.texts)
	}
	if got := strings.TrimSpace(string(c.CSV())); got != "rule,denials" {
		t.Errorf("empty CSV %q", got)
	}
}
