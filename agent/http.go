package agent

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent/config"
	"github.com/jupyterhub-go/jupyterhub-go/agent/scopes"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// Handler is the hub's whole HTTP surface.
func (h *Hub) Handler() http.Handler {
	mux := http.NewServeMux()
	h.apiRoutes(mux)
	h.pageRoutes(mux)
	mux.Handle(h.prefix+"/user/", http.HandlerFunc(h.serveUser))
	return h.middleware(mux)
}

// middleware stamps the version header, refuses dot segments, and logs each request.
func (h *Hub) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-JupyterHub-Version", Version)
		// ServeMux would answer "/hub/api/users/../x" with a redirect to the cleaned path; a
		// path that tries to climb out of where it points is refused outright instead.
		if hasDotSegment(r.URL.EscapedPath()) {
			apiError(w, http.StatusBadRequest, "path contains '.' or '..' segments")
			return
		}
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		level := slog.LevelInfo
		if strings.HasPrefix(r.URL.Path, h.prefix+"/user/") || strings.HasSuffix(r.URL.Path, "/activity") || r.URL.Path == h.prefix+"/hub/api" || r.URL.Path == h.prefix+"/hub/api/" {
			level = slog.LevelDebug // traffic and keep-alives would drown the log
		}
		if rec.status >= 500 {
			level = slog.LevelWarn
		}
		h.log.Log(r.Context(), level, "request", "method", r.Method, "path", r.URL.Path, "status", rec.status,
			"duration_ms", time.Since(start).Milliseconds(), "remote", r.RemoteAddr)
	})
}

func hasDotSegment(p string) bool {
	for _, seg := range strings.Split(p, "/") {
		if u, err := url.PathUnescape(seg); err == nil && (u == "." || u == ".." || strings.Contains(u, "/..") || strings.Contains(u, "../")) {
			return true
		}
	}
	return false
}

// statusRecorder remembers the status for the log. Unwrap lets http.ResponseController reach the
// real writer, which the router needs to stream (SSE) and upgrade (WebSocket) through it.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int)        { s.status = code; s.ResponseWriter.WriteHeader(code) }
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// apiError writes JupyterHub's JSON error shape.
func apiError(w http.ResponseWriter, status int, format string, args ...any) {
	writeJSON(w, status, map[string]any{"status": status, "message": fmt.Sprintf(format, args...)})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

// httpError is an error with the HTTP status it should be answered with.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

// decodeJSON reads an optional JSON body into v. An empty body leaves v as it is.
func (h *Hub) decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.Hub.MaxBodyBytes))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return &httpError{http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes (hub.max_body_bytes)", h.cfg.Hub.MaxBodyBytes)}
		}
		return &httpError{http.StatusBadRequest, "cannot read request body: " + err.Error()}
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, _ := mime.ParseMediaType(ct); mt != "application/json" {
			return &httpError{http.StatusUnsupportedMediaType, fmt.Sprintf("request body must be application/json, not %q", mt)}
		}
	}
	if err := json.Unmarshal(body, v); err != nil {
		return &httpError{http.StatusBadRequest, "malformed JSON body: " + err.Error()}
	}
	return nil
}

// writeErr turns an error into a JSON error response.
func writeErr(w http.ResponseWriter, err error) {
	var he *httpError
	switch {
	case errors.As(err, &he):
		apiError(w, he.status, "%s", he.msg)
	case errors.Is(err, store.ErrNotFound):
		apiError(w, http.StatusNotFound, "%v", err)
	case errors.Is(err, store.ErrExists):
		apiError(w, http.StatusConflict, "%v", err)
	default:
		apiError(w, http.StatusInternalServerError, "%v", err)
	}
}

// caller is who is making a request and what they may do.
type caller struct {
	user    store.User
	scopes  scopes.Set
	token   *store.Token   // set for token-authenticated requests
	session *store.Session // set for cookie-authenticated requests
}

const loginCookie = "jupyterhub-hub-login"

// tokenFromHeader accepts "token X" and "bearer X", case-insensitively, as JupyterHub does.
func tokenFromHeader(r *http.Request) string {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if !ok {
		return ""
	}
	switch strings.ToLower(scheme) {
	case "token", "bearer":
		return strings.TrimSpace(tok)
	}
	return ""
}

// tokenCaller resolves an API token.
func (h *Hub) tokenCaller(ctx context.Context, secret string) (*caller, error) {
	tok, err := h.store.LookupToken(ctx, secret)
	if err != nil {
		return nil, err
	}
	u, err := h.store.UserByID(ctx, tok.UserID)
	if err != nil {
		return nil, err
	}
	if time.Since(tok.LastActivity) > time.Minute {
		h.store.TouchToken(ctx, tok.ID, time.Now())
	}
	owner := scopes.ForUser(u.Name, u.Admin)
	set := scopes.Intersect(scopes.Expand(tok.Scopes, u.Name, owner), owner)
	return &caller{user: u, scopes: set, token: &tok}, nil
}

// cookieCaller resolves the hub login cookie.
func (h *Hub) cookieCaller(r *http.Request) (*caller, error) {
	c, err := r.Cookie(loginCookie)
	if err != nil {
		return nil, store.ErrNotFound
	}
	secret, ok := h.unsign(c.Value)
	if !ok {
		return nil, store.ErrNotFound
	}
	sess, err := h.store.LookupSession(r.Context(), secret)
	if err != nil {
		return nil, err
	}
	u, err := h.store.UserByID(r.Context(), sess.UserID)
	if err != nil {
		return nil, err
	}
	return &caller{user: u, scopes: scopes.ForUser(u.Name, u.Admin), session: &sess}, nil
}

// sign and unsign bind a cookie value to this hub's secret, so junk is refused before the database.
func (h *Hub) sign(v string) string { return v + "." + h.mac("cookie", v) }

func (h *Hub) unsign(s string) (string, bool) {
	v, sig, ok := strings.Cut(s, ".")
	return v, ok && hmac.Equal([]byte(sig), []byte(h.mac("cookie", v)))
}

func (h *Hub) mac(purpose, v string) string {
	m := hmac.New(sha256.New, h.secret)
	m.Write([]byte(purpose + "\x00" + v))
	return hex.EncodeToString(m.Sum(nil))[:32]
}

// xsrfToken is the form token of a login session.
func (h *Hub) xsrfToken(sess *store.Session) string { return h.mac("xsrf", sess.ID) }

// checkXSRF guards cookie-authenticated state changes: the token must come in a form field or header.
func (h *Hub) checkXSRF(r *http.Request, c *caller) bool {
	if c.session == nil {
		return true // token-authenticated requests cannot be forged by another site
	}
	got := r.Header.Get("X-XSRFToken")
	if got == "" {
		got = r.FormValue("_xsrf")
	}
	return hmac.Equal([]byte(got), []byte(h.xsrfToken(c.session)))
}

// secureRequest reports whether the browser reached us over TLS, believing X-Forwarded-Proto only
// from trusted proxies.
func (h *Hub) secureRequest(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	if h.fromTrustedProxy(r) {
		return strings.EqualFold(firstValue(r.Header.Get("X-Forwarded-Proto")), "https")
	}
	return strings.HasPrefix(h.cfg.Hub.PublicURL, "https://")
}

func (h *Hub) fromTrustedProxy(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	for _, p := range h.trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func firstValue(v string) string {
	first, _, _ := strings.Cut(v, ",")
	return strings.TrimSpace(first)
}

// safeNext keeps post-login redirects on this hub: a local absolute path, never "//host".
func (h *Hub) safeNext(next string) string {
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") || strings.HasPrefix(next, "/\\") || strings.ContainsAny(next, "\r\n") {
		return h.prefix + "/hub/home"
	}
	return next
}

// validName checks a user name taken from a URL or body.
func validName(name string) error {
	if err := config.ValidUsername(name); err != nil {
		return &httpError{http.StatusBadRequest, err.Error()}
	}
	return nil
}
