package projections

import (
	"time"
	"unicode/utf8"
	"unsafe"
)

// A small reader for the flat JSON payloads of the catalogue. Applying
// events would be dominated by encoding/json's reflection; this reads the
// few fields the projection needs without allocating, and hands anything
// unusual (escapes, odd shapes) back to encoding/json.

func ws(d []byte, i int) int {
	for i < len(d) && (d[i] == ' ' || d[i] == '\n' || d[i] == '\t' || d[i] == '\r') {
		i++
	}
	return i
}

// skip returns the index just past the JSON value starting at i.
func skip(d []byte, i int) (int, bool) {
	if i >= len(d) {
		return i, false
	}
	switch d[i] {
	case '"':
		for j := i + 1; j < len(d); j++ {
			switch d[j] {
			case '\\':
				j++
			case '"':
				return j + 1, true
			}
		}
		return len(d), false
	case '{', '[':
		depth := 0
		for j := i; j < len(d); j++ {
			switch d[j] {
			case '"':
				end, ok := skip(d, j)
				if !ok {
					return end, false
				}
				j = end - 1
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return j + 1, true
				}
			}
		}
		return len(d), false
	}
	j := i
	for j < len(d) && d[j] != ',' && d[j] != '}' && d[j] != ']' && d[j] != ' ' && d[j] != '\n' && d[j] != '\t' && d[j] != '\r' {
		j++
	}
	return j, j > i
}

// members calls fn with each member of the object in d: its key (which
// must be free of escapes) and its raw value. It reports false when d is
// not an object it can read or fn refuses a value.
func members(d []byte, fn func(k string, v []byte) bool) bool {
	i := ws(d, 0)
	if i >= len(d) || d[i] != '{' {
		return false
	}
	i = ws(d, i+1)
	if i < len(d) && d[i] == '}' {
		return true
	}
	for {
		if i >= len(d) || d[i] != '"' {
			return false
		}
		j := i + 1
		for j < len(d) && d[j] != '"' {
			if d[j] == '\\' {
				return false
			}
			j++
		}
		if j >= len(d) {
			return false
		}
		k := view(d[i+1 : j])
		if !lower(k) {
			return false // encoding/json matches keys case-insensitively
		}
		i = ws(d, j+1)
		if i >= len(d) || d[i] != ':' {
			return false
		}
		i = ws(d, i+1)
		end, ok := skip(d, i)
		if !ok || !fn(k, d[i:end]) {
			return false
		}
		i = ws(d, end)
		if i >= len(d) {
			return false
		}
		switch d[i] {
		case ',':
			i = ws(d, i+1)
		case '}':
			return true
		default:
			return false
		}
	}
}

func lower(k string) bool {
	for i := 0; i < len(k); i++ {
		if c := k[i]; ('A' <= c && c <= 'Z') || c >= 0x80 {
			return false
		}
	}
	return true
}

// view reads b as a string without copying; the result must not outlive b
// unless cloned.
func view(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	return unsafe.String(&b[0], len(b))
}

// str reads a string value without escapes; null reads as "".
func str(v []byte) (string, bool) {
	if string(v) == "null" {
		return "", true
	}
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return "", false
	}
	for _, c := range v[1 : len(v)-1] {
		if c == '\\' || c < 0x20 {
			return "", false
		}
	}
	if !utf8.Valid(v[1 : len(v)-1]) {
		return "", false // encoding/json would substitute U+FFFD
	}
	return view(v[1 : len(v)-1]), true
}

// strs calls fn for each string of an array of plain strings.
func strs(v []byte, fn func(string)) bool {
	if string(v) == "null" {
		return true
	}
	if len(v) < 2 || v[0] != '[' || v[len(v)-1] != ']' {
		return false
	}
	i := ws(v, 1)
	if v[i] == ']' {
		return true
	}
	for {
		end, ok := skip(v, i)
		if !ok {
			return false
		}
		s, ok := str(v[i:end])
		if !ok {
			return false
		}
		fn(s)
		i = ws(v, end)
		switch {
		case i < len(v) && v[i] == ',':
			i = ws(v, i+1)
		case i < len(v) && v[i] == ']':
			return true
		default:
			return false
		}
	}
}

// stamp reads an RFC 3339 time or null (zero).
func stamp(v []byte) (time.Time, bool) {
	s, ok := str(v)
	if !ok || s == "" {
		return time.Time{}, ok
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	return t, err == nil
}

func boolean(v []byte) (bool, bool) {
	switch string(v) {
	case "true":
		return true, true
	case "false", "null":
		return false, true
	}
	return false, false
}
