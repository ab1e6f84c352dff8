package browser_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/jupyterhub-go/jupyterhub-go/agent/hubtest"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// listedUsers is who the admin page lists, in order.
var listedUsers = chromedp.Evaluate[[]string](`[...document.querySelectorAll("tbody.user")].map(b => b.dataset.user)`)

// The admin page as issue 12 asks: an admin logs in, finds a user by searching, stops their
// server from the page and sees it stopped.
func TestAnAdminFindsAUserByNameAndStopsTheirServer(t *testing.T) {
	h := hubtest.New(t)
	h.User("root", true)
	h.SetPassword("root", "root-pw")
	for i := range 30 { // more than a page, so alice is not on the first one
		h.User(fmt.Sprintf("a%02d", i), false)
	}
	h.Serve("alice", nil)
	h.Serve("bob", nil)
	h.SetUsage("alice", 700<<20, 4*time.Second)

	ctx := tab(t, 90*time.Second)
	login(t, ctx, h, "root", "root-pw")
	run(t, ctx, "open the admin page from the header",
		chromedp.Click(chromedp.CSS(`nav a[href$="/hub/admin"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#admin-search`)),
	)
	rows := get(t, ctx, "list the first page", listedUsers)
	if len(rows) != 20 || strings.Contains(strings.Join(rows, " "), "alice") {
		t.Fatalf("first page: %v; want 20 users without alice (a00 ... sort first)", rows)
	}
	run(t, ctx, "search for alice",
		chromedp.SendKeys(chromedp.CSS(`#admin-search`), "alic"),
		chromedp.Submit(chromedp.CSS(`#admin-search`)),
		chromedp.WaitVisible(chromedp.CSS(userRow("alice"))),
	)
	rows = get(t, ctx, "list what the search found", listedUsers)
	if strings.Join(rows, " ") != "alice" {
		t.Fatalf("searching alic shows %v", rows)
	}
	if got := text(t, ctx, userRow("alice")+` tr td.num`); got != "700 MiB" {
		t.Errorf("alice's memory reads %q, want 700 MiB from her cgroup", got)
	}
	shot(t, ctx, "admin-search")
	run(t, ctx, "stop alice's server and see it stopped",
		chromedp.Click(chromedp.CSS(userRow("alice")+` button[data-act=stop]`)),
		chromedp.WaitVisible(chromedp.CSS(userRow("alice")+` tr[data-state=stopped]`)),
		chromedp.WaitVisible(chromedp.CSS(userRow("alice")+` button[data-act=start]`)),
	)
	u, _ := h.Store().GetUser(context.Background(), "alice")
	if sv, err := h.Store().Server(context.Background(), u.ID, ""); err != nil || sv.State != store.Stopped {
		t.Errorf("alice's server in the store: %+v %v", sv.State, err)
	}
	if _, running := h.Servers().Route("bob", ""); !running {
		t.Error("bob's server stopped too")
	}
	if got := text(t, ctx, `#users thead`); !strings.Contains(got, "User") {
		t.Errorf("the table lost its header: %q", got)
	}
}

func TestANonAdminGets403OnTheAdminPage(t *testing.T) {
	h := hubtest.New(t)
	h.User("bob", false)
	h.SetPassword("bob", "bob-pw")
	ctx := tab(t, 60*time.Second)
	login(t, ctx, h, "bob", "bob-pw")
	resp, err := chromedp.Run(ctx, chromedp.NavigateResponse(h.URL+"/hub/admin"))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Status != 403 {
		t.Errorf("bob's /hub/admin = %d, want 403", resp.Status)
	}
	if got := text(t, ctx, "main h1"); !strings.Contains(got, "403") {
		t.Errorf("heading %q", got)
	}
	if got := text(t, ctx, "header nav"); !strings.Contains(got, "bob") || !strings.Contains(got, "Log out") || strings.Contains(got, "Admin") {
		t.Errorf("the 403 page's header reads %q: want bob's name and Log out, no Admin link", got)
	}
}
