package pdu

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

func roundTrip(t testing.TB, p *PDU) *PDU {
	b, err := p.Encode(nil)
	if err != nil {
		t.Fatalf("encode %v: %v", p.Command, err)
	}
	q, err := Decode(b)
	if err != nil {
		t.Fatalf("decode %v: %v", p.Command, err)
	}
	return q
}

func TestRoundTrip(t *testing.T) {
	unknownTLV := TLV{Tag: 0x1401, Value: []byte{1, 2, 3}}
	cases := []*PDU{
		{Command: BindTransceiver, Sequence: 1, SystemID: "heed", Password: "secret", SystemType: "VMA", InterfaceVersion: 0x34, AddrTON: 1, AddrNPI: 1, AddressRange: "^86"},
		{Command: BindTransmitter, Sequence: 2, SystemID: "a", Password: "b"},
		{Command: BindReceiver, Sequence: 3, SystemID: "a", Password: "b"},
		{Command: BindTransceiverResp, Sequence: 1, SystemID: "SMSC", TLVs: []TLV{{Tag: TagSCInterfaceVersion, Value: []byte{0x34}}}},
		{Command: BindTransmitterResp, Sequence: 2, SystemID: "SMSC"},
		{Command: BindReceiverResp, Sequence: 3, Status: RInvPaswd},
		{Command: Outbind, Sequence: 4, SystemID: "SMSC", Password: "pw"},
		{Command: SubmitSM, Sequence: 5, ServiceType: "CMT", SourceTON: 5, SourceNPI: 0, Source: "95500", DestTON: 1, DestNPI: 1, Dest: "8613800000000",
			ESMClass: 0x40, ProtocolID: 0, Priority: 1, ScheduleDeliveryTime: "", ValidityPeriod: "000001000000000R", RegisteredDelivery: 1, DataCoding: 0x18,
			ShortMessage: []byte{5, 0, 3, 7, 2, 1, 0x60, 0xa8}, TLVs: []TLV{{Tag: TagDestAddrSubunit, Value: []byte{1}}, unknownTLV}},
		{Command: SubmitSMResp, Sequence: 5, MessageID: "0A1B2C"},
		{Command: SubmitSMResp, Sequence: 6, Status: RThrottled},
		{Command: DeliverSM, Sequence: 7, Source: "8613800000000", Dest: "95500", ESMClass: 4, ShortMessage: []byte("id:1 stat:DELIVRD"),
			TLVs: []TLV{{Tag: TagReceiptedMessageID, Value: CString("1")}, {Tag: TagMessageState, Value: []byte{2}}}},
		{Command: DeliverSMResp, Sequence: 7},
		{Command: DataSM, Sequence: 8, Source: "95500", Dest: "8613800000000", DataCoding: 8, TLVs: []TLV{{Tag: TagMessagePayload, Value: bytes.Repeat([]byte{0x4e, 0x2d}, 500)}}},
		{Command: DataSMResp, Sequence: 8, MessageID: "x", TLVs: []TLV{unknownTLV}},
		{Command: QuerySM, Sequence: 9, MessageID: "42", Source: "95500"},
		{Command: QuerySMResp, Sequence: 9, MessageID: "42", FinalDate: "260101120000000+", MessageState: 2},
		{Command: QuerySMResp, Sequence: 10, Status: RQueryFail},
		{Command: EnquireLink, Sequence: 11},
		{Command: EnquireLinkResp, Sequence: 11},
		{Command: Unbind, Sequence: 12},
		{Command: UnbindResp, Sequence: 12},
		{Command: GenericNack, Sequence: 13, Status: RInvCmdID},
		{Command: 0x00000111, Sequence: 14, Raw: []byte{9, 9, 9}},
	}
	for i, p := range cases {
		t.Run(p.Command.String(), func(t *testing.T) {
			// The wire bytes are pinned so that a change to the encoding is
			// a reviewed change to testdata/golden.
			b, err := p.Encode(nil)
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "golden", fmt.Sprintf("%02d-%s.hex", i, p.Command))
			if *update {
				if err := os.WriteFile(golden, []byte(hex.EncodeToString(b)+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if got := hex.EncodeToString(b); got != strings.TrimSpace(string(want)) {
				t.Errorf("wire bytes changed\n got %s\nwant %s", got, want)
			}
			q := roundTrip(t, p)
			if !reflect.DeepEqual(p, q) {
				t.Errorf("round trip changed the PDU\n got %+v\nwant %+v", q, p)
			}
		})
	}
}

// TestWireBytes pins the encoding against a hand-assembled enquire_link and
// submit_sm, so the codec is not only checked against itself.
func TestWireBytes(t *testing.T) {
	b, _ := (&PDU{Command: EnquireLink, Sequence: 0x01020304}).Encode(nil)
	if got, want := hex.EncodeToString(b), "00000010000000150000000001020304"; got != want {
		t.Errorf("enquire_link = %s, want %s", got, want)
	}
	p := &PDU{Command: SubmitSM, Sequence: 1, Source: "1", Dest: "2", DataCoding: 8, ShortMessage: []byte{0x4e, 0x2d}}
	b, _ = p.Encode(nil)
	want := "00000025" + "00000004" + "00000000" + "00000001" + // header, 37 bytes
		"00" + "0000" + "3100" + "0000" + "3200" + "000000" + "00" + "00" + "00" + "00" + "08" + "00" + "02" + "4e2d"
	if got := hex.EncodeToString(b); got != want {
		t.Errorf("submit_sm = %s\nwant        %s", got, want)
	}
}

func TestDecodeErrors(t *testing.T) {
	valid, _ := (&PDU{Command: SubmitSM, Sequence: 1, Source: "95500", Dest: "861", ShortMessage: []byte("hi")}).Encode(nil)
	setLen := func(b []byte) []byte {
		n := len(b)
		b[0], b[1], b[2], b[3] = byte(n>>24), byte(n>>16), byte(n>>8), byte(n)
		return b
	}
	cases := []struct {
		name  string
		in    []byte
		err   error
		field string
	}{
		{"short header", []byte{0, 0, 0}, ErrShort, "header"},
		{"length below 16", []byte{0, 0, 0, 4, 0, 0, 0, 0x15, 0, 0, 0, 0, 0, 0, 0, 1}, ErrLength, "command_length 4"},
		{"length huge", []byte{0x7f, 0xff, 0xff, 0xff, 0, 0, 0, 0x15, 0, 0, 0, 0, 0, 0, 0, 1}, ErrLength, "command_length"},
		{"length mismatch", append(append([]byte{}, valid...), 0), ErrLength, "command_length"},
		{"unterminated source", setLen(append([]byte{}, valid[:16+1+2+3]...)), ErrUnterminated, "source_addr"},
		{"oversized system_id", setLen(append(hexBytes("00000000000000090000000000000001"), bytes.Repeat([]byte{'a'}, 30)...)), ErrTooLong, "system_id"},
		{"sm_length beyond body", func() []byte { b := append([]byte{}, valid...); b[len(b)-3] = 200; return b }(), ErrShort, "short_message"},
		{"truncated TLV", setLen(append(append([]byte{}, valid...), 0x04, 0x24, 0x00, 0x10, 1)), ErrShort, "TLV 0x0424"},
		{"trailing bytes", setLen(append(hexBytes("00000000000000150000000000000001"), 1)), ErrTrailing, "enquire_link"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decode(c.in)
			if !errors.Is(err, c.err) {
				t.Fatalf("err = %v, want %v", err, c.err)
			}
			if !strings.Contains(err.Error(), c.field) {
				t.Errorf("err %q does not name %q", err, c.field)
			}
		})
	}
}

func TestEncodeRejectsOversized(t *testing.T) {
	_, err := (&PDU{Command: SubmitSM, ShortMessage: make([]byte, 255)}).Encode(nil)
	if !errors.Is(err, ErrTooLong) || !strings.Contains(err.Error(), "short_message") {
		t.Errorf("err = %v", err)
	}
	_, err = (&PDU{Command: BindTransceiver, Password: "0123456789"}).Encode(nil)
	if !errors.Is(err, ErrTooLong) || !strings.Contains(err.Error(), "password") {
		t.Errorf("err = %v", err)
	}
}

func TestRead(t *testing.T) {
	var stream []byte
	for i := uint32(1); i <= 3; i++ {
		stream, _ = (&PDU{Command: SubmitSM, Sequence: i, Dest: "1", ShortMessage: bytes.Repeat([]byte{'x'}, int(i)*80)}).Encode(stream)
	}
	r := bytes.NewReader(stream)
	var buf []byte
	for i := uint32(1); i <= 3; i++ {
		var p *PDU
		var err error
		p, buf, err = Read(r, buf)
		if err != nil || p.Sequence != i || len(p.ShortMessage) != int(i)*80 {
			t.Fatalf("pdu %d: %+v %v", i, p, err)
		}
	}
	// A huge declared length is refused before anything is allocated for it.
	_, _, err := Read(bytes.NewReader(hexBytes("ffffffff00000004000000000000000100")), nil)
	if !errors.Is(err, ErrLength) {
		t.Errorf("err = %v, want ErrLength", err)
	}
}

func TestStatus(t *testing.T) {
	if got := RThrottled.String(); got != "0x58 ESME_RTHROTTLED" {
		t.Errorf("String = %q", got)
	}
	for s, want := range map[Status]bool{RThrottled: true, RMsgQFul: true, RXTAppn: true, RSysErr: true, RInvDstAdr: false, RSubmitFail: false} {
		if s.Temporary() != want {
			t.Errorf("%v.Temporary() = %v", s, !want)
		}
	}
}

func hexBytes(s string) []byte {
	b, err := hex.DecodeString(s)
	if err != nil {
		panic(err)
	}
	return b
}
