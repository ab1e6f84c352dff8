package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// Group is a group of users. Membership is kept in one place, each user's groups (users.groups),
// because that is what logins write (Unix groups, identity-provider claims) and what the !group=
// scope filters read; the groups table is the catalogue of names with their properties, so a
// group can exist with no members. Users is derived from the users' lists.
type Group struct {
	ID         int64
	Name       string
	Properties map[string]any
	Users      []string // member names, sorted
}

// querier is what both *sql.DB and *sql.Tx offer. The store has one connection, so whatever runs
// inside a transaction must go through the transaction.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// membersOf lists the names of a group's members.
func membersOf(ctx context.Context, q querier, group string) ([]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT name FROM users WHERE EXISTS (SELECT 1 FROM json_each(users.groups) g WHERE g.value = ?) ORDER BY name`, group)
	if err != nil {
		return nil, fmt.Errorf("members of group %s: %w", group, err)
	}
	defer rows.Close()
	names := []string{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("members of group %s: %w", group, err)
		}
		names = append(names, n)
	}
	return names, rows.Err()
}

func getGroup(ctx context.Context, q querier, name string) (Group, error) {
	g := Group{Name: name}
	var props string
	err := q.QueryRowContext(ctx, `SELECT id, properties FROM groups WHERE name = ?`, name).Scan(&g.ID, &props)
	if errors.Is(err, sql.ErrNoRows) {
		return g, fmt.Errorf("group %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return g, fmt.Errorf("group %s: %w", name, err)
	}
	if json.Unmarshal([]byte(props), &g.Properties) != nil || g.Properties == nil {
		g.Properties = map[string]any{}
	}
	if g.Users, err = membersOf(ctx, q, name); err != nil {
		return g, err
	}
	return g, nil
}

// GetGroup finds a group by name, with its members.
func (s *Store) GetGroup(ctx context.Context, name string) (Group, error) {
	return getGroup(ctx, s.db, name)
}

// ensureGroups gives every named group a row, so groups that logins bring in are listed too.
func ensureGroups(ctx context.Context, q querier, names []string) error {
	for _, n := range names {
		if _, err := q.ExecContext(ctx, `INSERT INTO groups (name) VALUES (?) ON CONFLICT (name) DO NOTHING`, n); err != nil {
			return fmt.Errorf("record group %s: %w", n, err)
		}
	}
	return nil
}

// inTx runs fn in a transaction, committing if it returns nil.
func (s *Store) inTx(ctx context.Context, fn func(tx querier) error) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	if err := fn(txConn{tx, s.db}); err != nil {
		tx.Rollback()
		return err
	}
	return tx.Commit()
}

// CreateGroup adds a group with properties (nil: none) and members, who must exist
// (ErrNotFound names the first who does not); ErrExists if the name is taken.
func (s *Store) CreateGroup(ctx context.Context, name string, properties map[string]any, members []string) (Group, error) {
	if properties == nil {
		properties = map[string]any{}
	}
	var g Group
	err := s.inTx(ctx, func(tx querier) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO groups (name, properties) VALUES (?, ?) ON CONFLICT (name) DO NOTHING`, name, toJSON(properties))
		if err != nil {
			return fmt.Errorf("create group %s: %w", name, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("create group %s: %w", name, ErrExists)
		}
		if err := changeMembers(ctx, tx, name, members, true); err != nil {
			return err
		}
		g, err = getGroup(ctx, tx, name)
		return err
	})
	return g, err
}

// GroupQuery selects a page of groups.
type GroupQuery struct {
	Offset, Limit int
	// Only, if not nil, keeps the groups named (a list:groups!group= filter); paging and the
	// total then count only them.
	Only []string
}

// ListGroups returns one page of groups, oldest first, and the total matching.
func (s *Store) ListGroups(ctx context.Context, q GroupQuery) ([]Group, int, error) {
	cond, args := "", []any{}
	if q.Only != nil {
		only, _ := json.Marshal(q.Only)
		cond, args = ` WHERE name IN (SELECT value FROM json_each(?))`, append(args, string(only))
	}
	var total int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM groups`+cond, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count groups: %w", err)
	}
	rows, err := s.db.QueryContext(ctx, `SELECT name FROM groups`+cond+` ORDER BY id LIMIT ? OFFSET ?`, append(args, q.Limit, q.Offset)...)
	if err != nil {
		return nil, 0, fmt.Errorf("list groups: %w", err)
	}
	var names []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			rows.Close()
			return nil, 0, fmt.Errorf("list groups: %w", err)
		}
		names = append(names, n)
	}
	rows.Close() // the one connection is needed for the members
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("list groups: %w", err)
	}
	groups := make([]Group, 0, len(names))
	for _, n := range names {
		g, err := s.GetGroup(ctx, n)
		if errors.Is(err, ErrNotFound) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, 0, err
		}
		groups = append(groups, g)
	}
	return groups, total, nil
}

// DeleteGroup removes a group and takes it out of every member's groups. With
// auth.manage_groups, the next login of a member whose authenticator still names it brings it back.
func (s *Store) DeleteGroup(ctx context.Context, name string) error {
	return s.inTx(ctx, func(tx querier) error {
		members, err := membersOf(ctx, tx, name)
		if err != nil {
			return err
		}
		if err := changeMembers(ctx, tx, name, members, false); err != nil {
			return err
		}
		res, err := tx.ExecContext(ctx, `DELETE FROM groups WHERE name = ?`, name)
		if err != nil {
			return fmt.Errorf("delete group %s: %w", name, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("delete group %s: %w", name, ErrNotFound)
		}
		return nil
	})
}

// AddGroupMembers puts users (who must exist) into a group (which must exist).
func (s *Store) AddGroupMembers(ctx context.Context, group string, users []string) (Group, error) {
	return s.updateMembers(ctx, group, users, true)
}

// RemoveGroupMembers takes users (who must exist) out of a group (which must exist).
func (s *Store) RemoveGroupMembers(ctx context.Context, group string, users []string) (Group, error) {
	return s.updateMembers(ctx, group, users, false)
}

func (s *Store) updateMembers(ctx context.Context, group string, users []string, add bool) (Group, error) {
	var g Group
	err := s.inTx(ctx, func(tx querier) error {
		if _, err := getGroup(ctx, tx, group); err != nil {
			return err
		}
		if err := changeMembers(ctx, tx, group, users, add); err != nil {
			return err
		}
		var err error
		g, err = getGroup(ctx, tx, group)
		return err
	})
	return g, err
}

// changeMembers adds group to (or removes it from) each user's list.
func changeMembers(ctx context.Context, tx querier, group string, users []string, add bool) error {
	for _, name := range users {
		var raw string
		var id int64
		err := tx.QueryRowContext(ctx, `SELECT id, groups FROM users WHERE name = ?`, name).Scan(&id, &raw)
		if errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("user %s: %w", name, ErrNotFound)
		}
		if err != nil {
			return fmt.Errorf("groups of user %s: %w", name, err)
		}
		groups := fromJSONList(raw)
		has := slices.Contains(groups, group)
		switch {
		case add && !has:
			groups = append(groups, group)
		case !add && has:
			groups = slices.DeleteFunc(groups, func(g string) bool { return g == group })
		default:
			continue
		}
		if _, err := tx.ExecContext(ctx, `UPDATE users SET groups = ? WHERE id = ?`, toJSON(groups), id); err != nil {
			return fmt.Errorf("update groups of user %s: %w", name, err)
		}
	}
	return nil
}

// SetGroupProperties replaces a group's properties.
func (s *Store) SetGroupProperties(ctx context.Context, name string, properties map[string]any) (Group, error) {
	if properties == nil {
		properties = map[string]any{}
	}
	res, err := s.db.ExecContext(ctx, `UPDATE groups SET properties = ? WHERE name = ?`, toJSON(properties), name)
	if err != nil {
		return Group{}, fmt.Errorf("set properties of group %s: %w", name, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return Group{}, fmt.Errorf("group %s: %w", name, ErrNotFound)
	}
	return s.GetGroup(ctx, name)
}
