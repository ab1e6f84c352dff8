package store

import (
	"context"
	"fmt"
	"time"
)

// CountActiveUsers returns how many users were active at or after since (JupyterHub's
// active_users metric). The stored times are fixed-width UTC, so comparing the text compares
// the times.
func (s *Store) CountActiveUsers(ctx context.Context, since time.Time) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT count(*) FROM users WHERE last_activity >= ?`, fmtTime(since)).Scan(&n); err != nil {
		return 0, fmt.Errorf("count active users: %w", err)
	}
	return n, nil
}
