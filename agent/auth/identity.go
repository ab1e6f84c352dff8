package auth

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"
)

// Identity is who an authenticator says logged in.
type Identity struct {
	Name   string
	Groups []string
}

// ErrBadLogin is what authenticators return for wrong credentials or an unknown account.
// Login pages show one message for both, so no one learns which accounts exist.
var ErrBadLogin = errors.New("invalid username or password")

// Authenticator checks a username and password (PAM does this).
type Authenticator interface {
	Authenticate(ctx context.Context, username, password string) (Identity, error)
}

// ErrLoginExpired is what an identity provider reports when a user's login there has ended (a
// revoked or expired refresh token): the user must log in again before they can spawn.
var ErrLoginExpired = errors.New("login at the identity provider has ended; log in again")

// ErrLoginRevoked is what an identity provider reports when it refused to renew a login before
// the login had run its course: it was revoked, or ended at the provider (an administrator signed
// the user out or disabled them). The hub treats it as a lost access. It is also ErrLoginExpired.
var ErrLoginRevoked = fmt.Errorf("%w: the identity provider ended it early", ErrLoginExpired)

// ErrAccessLost is a refresh that found a user may no longer use the hub: they are no longer
// allowed, or the provider ended their login early (ErrLoginRevoked). Their hub login has ended
// (see Options.OnAccessLost). It is also ErrLoginExpired: they must log in again.
var ErrAccessLost = fmt.Errorf("%w: access lost", ErrLoginExpired)

// ErrNoRefresh is what an identity provider reports when a login cannot be renewed because the
// provider gave no refresh token: the login stands, unchecked, until its access token expires.
var ErrNoRefresh = errors.New("the identity provider gave no refresh token for this login")

// IdentityProvider logs users in somewhere else and sends the browser back to
// /hub/oauth_callback (OpenID Connect; the oidc package does this).
type IdentityProvider interface {
	// Begin returns the provider URL to send the browser to, and a flow value the hub keeps in
	// a short-lived cookie until the callback.
	Begin(ctx context.Context, next string) (authURL, flow string, err error)
	// Finish completes the login from the callback's query.
	Finish(ctx context.Context, flow string, query url.Values) (RemoteLogin, error)
	// Refresh renews a login's tokens and reads its claims again. When the provider refuses:
	// ErrLoginExpired if the login ran its course (its refresh token expired), ErrLoginRevoked
	// if it was ended before that or the provider does not say when it would have run out.
	// ErrNoRefresh when there is nothing to renew it with.
	Refresh(ctx context.Context, state []byte) (RemoteLogin, error)
	// LogoutURL is where to send the browser to end the provider's session too ("" if none).
	LogoutURL(state []byte) string
	// VerifyLogoutToken checks a back-channel logout token and says whose sessions end.
	VerifyLogoutToken(ctx context.Context, raw string) (subject, session string, err error)
	// Explain turns an error into a sentence for the user.
	Explain(err error) string
}

// RemoteLogin is a login an identity provider vouched for.
type RemoteLogin struct {
	Identity
	Subject string    // the provider's id of the user
	Session string    // the provider's session id, if it sends one
	State   []byte    // the provider's tokens, opaque to the hub; stored sealed
	Expiry  time.Time // when the access token in State expires (zero: unknown)
	Next    string    // what Begin was given
}
