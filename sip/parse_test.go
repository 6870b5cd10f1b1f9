package sip

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"

	gosip "github.com/emiago/sipgo/sip"
)

func TestDialled(t *testing.T) {
	for _, c := range []struct {
		uri, want string
		ok        bool
	}{
		{"sip:13900000001@heed.test", "13900000001", true},
		{"sip:+8613900000001@heed.test;user=phone", "+8613900000001", true},
		{"sip:+86-139-0000-0001@heed.test", "+8613900000001", true},
		{"sip:(021)5000.0001@heed.test", "02150000001", true},
		{"sip:13900000001;npdi@heed.test", "13900000001", true},
		{"tel:+8613900000001", "+8613900000001", true},
		{"tel:+86-139-0000-0001;phone-context=+86", "+8613900000001", true},
		{"sip:alice@heed.test", "", false},
		{"sip:++8613900000001@heed.test", "", false},
		{"sip:139*0001@heed.test", "", false},
		{"sip:+@heed.test", "", false},
		{"sip:heed.test", "", false},
		{"sip:" + strings.Repeat("1", 65) + "@heed.test", "", false},
	} {
		var u gosip.Uri
		if err := gosip.ParseUri(c.uri, &u); err != nil {
			t.Fatalf("%s: %v", c.uri, err)
		}
		got, err := dialled(&u)
		if c.ok != (err == nil) || got != c.want {
			t.Errorf("dialled(%s) = %q, %v; want %q, ok %v", c.uri, got, err, c.want, c.ok)
		}
		if err != nil && !errors.Is(err, ErrBadRequest) {
			t.Errorf("dialled(%s): %v does not wrap ErrBadRequest", c.uri, err)
		}
	}
}

// FuzzInvite feeds whole messages through sipgo's parser and then through
// what heed reads from an INVITE itself: the callee, the calling line and
// the purpose. None may panic, a number found is digits (with a leading
// '+' at most), and an error never carries the user part it refused.
func FuzzInvite(f *testing.F) {
	f.Add(rawInvite("13900000001", "a@pbx", "z9hG4bK-1", "127.0.0.1:5060"))
	f.Add(strings.Replace(rawInvite("+86-139-0000-0001", "b@pbx", "z9hG4bK-2", "127.0.0.1:5060"), "Max-Forwards", "P-Asserted-Identity: \"A\" <sip:02150000009@pbx>, <tel:+862150000009>\r\nX-Heed-Purpose: marketing\r\nMax-Forwards", 1))
	f.Add("INVITE tel:+8613900000001;phone-context=x SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK-3\r\nFrom: <sip:@h>\r\nTo: <tel:1>\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")
	f.Fuzz(func(t *testing.T, msg string) {
		m, err := gosip.ParseMessage([]byte(msg))
		if err != nil {
			return
		}
		req, ok := m.(*gosip.Request)
		if !ok {
			return
		}
		number, err := dialled(&req.Recipient)
		if err == nil {
			if strings.TrimLeft(strings.TrimPrefix(number, "+"), "0123456789") != "" || number == "+" {
				t.Fatalf("dialled returned %q", number)
			}
		} else if req.Recipient.User != "" && len(req.Recipient.User) > 3 && strings.Contains(err.Error(), req.Recipient.User) {
			t.Fatalf("error %q echoes the user part", err)
		}
		if line, err := caller(req); err == nil && strings.TrimLeft(line, "0123456789") != "" {
			t.Fatalf("caller returned %q", line)
		}
		if p, err := purposeOf(req, "marketing"); err == nil && p != "service" && p != "marketing" {
			t.Fatalf("purpose %q", p)
		}
		_, _ = txKey(req)
		if q := quoted(req.Recipient.User); !utf8.ValidString(req.Recipient.User) || strings.Count(q, `"`)-strings.Count(q, `\"`) == 2 {
			return
		}
		t.Fatalf("quoted(%q) = %s is not one quoted-string", req.Recipient.User, quoted(req.Recipient.User))
	})
}
