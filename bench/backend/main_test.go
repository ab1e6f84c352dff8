package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

func TestWhereTakesTheServiceURLAndIgnoresSpawnerArguments(t *testing.T) {
	l, p, err := where([]string{"--port=5555", "--debug"}, "http://127.0.0.1:41000/user/alice/")
	if err != nil || l != "127.0.0.1:41000" || p != "/user/alice/" {
		t.Errorf("where = %q %q %v", l, p, err)
	}
	l, p, err = where([]string{"-listen", "127.0.0.1:1", "-prefix", "/x/"}, "http://127.0.0.1:41000/user/alice/")
	if err != nil || l != "127.0.0.1:1" || p != "/x/" {
		t.Errorf("flags over the URL: where = %q %q %v", l, p, err)
	}
	if _, _, err := where(nil, ""); err == nil {
		t.Error("no address at all was accepted")
	}
}

func TestBackendServesBodiesAndEchoes(t *testing.T) {
	srv := httptest.NewServer(handler("/user/alice/"))
	defer srv.Close()
	for path, n := range map[string]int{"/user/alice/": 1024, "/user/alice/1m": 1 << 20, "/user/alice/api/status": 1024} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || len(b) != n {
			t.Errorf("GET %s = %d, %d bytes, want 200 and %d", path, resp.StatusCode, len(b), n)
		}
	}
	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/user/alice/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.WriteMessage(websocket.TextMessage, []byte("ping"))
	if _, m, err := c.ReadMessage(); err != nil || string(m) != "ping" {
		t.Errorf("echo = %q, %v", m, err)
	}
}
