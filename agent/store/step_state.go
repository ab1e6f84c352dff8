package store

import (
	"context"
	"fmt"
)

// SetStepState keeps value for the spawn step named step about one server, replacing what it
// kept before; "" forgets it. A step's stop half gets only the stored server record (the hub
// may have restarted since its start half ran), so what it must undo travels here and comes
// back in Server.StepState. Keep no secrets in it: the database is not encrypted.
func (s *Store) SetStepState(ctx context.Context, serverID int64, step, value string) error {
	if value == "" {
		if _, err := s.db.ExecContext(ctx, `DELETE FROM step_state WHERE server_id = ? AND step = ?`, serverID, step); err != nil {
			return fmt.Errorf("forget %s state of server #%d: %w", step, serverID, err)
		}
		return nil
	}
	// Selecting from servers makes state for a server that does not exist insert nothing,
	// rather than fail on the foreign key with a message that does not say so.
	res, err := s.db.ExecContext(ctx, `INSERT INTO step_state (server_id, step, value)
		SELECT id, ?2, ?3 FROM servers WHERE id = ?1
		ON CONFLICT (server_id, step) DO UPDATE SET value = excluded.value`, serverID, step, value)
	if err != nil {
		return fmt.Errorf("keep %s state of server #%d: %w", step, serverID, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("keep %s state of server #%d: %w", step, serverID, ErrNotFound)
	}
	return nil
}
