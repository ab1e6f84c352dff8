package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// Keeping logins at an identity provider current.
//
// A login at the provider vouches for the user's groups at the moment it is made; Keycloak may
// take someone out of jupyter-users or jupyter-admins (or end their session) any time after. As
// Python JupyterHub does with refresh_user, the hub asks again: when a request arrives and the
// login's last refresh is older than auth.oidc.refresh_age (JupyterHub's auth_refresh_age), and
// before every spawn (refresh_pre_spawn). Unlike JupyterHub, the answer is applied as a login
// is, both ways: groups and admin follow the provider's groups, and someone no longer allowed, or
// whose login the provider ended early, loses access (loseAccess) instead of merely being sent to
// log in on their next request. A login that ran its course (endLogin) only sends its user to log
// in again: Keycloak ends idle sessions after 30 minutes by default, and that is no reason to
// stop anyone's running job.

// refreshRetry is how long a login whose refresh failed for want of an answer (the provider is
// down or answered nonsense) is served as it is before a request tries again, so that an outage
// does not make every request wait for the provider's timeout.
const refreshRetry = time.Minute

// loginRefreshes serializes and paces the refreshes of each user's login. One user's refreshes
// run one at a time, each with the newest tokens in the store: a provider that rotates refresh
// tokens revokes the whole login when a spent one comes back (Keycloak with "Revoke Refresh
// Token" on), so two concurrent requests each refreshing would log their user out.
type loginRefreshes struct {
	mu    sync.Mutex
	users map[int64]*loginRefresh
}

type loginRefresh struct {
	turn chan struct{} // holds a value while one of this user's refreshes runs
	// Guarded by loginRefreshes.mu:
	due  time.Time // when a request refreshes again (zero: the next one)
	lost bool      // the user lost access (loseAccess) and has not logged in since
}

func (r *loginRefreshes) of(userID int64) *loginRefresh {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.users == nil {
		r.users = map[int64]*loginRefresh{}
	}
	lr := r.users[userID]
	if lr == nil {
		lr = &loginRefresh{turn: make(chan struct{}, 1)}
		r.users[userID] = lr
	}
	return lr
}

// check says whether the user lost access, and else whether a request should refresh now.
func (r *loginRefreshes) check(lr *loginRefresh, now time.Time) (lost, due bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return lr.lost, !now.Before(lr.due)
}

func (r *loginRefreshes) set(lr *loginRefresh, due time.Time, lost bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	lr.due, lr.lost = due, lost
}

func (r *loginRefreshes) retryAt(lr *loginRefresh, due time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	lr.due = due
}

// take waits for the user's turn to refresh, or for ctx to end.
func (lr *loginRefresh) take(ctx context.Context) error {
	select {
	case lr.turn <- struct{}{}:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("wait for another refresh of the same login: %w", ctx.Err())
	}
}

func (lr *loginRefresh) give() { <-lr.turn }

// refreshed notes that u's login was just read from the provider (a login or a refresh), so
// requests need not refresh it for auth.oidc.refresh_age.
func (g *Gate) refreshed(u store.User) {
	g.refreshes.set(g.refreshes.of(u.ID), time.Now().Add(g.cfg.Auth.OIDC.RefreshAge.D()), false)
}

// keepFresh is the refresh a request makes (auth.oidc.refresh_age): once u's login was last
// refreshed longer ago than that, it is refreshed before the request is served. It returns u as
// the store has them now, and whether a refresh ran (this request's or one it waited for); then
// the caller must look its session or token up again, as the refresh may have ended it. A user
// who lost access gets an error that is also store.ErrNotFound, so the request is anonymous
// (whatever credential it carries) until they log in again. When the provider cannot be asked,
// the request is served with what the hub knows, and requests try again after refreshRetry.
func (g *Gate) keepFresh(ctx context.Context, u store.User) (store.User, bool, error) {
	if g.idp == nil || g.cfg.Auth.OIDC.RefreshAge <= 0 {
		return u, false, nil
	}
	lostErr := func(err error) error { return fmt.Errorf("%w: %w", store.ErrNotFound, err) }
	lr := g.refreshes.of(u.ID)
	if lost, due := g.refreshes.check(lr, time.Now()); lost {
		return u, false, lostErr(fmt.Errorf("%w: %s", ErrAccessLost, u.Name))
	} else if !due {
		return u, false, nil
	}
	if err := lr.take(ctx); err != nil {
		return u, false, err
	}
	defer lr.give()
	if lost, due := g.refreshes.check(lr, time.Now()); lost || !due { // a request this one waited for refreshed it
		if lost {
			return u, true, lostErr(fmt.Errorf("%w: %s", ErrAccessLost, u.Name))
		}
		fresh, err := g.store.UserByID(ctx, u.ID)
		return fresh, true, err
	}
	fresh, err := g.refreshLogin(ctx, u)
	switch {
	case errors.Is(err, ErrAccessLost):
		return u, true, lostErr(err)
	case errors.Is(err, ErrLoginExpired):
		// The login ran its course and its sessions (with their OAuth tokens) ended; the
		// caller's second look finds that. API tokens go on working, as before the login ran
		// out: their owner is still allowed as far as anyone knows.
		return u, true, nil
	case errors.Is(err, ErrNoRefresh):
		return u, false, nil // nothing to renew it with: it stands until it expires (see FreshLogin)
	case err != nil:
		g.refreshes.retryAt(lr, time.Now().Add(refreshRetry))
		g.log.Warn("could not refresh a login at the identity provider; serving the request with the groups of its last refresh",
			"user", u.Name, "retry_in", refreshRetry, "err", err)
		return u, false, nil
	}
	return fresh, true, nil
}

// FreshLogin checks, before a server starts, that a user who logged in through the provider
// still may: their login is refreshed and its groups applied (JupyterHub's refresh_pre_spawn,
// applied as a login is), so a server starts neither for someone the provider no longer vouches
// for nor with a dead token. ErrLoginExpired (ErrAccessLost) means they must log in again.
// When the provider cannot be asked, the spawn goes on with what the hub knows if the stored
// access token is good for longer than auth.oidc.refresh_before: an outage of the provider
// should not keep everyone from starting servers.
func (g *Gate) FreshLogin(ctx context.Context, u store.User) error {
	if g.idp == nil {
		return nil
	}
	lr := g.refreshes.of(u.ID)
	if err := lr.take(ctx); err != nil {
		return err
	}
	defer lr.give()
	_, err := g.refreshLogin(ctx, u)
	if err == nil || errors.Is(err, ErrLoginExpired) {
		return err
	}
	expiry, serr := g.loginExpiry(ctx, u)
	if serr != nil {
		return errors.Join(err, serr)
	}
	if expiry.IsZero() || time.Until(expiry) > g.cfg.Auth.OIDC.RefreshBefore.D() {
		g.log.Warn("login not refreshed before a spawn; it goes on with the groups of the last refresh while the access token is good",
			"user", u.Name, "expiry", expiry, "err", err)
		return nil
	}
	if errors.Is(err, ErrNoRefresh) { // a login that cannot be renewed has run its course
		return g.endLogin(ctx, u, fmt.Errorf("%w: the access token expires at %s and the identity provider gave no refresh token to renew it",
			ErrLoginExpired, expiry.Format(time.RFC3339)))
	}
	return err
}

// refreshLogin renews u's login at the provider and applies the answer as a login does: groups
// and admin follow the provider's groups both ways. A user no longer allowed, or whose login the
// provider ended early, loses access (loseAccess): ErrAccessLost. A login that ran its course
// ends (endLogin): ErrLoginExpired. ErrNoRefresh and other errors (the provider is down, a bad
// answer) change nothing. Call it with u's turn held.
func (g *Gate) refreshLogin(ctx context.Context, u store.User) (store.User, error) {
	state, err := g.remoteLogin(ctx, u)
	if err != nil {
		return u, err
	}
	if state == nil { // users made through the API have no provider login to refresh
		g.refreshed(u)
		return u, nil
	}
	if reason := accessLostIn(state); reason != "" { // nothing to ask the provider until they log in again
		g.refreshes.set(g.refreshes.of(u.ID), time.Time{}, true)
		return u, fmt.Errorf("%w: %s: %s", ErrAccessLost, u.Name, reason)
	}
	login, err := g.idp.Refresh(ctx, state)
	switch {
	case errors.Is(err, ErrLoginRevoked):
		return u, g.loseAccess(ctx, u, fmt.Sprintf("the identity provider refused to renew the login before it ran out (%v)", err))
	case errors.Is(err, ErrLoginExpired):
		return u, g.endLogin(ctx, u, err)
	case errors.Is(err, ErrNoRefresh):
		g.refreshed(u)
		return u, fmt.Errorf("refresh the login of %s: %w", u.Name, err)
	case err != nil:
		return u, fmt.Errorf("refresh the login of %s at the identity provider: %w", u.Name, err)
	}
	// The hub name stays, as in JupyterHub: a username changed at the provider since the login
	// renames no one; the next login sees the new name.
	id := Identity{Name: u.Name, Groups: login.Groups}
	admin, allowed := g.Admission(id)
	if err := g.KeepRemoteLogin(ctx, u, login.State); err != nil {
		return u, err
	}
	fresh, err := g.applyIdentity(ctx, u, id, admin, true)
	if err != nil {
		return u, err
	}
	if !allowed {
		g.log.Info("refreshed login: no longer in auth.allowed_users or auth.allowed_groups", "user", u.Name, "groups", id.Groups,
			"allowed_groups", g.cfg.Auth.AllowedGroups)
		return fresh, g.loseAccess(ctx, fresh, "no longer in auth.allowed_users or auth.allowed_groups")
	}
	level := slog.LevelDebug // every few minutes for everyone: news only when something changed
	if fresh.Admin != u.Admin || !slices.Equal(fresh.Groups, u.Groups) {
		level = slog.LevelInfo
	}
	g.log.Log(ctx, level, "refreshed login at the identity provider", "user", u.Name, "admin", fresh.Admin, "groups", fresh.Groups,
		"was_admin", u.Admin, "had_groups", u.Groups, "expiry", login.Expiry)
	return fresh, nil
}

// accessLost is what the hub keeps of a user's provider login after they lost access, in place
// of the provider's tokens: it tells them apart from users made through the API (who have no
// provider login at all and may be spawned for), so that no spawn goes ahead for them, not even
// through an API token, until they log in again.
type accessLost struct {
	Reason string    `json:"access_lost"`
	At     time.Time `json:"at"`
}

// accessLostIn is the reason recorded by loseAccess, or "" for a provider's tokens.
func accessLostIn(state []byte) string {
	var l accessLost
	json.Unmarshal(state, &l)
	return l.Reason
}

// loseAccess ends every way u gets in through a login: their hub sessions, and with them the
// OAuth tokens their servers hold for those sessions (so an open notebook tab is sent to log in
// once its server's cache of the token runs out). The provider's tokens give way to the reason
// (accessLost). Then Options.OnAccessLost decides about their running servers. It finishes even
// when the request that found the loss goes away: half of it would leave a user who may no
// longer be here with a way in. The error is always ErrAccessLost, joined with what failed.
func (g *Gate) loseAccess(ctx context.Context, u store.User, reason string) error {
	ctx = context.WithoutCancel(ctx)
	servers := "left running (auth.oidc.on_lost_access)"
	if g.opts.OnAccessLost != nil {
		servers = "to be stopped (auth.oidc.on_lost_access)"
	}
	g.log.Warn("user lost access: their hub sessions and their servers' OAuth tokens end", "user", u.Name, "reason", reason, "servers", servers)
	lost := fmt.Errorf("%w: %s: %s", ErrAccessLost, u.Name, reason)
	record, _ := json.Marshal(accessLost{Reason: reason, At: time.Now().UTC()}) // a string and a time: cannot fail
	var errs []error
	if err := g.store.SetAuthState(ctx, u.ID, g.sealer.seal(record)); err != nil {
		errs = append(errs, fmt.Errorf("record the lost access of %s: %w", u.Name, err))
	}
	if err := g.store.DeleteUserSessions(ctx, u.ID); err != nil {
		errs = append(errs, fmt.Errorf("end the sessions of %s: %w", u.Name, err))
	}
	g.refreshes.set(g.refreshes.of(u.ID), time.Time{}, true)
	if g.opts.OnAccessLost != nil {
		g.opts.OnAccessLost(ctx, u)
	}
	if len(errs) > 0 {
		g.log.Error("ending the login of a user who lost access", "user", u.Name, "err", errors.Join(errs...))
		return errors.Join(append([]error{lost}, errs...)...)
	}
	return lost
}

// endLogin ends the hub sessions (and their OAuth tokens) of a user whose login at the provider
// ran its course (a Keycloak session past its idle or max time): they log in again, as anyone
// whose session at the provider has ended does, and nothing else happens; their servers go on.
// The expired tokens stay, so that a spawn (even through an API token) is refused until then.
func (g *Gate) endLogin(ctx context.Context, u store.User, why error) error {
	ctx = context.WithoutCancel(ctx) // see loseAccess
	g.log.Info("login at the identity provider has run out: the user's hub sessions end until they log in again", "user", u.Name, "err", why)
	g.refreshed(u)
	if err := g.store.DeleteUserSessions(ctx, u.ID); err != nil {
		return errors.Join(why, fmt.Errorf("end the sessions of %s: %w", u.Name, err))
	}
	return why
}

// remoteLogin is u's stored provider login, opened; nil if they have none.
func (g *Gate) remoteLogin(ctx context.Context, u store.User) ([]byte, error) {
	sealed, err := g.store.AuthState(ctx, u.ID)
	if err != nil {
		return nil, fmt.Errorf("read the provider login of %s: %w", u.Name, err)
	}
	if sealed == nil {
		return nil, nil
	}
	return g.sealer.open(sealed)
}

// loginExpiry is when the access token of u's stored login expires; zero when unknown or none.
func (g *Gate) loginExpiry(ctx context.Context, u store.User) (time.Time, error) {
	state, err := g.remoteLogin(ctx, u)
	if err != nil || state == nil {
		return time.Time{}, err
	}
	// The provider's tokens are opaque to the hub but for this field, which the oidc adapter
	// writes as RemoteLogin.Expiry (oidc.Tokens).
	var meta struct {
		Expiry time.Time `json:"expiry"`
	}
	json.Unmarshal(state, &meta)
	return meta.Expiry, nil
}
