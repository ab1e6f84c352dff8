package auth

import (
	"sync"
	"time"
)

// throttle counts failed logins per key (an account, or a client address) over a sliding window.
// It is a map with a cap rather than golang.org/x/time/rate: what it needs is "how many failures
// since when" and a bound on memory that random keys cannot break, which a rate limiter per key
// would not give by itself.
type throttle struct {
	mu     sync.Mutex
	window time.Duration
	max    int
	fails  map[string][]time.Time // key → times of its recent failures, oldest first
	now    func() time.Time
}

// throttleCap bounds the keys kept: past it, the keys with the oldest failures go first.
const throttleCap = 10000

func newThrottle(max int, window time.Duration) *throttle {
	return &throttle{window: window, max: max, fails: map[string][]time.Time{}, now: time.Now}
}

// blocked says whether key has failed too often, and when that ends.
func (t *throttle) blocked(key string) (bool, time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	recent := t.recent(key)
	if len(recent) < t.max {
		return false, 0
	}
	return true, recent[len(recent)-t.max].Add(t.window).Sub(t.now())
}

func (t *throttle) fail(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	recent := append(t.recent(key), t.now())
	if len(recent) > t.max {
		recent = recent[len(recent)-t.max:]
	}
	t.fails[key] = recent
	if len(t.fails) > throttleCap {
		t.evict()
	}
}

func (t *throttle) forget(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.fails, key)
}

// recent drops failures older than the window; t.mu is held.
func (t *throttle) recent(key string) []time.Time {
	cut := t.now().Add(-t.window)
	list := t.fails[key]
	i := 0
	for i < len(list) && list[i].Before(cut) {
		i++
	}
	if i == len(list) {
		delete(t.fails, key)
		return nil
	}
	return list[i:]
}

// evict drops the expired keys and, if that is not enough, the one whose last failure is oldest;
// fail calls it each time the map grows one past the cap.
func (t *throttle) evict() {
	var oldestKey string
	var oldest time.Time
	for k := range t.fails {
		list := t.recent(k)
		if list == nil {
			continue
		}
		if last := list[len(list)-1]; oldestKey == "" || last.Before(oldest) {
			oldestKey, oldest = k, last
		}
	}
	if len(t.fails) > throttleCap {
		delete(t.fails, oldestKey)
	}
}
