package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"sync"
	"time"
)

// Errors of the customer sign-in.
var (
	// ErrRateLimited means too many requests for a number or from an address.
	ErrRateLimited = errors.New("auth: too many requests")
	// ErrBadCode means the code is wrong, expired or was never sent.
	ErrBadCode = errors.New("auth: wrong or expired code")
	// ErrNoSession means the customer token is unknown or expired.
	ErrNoSession = errors.New("auth: no such session")
)

// Why a code was refused (CodeError.Why).
const (
	// CodeWrong: not the code sent; Left more tries remain.
	CodeWrong = "wrong"
	// CodeUsedUp: the code worked once already, or too many wrong tries
	// used it up.
	CodeUsedUp = "used_up"
	// CodeExpired: the code outlived CodeTTL.
	CodeExpired = "expired"
	// CodeNone: no code is waiting for the number (never asked for, or
	// asked for before a restart).
	CodeNone = "none"
)

// CodeError is ErrBadCode saying why, so that a person is told what to do
// next: try again, or ask for a new code.
type CodeError struct {
	Why  string
	Left int // tries left, for CodeWrong
}

func (e *CodeError) Error() string { return ErrBadCode.Error() + ": " + e.Why }

// Is makes a CodeError match ErrBadCode.
func (e *CodeError) Is(target error) bool { return target == ErrBadCode }

// LimitError is ErrRateLimited with the time until a request would be
// allowed again.
type LimitError struct {
	RetryAfter time.Duration
	what       string
}

func (e *LimitError) Error() string { return ErrRateLimited.Error() + " " + e.what }

// What says which limit refused: "for this number" or "from this address".
func (e *LimitError) What() string { return e.what }

// Is makes a LimitError match ErrRateLimited.
func (e *LimitError) Is(target error) bool { return target == ErrRateLimited }

// SessionConfig holds the limits of the customer sign-in. Zero fields take
// the defaults in brackets.
type SessionConfig struct {
	CodeTTL     time.Duration // how long a code is valid [5m]
	MaxAttempts int           // wrong codes before the code is burnt [5]
	TokenTTL    time.Duration // how long a session lasts [15m]
	Window      time.Duration // rate-limit window [10m]
	PerNumber   int           // codes per number per window [3]
	PerDay      int           // codes per number per 24 hours [5]
	// PerDayRestricted is the codes per 24 hours to a number that opted
	// out of everything or is on a national do-not-contact list [1]: its
	// holder may still sign in to see the history, but it cannot be
	// flooded.
	PerDayRestricted int
	PerAddr          int // challenge or session requests per client address per window [30]
	Now              func() time.Time
}

// Sessions issues one-time codes to customers and exchanges them for
// short-lived tokens bound to one number. State is in memory: a restart
// signs everyone out, which is the safe direction.
type Sessions struct {
	cfg   SessionConfig
	mu    sync.Mutex
	codes map[string]*pending // by E.164 number
	// spent remembers, until it would have expired, a code that was used
	// or burnt, so a second try is told so rather than "no code".
	spent  map[string]time.Time
	tokens map[string]session // by token hash
	byAddr limiter
}

type pending struct {
	hash     [32]byte
	expires  time.Time
	attempts int
}

type session struct {
	number  string
	expires time.Time
}

// NewSessions returns an empty session table.
func NewSessions(cfg SessionConfig) *Sessions {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	defInt := func(d *int, v int) {
		if *d == 0 {
			*d = v
		}
	}
	def(&cfg.CodeTTL, 5*time.Minute)
	def(&cfg.TokenTTL, 15*time.Minute)
	def(&cfg.Window, 10*time.Minute)
	defInt(&cfg.MaxAttempts, 5)
	defInt(&cfg.PerNumber, 3)
	defInt(&cfg.PerDay, 5)
	defInt(&cfg.PerDayRestricted, 1)
	defInt(&cfg.PerAddr, 30)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Sessions{
		cfg:    cfg,
		codes:  map[string]*pending{},
		spent:  map[string]time.Time{},
		tokens: map[string]session{},
		byAddr: limiter{hits: map[string][]time.Time{}},
	}
}

// Challenge returns a fresh six-digit code for number, replacing any
// earlier one, unless the number or the client address is over its limit.
// sent are the times codes were sent to the number before, as the log
// records them, so that the number's limits survive a restart; restricted
// numbers get PerDayRestricted codes a day. The caller serialises
// challenges for one number between reading sent and recording the code.
// A refusal is a *LimitError.
func (s *Sessions) Challenge(number, addr string, sent []time.Time, restricted bool) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	perDay := s.cfg.PerDay
	if restricted {
		perDay = min(perDay, s.cfg.PerDayRestricted)
	}
	var wait time.Duration
	for _, lim := range []struct {
		window time.Duration
		max    int
	}{{s.cfg.Window, s.cfg.PerNumber}, {24 * time.Hour, perDay}} {
		wait = max(wait, retryAfter(sent, now, lim.window, lim.max))
	}
	if wait > 0 {
		return "", &LimitError{RetryAfter: wait, what: "for this number"}
	}
	if ok, wait := s.byAddr.allow(addr, now, s.cfg.Window, s.cfg.PerAddr); !ok {
		return "", &LimitError{RetryAfter: wait, what: "from this address"}
	}
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		return "", err
	}
	code := fmt.Sprintf("%06d", n.Int64())
	s.codes[number] = &pending{hash: codeHash(number, code), expires: now.Add(s.cfg.CodeTTL)}
	delete(s.spent, number)
	return code, nil
}

// Verify exchanges a code for a token. A code works once; after
// MaxAttempts wrong tries it stops working. A refused code is a
// *CodeError saying why.
func (s *Sessions) Verify(number, code, addr string) (string, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.cfg.Now()
	if ok, wait := s.byAddr.allow(addr, now, s.cfg.Window, s.cfg.PerAddr); !ok {
		return "", time.Time{}, &LimitError{RetryAfter: wait, what: "from this address"}
	}
	p := s.codes[number]
	if p == nil {
		if until, ok := s.spent[number]; ok && !now.After(until) {
			return "", time.Time{}, &CodeError{Why: CodeUsedUp}
		}
		return "", time.Time{}, &CodeError{Why: CodeNone}
	}
	if now.After(p.expires) {
		delete(s.codes, number)
		return "", time.Time{}, &CodeError{Why: CodeExpired}
	}
	h := codeHash(number, code)
	if subtle.ConstantTimeCompare(h[:], p.hash[:]) != 1 {
		p.attempts++
		if p.attempts >= s.cfg.MaxAttempts {
			delete(s.codes, number)
			s.spent[number] = p.expires
			return "", time.Time{}, &CodeError{Why: CodeUsedUp}
		}
		return "", time.Time{}, &CodeError{Why: CodeWrong, Left: s.cfg.MaxAttempts - p.attempts}
	}
	delete(s.codes, number)
	s.spent[number] = p.expires
	token := "cust_" + randomText(24)
	exp := now.Add(s.cfg.TokenTTL)
	s.tokens[hash(token)] = session{number: number, expires: exp}
	s.prune(now)
	return token, exp, nil
}

// Number returns the number a customer token is bound to.
func (s *Sessions) Number(token string) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ses, ok := s.tokens[hash(token)]
	if !ok || s.cfg.Now().After(ses.expires) {
		return "", ErrNoSession
	}
	return ses.number, nil
}

// prune drops expired sessions and codes so the tables stay small.
func (s *Sessions) prune(now time.Time) {
	for h, ses := range s.tokens {
		if now.After(ses.expires) {
			delete(s.tokens, h)
		}
	}
	for n, p := range s.codes {
		if now.After(p.expires) {
			delete(s.codes, n)
		}
	}
	for n, until := range s.spent {
		if now.After(until) {
			delete(s.spent, n)
		}
	}
}

func codeHash(number, code string) [32]byte {
	return sha256.Sum256([]byte(number + "\x00" + code))
}

// limiter counts hits per key in a sliding window.
type limiter struct {
	hits map[string][]time.Time
}

// retryAfter returns how long until fewer than limit of the times in sent
// fall within window before now; zero if that is already so.
func retryAfter(sent []time.Time, now time.Time, window time.Duration, limit int) time.Duration {
	limit = max(limit, 1)
	var recent []time.Time
	for _, t := range sent {
		if now.Sub(t) < window {
			recent = append(recent, t)
		}
	}
	if len(recent) < limit {
		return 0
	}
	slices.SortFunc(recent, func(a, b time.Time) int { return a.Compare(b) })
	// Once the len-limit+1 oldest have left the window, limit-1 remain.
	return max(recent[len(recent)-limit].Add(window).Sub(now), time.Second)
}

// allow records a hit for key unless max hits already fall within window;
// when it refuses, it says how long until it would allow one.
func (l *limiter) allow(key string, now time.Time, window time.Duration, max int) (bool, time.Duration) {
	recent := l.hits[key][:0]
	for _, t := range l.hits[key] {
		if now.Sub(t) < window {
			recent = append(recent, t)
		}
	}
	if len(recent) >= max {
		l.hits[key] = recent
		return false, retryAfter(recent, now, window, max)
	}
	l.hits[key] = append(recent, now)
	if len(l.hits) > 100_000 {
		for k, ts := range l.hits {
			if len(ts) == 0 || now.Sub(ts[len(ts)-1]) >= window {
				delete(l.hits, k)
			}
		}
	}
	return true, 0
}
