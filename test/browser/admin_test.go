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
		press(userRow("alice")+` button[data-act=stop]`),
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

// The rest of what the admin page changes, each through its button: add users, start a server,
// rename, grant and revoke admin, delete. The page's dialogs are answered by stand-ins for
// window.prompt and window.confirm.
func TestTheAdminPageAddsRenamesPromotesStartsAndDeletesUsers(t *testing.T) {
	h := hubtest.New(t)
	h.User("root", true)
	h.SetPassword("root", "root-pw")
	ctx := tab(t, 90*time.Second)
	login(t, ctx, h, "root", "root-pw")
	user := func(name string) (store.User, error) { return h.Store().GetUser(context.Background(), name) }

	run(t, ctx, "add dave and erin",
		chromedp.Navigate(h.URL+"/hub/admin"),
		chromedp.SendKeys(chromedp.CSS(`#add-users input[name=usernames]`), "dave erin"),
		press(`#add-users button`),
		chromedp.WaitVisible(chromedp.CSS(userRow("erin"))),
	)
	if _, err := user("dave"); err != nil {
		t.Fatalf("dave was not added: %v", err)
	}

	run(t, ctx, "start dave's server",
		press(userRow("dave")+` button[data-act=start]`),
		chromedp.WaitVisible(chromedp.CSS(userRow("dave")+` tr[data-state=running]`)),
	)
	if _, running := h.Servers().Route("dave", ""); !running {
		t.Error("dave's server does not run")
	}

	answer := func(js string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			_, err := chromedp.Evaluate[any](js)(ctx, tg)
			return err
		})
	}
	run(t, ctx, "rename erin to frank",
		answer(`window.prompt = () => "frank"`),
		press(userRow("erin")+` button[data-act=rename]`),
		chromedp.WaitVisible(chromedp.CSS(userRow("frank"))),
	)
	if _, err := user("erin"); err == nil {
		t.Error("erin still exists after the rename")
	}

	run(t, ctx, "make frank an admin",
		press(userRow("frank")+` button[data-act=grant-admin]`),
		chromedp.WaitVisible(chromedp.CSS(userRow("frank")+` button[data-act=revoke-admin]`)),
	)
	if u, _ := user("frank"); !u.Admin {
		t.Error("frank is not an admin")
	}
	run(t, ctx, "and not again",
		press(userRow("frank")+` button[data-act=revoke-admin]`),
		chromedp.WaitVisible(chromedp.CSS(userRow("frank")+` button[data-act=grant-admin]`)),
	)
	if u, _ := user("frank"); u.Admin {
		t.Error("frank is still an admin")
	}

	// A refused rename says why: dave's server runs.
	run(t, ctx, "try to rename dave while his server runs",
		answer(`window.prompt = () => "dave2"`),
		press(userRow("dave")+` button[data-act=rename]`),
		chromedp.WaitVisible(chromedp.CSS(`#admin-status.error`)),
	)
	if got := text(t, ctx, "#admin-status"); !strings.Contains(got, "stop dave's servers before renaming") {
		t.Errorf("the refusal reads %q", got)
	}

	run(t, ctx, "delete dave, servers and all",
		answer(`window.confirm = () => true`),
		press(userRow("dave")+` button[data-act=delete]`),
		chromedp.WaitNotPresent(chromedp.CSS(userRow("dave"))),
	)
	if _, err := user("dave"); err == nil {
		t.Error("dave still exists")
	}
	if _, running := h.Servers().Route("dave", ""); running {
		t.Error("deleted dave's server still runs")
	}
	shot(t, ctx, "admin-after")
}
