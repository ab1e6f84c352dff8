package servers

import (
	"sync"
	"time"
)

// Event is one event of the spawn progress stream, in JupyterHub's shape.
type Event struct {
	Progress    int    `json:"progress"`
	Message     string `json:"message"`
	HTMLMessage string `json:"html_message,omitempty"`
	Ready       bool   `json:"ready,omitempty"`
	Failed      bool   `json:"failed,omitempty"`
	URL         string `json:"url,omitempty"`
	// Cancelled marks the failure of a spawn that a stop cancelled (JupyterHub's stream has no
	// such field, so it is not sent).
	Cancelled bool `json:"-"`
}

// Progress collects the events of one spawn so that any number of watchers (the API, the
// spawn-pending page) can replay them from the start and then follow along.
type Progress struct {
	mu      sync.Mutex
	events  []Event
	changed chan struct{} // closed and replaced whenever an event arrives
	fin     chan struct{} // closed by the ready or failed event
	cancel  func()        // cancels the spawn (a stop asked for it)
	began   time.Time
}

// NewProgress makes an empty stream.
func NewProgress() *Progress {
	return &Progress{changed: make(chan struct{}), fin: make(chan struct{}), cancel: func() {}, began: time.Now()}
}

// Began is when the spawn was asked for.
func (p *Progress) Began() time.Time { return p.began }

// Emit adds an event; the stream ends with its first ready or failed event.
func (p *Progress) Emit(ev Event) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.isDone() {
		return
	}
	p.events = append(p.events, ev)
	close(p.changed)
	p.changed = make(chan struct{})
	if ev.Ready || ev.Failed {
		close(p.fin)
	}
}

// Step adds a plain progress message.
func (p *Progress) Step(progress int, msg string) {
	p.Emit(Event{Progress: progress, Message: msg})
}

// Since returns the events after the first n, a channel that closes on the next one, and whether
// the stream has ended.
func (p *Progress) Since(n int) ([]Event, <-chan struct{}, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Event
	if n < len(p.events) {
		out = append(out, p.events[n:]...)
	}
	return out, p.changed, p.isDone()
}

// Finished closes when the spawn is ready or has failed.
func (p *Progress) Finished() <-chan struct{} { return p.fin }

func (p *Progress) isDone() bool {
	select {
	case <-p.fin:
		return true
	default:
		return false
	}
}

// Last returns the newest event.
func (p *Progress) Last() Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.events) == 0 {
		return Event{}
	}
	return p.events[len(p.events)-1]
}
