package smpp

import (
	"context"
	"errors"
	"fmt"
)

// ErrNoConnection is returned for a name a [Pool] does not hold.
var ErrNoConnection = errors.New("smpp: no such connection")

// Pool holds several SMSC connections by name, each with its own
// credentials, sender, window, TPS and flash coding.
type Pool struct {
	clients map[string]*Client
}

// NewPool starts a client (see [New]) for each named config.
func NewPool(cfgs map[string]Config) *Pool {
	p := &Pool{clients: make(map[string]*Client, len(cfgs))}
	for name, cfg := range cfgs {
		p.clients[name] = New(cfg)
	}
	return p
}

// Client returns the named connection.
func (p *Pool) Client(name string) (*Client, bool) {
	c, ok := p.clients[name]
	return c, ok
}

// Submit sends m through the named connection.
func (p *Pool) Submit(ctx context.Context, name string, m Message) (Result, error) {
	c, ok := p.clients[name]
	if !ok {
		return Result{}, &Error{Kind: NotSent, Op: "submit_sm", Err: fmt.Errorf("%w: %q", ErrNoConnection, name)}
	}
	return c.Submit(ctx, m)
}

// Close closes every connection.
func (p *Pool) Close(ctx context.Context) error {
	var errs []error
	for _, c := range p.clients {
		errs = append(errs, c.Close(ctx))
	}
	return errors.Join(errs...)
}
