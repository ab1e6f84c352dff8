package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Share is access to one server granted to a user or a group (exactly one of the two).
type Share struct {
	ID       int64
	Server   Server // the shared server (with its owner's name)
	UserID   int64
	UserName string
	Group    string
	Scopes   []string
	Created  time.Time
}

const shareCols = `shares.id, shares.user_id, coalesce(u.name, ''), coalesce(shares.group_name, ''), shares.scopes, shares.created, ` + serverColsQualified

// serverColsQualified are serverCols for a join with the servers table as "servers".
const serverColsQualified = `servers.id, servers.user_id, owner.name, servers.name, servers.state, servers.unit, servers.port, servers.started, servers.last_activity, servers.user_options`

const shareJoin = ` FROM shares JOIN servers ON servers.id = shares.server_id JOIN users owner ON owner.id = servers.user_id LEFT JOIN users u ON u.id = shares.user_id`

func scanShare(row interface{ Scan(...any) error }) (Share, error) {
	var sh Share
	var uid sql.NullInt64
	var scopes, created string
	var started, active sql.NullString
	var opts string
	sv := &sh.Server
	err := row.Scan(&sh.ID, &uid, &sh.UserName, &sh.Group, &scopes, &created,
		&sv.ID, &sv.UserID, &sv.UserName, &sv.Name, &sv.State, &sv.Unit, &sv.Port, &started, &active, &opts)
	if err != nil {
		return sh, err
	}
	sh.UserID, sh.Scopes = uid.Int64, fromJSONList(scopes)
	sh.Created = parseTime(sql.NullString{String: created, Valid: true})
	sv.Started, sv.LastActivity, sv.UserOptions = parseTime(started), parseTime(active), json.RawMessage(opts)
	return sh, nil
}

func (s *Store) queryShares(ctx context.Context, cond string, args ...any) ([]Share, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+shareCols+shareJoin+` WHERE `+cond+` ORDER BY shares.id`, args...)
	if err != nil {
		return nil, fmt.Errorf("list shares: %w", err)
	}
	defer rows.Close()
	out := []Share{}
	for rows.Next() {
		sh, err := scanShare(rows)
		if err != nil {
			return nil, fmt.Errorf("list shares: %w", err)
		}
		out = append(out, sh)
	}
	return out, rows.Err()
}

// SharesOf lists the shares of one server (serverID > 0) or of every server of an owner.
func (s *Store) SharesOf(ctx context.Context, ownerID, serverID int64) ([]Share, error) {
	if serverID > 0 {
		return s.queryShares(ctx, `shares.server_id = ?`, serverID)
	}
	return s.queryShares(ctx, `servers.user_id = ?`, ownerID)
}

// SharedWith lists the shares a user holds, directly or through one of their groups.
func (s *Store) SharedWith(ctx context.Context, u User) ([]Share, error) {
	groups := toJSON(u.Groups)
	return s.queryShares(ctx, `shares.user_id = ? OR shares.group_name IN (SELECT value FROM json_each(?))`, u.ID, groups)
}

// SharedWithGroup lists the shares granted to a group.
func (s *Store) SharedWithGroup(ctx context.Context, group string) ([]Share, error) {
	return s.queryShares(ctx, `shares.group_name = ?`, group)
}

// GrantShare gives a user (userID > 0) or a group scopes on a server, adding to what an existing
// share already gives.
func (s *Store) GrantShare(ctx context.Context, serverID, userID int64, group string, scopes []string) (Share, error) {
	cur, err := s.findShare(ctx, serverID, userID, group)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return cur, err
	}
	if err == nil {
		merged := append([]string{}, cur.Scopes...)
		for _, sc := range scopes {
			if !slices.Contains(merged, sc) {
				merged = append(merged, sc)
			}
		}
		slices.Sort(merged)
		if _, err := s.db.ExecContext(ctx, `UPDATE shares SET scopes = ? WHERE id = ?`, toJSON(merged), cur.ID); err != nil {
			return cur, fmt.Errorf("grant share: %w", err)
		}
		return s.findShare(ctx, serverID, userID, group)
	}
	sorted := slices.Sorted(slices.Values(scopes))
	_, err = s.db.ExecContext(ctx, `INSERT INTO shares (server_id, user_id, group_name, scopes, created) VALUES (?, ?, ?, ?, ?)`,
		serverID, nullID(userID), nullString(group), toJSON(sorted), fmtTime(now()))
	if err != nil {
		return Share{}, fmt.Errorf("grant share: %w", err)
	}
	return s.findShare(ctx, serverID, userID, group)
}

// RevokeShare takes scopes away from a share (all of them if scopes is empty); a share left with
// none is deleted, and then ErrNotFound is returned with the zero Share.
func (s *Store) RevokeShare(ctx context.Context, serverID, userID int64, group string, scopes []string) (Share, error) {
	cur, err := s.findShare(ctx, serverID, userID, group)
	if err != nil {
		return cur, err
	}
	var left []string
	if len(scopes) > 0 {
		for _, sc := range cur.Scopes {
			if !slices.Contains(scopes, sc) {
				left = append(left, sc)
			}
		}
	}
	if len(left) == 0 {
		if _, err := s.db.ExecContext(ctx, `DELETE FROM shares WHERE id = ?`, cur.ID); err != nil {
			return cur, fmt.Errorf("revoke share: %w", err)
		}
		return Share{}, ErrNotFound
	}
	if _, err := s.db.ExecContext(ctx, `UPDATE shares SET scopes = ? WHERE id = ?`, toJSON(left), cur.ID); err != nil {
		return cur, fmt.Errorf("revoke share: %w", err)
	}
	return s.findShare(ctx, serverID, userID, group)
}

// DeleteShares removes every share of a server.
func (s *Store) DeleteShares(ctx context.Context, serverID int64) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM shares WHERE server_id = ?`, serverID)
	return err
}

func (s *Store) findShare(ctx context.Context, serverID, userID int64, group string) (Share, error) {
	var list []Share
	var err error
	if userID > 0 {
		list, err = s.queryShares(ctx, `shares.server_id = ? AND shares.user_id = ?`, serverID, userID)
	} else {
		list, err = s.queryShares(ctx, `shares.server_id = ? AND shares.group_name = ?`, serverID, group)
	}
	if err != nil {
		return Share{}, err
	}
	if len(list) == 0 {
		return Share{}, fmt.Errorf("share: %w", ErrNotFound)
	}
	return list[0], nil
}

// ShareCode is an invitation to a server: whoever accepts it before it expires gets a share.
type ShareCode struct {
	ID              int64
	Server          Server
	Scopes          []string
	Created         time.Time
	ExpiresAt       time.Time
	ExchangeCount   int
	LastExchangedAt time.Time
}

// APIID is how the API names a code: "sc_<id>", as JupyterHub does.
func (c ShareCode) APIID() string { return fmt.Sprintf("sc_%d", c.ID) }

const codeCols = `share_codes.id, share_codes.scopes, share_codes.created, share_codes.expires_at, share_codes.exchange_count, share_codes.last_exchanged_at, ` + serverColsQualified

const codeJoin = ` FROM share_codes JOIN servers ON servers.id = share_codes.server_id JOIN users owner ON owner.id = servers.user_id`

func scanCode(row interface{ Scan(...any) error }) (ShareCode, error) {
	var c ShareCode
	var scopes, created, expires string
	var last, started, active sql.NullString
	var opts string
	sv := &c.Server
	err := row.Scan(&c.ID, &scopes, &created, &expires, &c.ExchangeCount, &last,
		&sv.ID, &sv.UserID, &sv.UserName, &sv.Name, &sv.State, &sv.Unit, &sv.Port, &started, &active, &opts)
	if err != nil {
		return c, err
	}
	c.Scopes = fromJSONList(scopes)
	c.Created, c.ExpiresAt = parseTime(sql.NullString{String: created, Valid: true}), parseTime(sql.NullString{String: expires, Valid: true})
	c.LastExchangedAt = parseTime(last)
	sv.Started, sv.LastActivity, sv.UserOptions = parseTime(started), parseTime(active), json.RawMessage(opts)
	return c, nil
}

// CreateShareCode makes an invitation and returns its secret, which is stored hashed.
func (s *Store) CreateShareCode(ctx context.Context, serverID int64, scopes []string, ttl time.Duration) (ShareCode, string, error) {
	secret := NewSecret()
	res, err := s.db.ExecContext(ctx, `INSERT INTO share_codes (hash, server_id, scopes, created, expires_at) VALUES (?, ?, ?, ?, ?)`,
		Hash(secret), serverID, toJSON(scopes), fmtTime(now()), fmtTime(now().Add(ttl)))
	if err != nil {
		return ShareCode{}, "", fmt.Errorf("create share code: %w", err)
	}
	id, _ := res.LastInsertId()
	c, err := s.shareCode(ctx, `share_codes.id = ?`, id)
	return c, secret, err
}

func (s *Store) shareCode(ctx context.Context, cond string, args ...any) (ShareCode, error) {
	c, err := scanCode(s.db.QueryRowContext(ctx, `SELECT `+codeCols+codeJoin+` WHERE `+cond, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return c, fmt.Errorf("share code: %w", ErrNotFound)
	}
	if err != nil {
		return c, fmt.Errorf("share code: %w", err)
	}
	return c, nil
}

// LookupShareCode finds an unexpired code by its secret.
func (s *Store) LookupShareCode(ctx context.Context, secret string) (ShareCode, error) {
	c, err := s.shareCode(ctx, `share_codes.hash = ?`, Hash(secret))
	if err == nil && now().After(c.ExpiresAt) {
		return ShareCode{}, fmt.Errorf("share code expired: %w", ErrNotFound)
	}
	return c, err
}

// ShareCodesOf lists the unexpired codes of a server (serverID > 0) or of every server of an owner.
func (s *Store) ShareCodesOf(ctx context.Context, ownerID, serverID int64) ([]ShareCode, error) {
	cond, arg := `servers.user_id = ?`, ownerID
	if serverID > 0 {
		cond, arg = `share_codes.server_id = ?`, serverID
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+codeCols+codeJoin+` WHERE `+cond+` AND share_codes.expires_at > ? ORDER BY share_codes.id`, arg, fmtTime(now()))
	if err != nil {
		return nil, fmt.Errorf("list share codes: %w", err)
	}
	defer rows.Close()
	out := []ShareCode{}
	for rows.Next() {
		c, err := scanCode(rows)
		if err != nil {
			return nil, fmt.Errorf("list share codes: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// DeleteShareCodes deletes one code of a server (by secret or by id), or all of them.
func (s *Store) DeleteShareCodes(ctx context.Context, serverID int64, secret string, id int64) (int64, error) {
	q, args := `DELETE FROM share_codes WHERE server_id = ?`, []any{serverID}
	switch {
	case secret != "":
		q, args = q+` AND hash = ?`, append(args, Hash(secret))
	case id > 0:
		q, args = q+` AND id = ?`, append(args, id)
	}
	res, err := s.db.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, fmt.Errorf("delete share codes: %w", err)
	}
	n, _ := res.RowsAffected()
	return n, nil
}

// ExchangeShareCode turns a code into a share for the user who accepts it.
func (s *Store) ExchangeShareCode(ctx context.Context, secret string, u User) (Share, error) {
	c, err := s.LookupShareCode(ctx, secret)
	if err != nil {
		return Share{}, err
	}
	if _, err := s.db.ExecContext(ctx, `UPDATE share_codes SET exchange_count = exchange_count + 1, last_exchanged_at = ? WHERE id = ?`, fmtTime(now()), c.ID); err != nil {
		return Share{}, fmt.Errorf("accept share code: %w", err)
	}
	return s.GrantShare(ctx, c.Server.ID, u.ID, "", c.Scopes)
}
