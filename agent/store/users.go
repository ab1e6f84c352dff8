package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// User is a hub user.
type User struct {
	ID           int64
	Name         string
	Admin        bool
	Groups       []string
	Created      time.Time
	LastActivity time.Time
}

const userCols = `id, name, admin, groups, created, last_activity`

func scanUser(row interface{ Scan(...any) error }) (User, error) {
	var u User
	var groups string
	var created, last sql.NullString
	if err := row.Scan(&u.ID, &u.Name, &u.Admin, &groups, &created, &last); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return u, ErrNotFound
		}
		return u, err
	}
	u.Groups = fromJSONList(groups)
	u.Created = parseTime(created)
	u.LastActivity = parseTime(last)
	return u, nil
}

// joinedUserCols are userCols in a join with the users table.
const joinedUserCols = `users.id, users.name, users.admin, users.groups, users.created, users.last_activity`

// userFields receives a user's columns (joinedUserCols) as part of a wider row.
type userFields struct {
	u             User
	groups        string
	created, last sql.NullString
}

func (f *userFields) dest() []any {
	return []any{&f.u.ID, &f.u.Name, &f.u.Admin, &f.groups, &f.created, &f.last}
}

func (f *userFields) user() User {
	u := f.u
	u.Groups, u.Created, u.LastActivity = fromJSONList(f.groups), parseTime(f.created), parseTime(f.last)
	return u
}

// CreateUser adds a user; ErrExists if the name is taken.
func (s *Store) CreateUser(ctx context.Context, name string, admin bool) (User, error) {
	res, err := s.db.ExecContext(ctx, `INSERT INTO users (name, admin, created) VALUES (?, ?, ?) ON CONFLICT (name) DO NOTHING`,
		name, admin, fmtTime(now()))
	if err != nil {
		return User{}, fmt.Errorf("create user %s: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return User{}, fmt.Errorf("create user %s: %w", name, ErrExists)
	}
	return s.GetUser(ctx, name)
}

// GetUser finds a user by name.
func (s *Store) GetUser(ctx context.Context, name string) (User, error) {
	u, err := scanUser(s.db.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE name = ?`, name))
	if err != nil {
		return u, fmt.Errorf("user %s: %w", name, err)
	}
	return u, nil
}

// UserByID finds a user by id.
func (s *Store) UserByID(ctx context.Context, id int64) (User, error) {
	u, err := scanUser(s.db.QueryRowContext(ctx, `SELECT `+userCols+` FROM users WHERE id = ?`, id))
	if err != nil {
		return u, fmt.Errorf("user #%d: %w", id, err)
	}
	return u, nil
}

// UsersByID finds many users by id in one statement; ids that match no one have no entry.
func (s *Store) UsersByID(ctx context.Context, ids []int64) (map[int64]User, error) {
	out := make(map[int64]User, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+userCols+` FROM users WHERE id IN (SELECT value FROM json_each(?))`, toJSON(ids))
	if err != nil {
		return nil, fmt.Errorf("users by id: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("users by id: %w", err)
		}
		out[u.ID] = u
	}
	return out, rows.Err()
}

// UserQuery selects a page of users.
type UserQuery struct {
	Offset, Limit int
	// State is "", "active" (a server running or pending), "ready" (a server running) or "inactive".
	State      string
	NameFilter string
	// Sort is "id", "name" or "last_activity", with a leading "-" for descending.
	Sort string
	// Only, if not nil, keeps the users a filtered scope reaches: those named, or in one of the
	// groups. Paging and the total then count only them.
	Only *Reach
}

// Reach is the users a filtered scope such as list:users!user=alice or !group=staff reaches.
type Reach struct {
	Names, Groups []string
}

// ListUsers returns one page of users and the total number matching the filters.
func (s *Store) ListUsers(ctx context.Context, q UserQuery) ([]User, int, error) {
	var where []string
	var args []any
	switch q.State {
	case "active":
		where = append(where, `EXISTS (SELECT 1 FROM servers WHERE servers.user_id = users.id AND state != 'stopped')`)
	case "ready":
		where = append(where, `EXISTS (SELECT 1 FROM servers WHERE servers.user_id = users.id AND state = 'running')`)
	case "inactive":
		where = append(where, `NOT EXISTS (SELECT 1 FROM servers WHERE servers.user_id = users.id AND state != 'stopped')`)
	}
	if q.NameFilter != "" {
		where = append(where, `instr(lower(name), lower(?)) > 0`)
		args = append(args, q.NameFilter)
	}
	if q.Only != nil {
		names, _ := json.Marshal(q.Only.Names)
		groups, _ := json.Marshal(q.Only.Groups)
		where = append(where, `(name IN (SELECT value FROM json_each(?)) OR EXISTS (SELECT 1 FROM json_each(users.groups) g WHERE g.value IN (SELECT value FROM json_each(?))))`)
		args = append(args, string(names), string(groups))
	}
	cond := ""
	if len(where) > 0 {
		cond = " WHERE " + strings.Join(where, " AND ")
	}
	desc := ""
	if strings.HasPrefix(q.Sort, "-") {
		desc = " DESC"
	}
	order := "id" + desc
	switch strings.TrimPrefix(q.Sort, "-") {
	case "name":
		order = "name" + desc
	case "last_activity":
		// Users who never did anything sort last either way.
		order = "last_activity IS NULL, last_activity" + desc
	}
	var total int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM users`+cond, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count users: %w", err)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT `+userCols+` FROM users`+cond+` ORDER BY `+order+` LIMIT ? OFFSET ?`,
		append(args, q.Limit, q.Offset)...)
	if err != nil {
		return nil, 0, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	var users []User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, 0, fmt.Errorf("list users: %w", err)
		}
		users = append(users, u)
	}
	return users, total, rows.Err()
}

// UserPatch changes some fields of a user; nil fields stay.
type UserPatch struct {
	Name   *string
	Admin  *bool
	Groups *[]string
}

// UpdateUser applies a patch. Renaming onto an existing name is ErrExists.
func (s *Store) UpdateUser(ctx context.Context, name string, p UserPatch) (User, error) {
	u, err := s.GetUser(ctx, name)
	if err != nil {
		return u, err
	}
	if p.Name != nil && *p.Name != name {
		if _, err := s.GetUser(ctx, *p.Name); err == nil {
			return u, fmt.Errorf("rename user %s to %s: %w", name, *p.Name, ErrExists)
		}
		u.Name = *p.Name
	}
	if p.Admin != nil {
		u.Admin = *p.Admin
	}
	if p.Groups != nil {
		u.Groups = *p.Groups
	}
	err = s.inTx(ctx, func(tx querier) error {
		if _, err := tx.ExecContext(ctx, `UPDATE users SET name = ?, admin = ?, groups = ? WHERE id = ?`,
			u.Name, u.Admin, toJSON(u.Groups), u.ID); err != nil {
			return fmt.Errorf("update user %s: %w", name, err)
		}
		// Every group a user is in is in the catalogue too (see Group).
		return ensureGroups(ctx, tx, u.Groups)
	})
	return u, err
}

// DeleteUser removes a user with their servers' records and tokens.
func (s *Store) DeleteUser(ctx context.Context, name string) error {
	res, err := s.db.ExecContext(ctx, `DELETE FROM users WHERE name = ?`, name)
	if err != nil {
		return fmt.Errorf("delete user %s: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("delete user %s: %w", name, ErrNotFound)
	}
	return nil
}

// AuthState returns a user's sealed identity-provider tokens (nil if none).
func (s *Store) AuthState(ctx context.Context, userID int64) ([]byte, error) {
	var b []byte
	err := s.db.QueryRowContext(ctx, `SELECT auth_state FROM users WHERE id = ?`, userID).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	return b, err
}

// AuthStates is AuthState for a page of users at once, by user id, in one statement; users
// without auth state have no entry.
func (s *Store) AuthStates(ctx context.Context, userIDs []int64) (map[int64][]byte, error) {
	out := map[int64][]byte{}
	if len(userIDs) == 0 {
		return out, nil
	}
	rows, err := s.db.QueryContext(ctx, `SELECT id, auth_state FROM users
		WHERE id IN (SELECT value FROM json_each(?)) AND auth_state IS NOT NULL`, toJSON(userIDs))
	if err != nil {
		return nil, fmt.Errorf("read auth state of %d users: %w", len(userIDs), err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var b []byte
		if err := rows.Scan(&id, &b); err != nil {
			return nil, fmt.Errorf("read auth state of %d users: %w", len(userIDs), err)
		}
		out[id] = b
	}
	return out, rows.Err()
}

// SetAuthState stores a user's sealed identity-provider tokens; nil clears them.
func (s *Store) SetAuthState(ctx context.Context, userID int64, sealed []byte) error {
	_, err := s.db.ExecContext(ctx, `UPDATE users SET auth_state = ? WHERE id = ?`, sealed, userID)
	if err != nil {
		return fmt.Errorf("save auth state: %w", err)
	}
	return nil
}

// TouchUser moves a user's last activity forward (never back).
func (s *Store) TouchUser(ctx context.Context, userID int64, t time.Time) error {
	_, err := s.db.ExecContext(ctx, `UPDATE users SET last_activity = ?1 WHERE id = ?2 AND (last_activity IS NULL OR last_activity < ?1)`,
		fmtTime(t), userID)
	return err
}

// CountUsers returns the number of users.
func (s *Store) CountUsers(ctx context.Context) (int, error) {
	var n int
	err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM users`).Scan(&n)
	return n, err
}
