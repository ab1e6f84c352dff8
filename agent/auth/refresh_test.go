package auth

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// The refresh paths the Keycloak-shaped provider cannot show (agent/oidc_test.go covers the rest
// through the hub): a provider that issues no refresh token, and one that does not answer.

// fakeIdP answers every Refresh with err.
type fakeIdP struct {
	err   error
	calls atomic.Int32
}

func (f *fakeIdP) Begin(context.Context, string) (string, string, error) { return "", "", nil }
func (f *fakeIdP) Finish(context.Context, string, url.Values) (RemoteLogin, error) {
	return RemoteLogin{}, nil
}
func (f *fakeIdP) Refresh(context.Context, []byte) (RemoteLogin, error) {
	f.calls.Add(1)
	return RemoteLogin{}, f.err
}
func (f *fakeIdP) LogoutURL([]byte) string { return "" }
func (f *fakeIdP) VerifyLogoutToken(context.Context, string) (string, string, error) {
	return "", "", nil
}
func (f *fakeIdP) Explain(error) string { return "" }

// login is alice's, logged in through a fake provider: a gate over a real store, her session's
// cookie secret, and how often Options.OnAccessLost was called.
type login struct {
	g       *Gate
	alice   store.User
	session string
	lost    atomic.Int32
}

// newLogin logs alice in at idp with an access token that expires at expiry; her next request is
// due for a refresh.
func newLogin(t *testing.T, idp IdentityProvider, expiry time.Time) *login {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, filepath.Join(t.TempDir(), "hub.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	l := &login{}
	l.g, err = New(defaultConfig(), st, idp, make([]byte, 32), make([]byte, 32), slog.New(slog.NewTextHandler(io.Discard, nil)),
		Options{OnAccessLost: func(context.Context, store.User) { l.lost.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	if l.alice, err = st.CreateUser(ctx, "alice", false); err != nil {
		t.Fatal(err)
	}
	state := fmt.Appendf(nil, `{"access_token": "at", "expiry": %q}`, expiry.Format(time.RFC3339Nano))
	if err := l.g.KeepRemoteLogin(ctx, l.alice, state); err != nil {
		t.Fatal(err)
	}
	if _, l.session, err = st.CreateSession(ctx, store.Session{UserID: l.alice.ID}, time.Hour); err != nil {
		t.Fatal(err)
	}
	l.g.refreshes.set(l.g.refreshes.of(l.alice.ID), time.Time{}, false)
	return l
}

func (l *login) loggedIn() bool {
	_, err := l.g.store.LookupSession(context.Background(), l.session)
	return err == nil
}

// Without a refresh token (Keycloak always sends one; other providers may not without
// offline_access), oidc.Refresh would call the login ended. It is not: requests go on with it,
// spawns too while the access token is good; once it is not, its user logs in again, and that is
// all: no lost access, no stopped servers.
func TestALoginWithoutRefreshTokenStandsUntilItExpires(t *testing.T) {
	ctx := context.Background()
	idp := &fakeIdP{err: ErrNoRefresh}
	l := newLogin(t, idp, time.Now().Add(time.Hour))
	if _, _, err := l.g.keepFresh(ctx, l.alice); err != nil || !l.loggedIn() {
		t.Errorf("request: %v, logged in %v", err, l.loggedIn())
	}
	if err := l.g.FreshLogin(ctx, l.alice); err != nil || !l.loggedIn() {
		t.Errorf("spawn with an hour of access token left: %v, logged in %v", err, l.loggedIn())
	}

	l = newLogin(t, idp, time.Now().Add(10*time.Second)) // within auth.oidc.refresh_before
	if err := l.g.FreshLogin(ctx, l.alice); !errors.Is(err, ErrLoginExpired) || errors.Is(err, ErrAccessLost) {
		t.Errorf("spawn with the access token about to expire: %v", err)
	}
	if l.loggedIn() || l.lost.Load() != 0 {
		t.Errorf("a login that ran out: logged in %v, OnAccessLost called %d times", l.loggedIn(), l.lost.Load())
	}
}

// A provider that does not answer costs one try per refreshRetry, not one per request, and
// logs no one out.
func TestAProviderThatDoesNotAnswerIsRetriedAfterAPause(t *testing.T) {
	ctx := context.Background()
	idp := &fakeIdP{err: errors.New("identity provider unreachable")}
	l := newLogin(t, idp, time.Now().Add(time.Hour))
	for range 3 {
		if _, refreshed, err := l.g.keepFresh(ctx, l.alice); err != nil || refreshed {
			t.Errorf("request while the provider is down: refreshed %v, %v", refreshed, err)
		}
	}
	if n := idp.calls.Load(); n != 1 {
		t.Errorf("the provider was asked %d times in a row", n)
	}
	if err := l.g.FreshLogin(ctx, l.alice); err != nil {
		t.Errorf("spawn while the provider is down, with an hour of access token left: %v", err)
	}
	if !l.loggedIn() || l.lost.Load() != 0 {
		t.Errorf("an outage: logged in %v, OnAccessLost called %d times", l.loggedIn(), l.lost.Load())
	}
}
