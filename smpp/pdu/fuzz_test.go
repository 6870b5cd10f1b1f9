package pdu

import (
	"reflect"
	"testing"
)

// FuzzDecode checks that any input either fails to decode or decodes to a
// PDU that encodes back to a PDU equal to itself. Seeds live in
// testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	seeds := []*PDU{
		{Command: BindTransceiver, Sequence: 1, SystemID: "heed", Password: "pw", InterfaceVersion: 0x34},
		{Command: SubmitSM, Sequence: 2, Source: "95500", Dest: "8613800000000", ESMClass: 0x40, DataCoding: 0x18,
			ShortMessage: []byte{5, 0, 3, 1, 2, 1, 0x60, 0xa8}, TLVs: []TLV{{Tag: TagDestAddrSubunit, Value: []byte{1}}}},
		{Command: DeliverSM, Sequence: 3, ESMClass: 4, ShortMessage: []byte("id:1 stat:DELIVRD"), TLVs: []TLV{{Tag: TagReceiptedMessageID, Value: CString("1")}}},
		{Command: DataSM, Sequence: 4, TLVs: []TLV{{Tag: TagMessagePayload, Value: []byte("hello")}}},
		{Command: QuerySMResp, Sequence: 5, MessageID: "1", MessageState: 2},
		{Command: SubmitSMResp, Sequence: 6, MessageID: "abc"},
		{Command: EnquireLink, Sequence: 7},
	}
	for _, s := range seeds {
		b, err := s.Encode(nil)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Decode(b)
		if err != nil {
			return
		}
		out, err := p.Encode(nil)
		if err != nil {
			t.Fatalf("decoded PDU does not encode: %v", err)
		}
		q, err := Decode(out)
		if err != nil {
			t.Fatalf("re-encoded PDU does not decode: %v", err)
		}
		if !reflect.DeepEqual(p, q) {
			t.Fatalf("round trip changed the PDU\n%+v\n%+v", p, q)
		}
	})
}
