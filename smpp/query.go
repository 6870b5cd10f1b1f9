package smpp

import (
	"context"

	"github.com/heed/heed/smpp/pdu"
)

// QueryResult is the SMSC's answer to query_sm.
type QueryResult struct {
	ID    string // the message id as the SMSC gave it back
	State State
	// FinalDate is when the message reached a final state, in the SMPP
	// time format (YYMMDDhhmmsstnnp); empty while it has not.
	FinalDate string
	// ErrorCode is the network error code, when the message failed.
	ErrorCode byte
}

// Query asks the SMSC for the state of a message it accepted, by the id
// Submit returned (one per part); the query names Config.Source as the
// sender, as SMPP 3.4 requires. It is how to settle a message whose
// receipt never came. An error is an [*Error]: Permanent with the status
// named (typically ESME_RQUERYFAIL, the SMSC does not know the id);
// NotSent or Unknown, either of which may simply be retried, since a
// query changes nothing.
func (c *Client) Query(ctx context.Context, messageID string) (QueryResult, error) {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return QueryResult{}, &Error{Kind: NotSent, Op: pdu.QuerySM.String(), Err: ErrClosed}
	}
	c.inflight.Add(1)
	c.mu.Unlock()
	defer c.inflight.Done()
	r, err := c.request(ctx, &pdu.PDU{Command: pdu.QuerySM, MessageID: messageID,
		SourceTON: c.cfg.SourceTON, SourceNPI: c.cfg.SourceNPI, Source: c.cfg.Source})
	if err != nil {
		return QueryResult{}, err
	}
	return QueryResult{ID: r.MessageID, State: State(r.MessageState), FinalDate: r.FinalDate, ErrorCode: r.ErrorCode}, nil
}
