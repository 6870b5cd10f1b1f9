// Package text turns message text into SMS user data and back: the GSM 7-bit
// default alphabet with its extension table, UCS2 (UTF-16BE), the choice of
// the smallest coding that fits, and splitting long text into concatenated
// parts.
package text

import "strings"

// esc introduces a character of the GSM extension table.
const esc = 0x1B

// gsmBasic is the GSM 03.38 default alphabet, indexed by septet; 0x1B is the
// escape and has no character of its own.
var gsmBasic = [128]rune{
	'@', '£', '$', '¥', 'è', 'é', 'ù', 'ì', 'ò', 'Ç', '\n', 'Ø', 'ø', '\r', 'Å', 'å',
	'Δ', '_', 'Φ', 'Γ', 'Λ', 'Ω', 'Π', 'Ψ', 'Σ', 'Θ', 'Ξ', 0, 'Æ', 'æ', 'ß', 'É',
	' ', '!', '"', '#', '¤', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/',
	'0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?',
	'¡', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O',
	'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', 'Ä', 'Ö', 'Ñ', 'Ü', '§',
	'¿', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o',
	'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', 'ä', 'ö', 'ñ', 'ü', 'à',
}

// gsmExt maps the septet after an escape to its character.
var gsmExt = map[byte]rune{
	0x0A: '\f', 0x14: '^', 0x28: '{', 0x29: '}', 0x2F: '\\', 0x3C: '[', 0x3D: '~', 0x3E: ']', 0x40: '|', 0x65: '€',
}

var (
	toBasic = map[rune]byte{}
	toExt   = map[rune]byte{}
)

func init() {
	for i, r := range gsmBasic {
		if i != esc {
			toBasic[r] = byte(i)
		}
	}
	for b, r := range gsmExt {
		toExt[r] = b
	}
}

// gsmSeptets returns the septets for r: one for the default alphabet, two
// (escape first) for the extension table, none if r is not in GSM 7-bit.
func gsmSeptets(r rune) (a, b byte, n int) {
	if c, ok := toBasic[r]; ok {
		return c, 0, 1
	}
	if c, ok := toExt[r]; ok {
		return esc, c, 2
	}
	return 0, 0, 0
}

// IsGSM7 reports whether every character of s is in the GSM 7-bit alphabet
// or its extension table.
func IsGSM7(s string) bool {
	for _, r := range s {
		if _, _, n := gsmSeptets(r); n == 0 {
			return false
		}
	}
	return true
}

// EncodeGSM7 returns s as unpacked septets, one per byte, as SMPP carries
// them with data_coding 0. It reports false if s has a character outside the
// alphabet.
func EncodeGSM7(s string) ([]byte, bool) {
	out := make([]byte, 0, len(s))
	for _, r := range s {
		a, b, n := gsmSeptets(r)
		switch n {
		case 0:
			return nil, false
		case 1:
			out = append(out, a)
		case 2:
			out = append(out, a, b)
		}
	}
	return out, true
}

// DecodeGSM7 turns unpacked septets back into text. An escape before an
// undefined extension septet reads as the default character, as 03.38 asks;
// a trailing escape reads as a space.
func DecodeGSM7(b []byte) string {
	var sb strings.Builder
	for i := 0; i < len(b); i++ {
		c := b[i] & 0x7F
		if c == esc {
			if i+1 < len(b) {
				i++
				n := b[i] & 0x7F
				if r, ok := gsmExt[n]; ok {
					sb.WriteRune(r)
				} else if n != esc {
					sb.WriteRune(gsmBasic[n])
				}
				continue
			}
			sb.WriteByte(' ')
			continue
		}
		sb.WriteRune(gsmBasic[c])
	}
	return sb.String()
}
