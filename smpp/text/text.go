package text

import (
	"fmt"
	"unicode/utf16"
	"unicode/utf8"
)

// Coding is the alphabet a message is sent in.
type Coding int

// The codings heed sends.
const (
	GSM7 Coding = iota
	UCS2
)

func (c Coding) String() string {
	if c == UCS2 {
		return "UCS2"
	}
	return "GSM7"
}

// DataCoding returns the plain SMPP data_coding of c (0x00 or 0x08).
func (c Coding) DataCoding() byte {
	if c == UCS2 {
		return 0x08
	}
	return 0x00
}

// Choose returns the smallest coding that can carry s.
func Choose(s string) Coding {
	if IsGSM7(s) {
		return GSM7
	}
	return UCS2
}

// EncodeUCS2 returns s as UTF-16BE. Characters beyond the BMP become
// surrogate pairs; invalid UTF-8 becomes U+FFFD.
func EncodeUCS2(s string) []byte {
	out := make([]byte, 0, 2*len(s))
	for _, r := range s {
		if r1, r2 := utf16.EncodeRune(r); r1 != utf8.RuneError {
			out = append(out, byte(r1>>8), byte(r1), byte(r2>>8), byte(r2))
			continue
		}
		out = append(out, byte(r>>8), byte(r))
	}
	return out
}

// DecodeUCS2 decodes UTF-16BE; an odd trailing byte is dropped.
func DecodeUCS2(b []byte) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
	}
	return string(utf16.Decode(u))
}

// Decode turns short_message bytes into text according to an SMPP
// data_coding: GSM 7-bit (unpacked), ASCII, Latin-1 or UCS2, with or without
// a message class. Other codings are 8-bit data and come back as Latin-1.
func Decode(dataCoding byte, b []byte) string {
	switch {
	case dataCoding == 0x00:
		return DecodeGSM7(b)
	case dataCoding == 0x01:
		return string(b)
	case dataCoding == 0x08:
		return DecodeUCS2(b)
	case dataCoding < 0x10: // SMPP's own values: 8-bit sets and binary
	case dataCoding&0xC0 == 0x00: // general data coding group, bits 3-2 the alphabet
		switch (dataCoding >> 2) & 3 {
		case 0:
			return DecodeGSM7(b)
		case 2:
			return DecodeUCS2(b)
		}
	case dataCoding&0xF0 == 0xF0: // data coding / message class group
		if dataCoding&0x04 == 0 {
			return DecodeGSM7(b)
		}
	}
	r := make([]rune, len(b))
	for i, c := range b {
		r[i] = rune(c)
	}
	return string(r)
}

// Limits of one SMS in octets of user data.
const (
	singleGSM7 = 160 // septets
	partGSM7   = 153 // septets, after the 6-octet UDH
	singleUCS2 = 140 // octets = 70 UTF-16 units
	partUCS2   = 134 // octets = 67 UTF-16 units
)

// Split returns s encoded in the smallest coding that fits, in one part if it
// fits one SMS and otherwise in parts sized for an 8-bit concatenation UDH
// (153 septets or 67 UTF-16 units each). A part never ends between an escape
// and its character nor between the halves of a surrogate pair.
func Split(s string) (Coding, [][]byte) {
	c := Choose(s)
	var b []byte
	var single, part, unit int
	if c == GSM7 {
		b, _ = EncodeGSM7(s)
		single, part, unit = singleGSM7, partGSM7, 1
	} else {
		b = EncodeUCS2(s)
		single, part, unit = singleUCS2, partUCS2, 2
	}
	if len(b) <= single {
		return c, [][]byte{b}
	}
	var parts [][]byte
	for len(b) > 0 {
		n := min(part, len(b))
		if n < len(b) {
			if c == GSM7 && b[n-1] == esc && !escapedAt(b, n-1) {
				n--
			}
			if c == UCS2 && n >= unit && isHighSurrogate(b[n-2], b[n-1]) {
				n -= unit
			}
		}
		parts = append(parts, b[:n:n])
		b = b[n:]
	}
	return c, parts
}

// escapedAt reports whether the septet at i is itself the character after
// an escape, counting the run of escapes before it.
func escapedAt(b []byte, i int) bool {
	run := 0
	for j := i - 1; j >= 0 && b[j] == esc; j-- {
		run++
	}
	return run%2 == 1
}

func isHighSurrogate(hi, lo byte) bool {
	u := uint16(hi)<<8 | uint16(lo)
	return u >= 0xD800 && u < 0xDC00
}

// UDH returns the 8-bit concatenation user data header for part seq (from 1)
// of total, with reference ref.
func UDH(ref, total, seq byte) []byte {
	return []byte{0x05, 0x00, 0x03, ref, total, seq}
}

// Concat is the concatenation information found in a user data header.
type Concat struct {
	Ref        uint16
	Total, Seq byte
}

// ParseUDH splits user data that starts with a UDH (esm_class 0x40) into the
// concatenation information, if any, and the text bytes.
func ParseUDH(ud []byte) (Concat, bool, []byte, error) {
	if len(ud) == 0 || int(ud[0])+1 > len(ud) {
		return Concat{}, false, nil, fmt.Errorf("text: UDH length %d beyond user data", udhLen(ud))
	}
	h, rest := ud[1:1+int(ud[0])], ud[1+int(ud[0]):]
	for len(h) >= 2 {
		id, l := h[0], int(h[1])
		if 2+l > len(h) {
			return Concat{}, false, nil, fmt.Errorf("text: UDH element 0x%02X overruns the header", id)
		}
		v := h[2 : 2+l]
		switch {
		case id == 0x00 && l == 3:
			return Concat{Ref: uint16(v[0]), Total: v[1], Seq: v[2]}, true, rest, nil
		case id == 0x08 && l == 4:
			return Concat{Ref: uint16(v[0])<<8 | uint16(v[1]), Total: v[2], Seq: v[3]}, true, rest, nil
		}
		h = h[2+l:]
	}
	return Concat{}, false, rest, nil
}

func udhLen(ud []byte) int {
	if len(ud) == 0 {
		return 0
	}
	return int(ud[0])
}
