package text

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestChoose(t *testing.T) {
	cases := []struct {
		in   string
		want Coding
	}{
		{"Your policy expires on 31/12", GSM7},
		{"Prix: 5€ {ok} [x] ~ | \\ ^", GSM7},
		{"Ærø @ £ ¥ Δ", GSM7},
		{"您的保单将于2026年12月31日到期", UCS2},
		{"café olé", GSM7},
		{"café á", UCS2}, // 'é' is in GSM 7-bit, 'á' is not: one outsider decides
		{"emoji 😀", UCS2},
	}
	for _, c := range cases {
		if got := Choose(c.in); got != c.want {
			t.Errorf("Choose(%q) = %v, want %v", c.in, got, c.want)
		}
	}
}

func TestGSM7RoundTrip(t *testing.T) {
	s := "@£$¥èéùìòÇ\nØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./09:;<=>?¡AZÄÖÑÜ§¿azäöñüà^{}\\[~]|€\f"
	b, ok := EncodeGSM7(s)
	if !ok {
		t.Fatal("not GSM7")
	}
	if got := DecodeGSM7(b); got != s {
		t.Errorf("round trip = %q", got)
	}
	if b, _ := EncodeGSM7("€"); !bytes.Equal(b, []byte{0x1B, 0x65}) {
		t.Errorf("€ = % x, want 1b 65", b)
	}
	if _, ok := EncodeGSM7("中"); ok {
		t.Error("中 encoded as GSM7")
	}
}

func TestUCS2(t *testing.T) {
	s := "您好 😀"
	b := EncodeUCS2(s)
	if want := []byte{0x60, 0xa8, 0x59, 0x7d, 0x00, 0x20, 0xd8, 0x3d, 0xde, 0x00}; !bytes.Equal(b, want) {
		t.Errorf("EncodeUCS2 = % x, want % x", b, want)
	}
	if got := DecodeUCS2(b); got != s {
		t.Errorf("DecodeUCS2 = %q", got)
	}
}

func TestDecodeDataCoding(t *testing.T) {
	ucs := EncodeUCS2("闪信")
	gsm, _ := EncodeGSM7("Hi €")
	cases := []struct {
		dc   byte
		in   []byte
		want string
	}{
		{0x00, gsm, "Hi €"}, {0xF0, gsm, "Hi €"}, {0x10, gsm, "Hi €"},
		{0x08, ucs, "闪信"}, {0x18, ucs, "闪信"},
		{0x01, []byte("TD"), "TD"}, {0x03, []byte{0x63, 0x61, 0x66, 0xe9}, "café"},
	}
	for _, c := range cases {
		if got := Decode(c.dc, c.in); got != c.want {
			t.Errorf("Decode(0x%02X) = %q, want %q", c.dc, got, c.want)
		}
	}
}

func TestSplit(t *testing.T) {
	cases := []struct {
		name   string
		in     string
		coding Coding
		parts  int
	}{
		{"gsm single full", strings.Repeat("a", 160), GSM7, 1},
		{"gsm two", strings.Repeat("a", 161), GSM7, 2},
		{"gsm escapes count double", strings.Repeat("€", 80), GSM7, 1},
		{"gsm escapes overflow", strings.Repeat("€", 81), GSM7, 2},
		{"ucs2 single full", strings.Repeat("中", 70), UCS2, 1},
		{"ucs2 two", strings.Repeat("中", 71), UCS2, 2},
		{"ucs2 three", strings.Repeat("中", 135), UCS2, 3},
		{"surrogates", strings.Repeat("😀", 40), UCS2, 2},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			coding, parts := Split(c.in)
			if coding != c.coding || len(parts) != c.parts {
				t.Fatalf("Split = %v, %d parts; want %v, %d", coding, len(parts), c.coding, c.parts)
			}
			var joined []byte
			for _, p := range parts {
				if len(parts) > 1 && ((coding == GSM7 && len(p) > 153) || (coding == UCS2 && len(p) > 134)) {
					t.Errorf("part of %d bytes is too long", len(p))
				}
				if coding == UCS2 {
					// Every part must decode on its own: no half surrogate pair.
					if s := DecodeUCS2(p); strings.ContainsRune(s, utf8.RuneError) {
						t.Errorf("part splits a surrogate pair: %q", s)
					}
				} else if p[len(p)-1] == esc && !escapedAt(p, len(p)-1) {
					t.Errorf("part ends with a lone escape")
				}
				joined = append(joined, p...)
			}
			if got := Decode(coding.DataCoding(), joined); got != c.in {
				t.Errorf("joined parts = %q", got)
			}
		})
	}
}

// TestSplitEscapeBoundary puts a two-septet character exactly across the
// 153-septet boundary.
func TestSplitEscapeBoundary(t *testing.T) {
	s := strings.Repeat("a", 152) + "€" + strings.Repeat("b", 10)
	_, parts := Split(s)
	if len(parts) != 2 || len(parts[0]) != 152 || DecodeGSM7(parts[1])[:len("€")] != "€" {
		t.Fatalf("parts = %d, first %d septets", len(parts), len(parts[0]))
	}
	s = strings.Repeat("中", 66) + "😀" + strings.Repeat("中", 10)
	_, parts = Split(s)
	if len(parts) != 2 || len(parts[0]) != 132 {
		t.Fatalf("UCS2 first part = %d bytes, want 132 (pair moved whole)", len(parts[0]))
	}
}

func TestUDH(t *testing.T) {
	ud := append(UDH(7, 3, 2), 0x60, 0xa8)
	c, ok, rest, err := ParseUDH(ud)
	if err != nil || !ok || c != (Concat{Ref: 7, Total: 3, Seq: 2}) || !bytes.Equal(rest, []byte{0x60, 0xa8}) {
		t.Errorf("ParseUDH = %+v %v % x %v", c, ok, rest, err)
	}
	c, ok, _, err = ParseUDH([]byte{6, 0x08, 4, 0x12, 0x34, 2, 1, 'x'})
	if err != nil || !ok || c != (Concat{Ref: 0x1234, Total: 2, Seq: 1}) {
		t.Errorf("16-bit ParseUDH = %+v %v %v", c, ok, err)
	}
	for _, bad := range [][]byte{{}, {9, 0, 3}, {3, 0, 5, 1}} {
		if _, _, _, err := ParseUDH(bad); err == nil {
			t.Errorf("ParseUDH(% x) accepted", bad)
		}
	}
}
