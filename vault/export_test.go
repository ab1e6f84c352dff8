package vault

import "time"

// SetMinRenewPeriod shortens the shortest renewal period (30 s) for tests of tokens with a TTL
// of seconds.
func SetMinRenewPeriod(o *Options, d time.Duration) { o.minPeriod = d }
