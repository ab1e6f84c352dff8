package store

import (
	"context"
	"database/sql"
	"sync"
	"sync/atomic"
)

// maxPrepared bounds the statements kept prepared. The store's SQL is built from constant
// fragments only (filters are bound values or json_each(?) lists, never spliced-in text), so
// there are a few dozen distinct texts; the bound is a guard against a future caller that
// splices, which then runs unprepared past it instead of growing the cache without end.
const maxPrepared = 256

// conn is the store's handle on sqlite. Every statement goes through it, which lets it count
// them (Store.Statements) and run each one from a statement prepared the first time its text
// is seen: re-parsing the same SQL on every call was most of the CPU of a token check.
type conn struct {
	*sql.DB // for what is not a statement: BeginTx at migration, Close, settings

	statements *atomic.Int64

	mu       sync.Mutex
	prepared map[string]*sql.Stmt
}

func newConn(db *sql.DB) *conn {
	return &conn{DB: db, statements: new(atomic.Int64), prepared: map[string]*sql.Stmt{}}
}

// stmt returns the prepared statement of query, preparing it now if need be; nil if it cannot
// be kept (the cache is full, or preparing failed: running it unprepared reports why).
//
// The lock is not held while preparing, which waits for the one connection: a transaction that
// holds it looks statements up (cached) and must not wait behind that.
func (c *conn) stmt(ctx context.Context, query string) *sql.Stmt {
	if st, full := c.cached(query); st != nil || full {
		return st
	}
	// Prepared without the caller's deadline: the statement outlives this call.
	st, err := c.DB.PrepareContext(context.WithoutCancel(ctx), query)
	if err != nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if had, ok := c.prepared[query]; ok { // another caller prepared it meanwhile
		st.Close()
		return had
	}
	if len(c.prepared) >= maxPrepared {
		st.Close()
		return nil
	}
	c.prepared[query] = st
	return st
}

// cached returns query's prepared statement if there is one, and whether no more may be added.
func (c *conn) cached(query string) (st *sql.Stmt, full bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	st = c.prepared[query]
	return st, len(c.prepared) >= maxPrepared
}

func (c *conn) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	c.statements.Add(1)
	if st := c.stmt(ctx, query); st != nil {
		return st.ExecContext(ctx, args...)
	}
	return c.DB.ExecContext(ctx, query, args...)
}

func (c *conn) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	c.statements.Add(1)
	if st := c.stmt(ctx, query); st != nil {
		return st.QueryContext(ctx, args...)
	}
	return c.DB.QueryContext(ctx, query, args...)
}

func (c *conn) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	c.statements.Add(1)
	if st := c.stmt(ctx, query); st != nil {
		return st.QueryRowContext(ctx, args...)
	}
	return c.DB.QueryRowContext(ctx, query, args...)
}

// Close closes the prepared statements, then the database.
func (c *conn) Close() error {
	c.mu.Lock()
	for q, st := range c.prepared {
		st.Close()
		delete(c.prepared, q)
	}
	c.mu.Unlock()
	return c.DB.Close()
}

// txConn is a transaction seen as a querier: counted, and using the store's prepared
// statements on the transaction's connection. It never prepares one itself: preparing on the
// database would wait for the connection the transaction holds.
type txConn struct {
	tx *sql.Tx
	c  *conn
}

func (t txConn) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	t.c.statements.Add(1)
	if st, _ := t.c.cached(query); st != nil {
		return t.tx.StmtContext(ctx, st).ExecContext(ctx, args...)
	}
	return t.tx.ExecContext(ctx, query, args...)
}

func (t txConn) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	t.c.statements.Add(1)
	if st, _ := t.c.cached(query); st != nil {
		return t.tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	}
	return t.tx.QueryContext(ctx, query, args...)
}

func (t txConn) QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row {
	t.c.statements.Add(1)
	if st, _ := t.c.cached(query); st != nil {
		return t.tx.StmtContext(ctx, st).QueryRowContext(ctx, args...)
	}
	return t.tx.QueryRowContext(ctx, query, args...)
}

// Statements is how many SQL statements the store has run since it was opened (those inside
// transactions each count; BEGIN and COMMIT do not). Tests pin with it how many a request costs.
func (s *Store) Statements() int64 { return s.db.statements.Load() }
