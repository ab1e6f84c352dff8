package oidc

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// Subjects of the provider's built-in accounts (test/oidc-provider/server.mjs).
const (
	aliceSub = "a11ce000-0000-4000-8000-000000000001"
	daveSub  = "da7e0000-0000-4000-8000-000000000004"
)

func TestNewErrors(t *testing.T) {
	ip := mainProvider(t)
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte(clientSecret), 0o600); err != nil {
		t.Fatal(err)
	}
	base := Config{Issuer: ip.issuer, ClientID: clientID, ClientSecretFile: secret, RedirectURL: redirectURL}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + l.Addr().String() + "/realms/test"
	l.Close()
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, []byte("\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name   string
		change func(*Config)
		want   error
		says   string
	}{
		{"closed port", func(c *Config) { c.Issuer = closed }, ErrUnreachable, "unreachable"},
		{"missing secret file", func(c *Config) { c.ClientSecretFile = secret + ".nope" }, ErrConfig, secret + ".nope"},
		{"empty secret file", func(c *Config) { c.ClientSecretFile = empty }, ErrConfig, "empty"},
		{"no secret file", func(c *Config) { c.ClientSecretFile = "" }, ErrConfig, "secret"},
		{"trailing slash", func(c *Config) { c.Issuer += "/" }, ErrIssuerMismatch, ip.issuer},
		{"unknown realm", func(c *Config) { c.Issuer = ip.base + "/realms/nope" }, ErrConfig, "realm"},
		{"relative redirect", func(c *Config) { c.RedirectURL = "/hub/oauth_callback" }, ErrConfig, "redirect"},
		{"no client id", func(c *Config) { c.ClientID = "" }, ErrConfig, "client id"},
		{"reserved auth param", func(c *Config) { c.AuthParams = map[string]string{"state": "x"} }, ErrConfig, "state"},
		{"short flow key", func(c *Config) { c.FlowKey = []byte("short") }, ErrConfig, "flow key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := base
			tc.change(&cfg)
			p, err := New(context.Background(), cfg, nil)
			if p != nil {
				t.Fatal("got a Provider along with the error")
			}
			wantErr(t, err, tc.want)
			if !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("error %q does not mention %q", err, tc.says)
			}
		})
	}
}

func TestLoginMapsClaims(t *testing.T) {
	ip := mainProvider(t)
	p := newProvider(t, ip, nil)
	ip.testAPI(t, "/test/users/Ivy.Mixed", map[string]any{"groups": []string{"/jupyter-users"}})

	for _, tc := range []struct {
		user, name, sub string
		want, wantNot   []string
	}{
		{user: "alice", name: "alice", sub: aliceSub,
			want:    []string{"jupyter-users", "default-roles-test", "offline_access", "uma_authorization", "jupyter-user", "user"},
			wantNot: []string{"jupyter-admins", "admin", "manage-account"}},
		{user: "dave", name: "dave", sub: daveSub,
			want: []string{"jupyter-admins", "jupyter-users", "jupyter-admin", "admin", "user"}},
		{user: "carol", name: "carol",
			want: []string{"staff/physics", "default-roles-test"}, wantNot: []string{"jupyter-users", "/staff/physics", "user"}},
		{user: "Ivy.Mixed", name: "ivy.mixed", want: []string{"jupyter-users"}},
	} {
		t.Run(tc.user, func(t *testing.T) {
			authURL, flow := p.Begin("/hub/spawn")
			q := newBrowser(t).login(authURL, tc.user)
			before := time.Now()
			l, err := p.Finish(context.Background(), flow, q)
			if err != nil {
				t.Fatalf("Finish: %v", err)
			}
			if l.Username != tc.name {
				t.Errorf("username %q, want %q", l.Username, tc.name)
			}
			if tc.sub != "" && l.Subject != tc.sub {
				t.Errorf("subject %q, want %q", l.Subject, tc.sub)
			}
			for _, g := range tc.want {
				if !slices.Contains(l.Groups, g) {
					t.Errorf("groups %q lack %q", l.Groups, g)
				}
			}
			for _, g := range tc.wantNot {
				if slices.Contains(l.Groups, g) {
					t.Errorf("groups %q have %q", l.Groups, g)
				}
			}
			if tc.user == "alice" && !slices.Equal(l.Groups, tc.want) {
				t.Errorf("groups %q, want exactly %q in that order", l.Groups, tc.want)
			}
			if l.SessionID == "" || l.Next != "/hub/spawn" || l.Claims["email"] != tc.user+"@example.org" {
				t.Errorf("sid %q next %q email %v", l.SessionID, l.Next, l.Claims["email"])
			}
			tk := l.Tokens
			if tk.AccessToken == "" || tk.RefreshToken == "" || tk.IDToken == "" {
				t.Errorf("tokens incomplete: %v", tk)
			}
			if d := tk.Expiry.Sub(before); d < accessTTL-10*time.Second || d > accessTTL+time.Second {
				t.Errorf("access token expires in %s, want about %s", d, accessTTL)
			}
		})
	}
}

func TestBeginRequest(t *testing.T) {
	ip := mainProvider(t)
	p := newProvider(t, ip, func(c *Config) { c.AuthParams = map[string]string{"kc_idp_hint": "corp"} })
	authURL, flow := p.Begin("")
	u, err := url.Parse(authURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	if !strings.HasSuffix(u.Path, "/realms/test/protocol/openid-connect/auth") {
		t.Errorf("authorization endpoint %s", u.Path)
	}
	for k, want := range map[string]string{"client_id": clientID, "redirect_uri": redirectURL, "response_type": "code",
		"scope": "openid profile email", "code_challenge_method": "S256", "kc_idp_hint": "corp"} {
		if q.Get(k) != want {
			t.Errorf("%s=%q, want %q", k, q.Get(k), want)
		}
	}
	for _, k := range []string{"state", "nonce", "code_challenge"} {
		if len(q.Get(k)) < 20 {
			t.Errorf("%s=%q is too short to be random", k, q.Get(k))
		}
	}
	if strings.Contains(string(flow), q.Get("code_challenge")) || strings.ContainsAny(string(flow), ";, \"\\") {
		t.Errorf("flow %q is not a plain cookie value", flow)
	}
	_, flow2 := p.Begin("")
	if flow == flow2 {
		t.Error("two logins got the same flow")
	}
}

func TestCallbackChecks(t *testing.T) {
	ip := mainProvider(t)
	p := newProvider(t, ip, nil)
	other := newProvider(t, ip, nil) // another flow key
	authURL, flow := p.Begin("")
	q := newBrowser(t).login(authURL, "alice")
	ctx := context.Background()
	with := func(k, v string) url.Values {
		c := url.Values{}
		for kk, vv := range q {
			c[kk] = slices.Clone(vv)
		}
		if v == "" {
			c.Del(k)
		} else {
			c.Set(k, v)
		}
		return c
	}
	tampered := []byte(flow)
	tampered[3] ^= 1
	_, otherFlow := other.Begin("")

	for _, tc := range []struct {
		name  string
		flow  Flow
		query url.Values
		want  error
	}{
		{"forged state", flow, with("state", "forged"), ErrState},
		{"no state", flow, with("state", ""), ErrState},
		{"no flow cookie", "", q, ErrState},
		{"tampered flow", Flow(tampered), q, ErrState},
		{"another hub's flow", otherFlow, q, ErrState},
		{"garbage flow", "!!.@@", q, ErrState},
		{"dot flow", ".", q, ErrState},
		{"no code", flow, with("code", ""), ErrState},
		{"callback from another issuer", flow, with("iss", "https://evil.example/realms/test"), ErrIssuerMismatch},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := p.Finish(ctx, tc.flow, tc.query)
			wantErr(t, err, tc.want)
		})
	}

	t.Run("provider error", func(t *testing.T) {
		_, err := p.Finish(ctx, flow, url.Values{"state": {q.Get("state")}, "error": {"access_denied"}, "error_description": {"user cancelled"}})
		var ie *IdPError
		if !errors.As(err, &ie) || ie.Code != "access_denied" || ie.Description != "user cancelled" {
			t.Fatalf("got %v, want an IdPError access_denied", err)
		}
	})
	t.Run("expired flow", func(t *testing.T) {
		p.now = func() time.Time { return time.Now().Add(11 * time.Minute) }
		defer func() { p.now = time.Now }()
		_, err := p.Finish(ctx, flow, q)
		wantErr(t, err, ErrState)
	})

	// None of the refused callbacks spent the code.
	if _, err := p.Finish(ctx, flow, q); err != nil {
		t.Fatalf("the genuine callback failed after the refused ones: %v", err)
	}
	t.Run("replayed code", func(t *testing.T) {
		_, err := p.Finish(ctx, flow, q)
		wantErr(t, err, ErrCodeRejected)
		var ie *IdPError
		if !errors.As(err, &ie) || ie.Code != "invalid_grant" || ie.Status != http.StatusBadRequest {
			t.Fatalf("got %v, want invalid_grant from the token endpoint", err)
		}
	})
}

func TestIDTokenFromElsewhere(t *testing.T) {
	ip := mainProvider(t)
	ctx := context.Background()

	t.Run("another issuer", func(t *testing.T) {
		other := startIdP(t)
		defer other.stop()
		ou, _ := url.Parse(other.base)
		// A token endpoint that answers with the other provider's tokens: the code the browser
		// brings back is the other provider's.
		p := newProvider(t, ip, func(c *Config) {
			c.HTTPClient = &http.Client{Transport: roundTrip(func(r *http.Request) (*http.Response, error) {
				if strings.HasSuffix(r.URL.Path, "/protocol/openid-connect/token") {
					r = r.Clone(r.Context())
					r.URL.Host, r.Host = ou.Host, ou.Host
				}
				return http.DefaultTransport.RoundTrip(r)
			})}
		})
		authURL, flow := p.Begin("")
		u, _ := url.Parse(authURL)
		u.Host = ou.Host
		q := newBrowser(t).login(u.String(), "alice")

		_, err := p.Finish(ctx, flow, q) // the callback's iss names the other provider
		wantErr(t, err, ErrIssuerMismatch)
		q.Del("iss") // a provider without RFC 9207: only the ID token tells
		_, err = p.Finish(ctx, flow, q)
		wantErr(t, err, ErrIDToken, ErrIssuerMismatch)
	})

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		header map[string]any
		claims func(nonce string) map[string]any
		says   string
	}{
		{"signed by another key", map[string]any{"alg": "RS256", "kid": "not-the-realms"},
			func(n string) map[string]any { return map[string]any{"nonce": n} }, "signature"},
		{"unsigned", map[string]any{"alg": "none"},
			func(n string) map[string]any { return map[string]any{"nonce": n} }, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var idToken string
			p := newProvider(t, ip, func(c *Config) {
				c.HTTPClient = &http.Client{Transport: roundTrip(func(r *http.Request) (*http.Response, error) {
					if strings.HasSuffix(r.URL.Path, "/protocol/openid-connect/token") {
						return jsonResponse(r, 200, map[string]any{"access_token": "at", "token_type": "Bearer",
							"expires_in": 60, "refresh_token": "rt", "id_token": idToken}), nil
					}
					return http.DefaultTransport.RoundTrip(r)
				})}
			})
			_, flow := p.Begin("")
			d, err := p.open(flow)
			if err != nil {
				t.Fatal(err)
			}
			claims := map[string]any{"iss": ip.issuer, "aud": clientID, "sub": daveSub, "preferred_username": "dave",
				"groups": []string{"/jupyter-admins"}, "iat": time.Now().Unix(), "exp": time.Now().Add(time.Minute).Unix()}
			for k, v := range tc.claims(d.Nonce) {
				claims[k] = v
			}
			idToken = signJWT(t, key, tc.header, claims)
			if tc.header["alg"] == "none" {
				idToken = idToken[:strings.LastIndexByte(idToken, '.')+1]
			}
			_, err = p.Finish(ctx, flow, url.Values{"state": {d.State}, "code": {"anything"}})
			wantErr(t, err, ErrIDToken)
			if !strings.Contains(err.Error(), tc.says) {
				t.Fatalf("error %q does not mention %q", err, tc.says)
			}
		})
	}
}

func TestRefresh(t *testing.T) {
	ip := mainProvider(t)
	p := newProvider(t, ip, nil)
	ctx := context.Background()
	ip.testAPI(t, "/test/users/erin", map[string]any{"groups": []string{"/jupyter-users"}})
	b := newBrowser(t)
	authURL, flow := p.Begin("")
	l1, err := p.Finish(ctx, flow, b.login(authURL, "erin"))
	if err != nil {
		t.Fatal(err)
	}

	l2, err := p.Refresh(ctx, l1.Tokens)
	if err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	// (The ID token may come out byte for byte the same within one second.)
	if l2.Tokens.AccessToken == l1.Tokens.AccessToken || l2.Tokens.RefreshToken == l1.Tokens.RefreshToken ||
		l2.Tokens.IDToken == "" || l2.Tokens.Expiry.IsZero() {
		t.Fatalf("refresh did not renew every token: %v -> %v", l1.Tokens, l2.Tokens)
	}
	if l2.Username != "erin" || l2.Subject != l1.Subject || !slices.Contains(l2.Groups, "jupyter-users") {
		t.Fatalf("refreshed login %+v", l2)
	}
	// The provider says how long the refresh token lives (refresh_expires_in, 1800 s here).
	for _, l := range []Login{l1, l2} {
		if left := time.Until(l.Tokens.RefreshExpiry); left < 1700*time.Second || left > 1801*time.Second {
			t.Errorf("refresh token expiry %s from now, want about 30 minutes", left)
		}
	}

	// Group changes at the provider arrive with the next refresh.
	ip.testAPI(t, "/test/users/erin", map[string]any{"groups": []string{"/jupyter-admins"}})
	l3, err := p.Refresh(ctx, l2.Tokens)
	if err != nil {
		t.Fatalf("Refresh: %v", err)
	}
	if !slices.Contains(l3.Groups, "jupyter-admins") || slices.Contains(l3.Groups, "jupyter-users") {
		t.Fatalf("groups after the change: %q", l3.Groups)
	}

	t.Run("spent refresh token", func(t *testing.T) {
		// The provider rotates refresh tokens; reusing a spent one revokes the whole grant.
		_, err := p.Refresh(ctx, l1.Tokens)
		wantErr(t, err, ErrReauthenticate)
		_, err = p.Refresh(ctx, l3.Tokens)
		wantErr(t, err, ErrReauthenticate)
	})
	t.Run("revoked at the provider", func(t *testing.T) {
		authURL, flow := p.Begin("")
		q, _ := b.visit(authURL) // still logged in at the provider: straight back
		if q == nil {
			t.Fatal("no silent re-login")
		}
		l, err := p.Finish(ctx, flow, q)
		if err != nil {
			t.Fatal(err)
		}
		if l, err = p.Refresh(ctx, l.Tokens); err != nil {
			t.Fatalf("Refresh before revoking: %v", err)
		}
		if out := ip.testAPI(t, "/test/users/erin/revoke", nil); out["grants"] != 1.0 {
			t.Fatalf("revoke: %v", out)
		}
		_, err = p.Refresh(ctx, l.Tokens)
		wantErr(t, err, ErrReauthenticate)
	})
	t.Run("no refresh token", func(t *testing.T) {
		_, err := p.Refresh(ctx, Tokens{AccessToken: "x"})
		wantErr(t, err, ErrReauthenticate)
	})
}

// Providers need not send a new ID token on refresh; the stored one's claims then stand, and a
// refresh token not sent again stays in use.
func TestRefreshWithoutIDToken(t *testing.T) {
	ip := mainProvider(t)
	ctx := context.Background()
	p := newProvider(t, ip, nil)
	authURL, flow := p.Begin("")
	l, err := p.Finish(ctx, flow, newBrowser(t).login(authURL, "dave"))
	if err != nil {
		t.Fatal(err)
	}
	bare := newProvider(t, ip, func(c *Config) {
		c.HTTPClient = &http.Client{Transport: roundTrip(func(r *http.Request) (*http.Response, error) {
			if strings.HasSuffix(r.URL.Path, "/protocol/openid-connect/token") {
				return jsonResponse(r, 200, map[string]any{"access_token": "new-at", "token_type": "Bearer", "expires_in": 60}), nil
			}
			return http.DefaultTransport.RoundTrip(r)
		})}
	})
	r, err := bare.Refresh(ctx, l.Tokens)
	if err != nil {
		t.Fatal(err)
	}
	if r.Username != "dave" || r.Subject != daveSub || !slices.Contains(r.Groups, "jupyter-admins") ||
		r.Tokens.AccessToken != "new-at" || r.Tokens.RefreshToken != l.Tokens.RefreshToken || r.Tokens.IDToken != l.Tokens.IDToken ||
		!r.Tokens.RefreshExpiry.Equal(l.Tokens.RefreshExpiry) || r.Tokens.RefreshExpiry.IsZero() {
		t.Fatalf("refresh without ID token: %+v", r)
	}
}

func TestUserInfoClaims(t *testing.T) {
	ip := mainProvider(t)
	ctx := context.Background()
	// As a Keycloak realm whose group and role mappers have "Add to ID token" off.
	ip.testAPI(t, "/test/users/gina", map[string]any{"groups": []string{"/jupyter-users"},
		"idTokenOmit": []string{"groups", "realm_access"}})
	b := newBrowser(t)

	plain := newProvider(t, ip, nil)
	authURL, flow := plain.Begin("")
	l, err := plain.Finish(ctx, flow, b.login(authURL, "gina"))
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Groups) != 0 {
		t.Fatalf("groups %q without userinfo, want none", l.Groups)
	}

	withUI := newProvider(t, ip, func(c *Config) { c.UserInfo = true })
	authURL, flow = withUI.Begin("")
	q, _ := b.visit(authURL)
	l, err = withUI.Finish(ctx, flow, q)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(l.Groups, "jupyter-users") || !slices.Contains(l.Groups, "default-roles-test") {
		t.Fatalf("groups %q with userinfo", l.Groups)
	}
	l, err = withUI.Refresh(ctx, l.Tokens)
	if err != nil || !slices.Contains(l.Groups, "jupyter-users") {
		t.Fatalf("groups %q after refresh with userinfo: %v", l.Groups, err)
	}
}

func drainLogoutTokens() {
	for {
		select {
		case <-logoutToken:
		default:
			return
		}
	}
}

func nextLogoutToken(t *testing.T) string {
	t.Helper()
	select {
	case raw := <-logoutToken:
		return raw
	case <-time.After(5 * time.Second):
		t.Fatal("no back-channel logout token arrived")
		return ""
	}
}

func TestLogout(t *testing.T) {
	ip := mainProvider(t)
	p := newProvider(t, ip, nil)
	ctx := context.Background()
	drainLogoutTokens()
	ip.testAPI(t, "/test/users/hank", map[string]any{"groups": []string{"/jupyter-users"}})
	b := newBrowser(t)
	authURL, flow := p.Begin("")
	l, err := p.Finish(ctx, flow, b.login(authURL, "hank"))
	if err != nil {
		t.Fatal(err)
	}
	if q, _ := b.visit(authURL); q == nil {
		t.Fatal("the provider's session should let the browser straight back before logout")
	}

	lu, err := url.Parse(p.LogoutURL(l.Tokens))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(lu.Path, "/realms/test/protocol/openid-connect/logout") ||
		lu.Query().Get("id_token_hint") != l.Tokens.IDToken || lu.Query().Get("client_id") != clientID ||
		lu.Query().Get("post_logout_redirect_uri") != postLogoutURL {
		t.Fatalf("logout URL %s", lu)
	}
	b.logout(lu.String())

	raw := nextLogoutToken(t)
	sub, sid, err := p.VerifyLogoutToken(ctx, raw)
	if err != nil {
		t.Fatalf("VerifyLogoutToken: %v", err)
	}
	if sub != l.Subject || sid != l.SessionID || sid == "" {
		t.Fatalf("logout token names sub %q sid %q, login had %q %q", sub, sid, l.Subject, l.SessionID)
	}
	t.Run("replayed logout token", func(t *testing.T) {
		_, _, err := p.VerifyLogoutToken(ctx, raw)
		wantErr(t, err, ErrLogoutToken)
	})

	authURL, _ = p.Begin("")
	if q, action := b.visit(authURL); q != nil || action == "" {
		t.Fatal("after logout the provider should ask for the password again")
	}
	_, err = p.Refresh(ctx, l.Tokens)
	wantErr(t, err, ErrReauthenticate)

	t.Run("refused logout tokens", func(t *testing.T) {
		key, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			t.Fatal(err)
		}
		claims := func(iss string) map[string]any {
			return map[string]any{"iss": iss, "aud": clientID, "sub": l.Subject, "sid": l.SessionID,
				"jti": rand.Text(), "iat": time.Now().Unix(), "exp": time.Now().Add(time.Minute).Unix(),
				"events": map[string]any{"http://schemas.openid.net/event/backchannel-logout": map[string]any{}}}
		}
		hdr := map[string]any{"alg": "RS256", "kid": "forged", "typ": "logout+jwt"}
		for name, tc := range map[string]struct {
			raw  string
			want []error
		}{
			"forged signature": {signJWT(t, key, hdr, claims(ip.issuer)), []error{ErrLogoutToken}},
			"another issuer":   {signJWT(t, key, hdr, claims("https://evil.example/realms/test")), []error{ErrLogoutToken, ErrIssuerMismatch}},
			"an ID token":      {l.Tokens.IDToken, []error{ErrLogoutToken}},
			"garbage":          {"a.b.c", []error{ErrLogoutToken}},
			"empty":            {"", []error{ErrLogoutToken}},
		} {
			t.Run(name, func(t *testing.T) {
				_, _, err := p.VerifyLogoutToken(ctx, tc.raw)
				wantErr(t, err, tc.want...)
			})
		}
	})
}

// Keycloak's admin "Sign out" on a user sends back-channel logout tokens too.
func TestAdminLogout(t *testing.T) {
	ip := mainProvider(t)
	p := newProvider(t, ip, nil)
	ctx := context.Background()
	drainLogoutTokens()
	ip.testAPI(t, "/test/users/ivan", map[string]any{"groups": []string{"/jupyter-admins"}})
	authURL, flow := p.Begin("")
	l, err := p.Finish(ctx, flow, newBrowser(t).login(authURL, "ivan"))
	if err != nil {
		t.Fatal(err)
	}
	out := ip.testAPI(t, "/test/users/ivan/logout", nil)
	if b, _ := json.Marshal(out["backchannel"]); out["sessions"] != 1.0 || !strings.Contains(string(b), `"ok":true`) {
		t.Fatalf("admin logout: %v", out)
	}
	sub, sid, err := p.VerifyLogoutToken(ctx, nextLogoutToken(t))
	if err != nil || sub != l.Subject || sid != l.SessionID {
		t.Fatalf("VerifyLogoutToken: %q %q %v; want %q %q", sub, sid, err, l.Subject, l.SessionID)
	}
	_, err = p.Refresh(ctx, l.Tokens)
	wantErr(t, err, ErrReauthenticate)
}

func TestProviderDown(t *testing.T) {
	ip := startIdP(t)
	p := newProvider(t, ip, nil)
	ctx := context.Background()
	b := newBrowser(t)
	authURL, flow := p.Begin("")
	l, err := p.Finish(ctx, flow, b.login(authURL, "alice"))
	if err != nil {
		t.Fatal(err)
	}
	authURL, flow = p.Begin("")
	q, _ := b.visit(authURL)
	if q == nil {
		t.Fatal("no silent re-login")
	}

	ip.stop()
	_, err = p.Finish(ctx, flow, q)
	wantErr(t, err, ErrUnreachable)
	_, err = p.Refresh(ctx, l.Tokens)
	wantErr(t, err, ErrUnreachable)
	if !strings.Contains(err.Error(), "unreachable") {
		t.Fatalf("error %q does not say the provider is unreachable", err)
	}
	if authURL, _ := p.Begin(""); authURL == "" {
		t.Fatal("Begin needs no network, yet failed")
	}
	if p.LogoutURL(l.Tokens) == "" {
		t.Fatal("LogoutURL needs no network, yet failed")
	}
}

func TestClaimPaths(t *testing.T) {
	var claims map[string]any
	if err := json.Unmarshal([]byte(`{
		"preferred_username": "Zoë",
		"groups": ["/a", "/b/c", "a", 7, null, ""],
		"single": "/solo",
		"realm_access": {"roles": ["r1", "r2"]},
		"resource_access": {"hub.example.org": {"roles": ["admin"]}, "hub": {"example": "x"}},
		"weird": {"roles": "not-a-list"},
		"deep": [1, 2]
	}`), &claims); err != nil {
		t.Fatal(err)
	}
	got := groupsOf(claims, []string{"groups", "single", "realm_access.roles", "resource_access.hub.example.org.roles",
		"weird.roles", "deep.x", "missing", "", ".", "groups."})
	want := []string{"a", "b/c", "solo", "r1", "r2", "admin", "not-a-list"}
	if !slices.Equal(got, want) {
		t.Fatalf("groups %q, want %q", got, want)
	}
	if NormalizeGroup(" /jupyter-users") != "jupyter-users" || NormalizeGroup("//x") != "/x" {
		t.Fatal("NormalizeGroup")
	}
}

func TestTokensStayOutOfLogs(t *testing.T) {
	tk := Tokens{AccessToken: "secret-at", RefreshToken: "secret-rt", IDToken: "secret-id", Expiry: time.Unix(1700000000, 0)}
	var sb strings.Builder
	logger := slog.New(slog.NewTextHandler(&sb, nil))
	logger.Info("x", "tokens", tk)
	if s := sb.String() + tk.String(); strings.Contains(s, "secret") {
		t.Fatalf("tokens leaked: %s", s)
	}
	b, err := json.Marshal(tk)
	if err != nil {
		t.Fatal(err)
	}
	var back Tokens
	if err := json.Unmarshal(b, &back); err != nil || back.AccessToken != tk.AccessToken ||
		back.RefreshToken != tk.RefreshToken || back.IDToken != tk.IDToken || !back.Expiry.Equal(tk.Expiry) {
		t.Fatalf("JSON round trip: %s -> %+v %v", b, back, err)
	}
}

func TestUserMessage(t *testing.T) {
	for _, tc := range []struct {
		err  error
		says string
	}{
		{fmt.Errorf("oidc: x: %w: y", ErrState), "sign in again"},
		{fmt.Errorf("oidc: x: %w: %w", ErrCodeRejected, &IdPError{Code: "invalid_grant"}), "already used"},
		{fmt.Errorf("oidc: x: %w", ErrUnreachable), "cannot be reached"},
		{fmt.Errorf("oidc: x: %w (%w)", ErrIDToken, ErrIssuerMismatch), "could not be verified"},
		{fmt.Errorf("oidc: x: %w", &IdPError{Code: "access_denied"}), "cancelled"},
		{fmt.Errorf("oidc: x: %w", &IdPError{Code: "temporarily_unavailable"}), "(temporarily_unavailable)"},
		{fmt.Errorf("oidc: x: %w", &IdPError{Code: "<script>"}), "refused the sign-in"},
		{errors.New("other"), "Sign-in failed"},
	} {
		if got := UserMessage(tc.err); !strings.Contains(got, tc.says) || strings.Contains(got, "<") {
			t.Errorf("UserMessage(%v) = %q, want it to say %q", tc.err, got, tc.says)
		}
	}
}
