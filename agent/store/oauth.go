package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// OAuthClient is a registered OAuth client: one per user server, and one per [[service]] that
// logs users in through the hub.
type OAuthClient struct {
	ID            string
	SecretHash    string
	RedirectURI   string
	Description   string
	AllowedScopes []string
	ServerID      int64  // the user server this client is, or 0
	Service       string // the service this client is, or ""
}

// SaveClient registers (or re-registers) a client whose secret is secret.
func (s *Store) SaveClient(ctx context.Context, c OAuthClient, secret string) error {
	return s.SaveClientHash(ctx, c, Hash(secret))
}

// SaveClientHash is SaveClient for a secret the caller holds only hashed (Hash).
func (s *Store) SaveClientHash(ctx context.Context, c OAuthClient, secretHash string) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO oauth_clients (id, secret_hash, redirect_uri, description, allowed_scopes, server_id, service)
		VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (id) DO UPDATE SET secret_hash = excluded.secret_hash, redirect_uri = excluded.redirect_uri,
			description = excluded.description, allowed_scopes = excluded.allowed_scopes, server_id = excluded.server_id,
			service = excluded.service`,
		c.ID, secretHash, c.RedirectURI, c.Description, toJSON(c.AllowedScopes), nullID(c.ServerID), c.Service)
	if err != nil {
		return fmt.Errorf("register oauth client %s: %w", c.ID, err)
	}
	return nil
}

// Client looks up a client by id.
func (s *Store) Client(ctx context.Context, id string) (OAuthClient, error) {
	var c OAuthClient
	var scopes string
	var server sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT id, secret_hash, redirect_uri, description, allowed_scopes, server_id, service FROM oauth_clients WHERE id = ?`, id).
		Scan(&c.ID, &c.SecretHash, &c.RedirectURI, &c.Description, &scopes, &server, &c.Service)
	if errors.Is(err, sql.ErrNoRows) {
		return c, ErrNotFound
	}
	c.AllowedScopes, c.ServerID = fromJSONList(scopes), server.Int64
	return c, err
}

// DeleteClient removes a client, its codes and (through DeleteServerTokens) its tokens.
func (s *Store) DeleteClient(ctx context.Context, id string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM oauth_clients WHERE id = ?`, id)
	return err
}

// OAuthCode is an authorization code waiting to be exchanged.
type OAuthCode struct {
	ClientID    string
	UserID      int64
	RedirectURI string
	Scopes      []string
	SessionID   string
	ExpiresAt   time.Time
	// Challenge and ChallengeMethod are the client's PKCE code_challenge (RFC 7636), if it sent one.
	Challenge, ChallengeMethod string
}

// CreateCode stores a code and returns its secret.
func (s *Store) CreateCode(ctx context.Context, c OAuthCode) (string, error) {
	secret := NewSecret()
	_, err := s.db.ExecContext(ctx, `INSERT INTO oauth_codes (hash, client_id, user_id, redirect_uri, scopes, session_id, expires_at, code_challenge, code_challenge_method) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		Hash(secret), c.ClientID, c.UserID, c.RedirectURI, toJSON(c.Scopes), nullString(c.SessionID), fmtTime(c.ExpiresAt), c.Challenge, c.ChallengeMethod)
	if err != nil {
		return "", fmt.Errorf("create oauth code: %w", err)
	}
	return secret, nil
}

// ConsumeCode returns a code and deletes it, so a code works once. Expired codes are ErrNotFound.
func (s *Store) ConsumeCode(ctx context.Context, secret string) (OAuthCode, error) {
	var c OAuthCode
	var scopes string
	var session, expires sql.NullString
	err := s.db.QueryRowContext(ctx, `DELETE FROM oauth_codes WHERE hash = ? RETURNING client_id, user_id, redirect_uri, scopes, session_id, expires_at, code_challenge, code_challenge_method`, Hash(secret)).
		Scan(&c.ClientID, &c.UserID, &c.RedirectURI, &scopes, &session, &expires, &c.Challenge, &c.ChallengeMethod)
	if errors.Is(err, sql.ErrNoRows) {
		return c, ErrNotFound
	}
	if err != nil {
		return c, fmt.Errorf("consume oauth code: %w", err)
	}
	c.Scopes, c.SessionID, c.ExpiresAt = fromJSONList(scopes), session.String, parseTime(expires)
	if now().After(c.ExpiresAt) {
		return OAuthCode{}, ErrNotFound
	}
	return c, nil
}

// Session is a browser login.
type Session struct {
	ID        string
	UserID    int64
	Created   time.Time
	ExpiresAt time.Time
	// IdPSubject and IdPSession name the identity provider's user and session behind this login
	// (empty for PAM), for back-channel logout.
	IdPSubject string
	IdPSession string
}

// CreateSession starts a login session and returns the cookie secret for it. Only UserID,
// IdPSubject and IdPSession of sess are used.
func (s *Store) CreateSession(ctx context.Context, sess Session, ttl time.Duration) (Session, string, error) {
	secret := NewSecret()
	sess.ID, sess.Created, sess.ExpiresAt = NewSecret()[:16], now(), now().Add(ttl)
	_, err := s.db.ExecContext(ctx, `INSERT INTO sessions (id, hash, user_id, created, expires_at, idp_subject, idp_session) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		sess.ID, Hash(secret), sess.UserID, fmtTime(sess.Created), fmtTime(sess.ExpiresAt), sess.IdPSubject, sess.IdPSession)
	if err != nil {
		return sess, "", fmt.Errorf("create session: %w", err)
	}
	return sess, secret, nil
}

// LookupSession finds the live session a cookie secret belongs to.
func (s *Store) LookupSession(ctx context.Context, secret string) (Session, error) {
	var sess Session
	var created, expires sql.NullString
	err := s.db.QueryRowContext(ctx, `SELECT id, user_id, created, expires_at, idp_subject, idp_session FROM sessions WHERE hash = ?`, Hash(secret)).
		Scan(&sess.ID, &sess.UserID, &created, &expires, &sess.IdPSubject, &sess.IdPSession)
	if errors.Is(err, sql.ErrNoRows) {
		return sess, ErrNotFound
	}
	if err != nil {
		return sess, fmt.Errorf("look up session: %w", err)
	}
	sess.Created, sess.ExpiresAt = parseTime(created), parseTime(expires)
	if now().After(sess.ExpiresAt) {
		s.DeleteSession(ctx, sess.ID)
		return Session{}, ErrNotFound
	}
	return sess, nil
}

// LookupSessionOwner is LookupSession with the session's user, read in the same statement: what
// authenticating every cookie request needs.
func (s *Store) LookupSessionOwner(ctx context.Context, secret string) (Session, User, error) {
	var sess Session
	var owner userFields
	var created, expires sql.NullString
	dest := append([]any{&sess.ID, &sess.UserID, &created, &expires, &sess.IdPSubject, &sess.IdPSession}, owner.dest()...)
	err := s.db.QueryRowContext(ctx, `SELECT sessions.id, sessions.user_id, sessions.created, sessions.expires_at,
		sessions.idp_subject, sessions.idp_session, `+joinedUserCols+`
		FROM sessions JOIN users ON users.id = sessions.user_id WHERE sessions.hash = ?`, Hash(secret)).Scan(dest...)
	if errors.Is(err, sql.ErrNoRows) {
		return Session{}, User{}, ErrNotFound
	}
	if err != nil {
		return Session{}, User{}, fmt.Errorf("look up session: %w", err)
	}
	sess.Created, sess.ExpiresAt = parseTime(created), parseTime(expires)
	if now().After(sess.ExpiresAt) {
		s.DeleteSession(ctx, sess.ID)
		return Session{}, User{}, ErrNotFound
	}
	return sess, owner.user(), nil
}

// DeleteSession ends a login session and revokes the OAuth tokens issued under it.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM sessions WHERE id = ?`, id); err != nil {
		return fmt.Errorf("delete session: %w", err)
	}
	return s.DeleteSessionTokens(ctx, id)
}

// DeleteIdPSessions ends every hub session that came from the identity provider's session sid
// or, with sid empty, from any session of its user sub (OIDC back-channel logout). It returns
// how many ended.
func (s *Store) DeleteIdPSessions(ctx context.Context, sub, sid string) (int, error) {
	if sid != "" {
		return s.deleteSessionsWhere(ctx, `idp_session = ? AND idp_session != ''`, sid)
	}
	return s.deleteSessionsWhere(ctx, `idp_subject = ? AND idp_subject != ''`, sub)
}

// DeleteUserSessions ends every login session of a user.
func (s *Store) DeleteUserSessions(ctx context.Context, userID int64) error {
	_, err := s.deleteSessionsWhere(ctx, `user_id = ?`, userID)
	return err
}

// deleteSessionsWhere ends the sessions matching cond, and with them their OAuth tokens.
func (s *Store) deleteSessionsWhere(ctx context.Context, cond string, arg any) (int, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id FROM sessions WHERE `+cond, arg)
	if err != nil {
		return 0, fmt.Errorf("find sessions: %w", err)
	}
	var ids []string
	for rows.Next() {
		var id string
		rows.Scan(&id)
		ids = append(ids, id)
	}
	rows.Close()
	for _, id := range ids {
		if err := s.DeleteSession(ctx, id); err != nil {
			return 0, err
		}
	}
	return len(ids), nil
}

// Expire deletes expired tokens, codes and sessions.
func (s *Store) Expire(ctx context.Context) error {
	t := fmtTime(now())
	for _, q := range []string{
		`DELETE FROM tokens WHERE expires_at IS NOT NULL AND expires_at < ?`,
		`DELETE FROM oauth_codes WHERE expires_at < ?`,
		`DELETE FROM tokens WHERE session_id IN (SELECT id FROM sessions WHERE expires_at < ?)`,
		`DELETE FROM sessions WHERE expires_at < ?`,
	} {
		if _, err := s.db.ExecContext(ctx, q, t); err != nil {
			return fmt.Errorf("expire old credentials: %w", err)
		}
	}
	return nil
}
