// Package browser_test drives Debian's chromium, headless, through the hub's pages with
// chromedp, against agent/hubtest hubs on loopback. One Chromium serves every test; each test
// gets a browser context of its own (its own cookies, as a private window has).
//
// Without chromium the tests skip, saying how to install it; with JHGO_REQUIRE_CHROMIUM set
// (.ci/run sets it, and installs chromium) they fail instead. With JHGO_SCREENSHOTS set to a
// directory, the screenshot steps write PNGs there, at a laptop's 1366x768.
package browser_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/jupyterhub-go/jupyterhub-go/agent/hubtest"
)

// chromium is the one browser of this test binary, started by the first test that needs it.
var chromium struct {
	once   sync.Once
	ctx    context.Context
	cancel func()
	err    error
}

func TestMain(m *testing.M) {
	code := m.Run()
	if chromium.cancel != nil {
		chromium.cancel()
	}
	os.Exit(code)
}

// chromiumPath finds Debian's chromium (or another Chromium build on PATH).
func chromiumPath() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

func startChromium(path string) {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.WindowSize(1366, 768),
		chromedp.Flag("disable-dev-shm-usage", true), // a container's /dev/shm is small
		chromedp.Flag("lang", "en-US"),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // Chromium refuses to run as root with its sandbox
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelBrowser := chromedp.NewContext(alloc)
	chromium.ctx = ctx
	chromium.cancel = func() { cancelBrowser(); cancelAlloc() }
	// The first run starts the browser; later contexts open tabs in it. It must not have a
	// deadline of its own, which would end the browser with it.
	chromium.err = chromedp.Do(ctx)
}

// tab opens a page in a browser context of its own, with a laptop's viewport; every action on
// it must end within limit.
func tab(t *testing.T, limit time.Duration) context.Context {
	t.Helper()
	path := chromiumPath()
	if path == "" {
		if os.Getenv("JHGO_REQUIRE_CHROMIUM") != "" {
			t.Fatal("chromium is not installed but JHGO_REQUIRE_CHROMIUM is set: apt-get install chromium")
		}
		t.Skip("chromium is not installed (apt-get install chromium); the browser tests need it")
	}
	chromium.once.Do(func() { startChromium(path) })
	if chromium.err != nil {
		t.Fatalf("start %s: %v", path, chromium.err)
	}
	ctx, cancel := chromedp.NewContext(chromium.ctx, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	// The first run opens the tab and lives as long as it: the deadline goes on what follows.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1366, 768)); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	ctx, cancelTime := context.WithTimeout(ctx, limit)
	t.Cleanup(cancelTime)
	return ctx
}

// run runs browser actions, failing the test with what was being done and where the page was.
func run(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		fail(t, ctx, what, err)
	}
}

// get runs one browser action that returns a value.
func get[T any](t *testing.T, ctx context.Context, what string, a chromedp.Action[T]) T {
	t.Helper()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		fail(t, ctx, what, err)
	}
	return v
}

func fail(t *testing.T, ctx context.Context, what string, err error) {
	t.Helper()
	// The test's deadline may be what ended the action: look at the page with a little more.
	look, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(look, chromedp.Location())
	body, _ := chromedp.Run(look, chromedp.Text(chromedp.CSS("body")))
	t.Fatalf("%s: %v\nat %s:\n%s", what, err, loc, body)
}

// shot saves what the page shows as $JHGO_SCREENSHOTS/name.png, if that is set.
func shot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("JHGO_SCREENSHOTS")
	if dir == "" {
		return
	}
	png := get(t, ctx, "screenshot "+name, chromedp.CaptureScreenshot())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// login logs name in through the login form, as a person would, and waits for the home page.
func login(t *testing.T, ctx context.Context, h *hubtest.Hub, name, password string) {
	t.Helper()
	run(t, ctx, "log in as "+name,
		chromedp.Navigate(h.URL+"/hub/login"),
		chromedp.WaitVisible(chromedp.CSS(`input[name=username]`)),
		chromedp.SendKeys(chromedp.CSS(`input[name=username]`), name),
		chromedp.SendKeys(chromedp.CSS(`input[name=password]`), password),
		chromedp.Click(chromedp.CSS(`form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`span.who`)),
	)
}

// press clicks the element a CSS selector matches once it is there and enabled, from the page's
// own script: a click through DevTools' node ids can miss when the page has just replaced its
// document (after the admin page reloads itself, say).
func press(sel string) chromedp.Action[chromedp.Void] {
	js := fmt.Sprintf(`(() => { const e = document.querySelector(%q); if (!e || e.disabled) return false; e.click(); return true; })()`, sel)
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Poll[bool](js)(ctx, t)
		return err
	})
}

// text is the text of the first element a selector matches.
func text(t *testing.T, ctx context.Context, sel string) string {
	t.Helper()
	return strings.TrimSpace(get(t, ctx, "read "+sel, chromedp.Text(chromedp.CSS(sel))))
}

// userRow selects a user's rows on the admin page.
func userRow(name string) string { return fmt.Sprintf(`tbody.user[data-user=%q]`, name) }
