package browser_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/gpus"
	"github.com/chromedp/chromedp"

	"github.com/jupyterhub-go/jupyterhub-go/agent/hubtest"
	"github.com/jupyterhub-go/jupyterhub-go/agent/servers"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
	"github.com/jupyterhub-go/jupyterhub-go/gpu"
)

// scripted stands in for a slow and a broken spawn step (an NFS home, say): slow's spawn waits
// until it is cancelled, broken's fails with a reason a user can act on.
type scripted struct{}

func (scripted) Name() string { return "home" }

func (scripted) Start(ctx context.Context, job *servers.Job) error {
	switch job.User.Name {
	case "slow":
		job.Progress(30, "Mounting your home directory")
		<-ctx.Done()
		return context.Cause(ctx)
	case "broken":
		job.Progress(30, "Mounting your home directory")
		return errors.New("your home directory could not be mounted: the file server nfs.example.org did not answer within 30 s")
	}
	return nil
}

func (scripted) Stop(context.Context, store.Server) error { return nil }

// The pages a new user and a new admin meet (issue 15), each saved as a screenshot to look at,
// with what each must show checked here.
func TestScreenshotsOfThePagesPeopleMeet(t *testing.T) {
	nv := gpu.OpenNVML(gpu.NVMLOptions{Library: dgxa100.NewWithGPUs(gpus.A100_SXM4_40GB, gpus.A100_SXM4_40GB), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	t.Cleanup(func() { nv.Close() })
	h := hubtest.NewWith(t, hubtest.Options{Steps: []servers.Step{scripted{}}, GPUs: nv})
	for _, name := range []string{"alice", "slow", "broken", "root"} {
		h.User(name, name == "root")
		h.SetPassword(name, name+"-pw")
	}
	h.User("carol", true)
	h.User("bob", false)
	ctx := tab(t, 3*time.Minute)

	run(t, ctx, "open the login page", chromedp.Navigate(h.URL+"/hub/home"), chromedp.WaitVisible(chromedp.CSS(`input[name=username]`)))
	shot(t, ctx, "login")

	// alice: home with her server running, the token page with a new token, an error page.
	alice := h.Token("alice")
	if r := h.Do("POST", "/hub/api/users/alice/server", alice, `{"gpus": 1, "profile": "pytorch"}`); r.Status != 201 {
		t.Fatalf("alice's spawn = %d %s", r.Status, r.Body)
	}
	h.SetUsage("alice", 2200<<20, 2*time.Second)
	login(t, ctx, h, "alice", "alice-pw")
	if got := text(t, ctx, "main"); !strings.Contains(got, "Running for") || !strings.Contains(got, "Open my server") {
		t.Errorf("alice's home: %q", got)
	}
	shot(t, ctx, "home")
	run(t, ctx, "make a token",
		chromedp.Navigate(h.URL+"/hub/token"),
		chromedp.SendKeys(chromedp.CSS(`input[name=note]`), "nightly backup"),
		chromedp.Click(chromedp.CSS(`form.stack button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#new-token`)),
	)
	shot(t, ctx, "token")
	run(t, ctx, "open a page that does not exist", chromedp.Navigate(h.URL+"/hub/no-such-page"), chromedp.WaitVisible(chromedp.CSS(`main h1`)))
	if got := text(t, ctx, "header"); !strings.Contains(got, "alice") || !strings.Contains(got, "Log out") {
		t.Errorf("the error page's header: %q", got)
	}
	shot(t, ctx, "error")

	// slow: a spawn in progress, then cancelled.
	ctx = tab(t, time.Minute)
	login(t, ctx, h, "slow", "slow-pw")
	run(t, ctx, "start slow's server",
		chromedp.Click(chromedp.CSS(`main form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#cancel`)),
	)
	get(t, ctx, "wait for the step and the clock", chromedp.Poll[bool](`document.getElementById("log").textContent.includes("Mounting") && document.getElementById("elapsed").textContent !== ""`))
	if got := text(t, ctx, "#heading"); got != "Starting your server" {
		t.Errorf("the spawn page's heading: %q", got)
	}
	shot(t, ctx, "spawn-pending")
	run(t, ctx, "cancel", chromedp.Click(chromedp.CSS(`#cancel button`)), chromedp.WaitVisible(chromedp.CSS(`main form button[type=submit]`)))

	// broken: a failed spawn, and the home page that remembers it.
	ctx = tab(t, time.Minute)
	login(t, ctx, h, "broken", "broken-pw")
	run(t, ctx, "start broken's server",
		chromedp.Click(chromedp.CSS(`main form button[type=submit]`)),
		chromedp.WaitVisible(chromedp.CSS(`#failed`)),
	)
	if got := text(t, ctx, "#heading"); !strings.Contains(got, "failed") {
		t.Errorf("the failed spawn's heading: %q", got)
	}
	if got := text(t, ctx, "#reason"); !strings.Contains(got, "nfs.example.org did not answer") {
		t.Errorf("the failed spawn's reason: %q", got)
	}
	shot(t, ctx, "spawn-failed")
	run(t, ctx, "go home", chromedp.Click(chromedp.CSS(`#home`)), chromedp.WaitVisible(chromedp.CSS(`main .error`)))
	shot(t, ctx, "home-failed")

	// root: the admin page with all of them.
	ctx = tab(t, time.Minute)
	login(t, ctx, h, "root", "root-pw")
	run(t, ctx, "open the admin page", chromedp.Navigate(h.URL+"/hub/admin"), chromedp.WaitVisible(chromedp.CSS(userRow("alice"))))
	row := text(t, ctx, userRow("alice"))
	for _, want := range []string{"running", "pytorch", "2.1 GiB", "GPU 0"} {
		if !strings.Contains(row, want) {
			t.Errorf("alice's row on the admin page lacks %q: %q", want, row)
		}
	}
	if row := text(t, ctx, userRow("broken")); !strings.Contains(row, "failed") {
		t.Errorf("broken's row: %q", row)
	}
	if w := get(t, ctx, "measure the page", chromedp.Evaluate[int](`document.documentElement.scrollWidth`)); w > 1366 {
		t.Errorf("the admin page is %d px wide: it scrolls sideways on a 1366 px screen", w)
	}
	shot(t, ctx, "admin")
}
