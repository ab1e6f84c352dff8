package gpu

import (
	"context"
	"fmt"
	"slices"
)

// The queue: in queue mode a request that finds nothing free waits in the line of its pool
// (whole GPUs, or one MIG profile). Each line is first come, first served: a request is
// served only when everyone before it in its line has been, so a request for two GPUs is
// not overtaken forever by requests for one. Lines of different pools do not wait for each
// other, as they draw on different devices. The lines live in memory only.

// waiter is one Acquire waiting in line. Its fields are guarded by Allocator.mu; the
// waiting goroutine reads them when woken.
type waiter struct {
	holder Holder
	req    Request
	pool   string
	pos    int           // place in line, 1 is next; 0 once out of it
	grant  *hold         // the devices reserved for it, once served
	err    error         // why it was turned away while waiting
	wake   chan struct{} // poked whenever pos, grant or err change
}

func (w *waiter) signal() {
	select {
	case w.wake <- struct{}{}:
	default: // already poked; the waiter reads the latest state
	}
}

func (a *Allocator) enqueueLocked(holder Holder, req Request) *waiter {
	w := &waiter{holder: holder, req: req, pool: req.pool(), wake: make(chan struct{}, 1)}
	a.queues[w.pool] = append(a.queues[w.pool], w)
	w.pos = len(a.queues[w.pool])
	return w
}

// queuedLocked reports whether a server is waiting in any line.
func (a *Allocator) queuedLocked(serverID int64) bool {
	for _, q := range a.queues {
		if slices.ContainsFunc(q, func(w *waiter) bool { return w.holder.ServerID == serverID }) {
			return true
		}
	}
	return false
}

// wait blocks until w is served, turned away, or ctx ends, reporting position changes to
// onQueued from this goroutine (never under the allocator's lock).
func (a *Allocator) wait(ctx context.Context, w *waiter, onQueued func(pos int)) (Grant, error) {
	reported := 0
	for {
		a.mu.Lock()
		h, err, pos := w.grant, w.err, w.pos
		a.mu.Unlock()
		if h != nil {
			return a.record(ctx, h)
		}
		if err != nil {
			return Grant{}, err
		}
		if pos != reported && onQueued != nil {
			onQueued(pos)
		}
		reported = pos

		select {
		case <-w.wake:
		case <-ctx.Done():
			a.mu.Lock()
			if w.grant != nil {
				// Served just as ctx ended: nobody will start a unit, so give it back.
				if a.holds[w.holder.ServerID] == w.grant {
					delete(a.holds, w.holder.ServerID)
				}
				a.dispatchLocked()
			} else {
				a.removeLocked(w)
			}
			a.mu.Unlock()
			a.log.Info("GPU request left the queue", "server", w.holder, "request", w.req.String(), "cause", context.Cause(ctx))
			return Grant{}, fmt.Errorf("wait for %s for %s: %w", w.req, w.holder, context.Cause(ctx))
		}
	}
}

// removeLocked takes w out of its line and moves those behind it up.
func (a *Allocator) removeLocked(w *waiter) {
	q := a.queues[w.pool]
	i := slices.Index(q, w)
	if i < 0 {
		return
	}
	q = slices.Delete(q, i, i+1)
	w.pos = 0
	a.renumberLocked(w.pool, q)
}

// renumberLocked stores a line and tells each waiter whose position changed.
func (a *Allocator) renumberLocked(pool string, q []*waiter) {
	for i, w := range q {
		if w.pos != i+1 {
			w.pos = i + 1
			w.signal()
		}
	}
	if len(q) == 0 {
		delete(a.queues, pool)
		return
	}
	a.queues[pool] = q
}

// dispatchLocked serves the heads of the lines from the free devices, turns away those the
// host can no longer satisfy or that are now over quota, and moves the rest up. Call it
// whenever devices may have freed or the inventory changed.
func (a *Allocator) dispatchLocked() {
	for pool, q := range a.queues {
		total := len(a.poolLocked(pool))
		var keep []*waiter
		blocked := false
		for _, w := range q {
			if blocked {
				keep = append(keep, w)
				continue
			}
			n := w.req.count()
			if total < n {
				w.err = fmt.Errorf("wait for %s for %s: %w: %s", w.req, w.holder, ErrUnavailable, a.shortfallLocked(w.req, total))
				w.pos = 0
				w.signal()
				continue
			}
			if err := a.quotaLocked(w.holder, w.req.Groups, n); err != nil {
				w.err, w.pos = err, 0
				w.signal()
				continue
			}
			devs := a.pickLocked(pool, n)
			if devs == nil {
				blocked = true
				keep = append(keep, w)
				continue
			}
			w.grant, w.pos = a.reserveLocked(w.holder, w.req, devs), 0
			w.signal()
		}
		a.renumberLocked(pool, keep)
	}
}

// WaitingMessage is the progress line for a spawn at pos in the GPU queue, e.g. "waiting
// for a GPU (1st in line)".
func WaitingMessage(pos int) string {
	return fmt.Sprintf("waiting for a GPU (%s in line)", ordinal(pos))
}

func ordinal(n int) string {
	suffix := "th"
	switch n % 10 {
	case 1:
		suffix = "st"
	case 2:
		suffix = "nd"
	case 3:
		suffix = "rd"
	}
	if n%100 >= 11 && n%100 <= 13 {
		suffix = "th"
	}
	return fmt.Sprintf("%d%s", n, suffix)
}

// Waiting counts the requests waiting in each line, by pool: "" for whole GPUs, else the MIG
// profile. Lines nobody waits in are left out.
func (a *Allocator) Waiting() map[string]int {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]int, len(a.queues))
	for pool, q := range a.queues {
		out[pool] = len(q)
	}
	return out
}
