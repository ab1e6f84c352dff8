package pages_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/dgxa100"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock/gpus"

	"github.com/jupyterhub-go/jupyterhub-go/agent/hubtest"
	"github.com/jupyterhub-go/jupyterhub-go/gpu"
)

var adminRowUser = regexp.MustCompile(`<tbody class="user" data-user="([^"]+)">`)

func adminUsers(body []byte) []string {
	var out []string
	for _, m := range adminRowUser.FindAllSubmatch(body, -1) {
		out = append(out, string(m[1]))
	}
	return out
}

func TestTheAdminPageIsForAdminsOnly(t *testing.T) {
	h := hubtest.New(t)
	h.User("alice", false)
	r := browse{h, h.Login("alice")}.get("/hub/admin")
	body := string(r.Body)
	if r.Status != http.StatusForbidden {
		t.Fatalf("a non-admin's /hub/admin = %d", r.Status)
	}
	// The error page keeps the signed-in header.
	if !strings.Contains(body, `<span class="who">alice`) || !strings.Contains(body, "Log out") || strings.Contains(body, `href="/hub/admin"`) {
		t.Errorf("the 403 page lacks alice's header, or links to the admin page:\n%s", body)
	}
	if r := h.Do("GET", "/hub/admin", "", ""); r.Status != http.StatusFound || !strings.Contains(r.Header.Get("Location"), "/hub/login") {
		t.Errorf("an anonymous /hub/admin = %d to %q, want the login page", r.Status, r.Header.Get("Location"))
	}
}

func TestTheAdminPageSearchesSortsAndPagesInTheStore(t *testing.T) {
	h := hubtest.New(t)
	h.User("root", true)
	for i := range 25 {
		h.User(fmt.Sprintf("user%02d", i), false)
	}
	h.User("zoe", false)
	admin := browse{h, h.Login("root")}

	first := admin.get("/hub/admin")
	if first.Status != http.StatusOK {
		t.Fatalf("/hub/admin = %d", first.Status)
	}
	names := adminUsers(first.Body)
	if len(names) != 20 || names[0] != "root" || names[1] != "user00" || !strings.Contains(string(first.Body), "1–20 of 27 users") {
		t.Errorf("the first page by name: %v", names)
	}
	if !strings.Contains(string(first.Body), `href="?offset=20" rel="next"`) {
		t.Error("no link to the next page")
	}
	if names := adminUsers(admin.get("/hub/admin?offset=20").Body); len(names) != 7 || names[6] != "zoe" {
		t.Errorf("the second page: %v", names)
	}
	if names := adminUsers(admin.get("/hub/admin?sort=-name").Body); names[0] != "zoe" {
		t.Errorf("by name, descending: %v", names)
	}
	if names := adminUsers(admin.get("/hub/admin?q=R1").Body); strings.Join(names, " ") != "user10 user11 user12 user13 user14 user15 user16 user17 user18 user19" {
		t.Errorf("search for R1: %v", names)
	}
	if r := admin.get("/hub/admin?q=nobody"); !strings.Contains(string(r.Body), "No users match") {
		t.Error("an empty search says nothing")
	}
	// Nonsense in the query falls back to the defaults rather than failing.
	if r := admin.get("/hub/admin?sort=password&offset=-3&state=x"); r.Status != http.StatusOK || adminUsers(r.Body)[0] != "root" {
		t.Errorf("a bad query = %d", r.Status)
	}
}

func TestTheAdminPageShowsEachServersStateAndUsage(t *testing.T) {
	h := hubtest.New(t)
	h.User("root", true)
	h.User("bob", false)
	h.Serve("alice", nil)
	h.SetUsage("alice", 1536<<20, 3*time.Second)
	admin := browse{h, h.Login("root")}

	r := admin.get("/hub/admin?state=ready")
	body := string(r.Body)
	if names := adminUsers(r.Body); len(names) != 1 || names[0] != "alice" {
		t.Fatalf("running servers only: %v", names)
	}
	for _, want := range []string{`data-state="running"`, "1.5 GiB", `data-act="stop"`, `href="/user/alice/"`, ` %</td>`} {
		if !strings.Contains(body, want) {
			t.Errorf("alice's row lacks %q:\n%s", want, body)
		}
	}
	r = admin.get("/hub/admin?q=bob")
	if !strings.Contains(string(r.Body), `data-state="stopped"`) || !strings.Contains(string(r.Body), `data-act="start"`) {
		t.Errorf("bob, never started, shows no stopped server to start:\n%s", r.Body)
	}
	if home := admin.get("/hub/home"); !strings.Contains(string(home.Body), `href="/hub/admin">Admin</a>`) {
		t.Error("an admin's header has no link to the admin page")
	}
}

func TestTheAdminPageNamesTheGPUsAServerHolds(t *testing.T) {
	lib := dgxa100.NewWithGPUs(gpus.A100_SXM4_40GB, gpus.A100_SXM4_40GB)
	nv := gpu.OpenNVML(gpu.NVMLOptions{Library: lib, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	t.Cleanup(func() { nv.Close() })
	h := hubtest.NewWith(t, hubtest.Options{GPUs: nv})
	h.User("root", true)
	alice := h.User("alice", false)
	if r := h.Do("POST", "/hub/api/users/alice/server", alice, `{"gpus": 1, "profile": "pytorch"}`); r.Status != http.StatusCreated {
		t.Fatalf("alice's spawn = %d %s", r.Status, r.Body)
	}
	body := string(browse{h, h.Login("root")}.get("/hub/admin?q=alice").Body)
	for _, want := range []string{"GPU 0 (", "A100", "<td>pytorch</td>"} {
		if !strings.Contains(body, want) {
			t.Errorf("alice's row lacks %q:\n%s", want, body)
		}
	}
}
