package store

import (
	"context"
	"encoding/json"
	"fmt"
)

// GPUGrant is the record of the GPUs one server holds: the ledger of the gpu package's
// allocator, which writes a grant here before the server's unit starts and clears it after the
// unit stopped, so a restarted hub hands none of a running server's devices out again.
//
// Record is the allocator's own JSON and the store does not read it. The store cannot use the
// gpu package's types: the HTTP surfaces import the store and must not depend on a concern
// (agent/layout_test.go). gpu.StoreLedger turns these records into grants.
type GPUGrant struct {
	ServerID int64
	Record   json.RawMessage
}

// GPUGrants lists every recorded grant, by server id.
func (s *Store) GPUGrants(ctx context.Context) ([]GPUGrant, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT server_id, record FROM gpu_grants ORDER BY server_id`)
	if err != nil {
		return nil, fmt.Errorf("list GPU grants: %w", err)
	}
	defer rows.Close()
	var out []GPUGrant
	for rows.Next() {
		var g GPUGrant
		var rec string
		if err := rows.Scan(&g.ServerID, &rec); err != nil {
			return nil, fmt.Errorf("list GPU grants: %w", err)
		}
		g.Record = json.RawMessage(rec)
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list GPU grants: %w", err)
	}
	return out, nil
}

// HoldGPUs records (or replaces) a server's grant. It is committed when it returns; a server
// that does not exist is ErrNotFound.
func (s *Store) HoldGPUs(ctx context.Context, g GPUGrant) error {
	if !json.Valid(g.Record) {
		return fmt.Errorf("record GPU grant of server #%d: the record is not JSON", g.ServerID)
	}
	// Selecting from servers makes a grant for a server that does not exist insert nothing,
	// rather than fail on the foreign key with a message that does not say so.
	res, err := s.db.ExecContext(ctx, `INSERT INTO gpu_grants (server_id, record, held_since)
		SELECT id, ?2, ?3 FROM servers WHERE id = ?1
		ON CONFLICT (server_id) DO UPDATE SET record = excluded.record, held_since = excluded.held_since`,
		g.ServerID, string(g.Record), fmtTime(now()))
	if err != nil {
		return fmt.Errorf("record GPU grant of server #%d: %w", g.ServerID, err)
	}
	if n, err := res.RowsAffected(); err == nil && n == 0 {
		return fmt.Errorf("record GPU grant of server #%d: %w", g.ServerID, ErrNotFound)
	}
	return nil
}

// ReleaseGPUs clears a server's grant; a server without one is not an error.
func (s *Store) ReleaseGPUs(ctx context.Context, serverID int64) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM gpu_grants WHERE server_id = ?`, serverID); err != nil {
		return fmt.Errorf("clear GPU grant of server #%d: %w", serverID, err)
	}
	return nil
}
