// Package smpp is heed's SMPP 3.4 ESME: it binds to an SMSC and submits
// text messages, flash (class 0) ones included, and hands back delivery
// receipts and mobile-originated messages. It knows nothing of the ledger.
//
// Sub-packages: [github.com/heed/heed/smpp/pdu] is the wire codec,
// [github.com/heed/heed/smpp/text] the alphabets and splitting, and
// [github.com/heed/heed/smpp/sim] an SMSC simulator for tests and `heed smsc`.
//
// # Sending
//
// A [Client] is one SMSC connection with its own credentials, sender,
// window, TPS limit and flash coding; a [Pool] holds several by name.
//
//	c, err := smpp.Dial(ctx, smpp.Config{
//		Addr: "smsc.example:2775", SystemID: "heed", Password: "…",
//		Source: "95500", Window: 10, TPS: 50,
//		Handler: func(in smpp.Inbound) error { … },
//	})
//	res, err := c.Submit(ctx, smpp.Message{To: "86…", Text: "…", Flash: true, RegisteredDelivery: 1})
//	defer c.Close(ctx) // unbinds and waits for unbind_resp
//
// Dial fails at once if the first bind is refused (the error names the
// status, e.g. ESME_RINVPASWD); [New] instead keeps trying in the
// background. Either way the client re-binds with backoff whenever the link
// drops, and sends enquire_link to notice a dead one.
//
// Submit picks GSM 7-bit or UCS2, splits long text (UDH by default; SAR
// TLVs or message_payload per [Config.Concat]), and returns the SMSC's id of
// each part in [Result]. A part refused with a temporary status (0x14, 0x58,
// 0x64, 0x08) is retried after a pause that doubles each time.
//
// [Client.Query] sends query_sm for an id Submit returned and gives the
// message's [State] (and final date and network error code): the way to
// settle a message whose receipt never came.
//
// # Outbind
//
// An SMSC that delivers by outbind (SMPP 3.4 section 2.2.1) connects to
// the ESME instead: [Client.AcceptOutbind] serves a listener, checks that
// the outbind names the client's SystemID and Password, binds as receiver
// on that connection and hands what arrives to Config.Handler. Submits
// never go over such a link; the SMSC outbinds again if it drops.
//
// # Errors
//
// Every failure is an [*Error]; branch on its [Kind]:
//   - [NotSent]: the SMSC did not take the message (no bind, throttled
//     past MaxRetries, client closed). Safe to submit again.
//   - [Permanent]: refused with a permanent status, named in the error.
//   - [Unknown]: written, but the link dropped or the answer timed out, or
//     a later part failed after earlier ones went out. Never resend
//     blindly; a receipt (or [Client.Query]) may still settle it.
//
// A response timeout (Config.ResponseTimeout, or the caller's context
// ending) does not close the link: the other requests in flight on it
// would all turn Unknown, and a slow SMSC is not a dead one (enquire_link
// finds those). A late answer cannot be taken for another request's:
// sequence numbers count up per link and wrap only after 2^31 requests,
// a number whose request still waits is skipped at the wrap, and a new
// link's numbers never meet an old connection's answers. The timed-out
// request keeps its sequence number and its window slot until its answer
// comes (the SMSC may still hold it, and the window bounds what the SMSC
// holds); the late answer is dropped and counted in Stats.Late. If every
// slot of the window is held that way, the SMSC is answering nothing, and
// the link is closed and bound again.
//
// Once Close has written unbind, the SMSC closing the connection (as it
// does right after unbind_resp) is the end that was asked for, not a
// dropped link: it is not logged as one, counted in Stats.Drops or bound
// again, and the link's close reason wraps [ErrClosed] and [ErrUnbound],
// never [ErrLinkDropped]. A request still unanswered then is Unknown all
// the same; an SMSC that closes without unbind_resp makes Close return an
// error wrapping ErrUnbound.
//
// [Client.Stats] counts accepted parts, retries, failures by kind, binds
// and dropped links, for metrics; nothing in them identifies a number.
//
// # Receipts and MO
//
// Config.Handler gets every deliver_sm and data_sm as an [Inbound]. For a
// delivery receipt, Inbound.Receipt holds the id, state and error, read
// from the TLVs first and the text form second; Receipt.SubmitID is the id
// as Submit returned it when the two differ only in base (hex vs decimal),
// and [SameID] compares ids the same tolerant way. On a transceiver the
// id is known before any receipt behind its submit_sm_resp is read; with
// TransmitterReceiver the receipt comes on the other connection and can
// outrun the response, and after a restart the submit was never seen: in
// both cases SubmitID is empty and SameID against the stored id is the way
// to match. Anything else (an MO
// message such as "TD") comes with its decoded Text, the TON and NPI of
// both addresses (a national "13912340002" has TON 2), and Inbound.Concat
// when it is one part of a longer message; a [Reassembler] joins the
// parts, bounded and with a timeout. The SMSC gets
// deliver_sm_resp only after the handler returns, and ESME_RX_T_APPN (try
// later) if it returned an error.
//
// # Simulator
//
// Other packages' tests can run an SMSC in-process:
//
//	s, _ := sim.Start("127.0.0.1:0", sim.Config{ReceiptDelay: 10 * time.Millisecond})
//	defer s.Close()
//	c, _ := smpp.Dial(ctx, smpp.Config{Addr: s.Addr(), SystemID: "heed"})
//	s.Inject("heed", sim.MO{From: "86…", To: "95500", Text: "TD"})
//	s.Stats().Submits
//
// Faults on demand: SetThrottleEvery, SetDropEvery, SetResponseDelay,
// SetReceipts (delay and failure ratio), DropAll. s.Outbind(ctx, addr,
// systemID, password) connects to an ESME's outbind listener.
//
// Like a real SMSC, the simulator keeps a receipt that falls due while
// the ESME has no receiving bind (sim.Config.ReceiptQueue, per system_id,
// bounded; Stats.ReceiptsLost counts what the bound dropped) and delivers
// it on the ESME's next receiver or transceiver bind. A receipt written
// but not answered before the session ended, or answered with an error
// status, is sent again. So receipts survive a heed restart; after one,
// Receipt.SubmitID is empty (the new client never saw the submit) and
// [SameID] matches Receipt.ID against the stored id.
package smpp
