package router_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/jupyterhub-go/jupyterhub-go/agent/config"
	"github.com/jupyterhub-go/jupyterhub-go/agent/hubtest"
)

func TestRouterKeepsPathAndHeaders(t *testing.T) {
	th := hubtest.New(t, func(c *config.Config) { c.Hub.TrustedProxies = []string{"127.0.0.1/32"} })
	var got *http.Request
	backend := (http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Clone(context.Background())
		w.Header().Set("Set-Cookie", "jupyterhub-user-alice=x; Path=/user/alice/")
		w.WriteHeader(http.StatusTeapot)
	}))
	th.Serve("alice", backend)

	r := th.Do("POST", "/user/alice/api/contents/a%2Fb.ipynb?x=1", "tok", `{}`,
		"Cookie", "jupyterhub-user-alice=abc; _xsrf=def", "Sec-Fetch-Mode", "cors", "Sec-Fetch-Site", "same-origin",
		"Origin", "https://hub.example", "X-Forwarded-Proto", "https", "X-Forwarded-For", "6.6.6.6",
		"X-Forwarded-Host", "hub.example")
	if r.Status != http.StatusTeapot || r.Header.Get("Set-Cookie") == "" {
		t.Fatalf("proxied status %d, Set-Cookie %q", r.Status, r.Header.Get("Set-Cookie"))
	}
	if got.URL.EscapedPath() != "/user/alice/api/contents/a%2Fb.ipynb" || got.URL.RawQuery != "x=1" {
		t.Errorf("path rewritten to %s?%s", got.URL.EscapedPath(), got.URL.RawQuery)
	}
	for h, want := range map[string]string{
		"Cookie": "jupyterhub-user-alice=abc; _xsrf=def", "Authorization": "token tok", "Sec-Fetch-Mode": "cors",
		"Sec-Fetch-Site": "same-origin", "Origin": "https://hub.example",
	} {
		if got.Header.Get(h) != want {
			t.Errorf("%s = %q, want %q passed untouched", h, got.Header.Get(h), want)
		}
	}
	// The test client connects from 127.0.0.1, made a trusted proxy here: its claims are kept.
	if got.Header.Get("X-Forwarded-Proto") != "https" || got.Header.Get("X-Forwarded-For") != "6.6.6.6, 127.0.0.1" ||
		got.Header.Get("X-Forwarded-Host") != "hub.example" {
		t.Errorf("X-Forwarded-Proto %q, X-Forwarded-For %q, X-Forwarded-Host %q",
			got.Header.Get("X-Forwarded-Proto"), got.Header.Get("X-Forwarded-For"), got.Header.Get("X-Forwarded-Host"))
	}
	if got.Host != strings.TrimPrefix(th.URL, "http://") {
		t.Errorf("Host = %q, want the hub's", got.Host)
	}
}

func TestRouterDistrustsForwardedHeadersFromStrangers(t *testing.T) {
	th := hubtest.New(t) // loopback is not a trusted proxy by default
	var got http.Header
	backend := (http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.Header.Clone() }))
	th.Serve("alice", backend)
	th.Do("GET", "/user/alice/tree", "", "", "X-Forwarded-Proto", "https", "X-Forwarded-For", "6.6.6.6", "X-Forwarded-Host", "evil.example")
	if got.Get("X-Forwarded-Proto") != "http" || got.Get("X-Forwarded-For") != "127.0.0.1" ||
		got.Get("X-Forwarded-Host") != strings.TrimPrefix(th.URL, "http://") {
		t.Errorf("an untrusted client set X-Forwarded-Proto %q, X-Forwarded-For %q, X-Forwarded-Host %q",
			got.Get("X-Forwarded-Proto"), got.Get("X-Forwarded-For"), got.Get("X-Forwarded-Host"))
	}
}

func TestRouterLeavesCompressionToTheClient(t *testing.T) {
	th := hubtest.New(t)
	var asked string
	th.Serve("alice", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { asked = r.Header.Get("Accept-Encoding") }))
	plain := &http.Client{Transport: &http.Transport{DisableCompression: true}} // sends no Accept-Encoding
	resp, err := plain.Get(th.URL + "/user/alice/files/notes.txt")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if asked != "" {
		t.Errorf("a client that asked for no encoding reached the server asking for %q", asked)
	}
}

func TestRouterStreamsServerSentEvents(t *testing.T) {
	th := hubtest.New(t)
	release := make(chan struct{})
	backend := (http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		<-release // the second event waits until the test has seen the first
		fmt.Fprint(w, "data: second\n\n")
	}))
	defer close(release)
	th.Serve("alice", backend)

	resp, err := http.Get(th.URL + "/user/alice/api/events")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	line := make(chan string, 1)
	go func() {
		l, _ := bufio.NewReader(resp.Body).ReadString('\n')
		line <- l
	}()
	select {
	case l := <-line:
		if l != "data: first\n" {
			t.Errorf("first line %q", l)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the first event was buffered until the stream ended")
	}
}

func TestRouterUpgradesWebSockets(t *testing.T) {
	th := hubtest.New(t)
	upgrader := websocket.Upgrader{}
	backend := (http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
			c.WriteMessage(mt, append([]byte("echo:"+r.URL.Path+":"), msg...))
		}
	}))
	th.Serve("alice", backend)

	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(th.URL, "http")+"/user/alice/api/kernels/k1/channels", nil)
	if err != nil {
		t.Fatalf("dial through the router: %v", err)
	}
	defer c.Close()
	c.WriteMessage(websocket.TextMessage, []byte("hi"))
	_, msg, err := c.ReadMessage()
	if err != nil || string(msg) != "echo:/user/alice/api/kernels/k1/channels:hi" {
		t.Errorf("echo = %q, %v", msg, err)
	}
}

func TestRouterWebSocketCarriesLargeMessagesAndClosesBothWays(t *testing.T) {
	th := hubtest.New(t)
	upgrader := websocket.Upgrader{}
	serverSaw := make(chan error, 1) // the error the server's read ended with
	closeNow := make(chan struct{})
	th.Serve("alice", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := upgrader.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		if r.URL.Query().Has("server-closes") {
			<-closeNow
			return
		}
		for {
			mt, msg, err := c.ReadMessage()
			if err != nil {
				serverSaw <- err
				return
			}
			c.WriteMessage(mt, msg)
		}
	}))
	url := "ws" + strings.TrimPrefix(th.URL, "http") + "/user/alice/api/kernels/k1/channels"

	c, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		t.Fatal(err)
	}
	big := make([]byte, 3<<20+17) // many times the router's copy buffer, and no multiple of it
	for i := range big {
		big[i] = byte(i * 7)
	}
	c.WriteMessage(websocket.BinaryMessage, big)
	if _, got, err := c.ReadMessage(); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("a %d-byte message came back as %d bytes (equal: %v), %v", len(big), len(got), bytes.Equal(got, big), err)
	}
	c.Close() // the tab goes away without a close frame
	select {
	case <-serverSaw:
	case <-time.After(5 * time.Second):
		t.Fatal("the client's connection closed, but the server's stayed open")
	}

	c, _, err = websocket.DefaultDialer.Dial(url+"?server-closes", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	close(closeNow)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := c.ReadMessage(); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the server closed its connection, but the client's read got %v", err)
	}
}

func TestStoppedServerSendsBrowserToTheHub(t *testing.T) {
	th := hubtest.New(t)
	th.User("alice", false)
	r := th.Do("GET", "/user/alice/tree?x=1", "", "")
	if r.Status != 302 || r.Header.Get("Location") != "/hub/user/alice/tree?x=1" {
		t.Errorf("stopped server: %d → %s", r.Status, r.Header.Get("Location"))
	}
	// Logged in, the hub explains with 424 and offers to start it.
	req, _ := http.NewRequest("GET", th.URL+"/hub/user/alice/tree", nil)
	req.AddCookie(th.Login("alice"))
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFailedDependency {
		t.Errorf("/hub/user/alice/tree for its stopped owner = %d, want 424", resp.StatusCode)
	}
	if r := th.Do("GET", "/user-redirect/tree", "", ""); r.Status != 302 || r.Header.Get("Location") != "/hub/user-redirect/tree" {
		t.Errorf("/user-redirect/ → %d %s", r.Status, r.Header.Get("Location"))
	}
}
