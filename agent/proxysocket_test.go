package agent_test

import (
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent/config"
	"github.com/jupyterhub-go/jupyterhub-go/agent/hubtest"
)

// User code on the hub's host connects from loopback as nginx does, so only the unix socket,
// which only the proxy's group may open, makes X-Forwarded-* headers believable by default.
func TestForwardedHeadersAreBelievedOverTheProxySocketOnly(t *testing.T) {
	dir := socketDir(t)
	sock := filepath.Join(dir, "run", "proxy.sock")
	addr := freeAddr(t)
	th := hubtest.New(t, func(c *config.Config) {
		c.Hub.Listen = addr
		c.Hub.ProxySocket = sock
		c.Hub.ProxySocketGroup = "" // whichever nginx group exists here, or none
	})
	stop := serve(t, th)
	t.Cleanup(func() {
		stop()
		if _, err := os.Lstat(sock); err == nil {
			t.Error("the socket is left behind after a clean stop")
		}
	})

	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o660 {
		t.Errorf("socket mode %v, want 0660: only root and the proxy's group may connect", fi.Mode().Perm())
	}

	overSocket := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	secureCookie := func(c *http.Client, base string) bool {
		t.Helper()
		req, _ := http.NewRequest("GET", base+"/hub/login", nil)
		req.Header.Set("X-Forwarded-Proto", "https")
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET /hub/login = %d", resp.StatusCode)
		}
		for _, v := range resp.Header.Values("Set-Cookie") {
			if strings.Contains(v, "; Secure") {
				return true
			}
		}
		return false
	}
	if !secureCookie(overSocket, "http://nginx") {
		t.Error("X-Forwarded-Proto: https over the proxy socket did not make the login cookie Secure")
	}
	if secureCookie(http.DefaultClient, "http://"+addr) {
		t.Error("X-Forwarded-Proto: https from a loopback TCP client was believed")
	}
}

func TestAFileInThePlaceOfTheProxySocketIsNeverRemoved(t *testing.T) {
	dir := socketDir(t)
	sock := filepath.Join(dir, "proxy.sock")
	if err := os.WriteFile(sock, []byte("not a socket"), 0o644); err != nil {
		t.Fatal(err)
	}
	th := hubtest.New(t, func(c *config.Config) { c.Hub.Listen = freeAddr(t); c.Hub.ProxySocket = sock })
	err := th.Hub.Run(context.Background(), nil)
	if err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Fatalf("Run = %v, want a refusal naming the file", err)
	}
	if b, _ := os.ReadFile(sock); string(b) != "not a socket" {
		t.Error("the file was replaced")
	}
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestAProxySocketInUseIsNotTaken(t *testing.T) {
	dir := socketDir(t)
	sock := filepath.Join(dir, "proxy.sock")
	other, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	th := hubtest.New(t, func(c *config.Config) { c.Hub.Listen = freeAddr(t); c.Hub.ProxySocket = sock })
	if err := th.Hub.Run(context.Background(), nil); err == nil || !strings.Contains(err.Error(), "another process listens") {
		t.Fatalf("Run = %v, want a refusal: the socket belongs to a running hub", err)
	}
}

func TestAStaleProxySocketIsReplaced(t *testing.T) {
	dir := socketDir(t)
	sock := filepath.Join(dir, "proxy.sock")
	// What a killed hub leaves: the socket file, with nobody listening.
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	th := hubtest.New(t, func(c *config.Config) { c.Hub.Listen = freeAddr(t); c.Hub.ProxySocket = sock })
	stop := serve(t, th) // fails the test if the stale socket keeps the hub from starting
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Errorf("the hub does not answer on the replaced socket: %v", err)
	} else {
		c.Close()
	}
	stop()
}

// socketDir is a temporary directory short enough for a unix socket's path (t.TempDir's can
// exceed the 108 bytes a socket address holds).
func socketDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "jhgo")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// serve runs th's hub as the daemon does (Hub.Run: reconcile, then listen) until the returned
// stop is called, which reports an unclean end.
func serve(t *testing.T, th *hubtest.Hub) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	ready := make(chan struct{})
	go func() { done <- th.Hub.Run(ctx, func() { close(ready) }) }()
	select {
	case <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("hub did not start: %v", err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("hub did not start in 10 s")
	}
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("hub stopped with %v", err)
		}
	}
}
