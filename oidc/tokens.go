package oidc

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"time"

	gooidc "github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// Login is a user the provider vouched for.
type Login struct {
	// Username comes from UsernameClaim, lowercased. The caller still validates it as a hub name.
	Username string
	// Subject is the provider's stable id for the user ("sub"); back-channel logout names it.
	Subject string
	// SessionID is the provider's session ("sid"), empty when the provider sends none; a
	// back-channel logout token may name only this.
	SessionID string
	// Groups from every GroupsClaims path in order, de-duplicated, normalized by NormalizeGroup.
	Groups []string
	// Claims are all claims read (ID token, then userinfo for what it lacks), for hub features
	// beyond username and groups.
	Claims map[string]any
	// Tokens are secrets: the hub stores them encrypted.
	Tokens Tokens
	// Next is what Begin was given.
	Next string
}

// Tokens are the provider's tokens for one login. They marshal to JSON for the hub's encrypted
// store; String and LogValue redact them.
type Tokens struct {
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	IDToken      string    `json:"id_token,omitempty"`
	Expiry       time.Time `json:"expiry,omitzero"` // of the access token; zero when not told
	// RefreshExpiry is when the refresh token runs out, from the provider's refresh_expires_in
	// (Keycloak: the SSO session's idle or max time, whichever ends first); zero when not told,
	// or told 0 (Keycloak's offline tokens). A refresh refused after it is a login that ran its
	// course; one refused before it was ended at the provider (revoked, signed out, disabled).
	RefreshExpiry time.Time `json:"refresh_expiry,omitzero"`
}

func (t Tokens) String() string {
	set := func(s string) string {
		if s == "" {
			return "none"
		}
		return "set"
	}
	return fmt.Sprintf("oidc.Tokens{access:%s refresh:%s id:%s expiry:%s}",
		set(t.AccessToken), set(t.RefreshToken), set(t.IDToken), t.Expiry.Format(time.RFC3339))
}

// LogValue keeps tokens out of logs.
func (t Tokens) LogValue() slog.Value { return slog.StringValue(t.String()) }

func tokensOf(tok *oauth2.Token, rawID string) Tokens {
	t := Tokens{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, IDToken: rawID, Expiry: tok.Expiry}
	if secs := seconds(tok.Extra("refresh_expires_in")); secs > 0 {
		t.RefreshExpiry = time.Now().Add(time.Duration(secs) * time.Second)
	}
	return t
}

// seconds reads a token response's number of seconds: a JSON number, or a string in a
// form-encoded answer; 0 when it is neither, or absurd.
func seconds(v any) int64 {
	var f float64
	switch x := v.(type) {
	case float64:
		f = x
	case string:
		n, err := strconv.ParseFloat(x, 64)
		if err != nil {
			return 0
		}
		f = n
	}
	if !(f > 0 && f < 1<<40) { // also NaN
		return 0
	}
	return int64(f)
}

// verifyIDToken checks an ID token and returns its claims. The issuer is compared before
// go-oidc runs, because go-oidc checks the signature first and a token from another provider
// would only read as a bad signature.
func (p *Provider) verifyIDToken(ctx context.Context, raw string) (*gooidc.IDToken, map[string]any, error) {
	if iss, err := unverifiedIssuer(raw); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrIDToken, err)
	} else if iss != p.disc.Issuer {
		return nil, nil, fmt.Errorf("%w (%w): token issued by %q, expected %q", ErrIDToken, ErrIssuerMismatch, iss, p.disc.Issuer)
	}
	idt, err := p.verifier.Verify(ctx, raw)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrIDToken, err)
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrIDToken, err)
	}
	// With several audiences, the token must say it was issued to us (OIDC Core 3.1.3.7).
	if azp, ok := claims["azp"].(string); len(idt.Audience) > 1 && (!ok || azp != p.cfg.ClientID) {
		return nil, nil, fmt.Errorf("%w: token has several audiences and azp %q is not this client", ErrIDToken, azp)
	}
	if idt.Subject == "" {
		return nil, nil, fmt.Errorf("%w: token has no sub", ErrIDToken)
	}
	return idt, claims, nil
}

// unverifiedClaims reads a JWT's payload without checking it; only for values that are checked
// afterwards or that came from the hub's own store.
func unverifiedClaims(raw string) (map[string]any, error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, errors.New("not a signed JWT")
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, fmt.Errorf("JWT payload: %w", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(b, &claims); err != nil {
		return nil, fmt.Errorf("JWT payload: %w", err)
	}
	return claims, nil
}

func unverifiedIssuer(raw string) (string, error) {
	claims, err := unverifiedClaims(raw)
	if err != nil {
		return "", err
	}
	iss, _ := claims["iss"].(string)
	return iss, nil
}

// login maps verified claims (plus userinfo when configured) to a Login.
func (p *Provider) login(ctx context.Context, tok *oauth2.Token, rawID, sub string, claims map[string]any) (Login, error) {
	if p.cfg.UserInfo {
		ui, err := p.op.UserInfo(ctx, oauth2.StaticTokenSource(tok))
		if err != nil {
			return Login{}, requestError("reading userinfo", err)
		}
		// OIDC Core 5.3.2: userinfo for another subject must not be used.
		if ui.Subject != sub {
			return Login{}, fmt.Errorf("%w: userinfo is about subject %q, the ID token about %q", ErrClaims, ui.Subject, sub)
		}
		var more map[string]any
		if err := ui.Claims(&more); err != nil {
			return Login{}, fmt.Errorf("%w: userinfo: %w", ErrClaims, err)
		}
		for k, v := range more {
			if _, ok := claims[k]; !ok {
				claims[k] = v
			}
		}
	}
	name, _ := claimAt(claims, p.cfg.UsernameClaim).(string)
	if name == "" {
		return Login{}, fmt.Errorf("%w: no string claim %q for the username (is its scope or mapper on?)", ErrClaims, p.cfg.UsernameClaim)
	}
	sid, _ := claims["sid"].(string)
	return Login{
		Username:  strings.ToLower(name),
		Subject:   sub,
		SessionID: sid,
		Groups:    groupsOf(claims, p.cfg.GroupsClaims),
		Claims:    claims,
		Tokens:    tokensOf(tok, rawID),
	}, nil
}

// claimAt follows a dotted path. A key may itself contain dots (Keycloak client ids often do,
// as in resource_access.hub.example.org.roles): the whole remaining path is tried as a key
// first, then shorter prefixes.
func claimAt(claims map[string]any, path string) any {
	if v, ok := claims[path]; ok {
		return v
	}
	for i := strings.LastIndexByte(path, '.'); i > 0; i = strings.LastIndexByte(path[:i], '.') {
		if sub, ok := claims[path[:i]].(map[string]any); ok {
			if v := claimAt(sub, path[i+1:]); v != nil {
				return v
			}
		}
	}
	return nil
}

func groupsOf(claims map[string]any, paths []string) []string {
	groups := []string{}
	add := func(v any) {
		if s, ok := v.(string); ok {
			if g := NormalizeGroup(s); g != "" && !slices.Contains(groups, g) {
				groups = append(groups, g)
			}
		}
	}
	for _, path := range paths {
		switch v := claimAt(claims, path).(type) {
		case []any:
			for _, e := range v {
				add(e)
			}
		case string:
			add(v)
		}
	}
	return groups
}

// NormalizeGroup strips the one leading "/" of a Keycloak group path ("/jupyter-users" →
// "jupyter-users", "/staff/physics" → "staff/physics"), so hub configuration names groups the
// same whether Keycloak's mapper sends full paths or not. Apply it to configured group names too.
func NormalizeGroup(g string) string {
	return strings.TrimPrefix(strings.TrimSpace(g), "/")
}

// Refresh trades the refresh token for new tokens and re-reads the claims, so the caller can
// sync groups. Store the returned Tokens: the provider may rotate the refresh token and refuse
// the old one (and serialize refreshes per user for that reason). Errors wrap ErrReauthenticate
// (refresh token expired or revoked, the IdP session ended), ErrUnreachable, ErrIDToken or
// ErrConfig. Without a new ID token in the answer, the stored one's claims are used again.
func (p *Provider) Refresh(ctx context.Context, t Tokens) (Login, error) {
	const op = "refreshing tokens"
	if t.RefreshToken == "" {
		return Login{}, fmt.Errorf("oidc: %s: %w: no refresh token stored", op, ErrReauthenticate)
	}
	var oldSub string
	if t.IDToken != "" {
		// Our own store's copy of a token verified at login.
		if old, err := unverifiedClaims(t.IDToken); err == nil {
			oldSub, _ = old["sub"].(string)
		}
	}
	ctx = p.httpContext(ctx)
	tok, err := p.oauth.TokenSource(ctx, &oauth2.Token{RefreshToken: t.RefreshToken}).Token()
	if err != nil {
		return Login{}, tokenError(op, err, ErrReauthenticate)
	}
	rawID, _ := tok.Extra("id_token").(string)
	var claims map[string]any
	sub := oldSub
	if rawID != "" {
		idt, c, err := p.verifyIDToken(ctx, rawID)
		if err != nil {
			return Login{}, fmt.Errorf("oidc: %s: %w", op, err)
		}
		// OIDC Core 12.2: a refreshed ID token is about the same user.
		if oldSub != "" && idt.Subject != oldSub {
			return Login{}, fmt.Errorf("oidc: %s: %w: refreshed ID token is about %q, not %q", op, ErrIDToken, idt.Subject, oldSub)
		}
		claims, sub = c, idt.Subject
	} else {
		rawID = t.IDToken
		if claims, err = unverifiedClaims(rawID); err != nil {
			return Login{}, fmt.Errorf("oidc: %s: %w: no new ID token and the stored one is unreadable: %w", op, ErrIDToken, err)
		}
	}
	login, err := p.login(ctx, tok, rawID, sub, claims)
	if err != nil {
		return Login{}, fmt.Errorf("oidc: %s: %w", op, err)
	}
	if login.Tokens.RefreshToken == t.RefreshToken && login.Tokens.RefreshExpiry.IsZero() {
		login.Tokens.RefreshExpiry = t.RefreshExpiry // the same refresh token, not said again
	}
	return login, nil
}
