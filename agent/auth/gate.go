// Package auth is the login, session and XSRF layer the hub's HTTP surfaces share: it says who is
// calling (an API token or the login cookie) and what they may do, starts and ends login
// sessions, guards cookie-authenticated requests with XSRF tokens, and decides who may log in and
// who is an admin, again and again for logins at an identity provider (refresh.go). Authenticators
// (PAM) and identity providers (OpenID Connect) plug in through the interfaces in identity.go;
// this package knows neither, nor the server lifecycle core (see Options).
package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent/config"
	"github.com/jupyterhub-go/jupyterhub-go/agent/scopes"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
	"github.com/jupyterhub-go/jupyterhub-go/agent/web"
)

// LoginCookie is the hub's login cookie, sent only to /hub/ paths.
const LoginCookie = "jupyterhub-hub-login"

// Caller is who is making a request and what they may do: a user, or a service (then User is
// the zero User, whose ID matches no one, and Service is set).
type Caller struct {
	User    store.User
	Service *Service // set for a [[service]]'s token
	Scopes  scopes.Set
	Token   *store.Token   // set for token-authenticated requests
	Session *store.Session // set for cookie-authenticated requests
}

// Name is who the caller is, for logs.
func (c *Caller) Name() string {
	if c.Service != nil {
		return "service:" + c.Service.Name
	}
	return c.User.Name
}

// Gate resolves callers and keeps their sessions.
type Gate struct {
	cfg     config.Config
	store   *store.Store
	idp     IdentityProvider // nil for password logins
	secret  []byte           // signs cookies and XSRF tokens
	sealer  *sealer          // encrypts identity-provider tokens at rest
	prefix  string
	trusted []netip.Prefix
	log     *slog.Logger

	services      map[string]*Service // by name
	serviceTokens map[string]*Service // by the hash of their API token
	opts          Options
	refreshes     loginRefreshes // of identity-provider logins (refresh.go)

	// allowedGroups and adminGroups are auth.allowed_groups and auth.admin_groups as Admission
	// compares them: written the way the identity provider's groups arrive (config.OIDCGroup).
	allowedGroups, adminGroups []string

	accounts, sources *throttle // failed logins

	expansions *scopes.Cache // of the raw scope lists of roles and tokens (owner.go)
}

// Options are what the wiring adds to the login layer beyond the configuration.
type Options struct {
	// OnAccessLost is called when a refreshed login shows that u lost access (no longer
	// allowed, or the provider refused to renew the login before it ran out), once their hub
	// sessions and OAuth tokens have ended. The wiring stops their servers there when auth.oidc.on_lost_access is
	// "stop": the lifecycle core owns servers, and this package does not call it. nil leaves
	// the servers running. ctx does not end with the request that found the loss.
	OnAccessLost func(ctx context.Context, u store.User)
}

// New makes a Gate. secret signs cookies and XSRF tokens; sealKey (32 bytes) encrypts what an
// identity provider hands the hub; idp is nil for password logins.
func New(cfg config.Config, st *store.Store, idp IdentityProvider, secret, sealKey []byte, log *slog.Logger, opts Options) (*Gate, error) {
	sl, err := newSealer(sealKey)
	if err != nil {
		return nil, err
	}
	g := &Gate{cfg: cfg, store: st, idp: idp, secret: secret, sealer: sl, prefix: strings.TrimSuffix(cfg.Hub.BaseURL, "/"), log: log, opts: opts,
		accounts: newThrottle(cfg.Auth.MaxFailedLogins, cfg.Auth.FailedLoginWindow.D()),
		sources:  newThrottle(4*cfg.Auth.MaxFailedLogins, cfg.Auth.FailedLoginWindow.D()),
		// One entry per active user and per distinct token scope list: a few hundred
		// KiB at most.
		expansions: scopes.NewCache(1024),
	}
	if g.services, g.serviceTokens, err = loadServices(cfg); err != nil {
		return nil, err
	}
	g.allowedGroups, g.adminGroups = cfg.Auth.AllowedGroups, cfg.Auth.AdminGroups
	if idp != nil {
		norm := func(groups []string) []string {
			out := make([]string, len(groups))
			for i, gr := range groups {
				out[i] = config.OIDCGroup(gr)
			}
			return out
		}
		g.allowedGroups, g.adminGroups = norm(cfg.Auth.AllowedGroups), norm(cfg.Auth.AdminGroups)
	}
	for _, p := range cfg.Hub.TrustedProxies {
		pfx, err := netip.ParsePrefix(p)
		if err != nil {
			return nil, err // Validate refuses these first
		}
		g.trusted = append(g.trusted, pfx)
	}
	return g, nil
}

// IdP is the identity provider logins go through, or nil for password logins.
func (g *Gate) IdP() IdentityProvider { return g.idp }

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

// HasToken reports whether the request carries an API token (rather than relying on the cookie).
func HasToken(r *http.Request) bool { return tokenFromHeader(r) != "" }

// FromRequest resolves the caller from a token in the Authorization header or else the login
// cookie; store.ErrNotFound if there is neither.
func (g *Gate) FromRequest(r *http.Request) (*Caller, error) {
	if tok := tokenFromHeader(r); tok != "" {
		return g.FromToken(r.Context(), tok)
	}
	return g.FromCookie(r)
}

// FromToken resolves an API token. A token holds at most its owner's scopes, whatever it was
// created with: an owner who lost admin loses it on their tokens too.
//
// Like the cookie, a token refreshes its owner's provider login once auth.oidc.refresh_age has
// passed (as JupyterHub's refresh_auth does for token users), so that a demoted admin's API
// tokens lose admin too, and someone who works only in their notebook is checked again: their
// server asks the hub about the OAuth token it holds for their browser whenever its cache of the
// answer runs out (five minutes by default). A server's own token does not: it acts for the
// server, whose activity reports would otherwise keep the provider's session alive for as long
// as it runs, and it must keep working for a server left running (auth.oidc.on_lost_access).
func (g *Gate) FromToken(ctx context.Context, secret string) (*Caller, error) {
	// A service's token is in memory (from the configuration): no statement for it. Tokens
	// are random secrets, so a user's token and a service's are never the same one.
	if c, err := g.fromServiceToken(ctx, secret); err == nil {
		return c, nil
	}
	tok, u, err := g.store.LookupTokenOwner(ctx, secret)
	if errors.Is(err, store.ErrNotFound) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	if tok.Kind != store.KindServer {
		var refreshed bool
		if u, refreshed, err = g.keepFresh(ctx, u); err != nil {
			return nil, err
		}
		if refreshed { // a lost access ended OAuth tokens with the login
			if tok, err = g.store.LookupToken(ctx, secret); err != nil {
				return nil, err
			}
		}
	}
	if time.Since(tok.LastActivity) > time.Minute {
		g.store.TouchToken(ctx, tok.ID, time.Now())
	}
	owner, err := g.OwnerScopes(ctx, u)
	if err != nil {
		return nil, err
	}
	return &Caller{User: u, Scopes: g.TokenScopes(tok, u.Name, owner), Token: &tok}, nil
}

// ErrXSRF is a cookie-authenticated request that needs an XSRF token and has none that fits. It
// is also a store.ErrNotFound: whoever does not check for it treats the caller as anonymous.
var ErrXSRF = fmt.Errorf("%w: the XSRF token is missing or wrong", store.ErrNotFound)

// FromCookie resolves the hub login cookie.
//
// Every user server shares the hub's origin, so a page one user serves can make another user's
// browser fetch the hub with their cookie. As in JupyterHub 4.1+, the cookie therefore counts
// only for top-level navigations (a GET the browser makes for the address bar, a link or a form)
// and for requests that carry the session's XSRF token; anything else a script sends (fetch,
// XMLHttpRequest, EventSource, no-cors subrequests) is anonymous without it. The token itself is
// only ever written into pages, which those scripts cannot get without it.
//
// Once auth.oidc.refresh_age has passed since the user's provider login was last refreshed, it
// is refreshed before the request is served (see refresh.go): a user who lost access is
// anonymous from this request on, a demoted admin is no longer admin in it.
func (g *Gate) FromCookie(r *http.Request) (*Caller, error) { return g.fromCookie(r, true) }

// fromCookie is FromCookie, refreshing the provider login or not.
func (g *Gate) fromCookie(r *http.Request, refresh bool) (*Caller, error) {
	c, err := r.Cookie(LoginCookie)
	if err != nil {
		return nil, store.ErrNotFound
	}
	secret, ok := g.Unsign(c.Value)
	if !ok {
		return nil, store.ErrNotFound
	}
	sess, u, err := g.store.LookupSessionOwner(r.Context(), secret)
	if err != nil {
		return nil, err
	}
	owner, err := g.OwnerScopes(r.Context(), u)
	if err != nil {
		return nil, err
	}
	caller := &Caller{User: u, Scopes: owner, Session: &sess}
	if needsXSRF(r) && !g.validXSRF(r, caller.Session) {
		g.log.Info("cookie ignored: a script's request without the XSRF token", "user", u.Name, "method", r.Method,
			"path", r.URL.Path, "sec_fetch_mode", r.Header.Get("Sec-Fetch-Mode"), "remote", r.RemoteAddr)
		return nil, ErrXSRF
	}
	if refresh {
		var refreshed bool
		if u, refreshed, err = g.keepFresh(r.Context(), u); err != nil {
			return nil, err
		}
		if refreshed { // a lost access ended the session with the login
			if sess, err = g.store.LookupSession(r.Context(), secret); err != nil {
				return nil, err
			}
			caller = &Caller{User: u, Scopes: scopes.ForUser(u.Name, u.Admin), Session: &sess}
		}
	}
	return caller, nil
}

// needsXSRF says whether a cookie-authenticated request must prove it came from the hub's own
// pages. Navigations need not (a link cannot carry a token); browsers mark them with
// Sec-Fetch-Mode: navigate, and send no Sec-Fetch-* at all over plain HTTP to a remote host, where
// only hub.subdomain_host-style isolation (or TLS) helps. Unlike JupyterHub, no-cors and
// websocket requests need the token too: the hub serves neither, so only an attack sends them.
func needsXSRF(r *http.Request) bool {
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		mode := r.Header.Get("Sec-Fetch-Mode")
		return mode != "" && mode != "navigate"
	}
	return true
}

// Sign binds a cookie value to this hub's secret, so junk is refused before the database.
func (g *Gate) Sign(v string) string { return v + "." + g.mac("cookie", v) }

// Unsign checks a signed value and returns what was signed.
func (g *Gate) Unsign(s string) (string, bool) {
	v, sig, ok := strings.Cut(s, ".")
	return v, ok && hmac.Equal([]byte(sig), []byte(g.mac("cookie", v)))
}

func (g *Gate) mac(purpose, v string) string {
	m := hmac.New(sha256.New, g.secret)
	m.Write([]byte(purpose + "\x00" + v))
	return hex.EncodeToString(m.Sum(nil))[:32]
}

// XSRFToken is the form token of a login session.
func (g *Gate) XSRFToken(sess *store.Session) string { return g.mac("xsrf", sess.ID) }

// validXSRF checks the token a request carries in the X-XSRFToken header or the _xsrf form field
// (or query argument, which the spawn-pending page's EventSource uses).
func (g *Gate) validXSRF(r *http.Request, sess *store.Session) bool {
	got := r.Header.Get("X-XSRFToken")
	if got == "" {
		got = r.FormValue("_xsrf")
	}
	return got != "" && hmac.Equal([]byte(got), []byte(g.XSRFToken(sess)))
}

// Secure reports whether the browser reached us over TLS, believing X-Forwarded-Proto only
// from trusted proxies.
func (g *Gate) Secure(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	if g.FromTrustedProxy(r) {
		return strings.EqualFold(firstValue(r.Header.Get("X-Forwarded-Proto")), "https")
	}
	return strings.HasPrefix(g.cfg.Hub.PublicURL, "https://")
}

// FromTrustedProxy reports whether the request came over hub.proxy_socket or from one of
// hub.trusted_proxies.
func (g *Gate) FromTrustedProxy(r *http.Request) bool {
	if web.FromProxySocket(r) {
		return true
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	for _, p := range g.trusted {
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

// SafeNext keeps post-login redirects on this hub: a local absolute path, never "//host".
// Browsers drop tabs and newlines from URLs and read "\\" as "/", so "/\t/evil.example" and
// "/\\evil.example" are other hosts to them: any control character or backslash is refused.
func (g *Gate) SafeNext(next string) string {
	if strings.ContainsFunc(next, func(r rune) bool { return r < 0x20 || r == 0x7f || r == '\\' }) {
		return g.prefix + "/hub/home"
	}
	if g.userHost(next) {
		return next // a user's server on its own host (hub.subdomain_host)
	}
	if next == "" || !strings.HasPrefix(next, "/") || strings.HasPrefix(next, "//") {
		return g.prefix + "/hub/home"
	}
	return next
}

// userHost says whether next is an absolute URL on a user's host under hub.subdomain_host.
func (g *Gate) userHost(next string) bool {
	if g.cfg.Hub.SubdomainHost == "" || !strings.Contains(next, "://") {
		return false
	}
	u, err := url.Parse(next)
	sub, _ := url.Parse(g.cfg.Hub.SubdomainHost)
	if err != nil || sub == nil || u.Scheme != sub.Scheme || u.User != nil || u.Opaque != "" {
		return false
	}
	label, ok := strings.CutSuffix(strings.ToLower(u.Host), "."+strings.ToLower(sub.Host))
	return ok && label != "" && !strings.Contains(label, ".")
}

// SafeNextOr is SafeNext with another fallback for an empty next.
func (g *Gate) SafeNextOr(next, fallback string) string {
	if next == "" {
		return fallback
	}
	return g.SafeNext(next)
}

// StartSession records a login session and sets the login cookie.
func (g *Gate) StartSession(w http.ResponseWriter, r *http.Request, u store.User, sess store.Session) error {
	sess, secret, err := g.store.CreateSession(r.Context(), sess, g.cfg.Hub.CookieMaxAge.D())
	if err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{
		Name: LoginCookie, Value: g.Sign(secret), Path: g.prefix + "/hub/", HttpOnly: true,
		Secure: g.Secure(r), SameSite: http.SameSiteLaxMode, MaxAge: int(g.cfg.Hub.CookieMaxAge.D().Seconds()),
	})
	g.log.Info("login", "user", u.Name, "admin", u.Admin, "groups", u.Groups, "session", sess.ID, "remote", r.RemoteAddr)
	return nil
}

// EndSession ends the caller's login session, which also revokes the OAuth tokens issued under
// it, so the user's server cookies stop working at their next check. It clears the login cookie
// and returns where the browser should go: the identity provider's logout, so that the next login
// there is not silent and instant, or the login page.
func (g *Gate) EndSession(w http.ResponseWriter, r *http.Request) string {
	target := g.prefix + "/hub/login"
	// No refresh: one that found a lost access would end the session here first, and the
	// browser would not be sent on to end the provider's session too.
	if c, err := g.fromCookie(r, false); err == nil {
		if err := g.store.DeleteSession(r.Context(), c.Session.ID); err != nil {
			g.log.Error("logout", "user", c.User.Name, "err", err)
		}
		if g.idp != nil {
			if sealed, _ := g.store.AuthState(r.Context(), c.User.ID); sealed != nil {
				if state, err := g.sealer.open(sealed); err == nil {
					if u := g.idp.LogoutURL(state); u != "" {
						target = u
					}
				}
				g.store.SetAuthState(r.Context(), c.User.ID, nil)
			}
		}
		g.log.Info("logout", "user", c.User.Name)
	}
	http.SetCookie(w, &http.Cookie{Name: LoginCookie, Value: "", Path: g.prefix + "/hub/", MaxAge: -1, HttpOnly: true})
	return target
}

// loginXSRFCookie binds the login form's XSRF token to the browser that loaded the form: a page
// on another site can post a login form, but it cannot read or set this cookie, so it cannot log
// someone's browser in as the attacker.
const loginXSRFCookie = "jupyterhub-login-xsrf"

// LoginFormToken is the XSRF token of an anonymous form (the login page). It sets the cookie
// the token is bound to when the browser has none yet.
func (g *Gate) LoginFormToken(w http.ResponseWriter, r *http.Request) string {
	if c, err := r.Cookie(loginXSRFCookie); err == nil && len(c.Value) == 64 {
		return g.mac("login-xsrf", c.Value)
	}
	v := store.NewSecret()
	http.SetCookie(w, &http.Cookie{
		Name: loginXSRFCookie, Value: v, Path: g.prefix + "/hub/", HttpOnly: true,
		Secure: g.Secure(r), SameSite: http.SameSiteLaxMode,
	})
	return g.mac("login-xsrf", v)
}

// CheckLoginForm says whether a login form came from a page this browser loaded from the hub.
func (g *Gate) CheckLoginForm(r *http.Request) bool {
	c, err := r.Cookie(loginXSRFCookie)
	got := r.PostFormValue("_xsrf")
	return err == nil && got != "" && hmac.Equal([]byte(got), []byte(g.mac("login-xsrf", c.Value)))
}

// ClientAddr is the browser's address: the hub's peer, or behind a trusted proxy the address that
// proxy saw (the last X-Forwarded-For entry, which it appended itself).
func (g *Gate) ClientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	if g.FromTrustedProxy(r) {
		if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
			parts := strings.Split(xff[len(xff)-1], ",")
			if last := strings.TrimSpace(parts[len(parts)-1]); last != "" {
				return last
			}
		}
	}
	return host
}

// LoginThrottled says whether a password login for account from the request's address must be
// refused for now, and for how long. JupyterHub has no such limit; PAM's delay after a wrong
// password slows one guesser, not many in parallel.
func (g *Gate) LoginThrottled(r *http.Request, account string) (bool, time.Duration) {
	if b, d := g.accounts.blocked(account); b {
		return true, d
	}
	return g.sources.blocked(g.ClientAddr(r))
}

// LoginFailed counts a failed password login.
func (g *Gate) LoginFailed(r *http.Request, account string) {
	g.accounts.fail(account)
	g.sources.fail(g.ClientAddr(r))
}

// LoginSucceeded clears the account's failures (not the address's: one success from an office
// must not reset the count of a guesser behind the same NAT).
func (g *Gate) LoginSucceeded(account string) { g.accounts.forget(account) }
