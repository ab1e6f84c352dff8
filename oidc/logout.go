package oidc

import (
	"context"
	"fmt"
	"net/url"
	"time"
)

// LogoutURL is where to send the browser so the provider ends its own session too (otherwise the
// next login is silent and instant). It carries id_token_hint (when t has an ID token; an
// expired one is fine), client_id and post_logout_redirect_uri (when configured). It is "" when
// the provider announces no end_session_endpoint.
func (p *Provider) LogoutURL(t Tokens) string {
	if p.disc.EndSessionURL == "" {
		return ""
	}
	u, err := url.Parse(p.disc.EndSessionURL)
	if err != nil {
		return ""
	}
	q := u.Query()
	q.Set("client_id", p.cfg.ClientID)
	if t.IDToken != "" {
		q.Set("id_token_hint", t.IDToken)
	}
	if p.cfg.PostLogoutRedirectURL != "" {
		q.Set("post_logout_redirect_uri", p.cfg.PostLogoutRedirectURL)
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// maxLogoutJTIs bounds the replay memory; the endpoint that feeds it is unauthenticated.
const maxLogoutJTIs = 10000

// VerifyLogoutToken checks a back-channel logout token (OpenID Connect Back-Channel Logout 1.0,
// the logout_token form field the provider POSTs): signature, issuer, audience, expiry, the
// logout event, no nonce, and a jti not seen before. It returns the subject and session id it
// names; at least one is set. End the hub sessions with that sid, or with no sid all of that
// subject's. Errors wrap ErrLogoutToken (and ErrIssuerMismatch for another issuer's token).
func (p *Provider) VerifyLogoutToken(ctx context.Context, raw string) (subject, sessionID string, err error) {
	const op = "verifying logout token"
	if iss, err := unverifiedIssuer(raw); err != nil {
		return "", "", fmt.Errorf("oidc: %s: %w: %w", op, ErrLogoutToken, err)
	} else if iss != p.disc.Issuer {
		return "", "", fmt.Errorf("oidc: %s: %w (%w): token issued by %q, expected %q", op, ErrLogoutToken, ErrIssuerMismatch, iss, p.disc.Issuer)
	}
	lt, err := p.verifier.VerifyLogout(p.httpContext(ctx), raw)
	if err != nil {
		return "", "", fmt.Errorf("oidc: %s: %w: %w", op, ErrLogoutToken, err)
	}
	if err := p.rememberLogout(lt.TokenID, lt.Expiry); err != nil {
		return "", "", fmt.Errorf("oidc: %s: %w", op, err)
	}
	p.log.Info("oidc: back-channel logout", "sub", lt.Subject, "sid", lt.SessionID)
	return lt.Subject, lt.SessionID, nil
}

// rememberLogout refuses a logout token id seen before: replayed later, a token naming only a
// subject would end that user's newer sessions too.
func (p *Provider) rememberLogout(jti string, exp time.Time) error {
	p.logoutMu.Lock()
	defer p.logoutMu.Unlock()
	now := p.now()
	if until, ok := p.logoutJTI[jti]; ok && until.After(now) {
		return fmt.Errorf("%w: token id %q was already used", ErrLogoutToken, jti)
	}
	if len(p.logoutJTI) >= maxLogoutJTIs {
		for k, until := range p.logoutJTI {
			if !until.After(now) {
				delete(p.logoutJTI, k)
			}
		}
		if len(p.logoutJTI) >= maxLogoutJTIs {
			return fmt.Errorf("%w: too many logout tokens in flight", ErrLogoutToken)
		}
	}
	p.logoutJTI[jti] = exp
	return nil
}
