package router_test

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
	"github.com/jupyterhub-go/jupyterhub-go/agent/hubtest"
)

var (
	kib = bytes.Repeat([]byte("x"), 1024)
	mib = bytes.Repeat([]byte("y"), 1<<20)
)

func serve1KiB(w http.ResponseWriter, r *http.Request) { w.Write(kib) }

// serve1MiB answers as a file download does, with its length (make bench's backend does too).
func serve1MiB(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Length", "1048576")
	w.Write(mib)
}

func benchGET(b *testing.B, url string) { benchGETSize(b, url, 1024) }

func benchGETSize(b *testing.B, url string, size int64) {
	// The first request through the router waits for the route; it is not the steady state.
	if resp, err := http.Get(url); err != nil {
		b.Fatal(err)
	} else {
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	b.ResetTimer()
	b.SetBytes(size)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		cl := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
		for pb.Next() {
			resp, err := cl.Get(url)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				b.Fatalf("GET %s = %d", url, resp.StatusCode)
			}
		}
	})
}

// BenchmarkRouterRequest is a 1 KiB GET through the router to a user's server, beside
// BenchmarkDirectRequest, the same server without the hub: their ratio is the router's cost.
// (Allocations counted include the client's and the server's.)
func BenchmarkRouterRequest(b *testing.B) {
	th := hubtest.New(b)
	th.Serve("alice", http.HandlerFunc(serve1KiB))
	benchGET(b, th.URL+"/user/alice/api/status")
}

func BenchmarkDirectRequest(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(serve1KiB))
	defer srv.Close()
	benchGET(b, srv.URL+"/user/alice/api/status")
}

// BenchmarkRouter1MiB is a 1 MiB download through the router, beside BenchmarkDirect1MiB.
func BenchmarkRouter1MiB(b *testing.B) {
	th := hubtest.New(b)
	th.Serve("alice", http.HandlerFunc(serve1MiB))
	benchGETSize(b, th.URL+"/user/alice/files/big", 1<<20)
}

func BenchmarkDirect1MiB(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(serve1MiB))
	defer srv.Close()
	benchGETSize(b, srv.URL+"/user/alice/files/big", 1<<20)
}

func echo(w http.ResponseWriter, r *http.Request) {
	up := websocket.Upgrader{}
	c, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer c.Close()
	for {
		t, m, err := c.ReadMessage()
		if err != nil {
			return
		}
		if c.WriteMessage(t, m) != nil {
			return
		}
	}
}

func benchWS(b *testing.B, url string) {
	c, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	msg := make([]byte, 64)
	b.SetBytes(64)
	b.ReportAllocs()
	for b.Loop() {
		if err := c.WriteMessage(websocket.BinaryMessage, msg); err != nil {
			b.Fatal(err)
		}
		if _, _, err := c.ReadMessage(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRouterWebSocketFrame is one 64-byte round trip over an upgraded connection through
// the router (kernel channels), beside BenchmarkDirectWebSocketFrame without it.
func BenchmarkRouterWebSocketFrame(b *testing.B) {
	th := hubtest.New(b)
	th.Serve("alice", http.HandlerFunc(echo))
	benchWS(b, "ws"+strings.TrimPrefix(th.URL, "http")+"/user/alice/api/kernels/k1/channels")
}

func BenchmarkDirectWebSocketFrame(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(echo))
	defer srv.Close()
	benchWS(b, "ws"+strings.TrimPrefix(srv.URL, "http")+"/api/kernels/k1/channels")
}

// BenchmarkTCPRelayWebSocketFrame is the floor for the router's WebSocket path: the same round
// trip through a bare relay that copies between two plain TCP connections (spliced on Linux).
// The router's upgraded connection costs about as much: what is left is the relay hop itself.
func BenchmarkTCPRelayWebSocketFrame(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(echo))
	defer srv.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			d, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
			if err != nil {
				c.Close()
				return
			}
			go func() { io.Copy(d, c); d.Close() }()
			go func() { io.Copy(c, d); c.Close() }()
		}
	}()
	benchWS(b, "ws://"+ln.Addr().String()+"/api/kernels/k1/channels")
}
