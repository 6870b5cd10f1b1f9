package api

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"net/http"
	"sort"
	"strings"

	"github.com/heed/heed/ledger"
)

//go:embed static/audit
var auditStatic embed.FS

// auditCSP lets the page load only its own script, style and data, and
// show the charts it fetched (blob: images); nothing inline, nothing
// remote.
const auditCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// auditVersion changes with the page's assets, so a browser never runs a
// stale script against a new page.
var auditVersion = func() string {
	h := sha256.New()
	var names []string
	_ = fs.WalkDir(auditStatic, "static/audit", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			names = append(names, p)
		}
		return nil
	})
	sort.Strings(names)
	for _, n := range names {
		b, _ := auditStatic.ReadFile(n)
		h.Write([]byte(n))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}()

type auditView struct {
	Version string
	Types   []string
}

// registerAuditPage serves the auditor's page and its assets.
func (s *Server) registerAuditPage() {
	sub, err := fs.Sub(auditStatic, "static/audit")
	if err != nil {
		panic(err)
	}
	files := http.StripPrefix("/static/audit/", http.FileServerFS(sub))
	s.mux.HandleFunc("GET /static/audit/", func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	})
	s.mux.HandleFunc("GET /audit", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", auditCSP)
		w.Header().Set("X-Content-Type-Options", "nosniff")
		w.Header().Set("Referrer-Policy", "no-referrer")
		w.Header().Set("Cache-Control", "no-store")
		if err := pages.ExecuteTemplate(w, "audit.html", auditView{Version: auditVersion, Types: ledger.Types()}); err != nil {
			s.cfg.Log.Error("render", "page", "audit.html", "err", err)
		}
	})
}
