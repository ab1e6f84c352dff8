package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// result is one load run: throughput and latency percentiles of the requests that succeeded.
type result struct {
	RPS      float64
	P50, P99 time.Duration
	Bytes    int64
	Span     float64 // seconds from the warm-up's end to the last completion
	N        int
	Errors   int
}

// pct is the q-quantile of sorted durations.
func pct(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[min(len(d)-1, int(q*float64(len(d))))]
}

// hammer sends GETs to url from c keep-alive connections for dur after a short warm-up, and
// counts the requests that complete after the warm-up. A slow endpoint (a page of 1,000 users
// at c=32 can take longer than dur) runs on until 2*c requests have completed, up to a minute,
// and its rate is taken over the time it really ran. Each worker has a transport of its own so
// that c is the connection count.
func hammer(ctx context.Context, url, token string, c int, dur time.Duration) (result, error) {
	var mu sync.Mutex
	var all []time.Duration
	var bytes int64
	errs, n := 0, 0
	warm := time.Now().Add(300 * time.Millisecond)
	end, hardEnd := warm.Add(dur), warm.Add(time.Minute)
	var counted atomic.Int64
	var last atomic.Int64 // UnixNano of the last counted completion
	var wg sync.WaitGroup
	for range c {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr := &http.Transport{MaxIdleConnsPerHost: 1, DisableCompression: true}
			defer tr.CloseIdleConnections()
			// A redirect is not followed: a server that is not running answers with one to the
			// login page, which must count as an error, not as a fast request.
			cl := &http.Client{Transport: tr, Timeout: 60 * time.Second,
				CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
			var lat []time.Duration
			var b int64
			e := 0
			for ctx.Err() == nil {
				t0 := time.Now()
				if t0.After(end) && (counted.Load() >= int64(2*c) || t0.After(hardEnd)) {
					break
				}
				req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
				if token != "" {
					req.Header.Set("Authorization", "token "+token)
				}
				resp, err := cl.Do(req)
				if err != nil {
					e++
					time.Sleep(10 * time.Millisecond)
					continue
				}
				k, _ := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					e++
					continue
				}
				if done := time.Now(); done.After(warm) {
					lat = append(lat, done.Sub(t0))
					b += k
					counted.Add(1)
					for {
						l := last.Load()
						if done.UnixNano() <= l || last.CompareAndSwap(l, done.UnixNano()) {
							break
						}
					}
				}
			}
			mu.Lock()
			all = append(all, lat...)
			bytes += b
			errs += e
			mu.Unlock()
		}()
	}
	wg.Wait()
	n = len(all)
	slices.Sort(all)
	span := time.Unix(0, last.Load()).Sub(warm).Seconds()
	r := result{RPS: float64(n) / span, Span: span, P50: pct(all, 0.5), P99: pct(all, 0.99), Bytes: bytes, N: n, Errors: errs}
	if n == 0 {
		return r, fmt.Errorf("GET %s: no request succeeded (%d errors)", url, errs)
	}
	return r, nil
}

// wsRTT measures n round trips of a 64-byte message over one WebSocket, after a warm-up. With
// bulk > 0 it first pushes that many bytes through the same connection, to see whether a big
// transfer leaves the path slower.
func wsRTT(ctx context.Context, url string, n, bulk int) (p50, p99 time.Duration, err error) {
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	c, _, err := d.DialContext(ctx, url, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("dial %s: %w", url, err)
	}
	defer c.Close()
	rt := func(m []byte) error {
		if err := c.WriteMessage(websocket.BinaryMessage, m); err != nil {
			return err
		}
		_, _, err := c.ReadMessage()
		return err
	}
	if bulk > 0 {
		chunk := make([]byte, 64<<10)
		for sent := 0; sent < bulk; sent += len(chunk) {
			if err := rt(chunk); err != nil {
				return 0, 0, fmt.Errorf("bulk over %s: %w", url, err)
			}
		}
	}
	msg := make([]byte, 64)
	for range 100 {
		if err := rt(msg); err != nil {
			return 0, 0, fmt.Errorf("warm-up over %s: %w", url, err)
		}
	}
	lat := make([]time.Duration, 0, n)
	for range n {
		t0 := time.Now()
		if err := rt(msg); err != nil {
			return 0, 0, fmt.Errorf("round trip over %s: %w", url, err)
		}
		lat = append(lat, time.Since(t0))
	}
	slices.Sort(lat)
	return pct(lat, 0.5), pct(lat, 0.99), nil
}

// hammerOnce is one GET, for polling.
func hammerOnce(ctx context.Context, url string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return 0, err
	}
	cl := &http.Client{Timeout: 2 * time.Second}
	resp, err := cl.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, nil
}
