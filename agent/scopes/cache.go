package scopes

import (
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Cache remembers expansions of raw scope lists. Expanding is a pure function of the list and
// the owner's name (the tree and the default roles are fixed), so a cached answer is never
// stale: whoever asks builds the raw list from the user's current admin flag, groups and roles,
// and a change there is another list, another key. Lists with "inherit" or "all" depend on the
// owner's current scopes and are expanded afresh every time.
//
// The zero Cache is not usable; make one with NewCache.
type Cache struct {
	max int

	mu   sync.Mutex
	sets map[string]Set // by cacheKey; never handed out, only copies
}

// NewCache makes a Cache of at most max expansions.
func NewCache(max int) *Cache {
	return &Cache{max: max, sets: map[string]Set{}}
}

// Expand is Expand(raw, owner, nil) for lists without "inherit" or "all"; the Set is the
// caller's own to change.
func (c *Cache) Expand(raw []string, owner string) Set {
	if slices.ContainsFunc(raw, inherits) {
		return Expand(raw, owner, nil)
	}
	key := cacheKey(raw, owner)
	c.mu.Lock()
	set, ok := c.sets[key]
	c.mu.Unlock()
	if ok {
		return maps.Clone(set)
	}
	set = Expand(raw, owner, nil)
	c.mu.Lock()
	if len(c.sets) >= c.max {
		// Dropping everything keeps the bound without bookkeeping; the sets of those
		// still active come back at their next request.
		clear(c.sets)
	}
	c.sets[key] = set
	c.mu.Unlock()
	return maps.Clone(set)
}

func inherits(s string) bool {
	name, _, _ := strings.Cut(s, "!")
	return name == "inherit" || name == "all"
}

// cacheKey is the owner and the list, in its order: callers build a user's list in a fixed
// order, so sorting would only merge the rare token whose scopes were given in another order,
// at a cost on every request. Each part is length-prefixed, so no scope text (a filter value
// can hold any byte) makes two lists one key.
func cacheKey(raw []string, owner string) string {
	n := len(owner) + 4
	for _, s := range raw {
		n += len(s) + 4
	}
	b := make([]byte, 0, n)
	for _, s := range append([]string{owner}, raw...) {
		b = strconv.AppendInt(b, int64(len(s)), 10)
		b = append(b, ':')
		b = append(b, s...)
	}
	return string(b)
}
