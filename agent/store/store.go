// Package store keeps the hub's state in sqlite: users, their servers, groups, API and OAuth
// tokens, OAuth clients and codes, login sessions, shares, the GPUs each server holds, and what spawn steps keep per server.
//
// Secrets (tokens, codes, session cookies) are stored only as sha256 hashes: a stolen database
// does not let anyone act as a user. Every state change a caller makes is written here before the
// side effect it announces, so a hub that crashes in between can see and repair it at start.
package store

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Errors callers branch on.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
)

// Store is an open hub database.
type Store struct {
	db *conn
}

// Open opens (creating if needed) the database at path and brings its schema up to date.
func Open(ctx context.Context, path string) (*Store, error) {
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=foreign_keys(1)&_pragma=busy_timeout(10000)&_pragma=synchronous(NORMAL)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", path, err)
	}
	// One writer at a time is what sqlite allows anyway; a single connection also makes
	// BEGIN IMMEDIATE-style read-modify-write sequences safe without retry loops.
	db.SetMaxOpenConns(1)
	s := &Store{db: newConn(db)}
	if err := s.migrate(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("migrate database %s: %w", path, err)
	}
	return s, nil
}

// Ping checks the database answers a query.
func (s *Store) Ping(ctx context.Context) error {
	var one int
	return s.db.QueryRowContext(ctx, `SELECT 1`).Scan(&one)
}

// Close closes the database.
func (s *Store) Close() error { return s.db.Close() }

// migrations are applied in order; PRAGMA user_version records how many have run.
// Never edit one that has shipped: add a new one.
var migrations = []string{
	`CREATE TABLE users (
		id INTEGER PRIMARY KEY,
		name TEXT NOT NULL UNIQUE,
		admin INTEGER NOT NULL DEFAULT 0,
		groups TEXT NOT NULL DEFAULT '[]',
		created TEXT NOT NULL,
		last_activity TEXT
	);
	CREATE TABLE servers (
		id INTEGER PRIMARY KEY,
		user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
		name TEXT NOT NULL DEFAULT '',
		state TEXT NOT NULL DEFAULT 'stopped',
		unit TEXT NOT NULL DEFAULT '',
		port INTEGER NOT NULL DEFAULT 0,
		started TEXT,
		last_activity TEXT,
		user_options TEXT NOT NULL DEFAULT '{}',
		UNIQUE (user_id, name)
	);
	CREATE TABLE tokens (
		id INTEGER PRIMARY KEY,
		hash TEXT NOT NULL UNIQUE,
		prefix TEXT NOT NULL,
		user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
		kind TEXT NOT NULL,
		scopes TEXT NOT NULL DEFAULT '[]',
		note TEXT NOT NULL DEFAULT '',
		created TEXT NOT NULL,
		last_activity TEXT,
		expires_at TEXT,
		session_id TEXT,
		oauth_client TEXT,
		server_id INTEGER REFERENCES servers(id) ON DELETE CASCADE
	);
	CREATE INDEX tokens_user ON tokens(user_id);
	CREATE INDEX tokens_session ON tokens(session_id);
	CREATE TABLE oauth_clients (
		id TEXT PRIMARY KEY,
		secret_hash TEXT NOT NULL,
		redirect_uri TEXT NOT NULL,
		description TEXT NOT NULL,
		allowed_scopes TEXT NOT NULL,
		server_id INTEGER REFERENCES servers(id) ON DELETE CASCADE
	);
	CREATE TABLE oauth_codes (
		hash TEXT PRIMARY KEY,
		client_id TEXT NOT NULL REFERENCES oauth_clients(id) ON DELETE CASCADE,
		user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
		redirect_uri TEXT NOT NULL,
		scopes TEXT NOT NULL,
		session_id TEXT,
		expires_at TEXT NOT NULL
	);
	CREATE TABLE sessions (
		id TEXT PRIMARY KEY,
		hash TEXT NOT NULL UNIQUE,
		user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
		created TEXT NOT NULL,
		expires_at TEXT NOT NULL
	);`,
	// Logins through an identity provider: tokens kept (encrypted) per user, and the provider's
	// session of each hub session, so a back-channel logout can end it.
	`ALTER TABLE users ADD COLUMN auth_state BLOB;
	ALTER TABLE sessions ADD COLUMN idp_subject TEXT NOT NULL DEFAULT '';
	ALTER TABLE sessions ADD COLUMN idp_session TEXT NOT NULL DEFAULT '';
	CREATE INDEX sessions_idp ON sessions(idp_session);`,
	// Token ids are what the API shows ("a12"): a deleted token's id must never come back as
	// another token's, which a plain rowid does after the newest is deleted. AUTOINCREMENT
	// cannot be added to a table, so it is rebuilt.
	`CREATE TABLE tokens_new (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		hash TEXT NOT NULL UNIQUE,
		prefix TEXT NOT NULL,
		user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
		kind TEXT NOT NULL,
		scopes TEXT NOT NULL DEFAULT '[]',
		note TEXT NOT NULL DEFAULT '',
		created TEXT NOT NULL,
		last_activity TEXT,
		expires_at TEXT,
		session_id TEXT,
		oauth_client TEXT,
		server_id INTEGER REFERENCES servers(id) ON DELETE CASCADE
	);
	INSERT INTO tokens_new SELECT id, hash, prefix, user_id, kind, scopes, note, created, last_activity, expires_at, session_id, oauth_client, server_id FROM tokens;
	DROP TABLE tokens;
	ALTER TABLE tokens_new RENAME TO tokens;
	CREATE INDEX tokens_user ON tokens(user_id);
	CREATE INDEX tokens_session ON tokens(session_id);`,
	// PKCE (RFC 7636): the challenge a client sent with its authorization request, checked when
	// it exchanges the code.
	`ALTER TABLE oauth_codes ADD COLUMN code_challenge TEXT NOT NULL DEFAULT '';
	ALTER TABLE oauth_codes ADD COLUMN code_challenge_method TEXT NOT NULL DEFAULT '';`,
	// Groups (groups.go): the catalogue of groups with their properties. Membership stays in
	// users.groups, where logins have always put it; every group named there gets a row.
	`CREATE TABLE groups (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		name TEXT NOT NULL UNIQUE,
		properties TEXT NOT NULL DEFAULT '{}'
	);
	INSERT OR IGNORE INTO groups (name) SELECT DISTINCT g.value FROM users, json_each(users.groups) g ORDER BY g.value;`,
	// Sharing (JupyterHub 5): a server's owner lets another user, or a group, have scopes on it;
	// codes are invitations that turn into a share for whoever accepts them. Both go with the
	// server record.
	`CREATE TABLE shares (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		server_id INTEGER NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
		user_id INTEGER REFERENCES users(id) ON DELETE CASCADE,
		group_name TEXT,
		scopes TEXT NOT NULL,
		created TEXT NOT NULL,
		UNIQUE (server_id, user_id, group_name)
	);
	CREATE INDEX shares_user ON shares(user_id);
	CREATE INDEX shares_group ON shares(group_name);
	CREATE TABLE share_codes (
		id INTEGER PRIMARY KEY AUTOINCREMENT,
		hash TEXT NOT NULL UNIQUE,
		server_id INTEGER NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
		scopes TEXT NOT NULL,
		created TEXT NOT NULL,
		expires_at TEXT NOT NULL,
		exchange_count INTEGER NOT NULL DEFAULT 0,
		last_exchanged_at TEXT
	);`,
	// OAuth clients of [[service]]s (HubOAuth), which belong to no user server.
	`ALTER TABLE oauth_clients ADD COLUMN service TEXT NOT NULL DEFAULT '';`,
	// GPU grants (the gpu allocator's ledger): what each server holds, so a restarted hub hands
	// none of a running server's devices out again. A deleted server's grant goes with it.
	`CREATE TABLE gpu_grants (
		server_id INTEGER PRIMARY KEY REFERENCES servers(id) ON DELETE CASCADE,
		record TEXT NOT NULL,
		held_since TEXT NOT NULL
	);`,
	// What a spawn step keeps about one server until its stop half has run (step_state.go): the
	// vault step's token accessor, say. A deleted server's state goes with it.
	`CREATE TABLE step_state (
		server_id INTEGER NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
		step TEXT NOT NULL,
		value TEXT NOT NULL,
		PRIMARY KEY (server_id, step)
	);`,
	// The servers that are not stopped, which the hub reads at every start (reconcile) before
	// it listens: without an index that is a scan of everyone who ever spawned.
	`CREATE INDEX servers_active ON servers(id) WHERE state != 'stopped';`,
}

func (s *Store) migrate(ctx context.Context) error {
	var version int
	if err := s.db.QueryRowContext(ctx, `PRAGMA user_version`).Scan(&version); err != nil {
		return err
	}
	if version > len(migrations) {
		return fmt.Errorf("database schema version %d is newer than this jupyterhub-go (%d): upgrade jupyterhub-go", version, len(migrations))
	}
	for i := version; i < len(migrations); i++ {
		tx, err := s.db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			tx.Rollback()
			return fmt.Errorf("migration %d: %w", i+1, err)
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf(`PRAGMA user_version = %d`, i+1)); err != nil {
			tx.Rollback()
			return err
		}
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	return nil
}

// NewSecret returns a random 32-byte secret, hex-encoded.
func NewSecret() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails: since Go 1.24 it crashes the program rather than return weak bytes
	return hex.EncodeToString(b)
}

// Hash is how secrets are kept in the database.
func Hash(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// timeFormat is what the database stores: UTC, fixed width, so text order is time order.
const timeFormat = "2006-01-02T15:04:05.000000Z"

func fmtTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format(timeFormat)
}

func parseTime(ns sql.NullString) time.Time {
	if !ns.Valid {
		return time.Time{}
	}
	t, err := time.Parse(timeFormat, ns.String)
	if err != nil {
		return time.Time{}
	}
	return t
}

func toJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "null"
	}
	return string(b)
}

func fromJSONList(s string) []string {
	if s == "[]" { // most users' groups: no decoder needed
		return []string{}
	}
	var out []string
	if err := json.Unmarshal([]byte(s), &out); err != nil || out == nil {
		return []string{}
	}
	return out
}

func now() time.Time { return time.Now().UTC() }
