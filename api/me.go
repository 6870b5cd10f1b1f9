package api

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/heed/heed/api/auth"
	"github.com/heed/heed/ledger"
)

// The customer's page, /me: sign in with a code sent by SMS, read every
// contact in plain words, and act on it. It is served in Chinese unless
// the browser or the customer asks for English, runs no script, and loads
// nothing but its own stylesheets.

// customerCookie holds a customer's session token in the browser.
const customerCookie = "heed_customer"

// meCSP is the page's Content-Security-Policy: its own stylesheets, forms
// posted to itself, nothing else (no script at all).
const meCSP = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// codeMinutes is how long a sign-in code works, as the page says it
// (auth.SessionConfig.CodeTTL's default, which heed serve keeps).
const codeMinutes = 5

// maxComplaint bounds a complaint's text, in characters.
const maxComplaint = 1000

func (s *Server) registerMe() {
	s.mux.HandleFunc("GET /me", s.mePage)
	s.mux.HandleFunc("POST /me/challenge", s.sameOrigin(s.meChallenge))
	s.mux.HandleFunc("POST /me/session", s.sameOrigin(s.meSession))
	s.mux.HandleFunc("POST /me/lang", s.sameOrigin(s.meLang))
	s.mux.HandleFunc("POST /me/withdrawal", s.sameOrigin(s.meWithdrawal))
	s.mux.HandleFunc("POST /me/complaint", s.sameOrigin(s.meComplaint))
	s.mux.HandleFunc("POST /me/erasure", s.sameOrigin(s.meErasure))
	s.mux.HandleFunc("POST /me/logout", s.sameOrigin(func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: customerCookie, Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
		http.Redirect(w, r, "/me", http.StatusSeeOther)
	}))
}

// sameOrigin refuses a form posted from another site. The session cookie
// is SameSite=Strict already; this also covers the forms that need no
// session (sign-in, language).
func (s *Server) sameOrigin(next http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if o := r.Header.Get("Origin"); o != "" {
			if u, err := url.Parse(o); err != nil || u.Host != r.Host {
				http.Error(w, "cross-site form refused", http.StatusForbidden)
				return
			}
		}
		next(w, r)
	}
}

func (s *Server) meRender(w http.ResponseWriter, status int, v *meView) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", meCSP)
	h.Set("Content-Language", v.T.Lang)
	h.Set("Vary", "Accept-Language, Cookie")
	h.Set("Cache-Control", "no-store")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	if err := pages.ExecuteTemplate(w, "me.html", v); err != nil {
		s.cfg.Log.Error("render", "page", "me.html", "err", err)
	}
}

// meSessionOf returns the page's customer session: its number and token; "" when
// signed out (or the session ended, then ended is true).
func (s *Server) meSessionOf(r *http.Request) (number, token string, ended bool) {
	c, err := r.Cookie(customerCookie)
	if err != nil {
		return "", "", false
	}
	number, err = s.cfg.Sessions.Number(c.Value)
	if err != nil {
		return "", "", true
	}
	return number, c.Value, false
}

func (s *Server) mePage(w http.ResponseWriter, r *http.Request) {
	lang := pickLang(r)
	number, token, ended := s.meSessionOf(r)
	if number == "" {
		v := signInView(lang, "number")
		if ended {
			v.Error = v.T.ErrSession
		}
		s.meRender(w, http.StatusOK, v)
		return
	}
	s.meRecord(w, r, lang, number, token, http.StatusOK, "", notice{r.URL.Query()})
}

// meRecord renders the signed-in page, with an error or a notice.
func (s *Server) meRecord(w http.ResponseWriter, r *http.Request, lang, number, token string, status int, errText string, n notice) {
	v, err := s.recordView(r.Context(), lang, number, token, n)
	if err != nil {
		s.cfg.Log.Error("contacts page", "err", err)
		v = signInView(lang, "number")
		v.Error = v.T.ErrGeneric
		s.meRender(w, http.StatusInternalServerError, v)
		return
	}
	v.Error = errText
	s.meRender(w, status, v)
}

func (s *Server) meChallenge(w http.ResponseWriter, r *http.Request) {
	lang := pickLang(r)
	number := typed(r.PostFormValue("number"))
	if err := s.challenge(r.Context(), number, s.remoteHost(r)); err != nil {
		v := signInView(lang, "number")
		v.Number = number
		status := s.signInError(w, v, number, err)
		s.meRender(w, status, v)
		return
	}
	v := signInView(lang, "code")
	v.Number = number
	s.meRender(w, http.StatusOK, v)
}

func (s *Server) meSession(w http.ResponseWriter, r *http.Request) {
	lang := pickLang(r)
	number := typed(r.PostFormValue("number"))
	tok, exp, err := s.session(number, r.PostFormValue("code"), s.remoteHost(r))
	if err != nil {
		v := signInView(lang, "code")
		v.Number = number
		var ce *auth.CodeError
		if errors.As(err, &ce) && ce.Why != auth.CodeWrong {
			// Nothing more can be done with this code: back to the number.
			v.Step = "number"
		}
		status := s.signInError(w, v, number, err)
		s.meRender(w, status, v)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: customerCookie, Value: tok, Path: "/", Expires: exp, MaxAge: int(time.Until(exp).Seconds()),
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/me", http.StatusSeeOther)
}

// signInError puts on v what went wrong in words, sets Retry-After on a
// 429, and returns the status to answer.
func (s *Server) signInError(w http.ResponseWriter, v *meView, number string, err error) int {
	t := v.T
	var le *auth.LimitError
	var ce *auth.CodeError
	switch {
	case errors.As(err, &le):
		wait := max(le.RetryAfter, time.Second)
		w.Header().Set("Retry-After", retrySeconds(wait))
		f := t.ErrTooManyTriesF
		if v.Step == "number" {
			f = t.ErrTooManyCodesF
		}
		loc, _ := customerZone(number, s.cfg.Region)
		v.Error = sprintf(f, clock(s.cfg.Now().Add(wait).In(loc)), t.span(wait))
		return http.StatusTooManyRequests
	case errors.As(err, &ce):
		switch ce.Why {
		case auth.CodeWrong:
			v.Error = sprintf(t.ErrWrongF, ce.Left)
		case auth.CodeUsedUp:
			v.Error = t.ErrUsedUp
		case auth.CodeExpired:
			v.Error = t.ErrExpired
		default:
			v.Error = t.ErrNone
		}
		return http.StatusUnauthorized
	case errors.Is(err, errNoSMS), errors.Is(err, errSendCode):
		w.Header().Set("Retry-After", "60")
		v.Error = t.ErrSMS
		return http.StatusServiceUnavailable
	}
	status, _ := problemText(err)
	if status == http.StatusUnprocessableEntity {
		v.Error = t.ErrNumber
	} else {
		v.Error = t.ErrGeneric
	}
	return status
}

// meLang remembers the language the customer chose, and shows the page
// again in it; on the code step it stays there, sending no new code.
func (s *Server) meLang(w http.ResponseWriter, r *http.Request) {
	lang := r.PostFormValue("lang")
	if lang != langEN && lang != langZH {
		lang = pickLang(r)
	}
	http.SetCookie(w, &http.Cookie{Name: langCookie, Value: lang, Path: "/me", MaxAge: 365 * 24 * 3600,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode})
	if r.PostFormValue("step") == "code" {
		if number := typed(r.PostFormValue("number")); number != "" && len(number) <= 32 {
			v := signInView(lang, "code")
			v.Number = number
			s.meRender(w, http.StatusOK, v)
			return
		}
	}
	http.Redirect(w, r, "/me", http.StatusSeeOther)
}

// signedInForm returns the session of a form that needs one; without it,
// it renders the sign-in step and returns "".
func (s *Server) signedInForm(w http.ResponseWriter, r *http.Request) (lang, number, token string) {
	lang = pickLang(r)
	number, token, _ = s.meSessionOf(r)
	if number == "" {
		v := signInView(lang, "number")
		v.Error = v.T.ErrSession
		s.meRender(w, http.StatusUnauthorized, v)
	}
	return lang, number, token
}

// meDone sends the browser back to the page, which says what was done.
func meDone(w http.ResponseWriter, r *http.Request, q url.Values) {
	http.Redirect(w, r, "/me?"+q.Encode()+"#notice", http.StatusSeeOther)
}

// scopes are what the page offers to stop: channels and purposes.
var scopes = map[string]struct{ channels, purposes []string }{
	"all":       {},
	"marketing": {purposes: []string{ledger.PurposeMarketing}},
	"call":      {channels: []string{ledger.ChannelCall}},
	"sms":       {channels: []string{ledger.ChannelSMS}},
	"flash":     {channels: []string{ledger.ChannelFlash}},
}

func (s *Server) meWithdrawal(w http.ResponseWriter, r *http.Request) {
	lang, number, token := s.signedInForm(w, r)
	if number == "" {
		return
	}
	tenant, scope := r.PostFormValue("tenant"), r.PostFormValue("scope")
	sc, ok := scopes[scope]
	if !ok || !auth.ValidTenant(tenant) {
		s.meRecord(w, r, lang, number, token, http.StatusBadRequest, textOf(lang).ErrGeneric, notice{})
		return
	}
	if _, err := s.customerWithdraw(r.Context(), number, tenant, sc.channels, sc.purposes); err != nil {
		st, msg := s.selfServiceError(lang, err)
		s.meRecord(w, r, lang, number, token, st, msg, notice{})
		return
	}
	meDone(w, r, url.Values{"done": {"stopped"}, "tenant": {tenant}, "scope": {scope}})
}

func (s *Server) meComplaint(w http.ResponseWriter, r *http.Request) {
	lang, number, token := s.signedInForm(w, r)
	if number == "" {
		return
	}
	tenant, contact := r.PostFormValue("tenant"), r.PostFormValue("contact")
	reason := strings.TrimSpace(r.PostFormValue("reason"))
	if !auth.ValidTenant(tenant) || contact == "" || len(contact) > ledger.MaxIDLen || !utf8.ValidString(reason) || utf8.RuneCountInString(reason) > maxComplaint {
		s.meRecord(w, r, lang, number, token, http.StatusBadRequest, textOf(lang).ErrGeneric, notice{})
		return
	}
	e, again, err := s.customerComplain(r.Context(), number, tenant, contact, reason)
	if err != nil {
		st, msg := s.selfServiceError(lang, err)
		s.meRecord(w, r, lang, number, token, st, msg, notice{})
		return
	}
	q := url.Values{"done": {"complained"}, "tenant": {tenant}}
	if again {
		q.Set("done", "complained-again")
	}
	if p, err := ledger.Decode(&e); err == nil {
		if c, ok := p.(*ledger.ComplaintReceived); ok && c.Line != "" {
			q.Set("line", c.Line)
		}
	}
	meDone(w, r, q)
}

func (s *Server) meErasure(w http.ResponseWriter, r *http.Request) {
	lang, number, token := s.signedInForm(w, r)
	if number == "" {
		return
	}
	tenant := r.PostFormValue("tenant")
	if tenant != "" && !auth.ValidTenant(tenant) {
		s.meRecord(w, r, lang, number, token, http.StatusBadRequest, textOf(lang).ErrGeneric, notice{})
		return
	}
	if _, err := s.customerErase(r.Context(), number, tenant); err != nil {
		st, msg := s.selfServiceError(lang, err)
		s.meRecord(w, r, lang, number, token, st, msg, notice{})
		return
	}
	if tenant == "" {
		meDone(w, r, url.Values{"done": {"erased-all"}})
		return
	}
	meDone(w, r, url.Values{"done": {"erased"}, "tenant": {tenant}})
}

// selfServiceError says in words why an action was refused.
func (s *Server) selfServiceError(lang string, err error) (int, string) {
	t := textOf(lang)
	switch {
	case errors.Is(err, errUnknownBusiness):
		return http.StatusUnprocessableEntity, t.ErrNoSuchBusiness
	case errors.Is(err, errUnknownContact):
		return http.StatusUnprocessableEntity, t.ErrNoSuchContact
	case errors.Is(err, errNeverSent):
		return http.StatusUnprocessableEntity, t.ErrNeverSent
	}
	status, _ := problemText(err)
	return status, t.ErrGeneric
}
