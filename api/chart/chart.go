// Package chart draws horizontal bar charts as standalone SVG, and writes
// the numbers behind each chart as CSV from the same rows, so the picture
// and the download cannot disagree.
//
// The SVG uses presentation attributes only (no style attribute or
// element, no script), so it renders under a strict Content-Security-Policy
// and on paper.
package chart

import (
	"bytes"
	"encoding/csv"
	"encoding/xml"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Chart is a bar chart: one group of bars per row, one bar per series.
type Chart struct {
	// ID names the chart in file names and element ids.
	ID string
	// Title and Desc are read out by screen readers and shown on top.
	Title, Desc string
	// Keys names the columns that identify a row in the CSV; each row's
	// Keys hold their values, and its Label is what the chart shows.
	Keys []string
	// Series names the drawn values of each row.
	Series []string
	// Notes names extra CSV columns that are not drawn.
	Notes []string
	Rows  []Row
	// Ref, if set, is drawn as a vertical line across the bars (a
	// threshold).
	Ref *Ref
	// Empty is shown instead of bars when there are no rows.
	Empty string
}

// Row is one group of bars.
type Row struct {
	Label  string
	Keys   []string
	Values []float64
	Notes  []string
}

// Ref is a reference value drawn as a line.
type Ref struct {
	Label string
	Value float64
}

// Number formats a value as the CSV and the chart's labels write it.
func Number(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// CSV writes the chart's rows: the key columns, the drawn values, then the
// notes, under a header naming them.
func (c *Chart) CSV() []byte {
	var b bytes.Buffer
	w := csv.NewWriter(&b)
	head := append(append(append([]string{}, c.Keys...), c.Series...), c.Notes...)
	_ = w.Write(head)
	for _, r := range c.Rows {
		rec := append([]string{}, r.Keys...)
		for _, v := range r.Values {
			rec = append(rec, Number(v))
		}
		_ = w.Write(append(rec, r.Notes...))
	}
	w.Flush()
	return b.Bytes()
}

// Colours of the series: each has at least 4.5:1 contrast on white, so
// the value labels drawn in them stay readable.
var colours = []string{"#1d5a9e", "#a14d00", "#2b6e2f", "#6b3fa0", "#8a1c3c"}

// Layout, in SVG user units. Each row's label sits above its bars, so
// the chart stays readable when a phone shrinks it to its width.
const (
	width   = 400
	left    = 6
	valueW  = 56
	barH    = 16
	barGap  = 3
	labelH  = 20
	rowGap  = 10
	top     = 10
	legendH = 24
	fontPx  = 15
)

// SVG draws the chart as a standalone SVG document.
func (c *Chart) SVG() []byte {
	var b bytes.Buffer
	id := func(s string) string { return "chart-" + c.ID + "-" + s }
	n := max(1, len(c.Series))
	y := top
	if len(c.Series) > 1 {
		y += legendH
	}
	rowH := labelH + n*barH + (n-1)*barGap
	height := y + max(1, len(c.Rows))*(rowH+rowGap) + 24
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 %d %d" width="%d" height="%d" role="img" aria-labelledby="%s %s" font-family="system-ui, sans-serif" font-size="%d">`,
		width, height, width, height, id("title"), id("desc"), fontPx)
	fmt.Fprintf(&b, `<title id="%s">%s</title><desc id="%s">%s</desc>`, id("title"), esc(c.Title), id("desc"), esc(c.Desc))
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="#ffffff"/>`, width, height)
	if len(c.Series) > 1 {
		x := left
		for i, s := range c.Series {
			fmt.Fprintf(&b, `<rect x="%d" y="%d" width="13" height="13" fill="%s"/><text x="%d" y="%d" fill="#222222">%s</text>`,
				x, top, colours[i%len(colours)], x+18, top+12, esc(s))
			x += 18 + 9*utf8.RuneCountInString(s) + 16
		}
	}
	if len(c.Rows) == 0 {
		fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#222222">%s</text></svg>`, left, y+fontPx, esc(c.Empty))
		return b.Bytes()
	}
	scale := c.max()
	barW := float64(width - left - valueW)
	y0 := y
	for _, r := range c.Rows {
		fmt.Fprintf(&b, `<text x="%d" y="%d" fill="#222222" font-weight="600">%s</text>`, left, y+fontPx, esc(clip(r.Label, 44)))
		for i, v := range r.Values {
			by := y + labelH + i*(barH+barGap)
			w := 0.0
			if scale > 0 {
				w = barW * v / scale
			}
			col := colours[i%len(colours)]
			name := r.Label
			if i < len(c.Series) && len(c.Series) > 1 {
				name += ", " + c.Series[i]
			}
			fmt.Fprintf(&b, `<rect class="bar" x="%d" y="%d" width="%s" height="%d" fill="%s"><title>%s: %s</title></rect>`,
				left, by, Number(math.Round(w*10)/10), barH, col, esc(name), Number(v))
			fmt.Fprintf(&b, `<text x="%s" y="%d" fill="%s">%s</text>`, Number(math.Round((float64(left)+w+4)*10)/10), by+barH-2, col, Number(round(v)))
		}
		y += rowH + rowGap
	}
	if c.Ref != nil && scale > 0 {
		x := Number(math.Round((float64(left)+barW*c.Ref.Value/scale)*10) / 10)
		fmt.Fprintf(&b, `<line class="ref" x1="%s" y1="%d" x2="%s" y2="%d" stroke="#b00020" stroke-width="2" stroke-dasharray="6 4"><title>%s: %s</title></line>`,
			x, y0, x, y, esc(c.Ref.Label), Number(c.Ref.Value))
		anchor := "middle"
		if c.Ref.Value/scale > 0.7 {
			anchor = "end"
		} else if c.Ref.Value/scale < 0.3 {
			anchor = "start"
		}
		fmt.Fprintf(&b, `<text x="%s" y="%d" text-anchor="%s" fill="#b00020">%s: %s</text>`, x, y+14, anchor, esc(c.Ref.Label), Number(round(c.Ref.Value)))
	}
	b.WriteString(`</svg>`)
	return b.Bytes()
}

// max is the value the bar area spans: the largest value or reference.
func (c *Chart) max() float64 {
	m := 0.0
	for _, r := range c.Rows {
		for _, v := range r.Values {
			m = math.Max(m, v)
		}
	}
	if c.Ref != nil {
		m = math.Max(m, c.Ref.Value)
	}
	return m
}

// round keeps a label short: two decimals at most.
func round(v float64) float64 { return math.Round(v*100) / 100 }

func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

func esc(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}
