package smpp

import (
	"testing"

	"github.com/heed/heed/smpp/pdu"
	"github.com/heed/heed/smpp/text"
)

func TestParseInbound(t *testing.T) {
	textForm := "id:1A2B sub:001 dlvrd:001 submit date:2611270340 done date:2611270341 stat:DELIVRD err:000 text:hello stat:UNDELIV"
	cases := []struct {
		name string
		p    pdu.PDU
		want *Receipt
		text string
	}{
		{"tlvs win over text", pdu.PDU{ESMClass: 0x04, ShortMessage: []byte(textForm), TLVs: []pdu.TLV{
			{Tag: pdu.TagReceiptedMessageID, Value: pdu.CString("6699")}, {Tag: pdu.TagMessageState, Value: []byte{5}},
			{Tag: pdu.TagNetworkErrorCode, Value: []byte{3, 0, 17}}}},
			&Receipt{ID: "6699", State: Undeliverable, Err: "17"}, ""},
		{"text only", pdu.PDU{ESMClass: 0x04, ShortMessage: []byte(textForm)}, &Receipt{ID: "1A2B", State: Delivered, Err: "000"}, ""},
		{"text, other case and order", pdu.PDU{ESMClass: 0x04, ShortMessage: []byte("ID:77 STAT:EXPIRED ERR:009 Text:x")}, &Receipt{ID: "77", State: Expired, Err: "009"}, ""},
		{"receipted id without NUL", pdu.PDU{ESMClass: 0x04, TLVs: []pdu.TLV{{Tag: pdu.TagReceiptedMessageID, Value: []byte("abc")}}, ShortMessage: []byte("stat:REJECTD")},
			&Receipt{ID: "abc", State: Rejected}, ""},
		{"intermediate notification", pdu.PDU{ESMClass: 0x20, ShortMessage: []byte("id:5 stat:ENROUTE")}, &Receipt{ID: "5", State: Enroute}, ""},
		{"MO GSM", pdu.PDU{ShortMessage: []byte("TD")}, nil, "TD"},
		{"MO UCS2", pdu.PDU{DataCoding: 8, ShortMessage: []byte{0x90, 0x00, 0x8b, 0xa2}}, nil, "退订"},
		{"MO payload", pdu.PDU{DataCoding: 8, TLVs: []pdu.TLV{{Tag: pdu.TagMessagePayload, Value: []byte{0x90, 0x00, 0x8b, 0xa2}}}}, nil, "退订"},
		{"MO with UDH", pdu.PDU{ESMClass: 0x40, ShortMessage: []byte{5, 0, 3, 1, 2, 1, 'S', 'T', 'O', 'P'}}, nil, "STOP"},
		{"MO with SAR", pdu.PDU{ShortMessage: []byte("ST"), TLVs: []pdu.TLV{{Tag: pdu.TagSarMsgRefNum, Value: pdu.Uint16(300)},
			{Tag: pdu.TagSarTotalSegments, Value: []byte{2}}, {Tag: pdu.TagSarSegmentSeqnum, Value: []byte{1}}}}, nil, "ST"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.p.Command = pdu.DeliverSM
			in := ParseInbound(&c.p)
			if (in.Receipt == nil) != (c.want == nil) {
				t.Fatalf("receipt = %+v, want %+v", in.Receipt, c.want)
			}
			if c.want != nil && *in.Receipt != *c.want {
				t.Errorf("receipt = %+v, want %+v", *in.Receipt, *c.want)
			}
			if c.want == nil && in.Text != c.text {
				t.Errorf("text = %q, want %q", in.Text, c.text)
			}
			if c.name == "MO with UDH" && (in.Concat == nil || *in.Concat != text.Concat{Ref: 1, Total: 2, Seq: 1}) {
				t.Errorf("concat = %+v", in.Concat)
			}
			if c.name == "MO with SAR" && (in.Concat == nil || *in.Concat != text.Concat{Ref: 300, Total: 2, Seq: 1}) {
				t.Errorf("sar concat = %+v", in.Concat)
			}
			if c.name == "MO payload" && in.Concat != nil {
				t.Errorf("concat = %+v for a whole message", in.Concat)
			}
		})
	}
}

func TestSameID(t *testing.T) {
	cases := []struct {
		a, b string
		want bool
	}{
		{"1A2B", "6699", true}, {"6699", "1a2b", true}, {"abc", "ABC", true}, {"0042", "42", true},
		{"1A2B", "6698", false}, {"x1", "x2", false}, {"", "0", false},
	}
	for _, c := range cases {
		if got := SameID(c.a, c.b); got != c.want {
			t.Errorf("SameID(%q, %q) = %v", c.a, c.b, got)
		}
	}
}

func TestIDTracker(t *testing.T) {
	tr := newIDTracker(2)
	tr.add("1A2B")
	tr.add("ff")
	if got := tr.find("6699"); got != "1A2B" {
		t.Errorf("find(6699) = %q", got)
	}
	if got := tr.find("255"); got != "ff" {
		t.Errorf("find(255) = %q", got)
	}
	tr.add("10")
	if got := tr.find("1a2b"); got != "" {
		t.Errorf("oldest not forgotten: %q", got)
	}
	if got := tr.find("10"); got != "10" {
		t.Errorf("exact match beats base guessing: %q", got)
	}
}
