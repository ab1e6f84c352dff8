package gpu

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// StoreLedger keeps the allocator's grants in the hub's sqlite store (table gpu_grants), one
// JSON Grant per server. The store holds the records without reading them; this is where they
// become Grants again.
func StoreLedger(st *store.Store) Ledger { return storeLedger{st} }

type storeLedger struct{ st *store.Store }

func (l storeLedger) Load(ctx context.Context) ([]Grant, error) {
	recs, err := l.st.GPUGrants(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Grant, 0, len(recs))
	for _, r := range recs {
		var g Grant
		if err := json.Unmarshal(r.Record, &g); err != nil {
			// Dropping it could hand a running server's GPU to someone else; refuse instead.
			return nil, fmt.Errorf("read the GPU grant of server #%d: %w (it is in table gpu_grants of the hub's database)", r.ServerID, err)
		}
		g.Holder.ServerID = r.ServerID // the row's key is what the store vouches for
		out = append(out, g)
	}
	return out, nil
}

func (l storeLedger) Hold(ctx context.Context, g Grant) error {
	rec, err := json.Marshal(g)
	if err != nil {
		return fmt.Errorf("encode the GPU grant of %s: %w", g.Holder, err)
	}
	return l.st.HoldGPUs(ctx, store.GPUGrant{ServerID: g.Holder.ServerID, Record: rec})
}

func (l storeLedger) Release(ctx context.Context, serverID int64) error {
	return l.st.ReleaseGPUs(ctx, serverID)
}
