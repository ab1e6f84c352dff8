package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Token kinds.
const (
	KindAPI    = "api"    // made by a user or admin through the API or `token create`
	KindServer = "server" // a user server's own token (its JUPYTERHUB_API_TOKEN and OAuth client secret)
	KindOAuth  = "oauth"  // issued by the OAuth provider to a user server on behalf of a browser login
)

// Token is a stored token; the secret itself is never stored.
type Token struct {
	ID           int64
	Prefix       string
	UserID       int64
	Kind         string
	Scopes       []string
	Note         string
	Created      time.Time
	LastActivity time.Time
	ExpiresAt    time.Time
	SessionID    string
	OAuthClient  string
	ServerID     int64
}

// APIID is the id the REST API shows, as JupyterHub does ("a12").
func (t Token) APIID() string { return "a" + strconv.FormatInt(t.ID, 10) }

// ParseAPIID turns "a12" back into 12.
func ParseAPIID(id string) (int64, bool) {
	n, err := strconv.ParseInt(strings.TrimPrefix(id, "a"), 10, 64)
	return n, err == nil && strings.HasPrefix(id, "a") && n > 0
}

const tokenCols = `id, prefix, user_id, kind, scopes, note, created, last_activity, expires_at, session_id, oauth_client, server_id`

func scanToken(row interface{ Scan(...any) error }) (Token, error) {
	var t Token
	var scopes string
	var created, last, expires, session, client sql.NullString
	var server sql.NullInt64
	err := row.Scan(&t.ID, &t.Prefix, &t.UserID, &t.Kind, &scopes, &t.Note, &created, &last, &expires, &session, &client, &server)
	if errors.Is(err, sql.ErrNoRows) {
		return t, ErrNotFound
	}
	t.Scopes = fromJSONList(scopes)
	t.Created, t.LastActivity, t.ExpiresAt = parseTime(created), parseTime(last), parseTime(expires)
	t.SessionID, t.OAuthClient, t.ServerID = session.String, client.String, server.Int64
	return t, err
}

// CreateToken stores a new token and returns its secret, which is shown once and never again.
func (s *Store) CreateToken(ctx context.Context, t Token) (Token, string, error) {
	secret := NewSecret()
	t.Prefix = secret[:4]
	t.Created = now()
	if t.Scopes == nil {
		t.Scopes = []string{}
	}
	res, err := s.db.ExecContext(ctx, `INSERT INTO tokens (hash, prefix, user_id, kind, scopes, note, created, expires_at, session_id, oauth_client, server_id)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		Hash(secret), t.Prefix, t.UserID, t.Kind, toJSON(t.Scopes), t.Note, fmtTime(t.Created), fmtTime(t.ExpiresAt),
		nullString(t.SessionID), nullString(t.OAuthClient), nullID(t.ServerID))
	if err != nil {
		return t, "", fmt.Errorf("create %s token: %w", t.Kind, err)
	}
	t.ID, _ = res.LastInsertId()
	return t, secret, nil
}

// LookupToken finds the token a secret belongs to; expired tokens are ErrNotFound (and deleted).
func (s *Store) LookupToken(ctx context.Context, secret string) (Token, error) {
	t, err := scanToken(s.db.QueryRowContext(ctx, `SELECT `+tokenCols+` FROM tokens WHERE hash = ?`, Hash(secret)))
	if err != nil {
		return t, err
	}
	if !t.ExpiresAt.IsZero() && now().After(t.ExpiresAt) {
		s.db.ExecContext(ctx, `DELETE FROM tokens WHERE id = ?`, t.ID)
		return Token{}, ErrNotFound
	}
	return t, nil
}

// LookupTokenOwner is LookupToken with the token's owner, read in the same statement: what
// authenticating every API request needs.
func (s *Store) LookupTokenOwner(ctx context.Context, secret string) (Token, User, error) {
	var t Token
	var owner userFields
	var scopes string
	var created, last, expires, session, client sql.NullString
	var server sql.NullInt64
	dest := append([]any{&t.ID, &t.Prefix, &t.UserID, &t.Kind, &scopes, &t.Note, &created, &last, &expires, &session, &client, &server},
		owner.dest()...)
	err := s.db.QueryRowContext(ctx, `SELECT tokens.id, tokens.prefix, tokens.user_id, tokens.kind, tokens.scopes, tokens.note,
		tokens.created, tokens.last_activity, tokens.expires_at, tokens.session_id, tokens.oauth_client, tokens.server_id, `+joinedUserCols+`
		FROM tokens JOIN users ON users.id = tokens.user_id WHERE tokens.hash = ?`, Hash(secret)).Scan(dest...)
	if errors.Is(err, sql.ErrNoRows) {
		return Token{}, User{}, ErrNotFound
	}
	if err != nil {
		return Token{}, User{}, fmt.Errorf("look up token: %w", err)
	}
	t.Scopes = fromJSONList(scopes)
	t.Created, t.LastActivity, t.ExpiresAt = parseTime(created), parseTime(last), parseTime(expires)
	t.SessionID, t.OAuthClient, t.ServerID = session.String, client.String, server.Int64
	if !t.ExpiresAt.IsZero() && now().After(t.ExpiresAt) {
		s.db.ExecContext(ctx, `DELETE FROM tokens WHERE id = ?`, t.ID)
		return Token{}, User{}, ErrNotFound
	}
	return t, owner.user(), nil
}

// TouchToken records that a token was used. Callers throttle it.
func (s *Store) TouchToken(ctx context.Context, id int64, t time.Time) error {
	_, err := s.db.ExecContext(ctx, `UPDATE tokens SET last_activity = ? WHERE id = ?`, fmtTime(t), id)
	return err
}

// Tokens lists a user's tokens of the given kinds (all kinds if none given).
func (s *Store) Tokens(ctx context.Context, userID int64, kinds ...string) ([]Token, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+tokenCols+` FROM tokens WHERE user_id = ? ORDER BY id`, userID)
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	defer rows.Close()
	out := []Token{}
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("list tokens: %w", err)
		}
		if len(kinds) == 0 || slices.Contains(kinds, t.Kind) {
			out = append(out, t)
		}
	}
	return out, rows.Err()
}

// TokenByID returns one of a user's tokens.
func (s *Store) TokenByID(ctx context.Context, userID, id int64) (Token, error) {
	return scanToken(s.db.QueryRowContext(ctx, `SELECT `+tokenCols+` FROM tokens WHERE user_id = ? AND id = ?`, userID, id))
}

// DeleteToken removes one of a user's tokens.
func (s *Store) DeleteToken(ctx context.Context, userID, id int64) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM tokens WHERE user_id = ? AND id = ?`, userID, id)
	if err != nil {
		return fmt.Errorf("delete token: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return ErrNotFound
	}
	return nil
}

// DeleteSessionTokens revokes every OAuth token issued under a login session (logout).
func (s *Store) DeleteSessionTokens(ctx context.Context, sessionID string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM tokens WHERE session_id = ?`, sessionID)
	return err
}

// DeleteServerTokens revokes a server's own token and every OAuth token issued to its client.
func (s *Store) DeleteServerTokens(ctx context.Context, serverID int64, clientID string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM tokens WHERE server_id = ? OR (oauth_client = ? AND ? != '')`, serverID, clientID, clientID)
	if err != nil {
		return fmt.Errorf("revoke tokens of server #%d: %w", serverID, err)
	}
	return nil
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}
