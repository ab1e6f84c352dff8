package router_test

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jupyterhub-go/jupyterhub-go/agent/hubtest"
)

// TestSoakWebSockets holds 200 kernel-like WebSockets open through the router for JHGO_SOAK (make
// soak: 10m), each sending a message a second, and closes and reopens a tenth of them every ten
// seconds, as browser tabs come and go. Goroutines, open files and RSS must stay flat: a router
// that leaks per connection shows here long before a hub with a week of users does. Skipped
// unless JHGO_SOAK is set; CI runs the short tests only.
func TestSoakWebSockets(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("JHGO_SOAK"))
	if err != nil || d <= 0 {
		t.Skip("a soak: set JHGO_SOAK=10m (make soak)")
	}
	const conns = 200
	th := hubtest.New(t)
	upgrader := websocket.Upgrader{}
	th.Serve("alice", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			mt, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(mt, msg); err != nil {
				return
			}
		}
	}))
	url := "ws" + strings.TrimPrefix(th.URL, "http") + "/user/alice/api/kernels/k/channels"

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var sent, failed int
	client := func(i int) {
		defer wg.Done()
		for {
			c, _, err := websocket.DefaultDialer.Dial(url, nil)
			if err != nil {
				mu.Lock()
				failed++
				mu.Unlock()
				time.Sleep(time.Second)
				continue
			}
			// A tab lives 10 s on average here, then is closed and opened again.
			life := time.After(time.Duration(5000+rand.IntN(10000)) * time.Millisecond)
			tick := time.NewTicker(time.Second)
			alive := true
			for alive {
				select {
				case <-stop:
					c.Close()
					tick.Stop()
					return
				case <-life:
					alive = false
				case <-tick.C:
					msg := []byte("ping " + strconv.Itoa(i))
					if err := c.WriteMessage(websocket.TextMessage, msg); err != nil {
						alive = false
						break
					}
					if _, got, err := c.ReadMessage(); err != nil || string(got) != string(msg) {
						mu.Lock()
						failed++
						mu.Unlock()
						alive = false
						break
					}
					mu.Lock()
					sent++
					mu.Unlock()
				}
			}
			tick.Stop()
			c.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
			c.Close()
		}
	}
	wg.Add(conns)
	for i := range conns {
		go client(i)
	}

	type sample struct {
		at                 time.Duration
		goroutines, fds    int
		rssKiB, heapKiB    uint64
		messages, failures int
	}
	take := func(start time.Time) sample {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		fds, _ := os.ReadDir("/proc/self/fd")
		mu.Lock()
		defer mu.Unlock()
		return sample{time.Since(start).Round(time.Second), runtime.NumGoroutine(), len(fds), rss(), ms.HeapInuse >> 10, sent, failed}
	}
	start := time.Now()
	every := min(30*time.Second, d/10)
	var samples []sample
	for time.Since(start) < d {
		time.Sleep(every)
		samples = append(samples, take(start))
		s := samples[len(samples)-1]
		t.Logf("%8s goroutines %5d  fds %4d  rss %6d KiB  heap %6d KiB  messages %7d  failures %d", s.at, s.goroutines, s.fds, s.rssKiB, s.heapKiB, s.messages, s.failures)
	}
	close(stop)
	wg.Wait()

	if len(samples) < 3 {
		t.Fatalf("only %d samples: soak for longer", len(samples))
	}
	// The first third is the warm-up: every connection opened and closed a few times, buffer
	// pools and the runtime's heap grown to their working size. From then on nothing may grow
	// beyond what connections churning mid-open explain.
	base, last := samples[len(samples)/3], samples[len(samples)-1]
	if grow := last.goroutines - base.goroutines; grow > conns/10 {
		t.Errorf("goroutines grew by %d (%d → %d)", grow, base.goroutines, last.goroutines)
	}
	if grow := last.fds - base.fds; grow > conns/10 {
		t.Errorf("open files grew by %d (%d → %d)", grow, base.fds, last.fds)
	}
	if last.heapKiB > base.heapKiB*6/5+2048 {
		t.Errorf("heap in use grew from %d KiB to %d KiB", base.heapKiB, last.heapKiB)
	}
	if last.rssKiB > base.rssKiB*5/4+4096 {
		t.Errorf("RSS grew from %d KiB to %d KiB", base.rssKiB, last.rssKiB)
	}
	if last.failures*1000 > last.messages {
		t.Errorf("%d of %d round trips failed", last.failures, last.messages)
	}
	fmt.Printf("soak: %s, %d WebSockets, %d round trips, %d failed; from %s to %s: goroutines %d → %d, fds %d → %d, heap %d → %d KiB, RSS %d → %d KiB\n",
		d, conns, last.messages, last.failures, base.at, last.at, base.goroutines, last.goroutines, base.fds, last.fds, base.heapKiB, last.heapKiB, base.rssKiB, last.rssKiB)
}

// rss is this process's resident set in KiB (VmRSS in /proc/self/status).
func rss() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.ParseUint(f[1], 10, 64)
			return n
		}
	}
	return 0
}
