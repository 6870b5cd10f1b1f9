package kurrent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/kurrent-io/KurrentDB-Client-Go/kurrentdb"

	"github.com/heed/heed/ledger"
)

// Errors of this package; ledger sentinels are used wherever one fits.
var (
	// ErrScheme means the connection string is not kurrentdb:// or esdb://.
	ErrScheme = errors.New("kurrent: connection string must start with kurrentdb:// or esdb://")
	// ErrClientPanic means the client library panicked during a call; the
	// store recovered and the call failed.
	ErrClientPanic = errors.New("kurrent: client library panicked")
	// ErrUnavailable means the cluster stayed unavailable (or kept naming
	// another leader) through every retry.
	ErrUnavailable = errors.New("kurrent: server unavailable")
	// ErrDiverged means $all no longer matches this instance's position
	// index, which only happens if heed's streams were deleted or scavenged.
	ErrDiverged = errors.New("kurrent: $all diverged from the position index")
)

var schemes = []string{"kurrentdb://", "kurrentdb+discover://", "esdb://", "esdb+discover://"}

// IsURL reports whether a --store value names a KurrentDB cluster
// (kurrentdb://, esdb:// or their +discover forms) rather than a local
// store.
func IsURL(store string) bool {
	for _, s := range schemes {
		if strings.HasPrefix(strings.ToLower(store), s) {
			return true
		}
	}
	return false
}

func configure(url string, opts Options) (*kurrentdb.Configuration, error) {
	if !IsURL(url) {
		return nil, ErrScheme
	}
	cfg, err := kurrentdb.ParseConnectionString(url)
	if err != nil {
		// The parser's message may echo the URL, credentials included.
		return nil, fmt.Errorf("kurrent: invalid connection string")
	}
	log := opts.Log
	cfg.Logger = func(level kurrentdb.LogLevel, format string, args ...any) {
		if log != nil {
			log.Debug("kurrentdb client", "level", level, "msg", fmt.Sprintf(format, args...))
		}
	}
	return cfg, nil
}

// protect runs fn and turns a panic inside the client library into an
// error, so one malformed server message fails a call instead of the
// process.
func protect(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrClientPanic, r)
		}
	}()
	return fn()
}

// code returns the client's error code for err, or -1.
func code(err error) kurrentdb.ErrorCode {
	var k *kurrentdb.Error
	if errors.As(err, &k) {
		return k.Code()
	}
	return -1
}

// transient reports whether a call that failed with err may succeed if
// repeated: the node is unavailable, is not the leader, or the client gave
// up its connection, or a stream broke mid-send.
func transient(err error) bool {
	if errors.Is(err, io.EOF) {
		// A stream whose connection broke while sending (the client
		// reports the bare EOF, code Unknown).
		return true
	}
	switch code(err) {
	case kurrentdb.ErrorUnavailable, kurrentdb.ErrorCodeNotLeader, kurrentdb.ErrorCodeConnectionClosed, kurrentdb.ErrorAborted:
		return true
	}
	return false
}

// current returns the client in use.
func (s *Store) current() *kurrentdb.Client {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	return s.client
}

// renew replaces old with a new client. The library closes a client for
// good once discovery fails (about a second of downtime on a single node),
// so a long-running store must be able to start over.
func (s *Store) renew(old *kurrentdb.Client) {
	s.cmu.Lock()
	defer s.cmu.Unlock()
	if s.client != old || s.isDone() {
		return
	}
	c, err := kurrentdb.NewClient(s.cfg)
	if err != nil {
		return
	}
	_ = old.Close()
	s.client = c
}

// isDone reports whether the connection is going away.
func (s *Store) isDone() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// do runs op with panics recovered, repeating transient failures with
// exponential back-off. op gets the attempt number (1-based) so a
// non-idempotent operation can check what an earlier attempt did.
func (s *Store) do(ctx context.Context, what string, op func(c *kurrentdb.Client, attempt int) error) error {
	wait := s.opts.Backoff
	for attempt := 1; ; attempt++ {
		if s.isDone() {
			return ledger.ErrClosed
		}
		c := s.current()
		err := protect(func() error { return op(c, attempt) })
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if s.isDone() {
			return ledger.ErrClosed
		}
		if !transient(err) {
			return s.mapErr(what, err)
		}
		if code(err) == kurrentdb.ErrorCodeConnectionClosed {
			s.renew(c)
		}
		if attempt >= s.opts.Retries {
			return fmt.Errorf("%w: %s after %d attempts: %v", ErrUnavailable, what, attempt, err)
		}
		s.retries.Add(1)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		case <-s.done:
			return ledger.ErrClosed
		}
		wait = min(2*wait, 2*time.Second)
	}
}

// mapErr translates a client error into the ledger's sentinels.
func (s *Store) mapErr(what string, err error) error {
	switch code(err) {
	case kurrentdb.ErrorCodeWrongExpectedVersion:
		return fmt.Errorf("%w: %s: %v", ledger.ErrWrongRevision, what, err)
	case kurrentdb.ErrorCodeResourceNotFound, kurrentdb.ErrorCodeStreamDeleted:
		return fmt.Errorf("%w: %s: %v", ledger.ErrNotFound, what, err)
	}
	if errors.Is(err, ErrClientPanic) || errors.Is(err, ledger.ErrClosed) {
		return fmt.Errorf("%s: %w", what, err)
	}
	return fmt.Errorf("kurrent: %s: %w", what, err)
}
