package smpp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/heed/heed/smpp/pdu"
)

// ErrOutbind is the cause logged for an outbind that was not accepted.
var ErrOutbind = errors.New("smpp: outbind refused")

// AcceptOutbind serves SMSCs that connect to ln to deliver (SMPP 3.4
// section 2.2.1): each connection must open with an outbind naming the
// client's SystemID (and Password, when one is configured); the client
// then binds as a receiver on that same connection, and what arrives on it
// goes to Config.Handler like anything else. A connection that opens
// otherwise is closed. Such receiver links are not re-dialled when they
// drop (the SMSC outbinds again); Close unbinds them with the others.
//
// AcceptOutbind returns nil once the client is closed (it closes ln), or
// the error that stopped ln.Accept.
func (c *Client) AcceptOutbind(ln net.Listener) error {
	stop := context.AfterFunc(c.life, func() { ln.Close() })
	defer stop()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if c.life.Err() != nil {
				return nil
			}
			return fmt.Errorf("smpp: outbind listener: %w", err)
		}
		c.stopped.Add(1)
		go func() {
			defer c.stopped.Done()
			c.outbound(conn)
		}()
	}
}

// outbound handles one connection an SMSC opened.
func (c *Client) outbound(conn net.Conn) {
	const role = "outbind receiver"
	unblock := context.AfterFunc(c.life, func() { conn.Close() })
	err := c.readOutbind(conn)
	if !unblock() {
		err = ErrClosed
	}
	if err != nil {
		conn.Close()
		c.st.bindFailures.Add(1)
		c.cfg.Logger.Warn("smpp outbind refused", "system_id", c.cfg.SystemID, "error", err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(c.life, c.cfg.ResponseTimeout)
	l, err := c.bindOn(ctx, conn, pdu.BindReceiver, role)
	cancel()
	if err != nil {
		c.st.bindFailures.Add(1)
		c.cfg.Logger.Warn("smpp bind failed", "system_id", c.cfg.SystemID, "bind", role, "error", err.Error())
		return
	}
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		l.close(ErrClosed)
		return
	}
	c.links[l] = struct{}{} // from here on, Close unbinds it
	c.mu.Unlock()
	c.st.binds.Add(1)
	if c.st.outbound.Swap(true) {
		c.st.rebinds.Add(1)
	}
	c.cfg.Logger.Info("smpp bound", "system_id", c.cfg.SystemID, "bind", role)
	select {
	case <-l.done:
		if !errors.Is(l.closed(), ErrClosed) {
			c.st.drops.Add(1)
		}
	case <-c.life.Done():
		l.close(ErrClosed)
	}
	c.mu.Lock()
	delete(c.links, l)
	c.mu.Unlock()
}

// readOutbind reads the first PDU of an SMSC's connection and checks that
// it is an outbind for this client.
func (c *Client) readOutbind(conn net.Conn) error {
	conn.SetReadDeadline(time.Now().Add(c.cfg.ResponseTimeout))
	// Read takes exactly one PDU from conn, leaving the rest to the link.
	p, _, err := pdu.Read(conn, nil)
	conn.SetReadDeadline(time.Time{})
	switch {
	case err != nil:
		return fmt.Errorf("%w: %w", ErrOutbind, err)
	case p.Command != pdu.Outbind:
		return fmt.Errorf("%w: opened with %v", ErrOutbind, p.Command)
	case p.SystemID != c.cfg.SystemID:
		return fmt.Errorf("%w: for another system_id", ErrOutbind)
	case c.cfg.Password != "" && p.Password != c.cfg.Password:
		return fmt.Errorf("%w: wrong password", ErrOutbind)
	}
	return nil
}
