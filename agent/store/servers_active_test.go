package store

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// The active servers, which every hub start reads before it listens, are found through their
// index, not by scanning every server record there is.
func TestActiveServersAreReadThroughTheirIndex(t *testing.T) {
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "hub.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// Servers(ctx, 0, true)'s query.
	q := `EXPLAIN QUERY PLAN SELECT ` + serverCols + ` FROM servers JOIN users ON users.id = servers.user_id
		WHERE (?1 = 0 OR servers.user_id = ?1) AND state != 'stopped' ORDER BY servers.id`
	rows, err := s.db.QueryContext(ctx, q, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if got := strings.Join(plan, "; "); !strings.Contains(got, "servers_active") {
		t.Errorf("the query plan is %q, which does not use servers_active", got)
	}
}
