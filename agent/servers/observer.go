package servers

import "time"

// Observer is told how the lifecycle went, for the hub's metrics; agent/metrics implements it
// over Prometheus, so this package stays free of it. Its methods are called from the goroutines
// that spawn and stop servers and must not block.
type Observer interface {
	// SpawnFinished: a spawn ended with status after d, from the request to the route.
	SpawnFinished(status SpawnStatus, d time.Duration)
	// StopFinished: a stop ended after d; ok is false when the unit would not stop.
	StopFinished(ok bool, d time.Duration)
	// Polled: systemd was asked whether a server's unit runs, which took d.
	Polled(running bool, d time.Duration)
	// Reconciled: the records were checked against the units that run (at start), in d.
	Reconciled(d time.Duration)
}

// SpawnStatus is how a spawn ended, in JupyterHub 5.5's words (its ServerSpawnStatus).
type SpawnStatus string

const (
	SpawnSuccess SpawnStatus = "success"
	SpawnFailure SpawnStatus = "failure" // a step failed, the server did not answer, or a stop cancelled it
	// SpawnAlreadyPending is a start asked for while the server was already spawning: it joins
	// that spawn's progress instead.
	SpawnAlreadyPending SpawnStatus = "already-pending"
)

// SpawnStatuses are the statuses a spawn can end with here. JupyterHub's throttled and
// too-many-users have no counterpart: this hub has neither a concurrent spawn limit nor an
// active server limit.
var SpawnStatuses = []SpawnStatus{SpawnSuccess, SpawnFailure, SpawnAlreadyPending}

// noObserver is the Observer of a Manager that was given none.
type noObserver struct{}

func (noObserver) SpawnFinished(SpawnStatus, time.Duration) {}
func (noObserver) StopFinished(bool, time.Duration)         {}
func (noObserver) Polled(bool, time.Duration)               {}
func (noObserver) Reconciled(time.Duration)                 {}
