// Package pages serves the hub's HTML: login and logout (password and identity-provider logins),
// home, spawn, spawn-pending and the /hub/user/ explanations, with their templates and static
// files. Its Renderer also draws the error pages the OAuth provider and the router show.
package pages

import (
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"

	"github.com/jupyterhub-go/jupyterhub-go/agent/auth"
)

//go:embed templates/*.html static/*
var assets embed.FS

// Renderer draws pages: each is the layout plus one content template.
type Renderer struct {
	prefix string
	gate   *auth.Gate
	log    *slog.Logger
	pages  map[string]*template.Template
}

// NewRenderer parses the templates.
func NewRenderer(prefix string, gate *auth.Gate, log *slog.Logger) (*Renderer, error) {
	p := &Renderer{prefix: prefix, gate: gate, log: log, pages: map[string]*template.Template{}}
	names, err := fs.Glob(assets, "templates/*.html")
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		base := strings.TrimPrefix(n, "templates/")
		if base == "layout.html" {
			continue
		}
		t, err := template.ParseFS(assets, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("parse template %s: %w", base, err)
		}
		p.pages[base] = t
	}
	return p, nil
}

// Render writes a page; c may be nil for anonymous pages.
func (p *Renderer) Render(w http.ResponseWriter, r *http.Request, status int, name string, data map[string]any, c *auth.Caller) {
	if data == nil {
		data = map[string]any{}
	}
	data["Prefix"] = p.prefix
	if c != nil {
		data["User"] = c.User
		if c.Session != nil {
			data["XSRF"] = p.gate.XSRFToken(c.Session)
		}
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := p.pages[name].ExecuteTemplate(w, "layout", data); err != nil {
		p.log.Error("render page", "page", name, "err", err)
	}
}

// Error writes an error page. It keeps the signed-in header (name, Home, Log out) when the
// request carries a login the hub can read.
func (p *Renderer) Error(w http.ResponseWriter, r *http.Request, status int, title, detail string) {
	c, err := p.gate.FromCookie(r)
	if err != nil {
		c = nil
	}
	p.Render(w, r, status, "error.html", map[string]any{"Status": status, "Title": title, "Detail": detail}, c)
}
