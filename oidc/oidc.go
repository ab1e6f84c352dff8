// Package oidc logs users in through an OpenID Connect provider, shaped after Keycloak: the
// authorization-code flow with PKCE and nonce, claims mapped to a username and groups, refresh,
// RP-initiated logout and back-channel logout. It is jupyterhub-go's second authenticator
// beside pam.
//
// The package keeps no per-user state. Between Begin and Finish the caller holds a Flow (in a
// short-lived cookie); after Finish it holds the Tokens (encrypted in its store) and hands them
// back for Refresh and LogoutURL.
package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Errors the hub tells apart to show a useful page. Every error the package returns wraps at
// most a couple of these (test with errors.Is) and says what was being done.
var (
	// ErrConfig: the settings cannot work (secret file missing, unknown realm, client id or secret
	// refused by the identity provider). Retrying will not help; an operator must fix it.
	ErrConfig = errors.New("configuration error")
	// ErrIssuerMismatch: the identity provider, an ID token, a logout token or the callback names
	// an issuer other than the configured one (often http vs https, a trailing slash, or an
	// internal hostname).
	ErrIssuerMismatch = errors.New("issuer mismatch")
	// ErrUnreachable: the identity provider did not answer, or answered with a server error.
	// Worth retrying later.
	ErrUnreachable = errors.New("identity provider unreachable")
	// ErrState: the callback does not belong to a login this hub started in this browser (flow
	// cookie missing, expired, forged, or a state that does not match). Start the login again.
	ErrState = errors.New("login state missing, expired or forged")
	// ErrCodeRejected: the token endpoint refused the authorization code (already used, expired,
	// or its PKCE verifier does not match), typically a reloaded or replayed callback.
	ErrCodeRejected = errors.New("authorization code rejected")
	// ErrIDToken: the ID token failed verification (signature, issuer, audience, expiry, nonce).
	ErrIDToken = errors.New("ID token rejected")
	// ErrClaims: the tokens verified but lack what the hub needs (no username claim).
	ErrClaims = errors.New("claims unusable")
	// ErrReauthenticate: the refresh token is expired or revoked (the IdP session ended); the
	// user must log in again.
	ErrReauthenticate = errors.New("identity provider session ended, log in again")
	// ErrLogoutToken: a back-channel logout token failed verification or was replayed.
	ErrLogoutToken = errors.New("logout token rejected")
)

// IdPError is an OAuth error the identity provider answered with: in the callback (access_denied
// when the user cancels, temporarily_unavailable, ...) or from its token endpoint
// (invalid_grant, invalid_client, ...). Use errors.As to read it.
type IdPError struct {
	Code        string // OAuth error code
	Description string // the provider's error_description, for logs, not for users
	Status      int    // HTTP status of the token endpoint's answer; 0 for the callback
}

func (e *IdPError) Error() string {
	s := "identity provider answered " + e.Code
	if e.Status != 0 {
		s += fmt.Sprintf(" (HTTP %d)", e.Status)
	}
	if e.Description != "" {
		s += ": " + e.Description
	}
	return s
}

// UserMessage explains err in a sentence fit for the login error page: no tokens, no internals.
// The full error belongs in the log.
func UserMessage(err error) string {
	var ie *IdPError
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrState):
		return "This sign-in has expired or was started in another browser. Please sign in again."
	case errors.Is(err, ErrCodeRejected):
		return "This sign-in was already used or has expired. Please sign in again."
	case errors.Is(err, ErrReauthenticate):
		return "Your session at the identity provider has ended. Please sign in again."
	case errors.Is(err, ErrUnreachable):
		return "The identity provider cannot be reached right now. Please try again in a few minutes."
	case errors.Is(err, ErrConfig):
		return "Sign-in is misconfigured on this hub. Please tell the administrators."
	case errors.Is(err, ErrIssuerMismatch), errors.Is(err, ErrIDToken), errors.Is(err, ErrLogoutToken):
		return "The identity provider's answer could not be verified. Please sign in again; if this persists, tell the administrators."
	case errors.Is(err, ErrClaims):
		return "Your account at the identity provider has no username for this hub. Please tell the administrators."
	case errors.As(err, &ie) && ie.Code == "access_denied":
		return "Sign-in was cancelled or refused at the identity provider."
	case errors.As(err, &ie) && oauthCode(ie.Code):
		return "The identity provider refused the sign-in (" + ie.Code + "). Please try again."
	case errors.As(err, &ie):
		return "The identity provider refused the sign-in. Please try again."
	}
	return "Sign-in failed. Please try again."
}

// oauthCode tells an OAuth error code from arbitrary text: the callback's error parameter is
// whatever the link's author put there.
func oauthCode(s string) bool {
	if s == "" || len(s) > 40 {
		return false
	}
	for _, c := range s {
		if (c < 'a' || c > 'z') && c != '_' {
			return false
		}
	}
	return true
}

// Config says how to reach the identity provider and how to read its claims.
type Config struct {
	// Issuer is the exact issuer URL the provider puts into its tokens, e.g.
	// https://sso.example.org/realms/main for Keycloak. Discovery is fetched below it.
	Issuer   string
	ClientID string
	// ClientSecretFile holds the client secret (surrounding white space ignored), so the secret
	// stays out of the configuration file.
	ClientSecretFile string
	// RedirectURL is the hub's callback as registered at the provider, e.g.
	// https://hub.example.org/hub/oauth_callback.
	RedirectURL string
	// Scopes requested; default openid, profile, email. "openid" is added when missing.
	Scopes []string
	// UsernameClaim is a dotted claim path; default preferred_username. The value is lowercased.
	UsernameClaim string
	// GroupsClaims are dotted claim paths whose values (a string or a list of strings) become
	// groups, merged in order without duplicates, e.g. "groups", "realm_access.roles",
	// "resource_access.jupyterhub.roles". Default: "groups". Keycloak group paths lose their
	// leading "/" (see NormalizeGroup).
	GroupsClaims []string
	// UserInfo also reads claims from the userinfo endpoint, at login and at refresh. ID token
	// claims win; userinfo fills in what the ID token lacks (Keycloak mappers with "Add to ID
	// token" off but "Add to userinfo" on).
	UserInfo bool
	// PostLogoutRedirectURL is where the provider sends the browser after logout; it must be
	// registered at the provider (Keycloak: "Valid post logout redirect URIs").
	PostLogoutRedirectURL string
	// AuthParams are extra authorization request parameters, e.g. kc_idp_hint or prompt.
	AuthParams map[string]string
	// FlowKey authenticates Flow values (at least 32 bytes). When empty a random key is made,
	// so a login in progress across a hub restart fails with ErrState and the user starts again.
	FlowKey []byte
	// FlowTTL bounds the time from Begin to Finish; default 10 minutes.
	FlowTTL time.Duration
	// HTTPTimeout bounds each request to the provider; default 10 seconds.
	HTTPTimeout time.Duration
	// HTTPClient, when set, is used for every request to the provider (a private CA, a proxy).
	// Its Timeout is set to HTTPTimeout on a copy when it has none.
	HTTPClient *http.Client
}

// Provider is one configured identity provider. It is safe for concurrent use.
type Provider struct {
	cfg       Config
	log       *slog.Logger
	client    *http.Client
	disc      discovery
	oauth     oauth2.Config
	op        *gooidc.Provider
	verifier  *gooidc.IDTokenVerifier
	flowKey   []byte
	now       func() time.Time
	logoutMu  sync.Mutex
	logoutJTI map[string]time.Time // back-channel logout token ids seen, until they expire
}

// The discovery fields this package uses.
type discovery struct {
	Issuer           string   `json:"issuer"`
	AuthURL          string   `json:"authorization_endpoint"`
	TokenURL         string   `json:"token_endpoint"`
	UserInfoURL      string   `json:"userinfo_endpoint"`
	JWKSURL          string   `json:"jwks_uri"`
	EndSessionURL    string   `json:"end_session_endpoint"`
	IDTokenAlgs      []string `json:"id_token_signing_alg_values_supported"`
	TokenAuthMethods []string `json:"token_endpoint_auth_methods_supported"`
}

// reservedParams are set by Begin itself; letting AuthParams override them would break the flow.
var reservedParams = []string{"client_id", "redirect_uri", "response_type", "scope", "state", "nonce",
	"code_challenge", "code_challenge_method"}

// New checks the configuration, reads the client secret and fetches the provider's discovery
// document. Its errors wrap ErrConfig, ErrIssuerMismatch or ErrUnreachable. A hub that must start
// while the provider is down retries New later; there is no half-ready Provider.
func New(ctx context.Context, cfg Config, log *slog.Logger) (*Provider, error) {
	if log == nil {
		log = slog.Default()
	}
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	secret, err := readSecret(cfg.ClientSecretFile, log)
	if err != nil {
		return nil, err
	}
	p := &Provider{cfg: cfg, log: log, now: time.Now, logoutJTI: map[string]time.Time{}}
	p.flowKey = cfg.FlowKey
	if len(p.flowKey) == 0 {
		p.flowKey = randomKey()
	}
	p.client = cfg.HTTPClient
	if p.client == nil {
		p.client = &http.Client{Timeout: cfg.HTTPTimeout}
	} else if p.client.Timeout == 0 {
		c := *p.client
		c.Timeout = cfg.HTTPTimeout
		p.client = &c
	}

	if p.disc, err = p.discover(ctx); err != nil {
		return nil, err
	}
	// Secret in the Authorization header is the spec's default and what Keycloak prefers; a
	// provider that lists only client_secret_post gets it in the body.
	style := oauth2.AuthStyleInHeader
	if len(p.disc.TokenAuthMethods) > 0 && !slices.Contains(p.disc.TokenAuthMethods, "client_secret_basic") &&
		slices.Contains(p.disc.TokenAuthMethods, "client_secret_post") {
		style = oauth2.AuthStyleInParams
	}
	p.oauth = oauth2.Config{
		ClientID:     cfg.ClientID,
		ClientSecret: secret,
		RedirectURL:  cfg.RedirectURL,
		Scopes:       cfg.Scopes,
		Endpoint:     oauth2.Endpoint{AuthURL: p.disc.AuthURL, TokenURL: p.disc.TokenURL, AuthStyle: style},
	}
	pc := gooidc.ProviderConfig{
		IssuerURL:   p.disc.Issuer,
		AuthURL:     p.disc.AuthURL,
		TokenURL:    p.disc.TokenURL,
		UserInfoURL: p.disc.UserInfoURL,
		JWKSURL:     p.disc.JWKSURL,
		Algorithms:  signingAlgs(p.disc.IDTokenAlgs),
	}
	p.op = pc.NewProvider(gooidc.ClientContext(context.Background(), p.client))
	p.verifier = p.op.Verifier(&gooidc.Config{ClientID: cfg.ClientID, Now: p.clock})
	if cfg.UserInfo && p.disc.UserInfoURL == "" {
		return nil, fmt.Errorf("oidc: %w: UserInfo is on but %s announces no userinfo_endpoint", ErrConfig, cfg.Issuer)
	}
	if p.disc.EndSessionURL == "" {
		log.Warn("oidc: the identity provider has no end_session_endpoint; logging out of the hub will not end the IdP session",
			"issuer", cfg.Issuer)
	}
	return p, nil
}

func (p *Provider) clock() time.Time { return p.now() }

// signingAlgs keeps the public-key algorithms among those the provider announces. Keycloak also
// lists HS256 and friends, whose keys are never published; accepting them would only widen what
// a forged token may try. Empty means go-oidc's default, RS256.
func signingAlgs(announced []string) []string {
	var algs []string
	for _, a := range announced {
		switch a {
		case gooidc.RS256, gooidc.RS384, gooidc.RS512, gooidc.ES256, gooidc.ES384, gooidc.ES512,
			gooidc.PS256, gooidc.PS384, gooidc.PS512, gooidc.EdDSA:
			algs = append(algs, a)
		}
	}
	return algs
}

func (cfg *Config) fill() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("oidc: %w: %s", ErrConfig, fmt.Sprintf(format, args...))
	}
	if err := checkURL(cfg.Issuer); err != nil {
		return bad("issuer %q: %v", cfg.Issuer, err)
	}
	if err := checkURL(cfg.RedirectURL); err != nil {
		return bad("redirect URL %q: %v", cfg.RedirectURL, err)
	}
	if cfg.PostLogoutRedirectURL != "" {
		if err := checkURL(cfg.PostLogoutRedirectURL); err != nil {
			return bad("post-logout redirect URL %q: %v", cfg.PostLogoutRedirectURL, err)
		}
	}
	if cfg.ClientID == "" {
		return bad("client id is empty")
	}
	if cfg.ClientSecretFile == "" {
		return bad("no client secret file configured")
	}
	if len(cfg.FlowKey) > 0 && len(cfg.FlowKey) < 32 {
		return bad("flow key has %d bytes, want at least 32", len(cfg.FlowKey))
	}
	for k := range cfg.AuthParams {
		if slices.Contains(reservedParams, k) {
			return bad("authorization parameter %q is set by the login flow itself", k)
		}
	}
	// The Provider keeps these; the caller may go on changing its own copies.
	cfg.AuthParams = maps.Clone(cfg.AuthParams)
	cfg.Scopes = slices.Clone(cfg.Scopes)
	cfg.GroupsClaims = slices.Clone(cfg.GroupsClaims)
	cfg.FlowKey = slices.Clone(cfg.FlowKey)
	if len(cfg.Scopes) == 0 {
		cfg.Scopes = []string{gooidc.ScopeOpenID, "profile", "email"}
	} else if !slices.Contains(cfg.Scopes, gooidc.ScopeOpenID) {
		cfg.Scopes = append([]string{gooidc.ScopeOpenID}, cfg.Scopes...)
	}
	if cfg.UsernameClaim == "" {
		cfg.UsernameClaim = "preferred_username"
	}
	if len(cfg.GroupsClaims) == 0 {
		cfg.GroupsClaims = []string{"groups"}
	}
	if cfg.FlowTTL <= 0 {
		cfg.FlowTTL = 10 * time.Minute
	}
	if cfg.HTTPTimeout <= 0 {
		cfg.HTTPTimeout = 10 * time.Second
	}
	return nil
}

func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return errors.New("want an absolute http(s) URL")
	}
	return nil
}

func readSecret(path string, log *slog.Logger) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("oidc: %w: reading client secret file: %w", ErrConfig, err)
	}
	secret := strings.TrimSpace(string(b))
	if secret == "" {
		return "", fmt.Errorf("oidc: %w: client secret file %s is empty", ErrConfig, path)
	}
	if fi, err := os.Stat(path); err == nil && fi.Mode().Perm()&0o077 != 0 {
		log.Warn("oidc: client secret file is readable by others; chmod 0600 it", "path", path, "mode", fi.Mode().Perm().String())
	}
	return secret, nil
}

// discover fetches the discovery document itself rather than through go-oidc, so that a wrong
// realm (404), a down provider and an issuer mismatch come out as different errors.
func (p *Provider) discover(ctx context.Context) (discovery, error) {
	var d discovery
	wellKnown := strings.TrimSuffix(p.cfg.Issuer, "/") + "/.well-known/openid-configuration"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, wellKnown, nil)
	if err != nil {
		return d, fmt.Errorf("oidc: %w: discovery URL: %w", ErrConfig, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return d, fmt.Errorf("oidc: fetching discovery document: %w: %w", ErrUnreachable, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return d, fmt.Errorf("oidc: reading discovery document: %w: %w", ErrUnreachable, err)
	}
	switch {
	case resp.StatusCode >= 500:
		return d, fmt.Errorf("oidc: fetching discovery document %s: %w: HTTP %d", wellKnown, ErrUnreachable, resp.StatusCode)
	case resp.StatusCode != http.StatusOK:
		return d, fmt.Errorf("oidc: %w: no discovery document at %s (HTTP %d); is the issuer (realm) right?",
			ErrConfig, wellKnown, resp.StatusCode)
	}
	if err := json.Unmarshal(body, &d); err != nil {
		return d, fmt.Errorf("oidc: %w: discovery document at %s is not JSON: %w", ErrConfig, wellKnown, err)
	}
	if d.Issuer != p.cfg.Issuer {
		return d, fmt.Errorf("oidc: %w: configured issuer %q but %s says %q; tokens will carry the latter, configure exactly that",
			ErrIssuerMismatch, p.cfg.Issuer, wellKnown, d.Issuer)
	}
	if d.AuthURL == "" || d.TokenURL == "" || d.JWKSURL == "" {
		return d, fmt.Errorf("oidc: %w: discovery document at %s lacks authorization_endpoint, token_endpoint or jwks_uri",
			ErrConfig, wellKnown)
	}
	return d, nil
}

// httpContext makes golang.org/x/oauth2 and go-oidc use the Provider's client.
func (p *Provider) httpContext(ctx context.Context) context.Context {
	return gooidc.ClientContext(ctx, p.client)
}

// tokenError sorts an error from the token endpoint. rejected is what invalid_grant means for
// the grant at hand: a spent code at login, an ended session at refresh.
func tokenError(op string, err error, rejected error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		ie := &IdPError{Code: re.ErrorCode, Description: re.ErrorDescription}
		if re.Response != nil {
			ie.Status = re.Response.StatusCode
		}
		switch {
		case ie.Status >= 500:
			return fmt.Errorf("oidc: %s: %w: %w", op, ErrUnreachable, ie)
		case ie.Code == "invalid_grant":
			return fmt.Errorf("oidc: %s: %w: %w", op, rejected, ie)
		case ie.Code == "invalid_client" || ie.Code == "unauthorized_client" || ie.Status == http.StatusUnauthorized:
			return fmt.Errorf("oidc: %s: %w: client id or secret refused: %w", op, ErrConfig, ie)
		case ie.Code != "":
			return fmt.Errorf("oidc: %s: %w", op, ie)
		}
		return fmt.Errorf("oidc: %s: unexpected answer from the token endpoint: %w", op, err)
	}
	return requestError(op, err)
}

// requestError marks transport failures and timeouts as ErrUnreachable. A caller's own
// cancellation stays what it is.
func requestError(op string, err error) error {
	var ue *url.Error
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("oidc: %s: %w", op, err)
	case errors.As(err, &ue), errors.As(err, &ne), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("oidc: %s: %w: %w", op, ErrUnreachable, err)
	}
	return fmt.Errorf("oidc: %s: %w", op, err)
}
