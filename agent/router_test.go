package agent

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// routeTo points alice's default server at a test HTTP server standing in for jupyterhub-singleuser.
func (th *testHub) routeTo(backend *httptest.Server) {
	u, _ := url.Parse(backend.URL)
	port, _ := strconv.Atoi(u.Port())
	th.mu.Lock()
	th.routes[routeKey("alice", "")] = route{serverID: 1, port: port}
	th.mu.Unlock()
}

func TestRouterKeepsPathAndHeaders(t *testing.T) {
	th := newTestHub(t)
	var got *http.Request
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Clone(context.Background())
		w.Header().Set("Set-Cookie", "jupyterhub-user-alice=x; Path=/user/alice/")
		w.WriteHeader(http.StatusTeapot)
	}))
	defer backend.Close()
	th.routeTo(backend)

	r := th.do("POST", "/user/alice/api/contents/a%2Fb.ipynb?x=1", "tok", `{}`,
		"Cookie", "jupyterhub-user-alice=abc; _xsrf=def", "Sec-Fetch-Mode", "cors", "Sec-Fetch-Site", "same-origin",
		"Origin", "https://hub.example", "X-Forwarded-Proto", "https", "X-Forwarded-For", "6.6.6.6")
	if r.status != http.StatusTeapot || r.header.Get("Set-Cookie") == "" {
		t.Fatalf("proxied status %d, Set-Cookie %q", r.status, r.header.Get("Set-Cookie"))
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
	// The test client connects from 127.0.0.1, a trusted proxy by default: its claims are kept.
	if got.Header.Get("X-Forwarded-Proto") != "https" || got.Header.Get("X-Forwarded-For") != "6.6.6.6, 127.0.0.1" {
		t.Errorf("X-Forwarded-Proto %q, X-Forwarded-For %q", got.Header.Get("X-Forwarded-Proto"), got.Header.Get("X-Forwarded-For"))
	}
	if got.Host != strings.TrimPrefix(th.srv.URL, "http://") {
		t.Errorf("Host = %q, want the hub's", got.Host)
	}
}

func TestRouterDistrustsForwardedHeadersFromStrangers(t *testing.T) {
	th := newTestHub(t)
	th.trusted = nil
	var got http.Header
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.Header.Clone() }))
	defer backend.Close()
	th.routeTo(backend)
	th.do("GET", "/user/alice/tree", "", "", "X-Forwarded-Proto", "https", "X-Forwarded-For", "6.6.6.6")
	if got.Get("X-Forwarded-Proto") != "http" || got.Get("X-Forwarded-For") != "127.0.0.1" {
		t.Errorf("an untrusted client set X-Forwarded-Proto %q, X-Forwarded-For %q", got.Get("X-Forwarded-Proto"), got.Get("X-Forwarded-For"))
	}
}

func TestRouterStreamsServerSentEvents(t *testing.T) {
	th := newTestHub(t)
	release := make(chan struct{})
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		<-release // the second event waits until the test has seen the first
		fmt.Fprint(w, "data: second\n\n")
	}))
	defer backend.Close()
	defer close(release)
	th.routeTo(backend)

	resp, err := http.Get(th.srv.URL + "/user/alice/api/events")
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
	th := newTestHub(t)
	upgrader := websocket.Upgrader{}
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
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
	defer backend.Close()
	th.routeTo(backend)

	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(th.srv.URL, "http")+"/user/alice/api/kernels/k1/channels", nil)
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

func TestStoppedServerSendsBrowserToTheHub(t *testing.T) {
	th := newTestHub(t)
	th.user("alice", false)
	r := th.do("GET", "/user/alice/tree?x=1", "", "")
	if r.status != 302 || r.header.Get("Location") != "/hub/user/alice/tree?x=1" {
		t.Errorf("stopped server: %d → %s", r.status, r.header.Get("Location"))
	}
	// Logged in, the hub explains with 424 and offers to start it.
	req, _ := http.NewRequest("GET", th.srv.URL+"/hub/user/alice/tree", nil)
	req.AddCookie(th.login("alice"))
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFailedDependency {
		t.Errorf("/hub/user/alice/tree for its stopped owner = %d, want 424", resp.StatusCode)
	}
	if r := th.do("GET", "/user-redirect/tree", "", ""); r.status != 302 || r.header.Get("Location") != "/hub/user-redirect/tree" {
		t.Errorf("/user-redirect/ → %d %s", r.status, r.header.Get("Location"))
	}
}

func TestCookiesAreSecureOnlyBehindATrustedTLSProxy(t *testing.T) {
	th := newTestHub(t)
	req := httptest.NewRequest("GET", "/hub/login", nil)
	req.RemoteAddr = "127.0.0.1:5555"
	req.Header.Set("X-Forwarded-Proto", "https")
	if !th.secureRequest(req) {
		t.Error("nginx on 127.0.0.1 said https, but cookies would not be Secure")
	}
	req.RemoteAddr = "192.0.2.7:5555"
	if th.secureRequest(req) {
		t.Error("a stranger's X-Forwarded-Proto made cookies Secure")
	}
}
