package smpp_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/heed/heed/smpp"
	"github.com/heed/heed/smpp/sim"
	"github.com/heed/heed/smpp/text"
)

// TestInboundNumbering: the TON and NPI of both addresses reach the
// handler, so a national "13912340002" is not mistaken for +1 391….
func TestInboundNumbering(t *testing.T) {
	s, _ := startSim(t, sim.Config{})
	got := make(chan smpp.Inbound, 1)
	dial(t, smpp.Config{Addr: s.Addr(), Handler: func(in smpp.Inbound) error { got <- in; return nil }})
	mo := sim.MO{From: "13912340002", To: "10690001", Text: "TD",
		Source: &sim.Numbering{TON: 2, NPI: 1}, Dest: &sim.Numbering{TON: 3, NPI: 0}}
	if err := s.Inject("heed", mo); err != nil {
		t.Fatal(err)
	}
	select {
	case in := <-got:
		if in.From != "13912340002" || in.FromTON != 2 || in.FromNPI != 1 || in.ToTON != 3 || in.ToNPI != 0 {
			t.Errorf("inbound from %s TON %d NPI %d, to TON %d NPI %d", in.From, in.FromTON, in.FromNPI, in.ToTON, in.ToNPI)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no MO")
	}
}

// TestMultipartMO: each way of marking a part (8-bit and 16-bit UDH
// references, sar_* TLVs) reaches the handler as a part the Reassembler
// joins, whatever the order the parts come in.
func TestMultipartMO(t *testing.T) {
	long := strings.Repeat("请不要再给我发短信了，", 10) + "退订"
	for _, concat := range []string{"udh8", "udh16", "sar"} {
		t.Run(concat, func(t *testing.T) {
			s, _ := startSim(t, sim.Config{})
			got := make(chan smpp.Inbound, 8)
			dial(t, smpp.Config{Addr: s.Addr(), Handler: func(in smpp.Inbound) error { got <- in; return nil }})
			_, parts := text.Split(long)
			order := []int{}
			for i := len(parts); i >= 1; i-- {
				order = append(order, i)
			}
			if len(order) < 2 {
				t.Fatalf("text in %d part", len(order))
			}
			if err := s.Inject("heed", sim.MO{From: testNumber, To: "95500", Text: long, Concat: concat, Parts: order}); err != nil {
				t.Fatal(err)
			}
			r := smpp.NewReassembler[string](0, 0)
			var whole []smpp.Whole[string]
			for range order {
				select {
				case in := <-got:
					if in.Concat == nil || int(in.Concat.Total) != len(parts) {
						t.Fatalf("part without concatenation info: %+v", in.Concat)
					}
					whole = append(whole, r.Add(in.From+"|"+in.To, in.Concat, in.Text, in.From, time.Now())...)
				case <-time.After(5 * time.Second):
					t.Fatal("missing part")
				}
			}
			if len(whole) != 1 || whole[0].Text != long || !whole[0].Complete() {
				t.Fatalf("reassembled %+v", whole)
			}
		})
	}
}

func TestReassembler(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	type part struct {
		key        string
		ref        uint16
		total, seq byte
		text       string
		after      time.Duration
		single     bool
		wantTexts  []string // messages handed back by this Add
	}
	cases := []struct {
		name   string
		parts  []part
		expire time.Duration // then Expire at t0+expire
		want   []string      // what Expire hands back
	}{
		{name: "in order", parts: []part{
			{key: "a", ref: 7, total: 2, seq: 1, text: "T"},
			{key: "a", ref: 7, total: 2, seq: 2, text: "D", wantTexts: []string{"TD"}},
		}},
		{name: "out of order and repeated", parts: []part{
			{key: "a", ref: 7, total: 3, seq: 3, text: "c"},
			{key: "a", ref: 7, total: 3, seq: 1, text: "a"},
			{key: "a", ref: 7, total: 3, seq: 3, text: "X"},
			{key: "a", ref: 7, total: 3, seq: 2, text: "b", wantTexts: []string{"abc"}},
		}},
		{name: "same reference, other sender", parts: []part{
			{key: "a", ref: 7, total: 2, seq: 1, text: "T"},
			{key: "b", ref: 7, total: 2, seq: 2, text: "x"},
			{key: "a", ref: 7, total: 2, seq: 2, text: "D", wantTexts: []string{"TD"}},
		}, expire: time.Hour, want: []string{"x"}},
		{name: "single part passes through", parts: []part{
			{key: "a", single: true, text: "TD", wantTexts: []string{"TD"}},
		}},
		{name: "missing part given up after the timeout", parts: []part{
			{key: "a", ref: 1, total: 3, seq: 1, text: "T"},
			{key: "a", ref: 1, total: 3, seq: 3, text: "!"},
		}, expire: time.Minute, want: []string{"T!"}},
		{name: "not yet timed out", parts: []part{
			{key: "a", ref: 1, total: 2, seq: 1, text: "T"},
		}, expire: 59 * time.Second},
		{name: "a later part expires an old one", parts: []part{
			{key: "a", ref: 1, total: 2, seq: 1, text: "old"},
			{key: "b", after: 2 * time.Minute, single: true, text: "TD", wantTexts: []string{"old", "TD"}},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := smpp.NewReassembler[string](0, time.Minute)
			for i, p := range tc.parts {
				var c *text.Concat
				if !p.single {
					c = &text.Concat{Ref: p.ref, Total: p.total, Seq: p.seq}
				}
				var texts []string
				for _, w := range r.Add(p.key, c, p.text, p.key, t0.Add(p.after)) {
					texts = append(texts, w.Text)
				}
				if !slices.Equal(texts, p.wantTexts) {
					t.Errorf("part %d: handed back %q, want %q", i, texts, p.wantTexts)
				}
			}
			if tc.expire > 0 {
				var texts []string
				for _, w := range r.Expire(t0.Add(tc.expire)) {
					if w.Complete() {
						t.Errorf("expired message %q marked complete", w.Text)
					}
					texts = append(texts, w.Text)
				}
				if !slices.Equal(texts, tc.want) {
					t.Errorf("expired %q, want %q", texts, tc.want)
				}
			}
		})
	}
}

// TestReassemblerBound: past its bound the oldest incomplete message is
// handed back, not kept, so a flood of first parts cannot grow memory.
func TestReassemblerBound(t *testing.T) {
	t0 := time.Now()
	r := smpp.NewReassembler[int](3, time.Hour)
	var out []smpp.Whole[int]
	for i := range 10 {
		out = append(out, r.Add("k", &text.Concat{Ref: uint16(i), Total: 2, Seq: 1}, "p", i, t0)...)
	}
	if r.Held() != 3 {
		t.Errorf("held %d, want 3", r.Held())
	}
	if len(out) != 7 || out[0].Meta != 0 || out[6].Meta != 6 || out[0].Complete() {
		t.Errorf("given up: %+v", out)
	}
}

// TestReassemblerRetain: a message its caller could not act on is held
// again without the part that will be delivered again, so the earlier
// parts are not lost.
func TestReassemblerRetain(t *testing.T) {
	t0 := time.Now()
	r := smpp.NewReassembler[string](0, time.Minute)
	r.Add("k", &text.Concat{Ref: 1, Total: 2, Seq: 1}, "T", "", t0)
	w := r.Add("k", &text.Concat{Ref: 1, Total: 2, Seq: 2}, "D", "", t0)
	if len(w) != 1 || w[0].Text != "TD" {
		t.Fatalf("whole %+v", w)
	}
	r.Retain(w[0], 2, t0)
	r.Retain(w[0], 2, t0) // twice is once
	if r.Held() != 1 {
		t.Fatalf("held %d after Retain", r.Held())
	}
	again := r.Add("k", &text.Concat{Ref: 1, Total: 2, Seq: 2}, "D", "", t0)
	if len(again) != 1 || again[0].Text != "TD" || !again[0].Complete() {
		t.Fatalf("redelivered last part: %+v", again)
	}
}
