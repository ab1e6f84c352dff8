package oidc

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Flow carries one login from Begin to Finish: state, nonce, PKCE verifier and the caller's
// "next" URL, authenticated with the Provider's flow key (not encrypted). Put it in a cookie that
// is HttpOnly, Secure, SameSite=Lax (the callback is a cross-site top-level GET, which Strict
// would strip), scoped to the callback path and living about FlowTTL; delete it in Finish.
// Its value uses only cookie-safe characters.
type Flow string

type flowData struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	Created  int64  `json:"t"`
	Next     string `json:"r,omitempty"`
}

const flowMACLabel = "jupyterhub-go oidc flow v1\x00"

func randomKey() []byte {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (Go 1.24+: a failing source crashes the program)
	return b
}

func (p *Provider) mac(payload string) []byte {
	m := hmac.New(sha256.New, p.flowKey)
	m.Write([]byte(flowMACLabel))
	m.Write([]byte(payload))
	return m.Sum(nil)
}

func (p *Provider) seal(d flowData) Flow {
	b, _ := json.Marshal(d) // plain strings and an int: cannot fail
	payload := base64.RawURLEncoding.EncodeToString(b)
	return Flow(payload + "." + base64.RawURLEncoding.EncodeToString(p.mac(payload)))
}

func (p *Provider) open(f Flow) (flowData, error) {
	var d flowData
	if f == "" {
		return d, fmt.Errorf("%w: no login flow cookie (cookies blocked, or the login was started elsewhere)", ErrState)
	}
	payload, sig, ok := strings.Cut(string(f), ".")
	mac, err := base64.RawURLEncoding.DecodeString(sig)
	if !ok || err != nil || !hmac.Equal(mac, p.mac(payload)) {
		return d, fmt.Errorf("%w: login flow cookie is not one this hub made", ErrState)
	}
	b, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil || json.Unmarshal(b, &d) != nil || d.State == "" || d.Verifier == "" || d.Nonce == "" {
		return d, fmt.Errorf("%w: login flow cookie is malformed", ErrState)
	}
	age := p.now().Sub(time.Unix(d.Created, 0))
	if age > p.cfg.FlowTTL || age < -time.Minute {
		return d, fmt.Errorf("%w: login took %s, longer than the %s allowed", ErrState, age.Round(time.Second), p.cfg.FlowTTL)
	}
	return d, nil
}

// Begin starts a login. The browser goes to authURL; the caller keeps flow (a cookie, see Flow)
// for Finish. next is carried through untouched and comes back as Login.Next; the caller must
// still check it is a local URL before redirecting there.
func (p *Provider) Begin(next string) (authURL string, flow Flow) {
	d := flowData{
		State:    rand.Text(),
		Nonce:    rand.Text(),
		Verifier: oauth2.GenerateVerifier(),
		Created:  p.now().Unix(),
		Next:     next,
	}
	opts := []oauth2.AuthCodeOption{oauth2.S256ChallengeOption(d.Verifier), gooidc.Nonce(d.Nonce)}
	for k, v := range p.cfg.AuthParams {
		opts = append(opts, oauth2.SetAuthURLParam(k, v))
	}
	return p.oauth.AuthCodeURL(d.State, opts...), p.seal(d)
}

// Finish completes a login from the callback's query: it checks the state against flow,
// exchanges the code with the PKCE verifier, verifies the ID token (signature, issuer, audience,
// expiry, nonce) and maps the claims. Errors wrap ErrState, IdPError (the provider refused, e.g.
// access_denied), ErrIssuerMismatch, ErrCodeRejected, ErrIDToken, ErrClaims or ErrUnreachable.
func (p *Provider) Finish(ctx context.Context, flow Flow, query url.Values) (Login, error) {
	const op = "finishing login"
	d, err := p.open(flow)
	if err != nil {
		p.log.Warn("oidc: login callback rejected", "err", err)
		return Login{}, fmt.Errorf("oidc: %s: %w", op, err)
	}
	if subtle.ConstantTimeCompare([]byte(query.Get("state")), []byte(d.State)) != 1 {
		p.log.Warn("oidc: login callback state does not match its flow cookie")
		return Login{}, fmt.Errorf("oidc: %s: %w: state in the callback does not match this browser's login", op, ErrState)
	}
	// RFC 9207: a provider that names itself in the callback must be the one we sent the user to,
	// or the code may be meant for another provider's token endpoint.
	if iss := query.Get("iss"); iss != "" && iss != p.disc.Issuer {
		return Login{}, fmt.Errorf("oidc: %s: %w: callback comes from issuer %q, expected %q", op, ErrIssuerMismatch, iss, p.disc.Issuer)
	}
	if code := query.Get("error"); code != "" {
		return Login{}, fmt.Errorf("oidc: %s: %w", op, &IdPError{Code: code, Description: query.Get("error_description")})
	}
	code := query.Get("code")
	if code == "" {
		return Login{}, fmt.Errorf("oidc: %s: %w: callback carries neither code nor error", op, ErrState)
	}

	ctx = p.httpContext(ctx)
	tok, err := p.oauth.Exchange(ctx, code, oauth2.VerifierOption(d.Verifier))
	if err != nil {
		return Login{}, tokenError("exchanging the authorization code", err, ErrCodeRejected)
	}
	rawID, _ := tok.Extra("id_token").(string)
	if rawID == "" {
		return Login{}, fmt.Errorf("oidc: %s: %w: the token response has no id_token (is the openid scope granted?)", op, ErrIDToken)
	}
	idt, claims, err := p.verifyIDToken(ctx, rawID)
	if err != nil {
		return Login{}, fmt.Errorf("oidc: %s: %w", op, err)
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(d.Nonce)) != 1 {
		return Login{}, fmt.Errorf("oidc: %s: %w: nonce does not match this login (a replayed ID token?)", op, ErrIDToken)
	}
	// at_hash binds the access token to this ID token when the provider sends it.
	if idt.AccessTokenHash != "" {
		if err := idt.VerifyAccessToken(tok.AccessToken); err != nil {
			return Login{}, fmt.Errorf("oidc: %s: %w: %w", op, ErrIDToken, err)
		}
	}
	login, err := p.login(ctx, tok, rawID, idt.Subject, claims)
	if err != nil {
		return Login{}, fmt.Errorf("oidc: %s: %w", op, err)
	}
	login.Next = d.Next
	p.log.Info("oidc: login", "user", login.Username, "sub", login.Subject, "groups", len(login.Groups))
	return login, nil
}
