package bundle

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/heed/heed/ledger"
)

func TestQuickLeafTakesOrdinaryEvents(t *testing.T) {
	log, _ := makeLog(t, 50)
	zh, _ := ledger.NewEvent("acme", "s", time.Now(), ledger.ComplaintReceived{Source: "customer", Reason: "骚扰电话"})
	zh.Position, zh.Stream, zh.RecordedAt, zh.PII = 51, "st", time.Now(), []byte{1, 2, 3}
	log = append(log, zh)
	for _, e := range log {
		leaf, err := e.Leaf()
		if err != nil {
			t.Fatal(err)
		}
		pos, ok := quickLeaf(leaf)
		if !ok || pos != int64(e.Position) {
			t.Fatalf("quickLeaf(%s) = %d, %v; want %d, true", leaf, pos, ok, e.Position)
		}
	}
}

// canonSeeds are real leaves and near misses that ParseLeaf refuses.
func canonSeeds(t testing.TB) [][]byte {
	log, _ := makeLog(t, 3)
	leaf, _ := log[0].Leaf()
	l := string(leaf)
	seeds := [][]byte{leaf}
	for _, r := range [][2]string{
		{`"position":1,`, `"position":01,`},
		{`"tenant":"acme",`, `"tenant":"",`},
		{`"tenant":"acme",`, ``},
		{`"data":{`, `"data": {`},
		{`"schema":1,`, `"schema":-0,`},
		{`03:00:00Z`, `03:00:00.000Z`},
		{`03:00:00Z`, `03:00:00+00:00`},
		{`"L1"`, `"L\u0031"`},
		{`"L1"`, `"L<1"`},
		{`"call"`, `"c\u0061ll"`},
		{`"acme"`, `"ac\u0000me"`},
		{`}`, `,"x":1}`},
		{`"id":`, `"ID":`},
	} {
		seeds = append(seeds, []byte(strings.Replace(l, r[0], r[1], 1)))
	}
	seeds = append(seeds, append(bytes.Clone(leaf), ' '), []byte(strings.TrimSuffix(l, "}")+`,"pii":"AQID"}`),
		[]byte(strings.TrimSuffix(l, "}")+`,"pii":"AQI="}`), []byte(strings.TrimSuffix(l, "}")+`,"pii":"AQJ="}`))
	return seeds
}

func TestQuickLeafNeverAcceptsWhatParseLeafRefuses(t *testing.T) {
	for _, s := range canonSeeds(t) {
		checkQuickLeaf(t, s)
	}
}

func checkQuickLeaf(t *testing.T, line []byte) {
	t.Helper()
	pos, ok := quickLeaf(line)
	if !ok {
		return
	}
	e, err := ledger.ParseLeaf(line)
	if err != nil {
		t.Fatalf("quickLeaf accepted %q, ParseLeaf refuses it: %v", line, err)
	}
	if int64(e.Position) != pos {
		t.Fatalf("quickLeaf read position %d from %q, ParseLeaf %d", pos, line, e.Position)
	}
}

func FuzzQuickLeaf(f *testing.F) {
	for _, s := range canonSeeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		checkQuickLeaf(t, line)
		// Also try the fuzzed bytes as a payload inside a real leaf.
		if json.Valid(line) && bytes.HasPrefix(bytes.TrimSpace(line), []byte("{")) {
			e := ledger.Event{ID: "x", Type: "T", Stream: "s", Position: 7, Data: line}
			if leaf, err := e.Leaf(); err == nil {
				checkQuickLeaf(t, leaf)
			}
		}
	})
}
