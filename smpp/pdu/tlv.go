package pdu

import "encoding/binary"

// Tag is a TLV parameter tag.
type Tag uint16

// Tags heed reads or writes; any other tag is kept as it came.
const (
	TagDestAddrSubunit    Tag = 0x0005
	TagSCInterfaceVersion Tag = 0x0210
	TagSarMsgRefNum       Tag = 0x020C
	TagSarTotalSegments   Tag = 0x020E
	TagSarSegmentSeqnum   Tag = 0x020F
	TagReceiptedMessageID Tag = 0x001E
	TagNetworkErrorCode   Tag = 0x0423
	TagMessagePayload     Tag = 0x0424
	TagMessageState       Tag = 0x0427
	TagUserMessageRef     Tag = 0x0204
)

// TLV is one optional parameter.
type TLV struct {
	Tag   Tag
	Value []byte
}

// Get returns the value of the first TLV with tag t.
func (p *PDU) Get(t Tag) ([]byte, bool) {
	for _, v := range p.TLVs {
		if v.Tag == t {
			return v.Value, true
		}
	}
	return nil, false
}

// Set replaces the value of the first TLV with tag t, or appends one.
func (p *PDU) Set(t Tag, v []byte) {
	for i := range p.TLVs {
		if p.TLVs[i].Tag == t {
			p.TLVs[i].Value = v
			return
		}
	}
	p.TLVs = append(p.TLVs, TLV{Tag: t, Value: v})
}

// Uint16 returns a two-byte big-endian value.
func Uint16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }

// CString returns s with its terminating NUL, as TLVs such as
// receipted_message_id carry it.
func CString(s string) []byte { return append([]byte(s), 0) }

// ParseCString returns a TLV value without its terminating NUL, tolerating
// peers that leave the NUL out.
func ParseCString(v []byte) string {
	for i, c := range v {
		if c == 0 {
			return string(v[:i])
		}
	}
	return string(v)
}

// ParseUint returns an integer TLV value of 1, 2 or 4 bytes.
func ParseUint(v []byte) (uint32, bool) {
	switch len(v) {
	case 1:
		return uint32(v[0]), true
	case 2:
		return uint32(binary.BigEndian.Uint16(v)), true
	case 4:
		return binary.BigEndian.Uint32(v), true
	}
	return 0, false
}
