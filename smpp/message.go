package smpp

import (
	"github.com/heed/heed/smpp/pdu"
	"github.com/heed/heed/smpp/text"
)

// Message is one text to send.
type Message struct {
	To   string // destination address, international digits without '+'
	Text string
	// Flash sends the message as class 0, shown at once and not stored,
	// the way the connection's [Flash] settings say.
	Flash bool
	// RegisteredDelivery asks for a receipt: 1 on the final outcome, 2 on
	// failure only, 0 none.
	RegisteredDelivery byte
	// From overrides the connection's sender address.
	From string
}

// Result says what the SMSC accepted.
type Result struct {
	// IDs holds the SMSC's message id of each part accepted, in order.
	IDs []string
	// Parts is the number of submit_sm the message needed.
	Parts int
}

// Flash says how a connection marks a message as flash (class 0); operators
// differ, so it is set per SMSC.
type Flash struct {
	// UCS2 and GSM7 are the data_coding used for flash messages in each
	// coding. Zero means the defaults 0x18 and 0xF0.
	UCS2, GSM7 byte
	// Subunit sends dest_addr_subunit=1 (display) with the plain coding
	// instead of a class-0 data_coding.
	Subunit bool
}

// Concat chooses how long messages are split.
type Concat int

// Concatenation methods.
const (
	// UDH puts an 8-bit concatenation header in each part (esm_class 0x40).
	UDH Concat = iota
	// SAR sends each part with sar_msg_ref_num, sar_total_segments and
	// sar_segment_seqnum TLVs.
	SAR
	// Payload sends the whole text in one submit_sm as message_payload.
	Payload
)

// build turns m into the submit_sm PDUs to send, in order.
func (c *Client) build(m Message) []*pdu.PDU {
	coding, parts := text.Split(m.Text)
	dc := coding.DataCoding()
	var tlvs []pdu.TLV
	if m.Flash {
		switch {
		case c.cfg.Flash.Subunit:
			tlvs = append(tlvs, pdu.TLV{Tag: pdu.TagDestAddrSubunit, Value: []byte{1}})
		case coding == text.UCS2:
			dc = c.cfg.Flash.UCS2
		default:
			dc = c.cfg.Flash.GSM7
		}
	}
	from, ton, npi := c.cfg.Source, c.cfg.SourceTON, c.cfg.SourceNPI
	if m.From != "" && m.From != from {
		from = m.From
		if c.cfg.guessTON {
			ton, npi = sourceTON(from)
		}
	}
	base := pdu.PDU{
		Command:            pdu.SubmitSM,
		SourceTON:          ton,
		SourceNPI:          npi,
		Source:             from,
		DestTON:            c.cfg.DestTON,
		DestNPI:            c.cfg.DestNPI,
		Dest:               m.To,
		RegisteredDelivery: m.RegisteredDelivery,
		DataCoding:         dc,
		ServiceType:        c.cfg.ServiceType,
		ValidityPeriod:     c.cfg.ValidityPeriod,
	}
	if len(parts) == 1 {
		p := base
		p.ShortMessage = parts[0]
		p.TLVs = tlvs
		return []*pdu.PDU{&p}
	}
	if c.cfg.Concat == Payload {
		var all []byte
		for _, b := range parts {
			all = append(all, b...)
		}
		p := base
		p.TLVs = append(append([]pdu.TLV{}, tlvs...), pdu.TLV{Tag: pdu.TagMessagePayload, Value: all})
		return []*pdu.PDU{&p}
	}
	ref := uint16(c.ref.Add(1))
	out := make([]*pdu.PDU, len(parts))
	for i, b := range parts {
		p := base
		p.TLVs = append([]pdu.TLV{}, tlvs...)
		if c.cfg.Concat == SAR {
			p.ShortMessage = b
			p.TLVs = append(p.TLVs,
				pdu.TLV{Tag: pdu.TagSarMsgRefNum, Value: pdu.Uint16(ref)},
				pdu.TLV{Tag: pdu.TagSarTotalSegments, Value: []byte{byte(len(parts))}},
				pdu.TLV{Tag: pdu.TagSarSegmentSeqnum, Value: []byte{byte(i + 1)}})
		} else {
			p.ESMClass |= 0x40
			p.ShortMessage = append(text.UDH(byte(ref), byte(len(parts)), byte(i+1)), b...)
		}
		out[i] = &p
	}
	return out
}
