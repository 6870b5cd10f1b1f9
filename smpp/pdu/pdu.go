// Package pdu encodes and decodes SMPP 3.4 protocol data units.
//
// A [PDU] is the flat union of every body SMPP 3.4 defines: which of its
// fields travel on the wire depends on its Command. Optional parameters are
// kept as an ordered list of [TLV]s, unknown tags included, so a PDU that is
// decoded and encoded again keeps every byte of them.
//
// Decoding never panics and never allocates more than the command_length it
// was given, itself capped at [MaxLen]; a malformed PDU is an error that names
// the field at fault.
package pdu

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Command is an SMPP command_id.
type Command uint32

// The commands an ESME and an SMSC exchange.
const (
	GenericNack         Command = 0x80000000
	BindReceiver        Command = 0x00000001
	BindReceiverResp    Command = 0x80000001
	BindTransmitter     Command = 0x00000002
	BindTransmitterResp Command = 0x80000002
	QuerySM             Command = 0x00000003
	QuerySMResp         Command = 0x80000003
	SubmitSM            Command = 0x00000004
	SubmitSMResp        Command = 0x80000004
	DeliverSM           Command = 0x00000005
	DeliverSMResp       Command = 0x80000005
	Unbind              Command = 0x00000006
	UnbindResp          Command = 0x80000006
	BindTransceiver     Command = 0x00000009
	BindTransceiverResp Command = 0x80000009
	Outbind             Command = 0x0000000B
	EnquireLink         Command = 0x00000015
	EnquireLinkResp     Command = 0x80000015
	DataSM              Command = 0x00000103
	DataSMResp          Command = 0x80000103
)

var commandNames = map[Command]string{
	GenericNack: "generic_nack", BindReceiver: "bind_receiver", BindReceiverResp: "bind_receiver_resp",
	BindTransmitter: "bind_transmitter", BindTransmitterResp: "bind_transmitter_resp",
	QuerySM: "query_sm", QuerySMResp: "query_sm_resp", SubmitSM: "submit_sm", SubmitSMResp: "submit_sm_resp",
	DeliverSM: "deliver_sm", DeliverSMResp: "deliver_sm_resp", Unbind: "unbind", UnbindResp: "unbind_resp",
	BindTransceiver: "bind_transceiver", BindTransceiverResp: "bind_transceiver_resp", Outbind: "outbind",
	EnquireLink: "enquire_link", EnquireLinkResp: "enquire_link_resp", DataSM: "data_sm", DataSMResp: "data_sm_resp",
}

func (c Command) String() string {
	if n, ok := commandNames[c]; ok {
		return n
	}
	return fmt.Sprintf("command_0x%08X", uint32(c))
}

// IsResponse reports whether c is a response (bit 31 set).
func (c Command) IsResponse() bool { return c&0x80000000 != 0 }

// Response returns the response command for a request.
func (c Command) Response() Command { return c | 0x80000000 }

// Known reports whether c is a command of SMPP 3.4 this package can decode.
func (c Command) Known() bool { _, ok := commandNames[c]; return ok }

// HeaderLen is the size of the fixed PDU header.
const HeaderLen = 16

// MaxLen caps command_length. A message_payload TLV may carry up to 64 KiB;
// anything beyond that is treated as a corrupt or hostile stream.
const MaxLen = 70000

// Errors returned by decoding; each is wrapped with the name of the field at fault.
var (
	ErrLength       = errors.New("pdu: bad command_length")
	ErrShort        = errors.New("pdu: body ends inside a field")
	ErrUnterminated = errors.New("pdu: C-string not terminated")
	ErrTooLong      = errors.New("pdu: field longer than its maximum")
	ErrTrailing     = errors.New("pdu: bytes after the last field")
)

// PDU is one SMPP 3.4 protocol data unit.
type PDU struct {
	Command  Command
	Status   Status
	Sequence uint32

	// Bind and outbind.
	SystemID         string
	Password         string
	SystemType       string
	InterfaceVersion byte
	AddrTON          byte
	AddrNPI          byte
	AddressRange     string

	// submit_sm, deliver_sm, data_sm and query_sm.
	ServiceType          string
	SourceTON            byte
	SourceNPI            byte
	Source               string
	DestTON              byte
	DestNPI              byte
	Dest                 string
	ESMClass             byte
	ProtocolID           byte
	Priority             byte
	ScheduleDeliveryTime string
	ValidityPeriod       string
	RegisteredDelivery   byte
	ReplaceIfPresent     byte
	DataCoding           byte
	DefaultMsgID         byte
	ShortMessage         []byte

	// Responses and query_sm.
	MessageID    string
	FinalDate    string
	MessageState byte
	ErrorCode    byte

	// TLVs are the optional parameters in wire order.
	TLVs []TLV

	// Raw is the body of a command this package does not know, kept so
	// that it can be answered with generic_nack.
	Raw []byte
}

// Response returns an empty response to p with the same sequence number.
func (p *PDU) Response(status Status) *PDU {
	return &PDU{Command: p.Command.Response(), Status: status, Sequence: p.Sequence}
}

// Field limits of SMPP 3.4 (maximum length including the terminating NUL).
const (
	maxSystemID   = 16
	maxPassword   = 9
	maxSystemType = 13
	maxAddrRange  = 41
	maxService    = 6
	maxAddr       = 21
	maxAddrData   = 65
	maxTime       = 17
	maxMessageID  = 65
	maxShortMsg   = 254
)

// Encode appends the wire form of p to b.
func (p *PDU) Encode(b []byte) ([]byte, error) {
	start := len(b)
	b = append(b, make([]byte, HeaderLen)...)
	var err error
	w := func(s string, max int, name string) {
		if err == nil && len(s)+1 > max {
			err = fmt.Errorf("%s: %w (%d > %d)", name, ErrTooLong, len(s)+1, max)
		}
		b = append(b, s...)
		b = append(b, 0)
	}
	switch p.Command {
	case BindReceiver, BindTransmitter, BindTransceiver:
		w(p.SystemID, maxSystemID, "system_id")
		w(p.Password, maxPassword, "password")
		w(p.SystemType, maxSystemType, "system_type")
		b = append(b, p.InterfaceVersion, p.AddrTON, p.AddrNPI)
		w(p.AddressRange, maxAddrRange, "address_range")
	case BindReceiverResp, BindTransmitterResp, BindTransceiverResp:
		if p.Status == OK || p.SystemID != "" || len(p.TLVs) > 0 {
			w(p.SystemID, maxSystemID, "system_id")
			b = appendTLVs(b, p.TLVs)
		}
	case Outbind:
		w(p.SystemID, maxSystemID, "system_id")
		w(p.Password, maxPassword, "password")
	case SubmitSM, DeliverSM:
		w(p.ServiceType, maxService, "service_type")
		b = append(b, p.SourceTON, p.SourceNPI)
		w(p.Source, maxAddr, "source_addr")
		b = append(b, p.DestTON, p.DestNPI)
		w(p.Dest, maxAddr, "destination_addr")
		b = append(b, p.ESMClass, p.ProtocolID, p.Priority)
		w(p.ScheduleDeliveryTime, maxTime, "schedule_delivery_time")
		w(p.ValidityPeriod, maxTime, "validity_period")
		if err == nil && len(p.ShortMessage) > maxShortMsg {
			err = fmt.Errorf("short_message: %w (%d > %d)", ErrTooLong, len(p.ShortMessage), maxShortMsg)
		}
		b = append(b, p.RegisteredDelivery, p.ReplaceIfPresent, p.DataCoding, p.DefaultMsgID, byte(len(p.ShortMessage)))
		b = append(b, p.ShortMessage...)
		b = appendTLVs(b, p.TLVs)
	case SubmitSMResp, DeliverSMResp, DataSMResp:
		if p.Status == OK || p.MessageID != "" || len(p.TLVs) > 0 {
			w(p.MessageID, maxMessageID, "message_id")
			b = appendTLVs(b, p.TLVs)
		}
	case DataSM:
		w(p.ServiceType, maxService, "service_type")
		b = append(b, p.SourceTON, p.SourceNPI)
		w(p.Source, maxAddrData, "source_addr")
		b = append(b, p.DestTON, p.DestNPI)
		w(p.Dest, maxAddrData, "destination_addr")
		b = append(b, p.ESMClass, p.RegisteredDelivery, p.DataCoding)
		b = appendTLVs(b, p.TLVs)
	case QuerySM:
		w(p.MessageID, maxMessageID, "message_id")
		b = append(b, p.SourceTON, p.SourceNPI)
		w(p.Source, maxAddr, "source_addr")
	case QuerySMResp:
		if p.Status == OK || p.MessageID != "" || p.FinalDate != "" || p.MessageState != 0 || p.ErrorCode != 0 {
			w(p.MessageID, maxMessageID, "message_id")
			w(p.FinalDate, maxTime, "final_date")
			b = append(b, p.MessageState, p.ErrorCode)
		}
	case GenericNack, Unbind, UnbindResp, EnquireLink, EnquireLinkResp:
	default:
		b = append(b, p.Raw...)
	}
	if err != nil {
		return b[:start], fmt.Errorf("pdu: encode %v: %w", p.Command, err)
	}
	n := len(b) - start
	if n > MaxLen {
		return b[:start], fmt.Errorf("pdu: encode %v: %w (%d bytes)", p.Command, ErrLength, n)
	}
	h := b[start:]
	binary.BigEndian.PutUint32(h[0:], uint32(n))
	binary.BigEndian.PutUint32(h[4:], uint32(p.Command))
	binary.BigEndian.PutUint32(h[8:], uint32(p.Status))
	binary.BigEndian.PutUint32(h[12:], p.Sequence)
	return b, nil
}

func appendTLVs(b []byte, ts []TLV) []byte {
	for _, t := range ts {
		b = binary.BigEndian.AppendUint16(b, uint16(t.Tag))
		b = binary.BigEndian.AppendUint16(b, uint16(len(t.Value)))
		b = append(b, t.Value...)
	}
	return b
}

// ReadLen reads a header's command_length and checks it, so that a reader
// can size its buffer before reading the rest.
func ReadLen(h []byte) (int, error) {
	if len(h) < 4 {
		return 0, fmt.Errorf("header: %w", ErrShort)
	}
	n := binary.BigEndian.Uint32(h)
	if n < HeaderLen || n > MaxLen {
		return 0, fmt.Errorf("command_length %d: %w (want %d..%d)", n, ErrLength, HeaderLen, MaxLen)
	}
	return int(n), nil
}

// Read reads one PDU from r. buf is reused when large enough; the returned
// PDU does not alias it.
func Read(r io.Reader, buf []byte) (*PDU, []byte, error) {
	if cap(buf) < HeaderLen {
		buf = make([]byte, 0, 512)
	}
	buf = buf[:HeaderLen]
	if _, err := io.ReadFull(r, buf); err != nil {
		return nil, buf, err
	}
	n, err := ReadLen(buf)
	if err != nil {
		return nil, buf, err
	}
	if cap(buf) < n {
		nb := make([]byte, n)
		copy(nb, buf)
		buf = nb
	}
	buf = buf[:n]
	if _, err := io.ReadFull(r, buf[HeaderLen:]); err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, buf, err
	}
	p, err := Decode(buf)
	return p, buf, err
}

// Decode decodes exactly one PDU from b, which must hold command_length bytes.
// Strings and byte fields are copied out of b.
func Decode(b []byte) (*PDU, error) {
	n, err := ReadLen(b)
	if err != nil {
		return nil, fmt.Errorf("pdu: %w", err)
	}
	if n != len(b) {
		return nil, fmt.Errorf("pdu: command_length %d but %d bytes: %w", n, len(b), ErrLength)
	}
	if len(b) < HeaderLen {
		return nil, fmt.Errorf("pdu: header: %w", ErrShort)
	}
	p := &PDU{
		Command:  Command(binary.BigEndian.Uint32(b[4:])),
		Status:   Status(binary.BigEndian.Uint32(b[8:])),
		Sequence: binary.BigEndian.Uint32(b[12:]),
	}
	d := decoder{b: b[HeaderLen:]}
	switch p.Command {
	case BindReceiver, BindTransmitter, BindTransceiver:
		p.SystemID = d.cstr("system_id", maxSystemID)
		p.Password = d.cstr("password", maxPassword)
		p.SystemType = d.cstr("system_type", maxSystemType)
		p.InterfaceVersion = d.byte("interface_version")
		p.AddrTON = d.byte("addr_ton")
		p.AddrNPI = d.byte("addr_npi")
		p.AddressRange = d.cstr("address_range", maxAddrRange)
	case BindReceiverResp, BindTransmitterResp, BindTransceiverResp:
		if len(d.b) > 0 {
			p.SystemID = d.cstr("system_id", maxSystemID)
			p.TLVs = d.tlvs()
		}
	case Outbind:
		p.SystemID = d.cstr("system_id", maxSystemID)
		p.Password = d.cstr("password", maxPassword)
	case SubmitSM, DeliverSM:
		p.ServiceType = d.cstr("service_type", maxService)
		p.SourceTON = d.byte("source_addr_ton")
		p.SourceNPI = d.byte("source_addr_npi")
		p.Source = d.cstr("source_addr", maxAddr)
		p.DestTON = d.byte("dest_addr_ton")
		p.DestNPI = d.byte("dest_addr_npi")
		p.Dest = d.cstr("destination_addr", maxAddr)
		p.ESMClass = d.byte("esm_class")
		p.ProtocolID = d.byte("protocol_id")
		p.Priority = d.byte("priority_flag")
		p.ScheduleDeliveryTime = d.cstr("schedule_delivery_time", maxTime)
		p.ValidityPeriod = d.cstr("validity_period", maxTime)
		p.RegisteredDelivery = d.byte("registered_delivery")
		p.ReplaceIfPresent = d.byte("replace_if_present_flag")
		p.DataCoding = d.byte("data_coding")
		p.DefaultMsgID = d.byte("sm_default_msg_id")
		l := int(d.byte("sm_length"))
		p.ShortMessage = d.bytes("short_message", l)
		p.TLVs = d.tlvs()
	case SubmitSMResp, DeliverSMResp, DataSMResp:
		if len(d.b) > 0 {
			p.MessageID = d.cstr("message_id", maxMessageID)
			p.TLVs = d.tlvs()
		}
	case DataSM:
		p.ServiceType = d.cstr("service_type", maxService)
		p.SourceTON = d.byte("source_addr_ton")
		p.SourceNPI = d.byte("source_addr_npi")
		p.Source = d.cstr("source_addr", maxAddrData)
		p.DestTON = d.byte("dest_addr_ton")
		p.DestNPI = d.byte("dest_addr_npi")
		p.Dest = d.cstr("destination_addr", maxAddrData)
		p.ESMClass = d.byte("esm_class")
		p.RegisteredDelivery = d.byte("registered_delivery")
		p.DataCoding = d.byte("data_coding")
		p.TLVs = d.tlvs()
	case QuerySM:
		p.MessageID = d.cstr("message_id", maxMessageID)
		p.SourceTON = d.byte("source_addr_ton")
		p.SourceNPI = d.byte("source_addr_npi")
		p.Source = d.cstr("source_addr", maxAddr)
	case QuerySMResp:
		if len(d.b) > 0 {
			p.MessageID = d.cstr("message_id", maxMessageID)
			p.FinalDate = d.cstr("final_date", maxTime)
			p.MessageState = d.byte("message_state")
			p.ErrorCode = d.byte("error_code")
		}
	case GenericNack, Unbind, UnbindResp, EnquireLink, EnquireLinkResp:
	default:
		p.Raw = append([]byte(nil), d.b...)
		d.b = nil
	}
	if d.err == nil && len(d.b) > 0 {
		d.err = fmt.Errorf("%d bytes: %w", len(d.b), ErrTrailing)
	}
	if d.err != nil {
		return nil, fmt.Errorf("pdu: decode %v: %w", p.Command, d.err)
	}
	return p, nil
}

// decoder reads fields in order and remembers the first error, so the
// per-command layouts above stay readable.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) byte(name string) byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) < 1 {
		d.err = fmt.Errorf("%s: %w", name, ErrShort)
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) cstr(name string, max int) string {
	if d.err != nil {
		return ""
	}
	lim := min(max, len(d.b))
	for i := range lim {
		if d.b[i] == 0 {
			s := string(d.b[:i])
			d.b = d.b[i+1:]
			return s
		}
	}
	if lim == max {
		d.err = fmt.Errorf("%s: %w (no NUL within %d bytes)", name, ErrTooLong, max)
	} else {
		d.err = fmt.Errorf("%s: %w", name, ErrUnterminated)
	}
	return ""
}

func (d *decoder) bytes(name string, n int) []byte {
	if d.err != nil {
		return nil
	}
	if n > len(d.b) {
		d.err = fmt.Errorf("%s: %w (length %d, %d left)", name, ErrShort, n, len(d.b))
		return nil
	}
	if n == 0 {
		return nil
	}
	v := append([]byte(nil), d.b[:n]...)
	d.b = d.b[n:]
	return v
}

func (d *decoder) tlvs() []TLV {
	var ts []TLV
	for d.err == nil && len(d.b) > 0 {
		if len(d.b) < 4 {
			d.err = fmt.Errorf("TLV header: %w", ErrShort)
			return nil
		}
		tag := Tag(binary.BigEndian.Uint16(d.b))
		l := int(binary.BigEndian.Uint16(d.b[2:]))
		d.b = d.b[4:]
		if l > len(d.b) {
			d.err = fmt.Errorf("TLV 0x%04X: %w (length %d, %d left)", uint16(tag), ErrShort, l, len(d.b))
			return nil
		}
		ts = append(ts, TLV{Tag: tag, Value: append([]byte{}, d.b[:l]...)})
		d.b = d.b[l:]
	}
	return ts
}
