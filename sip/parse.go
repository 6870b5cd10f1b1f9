package sip

import (
	"fmt"
	"strings"

	gosip "github.com/emiago/sipgo/sip"
)

// maxUser bounds the user part heed reads a number from; a longer one is
// refused rather than handed to the number parser.
const maxUser = 64

// dialled returns the digits a URI names: the user part of a sip: or sips:
// URI, or the subscriber of a tel: URI, without visual separators
// (RFC 3966: '-', '.', '(', ')') and parameters. It keeps a leading '+'.
// It refuses anything else, naming only what is wrong, never the value.
func dialled(u *gosip.Uri) (string, error) {
	var user string
	switch strings.ToLower(u.Scheme) {
	case "sip", "sips", "":
		user = u.User
	case "tel":
		user = u.Raw()
	default:
		return "", fmt.Errorf("%w: scheme %q carries no number", ErrBadRequest, u.Scheme)
	}
	if i := strings.IndexByte(user, ';'); i >= 0 {
		user = user[:i] // tel parameters, or user parameters in a sip: user part
	}
	if user == "" {
		return "", fmt.Errorf("%w: no user part", ErrBadRequest)
	}
	if len(user) > maxUser {
		return "", fmt.Errorf("%w: user part longer than %d bytes", ErrBadRequest, maxUser)
	}
	var b strings.Builder
	for i := 0; i < len(user); i++ {
		c := user[i]
		switch {
		case c >= '0' && c <= '9':
			b.WriteByte(c)
		case c == '+' && b.Len() == 0 && i == 0:
			b.WriteByte(c)
		case c == '-' || c == '.' || c == '(' || c == ')':
		default:
			return "", fmt.Errorf("%w: user part is not a telephone number", ErrBadRequest)
		}
	}
	digits := strings.TrimPrefix(b.String(), "+")
	if digits == "" {
		return "", fmt.Errorf("%w: user part has no digits", ErrBadRequest)
	}
	return b.String(), nil
}

// caller returns the calling line: the user of the first
// P-Asserted-Identity (RFC 3325) when the trunk sends one, else the user of
// From. A line is an identifier of the business's own, so it is kept as
// written (digits), not normalised as a customer's number would be.
func caller(req *gosip.Request) (string, error) {
	if h := req.GetHeader("P-Asserted-Identity"); h != nil {
		v := h.Value()
		if i := strings.IndexByte(v, ','); i >= 0 {
			v = v[:i]
		}
		var u gosip.Uri
		if _, err := gosip.ParseAddressValue(strings.TrimSpace(v), &u, nil); err == nil {
			if line, err := dialled(&u); err == nil {
				return strings.TrimPrefix(line, "+"), nil
			}
		}
	}
	from := req.From()
	if from == nil {
		return "", fmt.Errorf("%w: no From", ErrBadRequest)
	}
	line, err := dialled(&from.Address)
	if err != nil {
		return "", err
	}
	return strings.TrimPrefix(line, "+"), nil
}

// purposeOf reads X-Heed-Purpose, falling back to the trunk's default.
func purposeOf(req *gosip.Request, def string) (string, error) {
	h := req.GetHeader("X-Heed-Purpose")
	if h == nil {
		return def, nil
	}
	switch p := strings.ToLower(strings.TrimSpace(h.Value())); p {
	case "service", "marketing":
		return p, nil
	}
	return "", fmt.Errorf("%w: X-Heed-Purpose must be service or marketing", ErrBadRequest)
}

// quoted makes s safe inside a SIP quoted-string (RFC 3261 25.1): quotes
// and backslashes escaped, control characters dropped.
func quoted(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
