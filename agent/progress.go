package agent

import "sync"

// progressEvent is one event of the spawn progress stream, in JupyterHub's shape.
type progressEvent struct {
	Progress    int    `json:"progress"`
	Message     string `json:"message"`
	HTMLMessage string `json:"html_message,omitempty"`
	Ready       bool   `json:"ready,omitempty"`
	Failed      bool   `json:"failed,omitempty"`
	URL         string `json:"url,omitempty"`
}

// spawnProgress collects the events of one spawn so that any number of watchers (the API, the
// spawn-pending page) can replay them from the start and then follow along.
type spawnProgress struct {
	mu      sync.Mutex
	events  []progressEvent
	changed chan struct{} // closed and replaced whenever an event arrives
	fin     chan struct{} // closed by the ready or failed event
	cancel  func()        // cancels the spawn (a stop asked for it)
}

func newSpawnProgress() *spawnProgress {
	return &spawnProgress{changed: make(chan struct{}), fin: make(chan struct{}), cancel: func() {}}
}

func (p *spawnProgress) emit(ev progressEvent) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.isDone() {
		return // the stream ends with its first ready or failed event
	}
	p.events = append(p.events, ev)
	close(p.changed)
	p.changed = make(chan struct{})
	if ev.Ready || ev.Failed {
		close(p.fin)
	}
}

func (p *spawnProgress) step(progress int, msg string) {
	p.emit(progressEvent{Progress: progress, Message: msg})
}

// since returns the events after the first n, a channel that closes on the next one, and whether
// the stream has ended.
func (p *spawnProgress) since(n int) ([]progressEvent, <-chan struct{}, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []progressEvent
	if n < len(p.events) {
		out = append(out, p.events[n:]...)
	}
	return out, p.changed, p.isDone()
}

func (p *spawnProgress) finished() <-chan struct{} { return p.fin }

func (p *spawnProgress) isDone() bool {
	select {
	case <-p.fin:
		return true
	default:
		return false
	}
}

// last returns the newest event.
func (p *spawnProgress) last() progressEvent {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.events) == 0 {
		return progressEvent{}
	}
	return p.events[len(p.events)-1]
}
