package servers

import (
	"sync"
	"time"
)

// startClock is spawner.start_timeout for one spawn: a budget that runs down while the spawn
// works and stands still while a step waits in a queue (Job.Queued). When it runs out, expire
// is called (it cancels the spawn's context with context.DeadlineExceeded as the cause).
//
// A plain context.WithTimeout cannot stop and go on again, which is why the spawn's context is
// a cancel context and this clock is its deadline.
type startClock struct {
	expire func()

	mu      sync.Mutex
	left    time.Duration // budget left when the clock last stopped
	since   time.Time     // when it last started running
	timer   *time.Timer   // nil while stopped
	waiting int           // steps waiting in a queue; the clock runs only at 0
	over    bool          // expired, or the spawn ended: never run again
}

// newStartClock starts a clock with budget.
func newStartClock(budget time.Duration, expire func()) *startClock {
	c := &startClock{expire: expire, left: budget}
	c.mu.Lock()
	c.runLocked()
	c.mu.Unlock()
	return c
}

func (c *startClock) runLocked() {
	c.since = time.Now()
	c.timer = time.AfterFunc(c.left, func() {
		c.mu.Lock()
		c.over = true
		c.mu.Unlock()
		c.expire()
	})
}

// stopLocked stops the timer and books the time it ran.
func (c *startClock) stopLocked() {
	if c.timer == nil {
		return
	}
	if !c.timer.Stop() {
		c.over = true // it fired already; the spawn is being cancelled
	}
	c.timer = nil
	c.left -= time.Since(c.since)
}

// pause stops the clock until the returned function is called (and every other pause ended).
func (c *startClock) pause() (resume func()) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopLocked()
	c.waiting++
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.waiting--
			if c.waiting == 0 && !c.over && c.timer == nil {
				c.runLocked() // a budget already spent fires at once
			}
		})
	}
}

// end stops the clock for good: the spawn is over.
func (c *startClock) end() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopLocked()
	c.over = true
}
