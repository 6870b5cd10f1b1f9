package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestOptOutsOnTheDefaultLine runs heed serve as configured by default (no
// --lines): reminders go from the default line, and replies to it must
// still withdraw. The customer answers from a Chinese gateway, in
// national form (TON 2), in full width; a second customer's reply comes in
// parts, last part first; a reply from a short code is recorded and
// counted, not dropped.
func TestOptOutsOnTheDefaultLine(t *testing.T) {
	s := startServe(t, t.TempDir(), "--sim-dev", "--lines=", "--verify-line", "10690099")
	biz := s.must(t, 201, "POST", "/v1/keys", s.admin, map[string]any{"role": "business", "tenant": "acme"})["token"].(string)
	// Sign-in codes go from heed's own verification line, in Chinese to a
	// Chinese number.
	s.must(t, 202, "POST", "/v1/me/challenge", "", map[string]any{"number": number})
	eventually(t, "the code", func() bool {
		b := string(s.do(t, "GET", "/dev/sim/outbox?to="+strings.TrimPrefix(number, "+"), s.admin, nil).body)
		return strings.Contains(b, `"from":"10690099"`) && strings.Contains(b, "验证码")
	})
	const second = "+8613700000011"
	ref := map[string]string{number: "POL-1", second: "POL-2"}
	for _, n := range []string{number, second} {
		s.must(t, 201, "POST", "/v1/relationships", biz, map[string]any{"number": n, "contract_ref": ref[n], "product": "car insurance"})
	}
	approveRenewal(t, s, biz, "acme")
	remind := func(id, n string) string {
		body := renewal(id, ref[n])
		body["number"] = n
		return fmt.Sprint(s.must(t, 201, "POST", "/v1/reminders", biz, body)["state"])
	}
	if st := remind("r1", number); st != "submitted" {
		t.Fatalf("first reminder: %s", st)
	}
	if st := remind("r2", second); st != "submitted" {
		t.Fatalf("first reminder to the second number: %s", st)
	}
	outbox := s.do(t, "GET", "/dev/sim/outbox?to="+strings.TrimPrefix(second, "+"), s.admin, nil)
	if !strings.Contains(string(outbox.body), `"from":"`+line+`"`) {
		t.Fatalf("reminder not sent from the default line: %s", outbox.body)
	}

	mo := func(body map[string]any) { s.must(t, 202, "POST", "/dev/sim/mo", s.admin, body) }
	// 13912345678 with TON 2 is +86 13912345678, not +1 391….
	mo(map[string]any{"From": "13912345678", "To": line, "Text": "ＴＤ", "Source": map[string]int{"TON": 2, "NPI": 1}})
	// 退订 padded past one UCS2 part, sent in two parts with a 16-bit
	// reference, the last part first.
	mo(map[string]any{"From": strings.TrimPrefix(second, "+"), "To": line, "Text": "退订" + strings.Repeat("\u3000", 80),
		"Concat": "udh16", "Parts": []int{2, 1}})
	// An operator's short code.
	mo(map[string]any{"From": "10086", "To": line, "Text": "hello", "Source": map[string]int{"TON": 6, "NPI": 0}})

	for _, n := range []string{number, second} {
		eventually(t, "the opt-out of "+n[len(n)-2:], func() bool {
			h := s.must(t, 200, "GET", "/v1/subjects/"+strings.Replace(n, "+", "%2B", 1)+"/history", biz, nil)
			return strings.Contains(fmt.Sprint(h["events"]), "ConsentWithdrawn")
		})
	}
	if st := remind("r3", number); st != "denied" {
		t.Fatalf("reminder after the national-form TD: %s", st)
	}
	if st := remind("r4", second); st != "denied" {
		t.Fatalf("reminder after the multi-part 退订: %s", st)
	}
	eventually(t, "the short-code reply counted", func() bool {
		res, err := http.Get(s.url + "/metrics")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		return strings.Contains(string(b), `heed_inbound_unmatched_total{reason="sender"} 1`)
	})
	s.stop(t)
	for _, form := range []string{"13912345678", "13700000011"} {
		if strings.Contains(s.stderr.String(), form) {
			t.Fatal("the log contains a number")
		}
	}
}
