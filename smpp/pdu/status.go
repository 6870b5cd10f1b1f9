package pdu

import "fmt"

// Status is an SMPP command_status.
type Status uint32

// Command statuses heed names; others print as hex.
const (
	OK               Status = 0x00
	RInvMsgLen       Status = 0x01
	RInvCmdLen       Status = 0x02
	RInvCmdID        Status = 0x03
	RInvBndSts       Status = 0x04
	RAlyBnd          Status = 0x05
	RSysErr          Status = 0x08
	RInvSrcAdr       Status = 0x0A
	RInvDstAdr       Status = 0x0B
	RInvMsgID        Status = 0x0C
	RBindFail        Status = 0x0D
	RInvPaswd        Status = 0x0E
	RInvSysID        Status = 0x0F
	RMsgQFul         Status = 0x14
	RInvEsmClass     Status = 0x43
	RSubmitFail      Status = 0x45
	RInvDataCoding   Status = 0x104 // SMPP 5.0, met in the wild.
	RThrottled       Status = 0x58
	RInvSched        Status = 0x61
	RInvExpiry       Status = 0x62
	RXTAppn          Status = 0x64
	RXPAppn          Status = 0x65
	RXRAppn          Status = 0x66
	RQueryFail       Status = 0x67
	RInvOptParStream Status = 0xC0
	ROptParNotAllwd  Status = 0xC1
	RInvParLen       Status = 0xC2
	RMissingOptParam Status = 0xC3
	RInvOptParamVal  Status = 0xC4
	RDeliveryFailure Status = 0xFE
	RUnknownErr      Status = 0xFF
)

var statusNames = map[Status]string{
	OK: "ESME_ROK", RInvMsgLen: "ESME_RINVMSGLEN", RInvCmdLen: "ESME_RINVCMDLEN", RInvCmdID: "ESME_RINVCMDID",
	RInvBndSts: "ESME_RINVBNDSTS", RAlyBnd: "ESME_RALYBND", RSysErr: "ESME_RSYSERR", RInvSrcAdr: "ESME_RINVSRCADR",
	RInvDstAdr: "ESME_RINVDSTADR", RInvMsgID: "ESME_RINVMSGID", RBindFail: "ESME_RBINDFAIL",
	RInvPaswd: "ESME_RINVPASWD", RInvSysID: "ESME_RINVSYSID", RMsgQFul: "ESME_RMSGQFUL",
	RInvEsmClass: "ESME_RINVESMCLASS", RSubmitFail: "ESME_RSUBMITFAIL", RInvDataCoding: "ESME_RINVDCS",
	RThrottled: "ESME_RTHROTTLED", RInvSched: "ESME_RINVSCHED", RInvExpiry: "ESME_RINVEXPIRY",
	RXTAppn: "ESME_RX_T_APPN", RXPAppn: "ESME_RX_P_APPN", RXRAppn: "ESME_RX_R_APPN", RQueryFail: "ESME_RQUERYFAIL",
	RInvOptParStream: "ESME_RINVOPTPARSTREAM", ROptParNotAllwd: "ESME_ROPTPARNOTALLWD", RInvParLen: "ESME_RINVPARLEN",
	RMissingOptParam: "ESME_RMISSINGOPTPARAM", RInvOptParamVal: "ESME_RINVOPTPARAMVAL",
	RDeliveryFailure: "ESME_RDELIVERYFAILURE", RUnknownErr: "ESME_RUNKNOWNERR",
}

// String names the status with its code, e.g. "0x58 ESME_RTHROTTLED".
func (s Status) String() string {
	if n, ok := statusNames[s]; ok {
		return fmt.Sprintf("0x%02X %s", uint32(s), n)
	}
	return fmt.Sprintf("0x%02X", uint32(s))
}

// Temporary reports whether a request refused with s may be sent again
// later: the queue is full, the peer throttles, or it failed for now.
// Everything else is permanent for that message.
func (s Status) Temporary() bool {
	switch s {
	case RMsgQFul, RThrottled, RXTAppn, RSysErr:
		return true
	}
	return false
}
