package pages

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent/auth"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// adminPageSize is how many users one page of /hub/admin shows: enough to fill a laptop screen.
const adminPageSize = 20

// adminSorts are the orders the admin page offers; the store sorts, as the API's ?sort= does.
var adminSorts = []string{"name", "-name", "last_activity", "-last_activity", "id", "-id"}

// adminPage is /hub/admin: every user with their servers, searched, sorted and paged by the
// store through the query (q, sort, state, offset), as JupyterHub's admin page pages through
// /hub/api/users. What it changes (start, stop, add, rename, admin, remove) goes through the
// REST API from the page's script, with the page's XSRF token, so that the API's rules hold.
func (h *Pages) adminPage(w http.ResponseWriter, r *http.Request, c *auth.Caller) {
	if !c.User.Admin {
		h.render.Error(w, r, http.StatusForbidden, "Not allowed", "Only admins can open the admin page.")
		return
	}
	q := r.URL.Query()
	view := adminView{Filter: strings.TrimSpace(q.Get("q")), Sort: q.Get("sort"), State: q.Get("state")}
	if !slices.Contains(adminSorts, view.Sort) {
		view.Sort = "name"
	}
	switch view.State {
	case "", "active", "ready", "inactive":
	default:
		view.State = ""
	}
	if n, err := strconv.Atoi(q.Get("offset")); err == nil && n > 0 {
		view.Offset = n
	}
	users, total, err := h.store.ListUsers(r.Context(), store.UserQuery{
		Offset: view.Offset, Limit: adminPageSize, State: view.State, NameFilter: view.Filter, Sort: view.Sort,
	})
	if err != nil {
		h.render.Error(w, r, http.StatusInternalServerError, "Error", err.Error())
		return
	}
	ids := make([]int64, len(users))
	for i, u := range users {
		ids[i] = u.ID
	}
	// The page's servers in one statement, not one per row.
	servers, err := h.store.ServersOfUsers(r.Context(), ids, false)
	if err != nil {
		h.render.Error(w, r, http.StatusInternalServerError, "Error", err.Error())
		return
	}
	var rows []adminUser
	for _, u := range users {
		rows = append(rows, h.adminRow(r, u, servers[u.ID]))
	}
	data := map[string]any{"Users": rows, "Total": total, "View": view, "Self": c.User.Name}
	data["From"], data["To"] = min(view.Offset+1, total), view.Offset+len(rows)
	if view.Offset > 0 {
		data["Prev"] = view.with("offset", strconv.Itoa(max(0, view.Offset-adminPageSize)))
	}
	if view.Offset+len(rows) < total {
		data["Next"] = view.with("offset", strconv.Itoa(view.Offset+adminPageSize))
	}
	sorts := map[string]map[string]string{}
	for _, col := range []string{"name", "last_activity", "id"} {
		next, mark := col, ""
		switch view.Sort {
		case col:
			next, mark = "-"+col, "▲"
		case "-" + col:
			mark = "▼"
		}
		v := view
		v.Offset = 0
		sorts[col] = map[string]string{"URL": v.with("sort", next), "Mark": mark}
	}
	data["Sorts"] = sorts
	states := map[string]string{}
	for _, s := range []string{"", "active", "ready", "inactive"} {
		v := view
		v.Offset = 0
		states[s] = v.with("state", s)
	}
	data["States"] = states
	h.render.Render(w, r, http.StatusOK, "admin.html", data, c)
}

// adminView is what the query asks the admin page to show.
type adminView struct {
	Filter, Sort, State string
	Offset              int
}

// with is the page's URL with one parameter changed; defaults are left out.
func (v adminView) with(key, value string) string {
	q := url.Values{}
	set := func(k, val, def string) {
		if val != def {
			q.Set(k, val)
		}
	}
	set("q", v.Filter, "")
	set("sort", v.Sort, "name")
	set("state", v.State, "")
	set("offset", strconv.Itoa(v.Offset), "0")
	switch key {
	case "sort":
		set("sort", value, "name")
		if value == "name" {
			q.Del("sort")
		}
	case "state":
		q.Del("state")
		set("state", value, "")
	case "offset":
		q.Del("offset")
		set("offset", value, "0")
	}
	if len(q) == 0 {
		return "?"
	}
	return "?" + q.Encode()
}

type adminUser struct {
	Name    string
	Admin   bool
	Created string
	Active  string
	Servers []adminServer
}

type adminServer struct {
	Name, State, Failure, Profile string
	Age, LastActivity, URL        string
	Memory, CPU, CPUTitle         string
	GPUs                          []string
}

func (h *Pages) adminRow(r *http.Request, u store.User, svs []store.Server) adminUser {
	row := adminUser{Name: u.Name, Admin: u.Admin, Created: day(u.Created), Active: since(u.LastActivity)}
	if len(svs) == 0 {
		svs = []store.Server{{UserName: u.Name, State: store.Stopped}} // never started
	}
	for _, sv := range svs {
		s := adminServer{Name: sv.Name, State: sv.State, Profile: profileOf(sv.UserOptions), LastActivity: since(sv.LastActivity)}
		if sv.State != store.Stopped {
			s.Age = short(time.Since(sv.Started))
		}
		if sv.State == store.Running {
			s.URL = h.servers.FullURL(u.Name, sv.Name)
		}
		if msg, failed := h.servers.LastFailure(sv); failed {
			s.State = "failed"
			s.Failure, _, _ = strings.Cut(strings.TrimPrefix(msg, "Spawn failed: "), "\n")
		}
		if use, ok := h.servers.ServerUsage(r.Context(), sv); ok {
			s.Memory = bytesIEC(use.MemoryBytes)
			s.CPU = fmt.Sprintf("%.0f %%", use.CPUPercent)
			s.CPUTitle = fmt.Sprintf("%.1f s of CPU time; load since %s", use.CPU.Seconds(), use.CPUSince.Local().Format("15:04:05"))
		}
		if h.heldGPUs != nil && sv.ID != 0 {
			s.GPUs = h.heldGPUs(sv.ID)
		}
		row.Servers = append(row.Servers, s)
	}
	return row
}

// profileOf is the profile a server was started with (user_options.profile), if any.
func profileOf(opts json.RawMessage) string {
	var o struct {
		Profile any `json:"profile"`
	}
	if json.Unmarshal(opts, &o) != nil || o.Profile == nil {
		return ""
	}
	return fmt.Sprint(o.Profile)
}

// since is how long ago t was, briefly; "" for never.
func since(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return short(time.Since(t)) + " ago"
}

// short is a duration as a person reads it at a glance: "45 s", "12 min", "3 h 5 min", "2 d 4 h".
func short(d time.Duration) string {
	switch d = max(d, 0); {
	case d >= time.Minute && d < time.Hour && d%time.Minute != 0 && d < 10*time.Minute:
		return fmt.Sprintf("%d min %d s", int(d.Minutes()), int(d.Seconds())%60)
	case d < time.Minute:
		return fmt.Sprintf("%d s", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Minutes()))
	case d < 24*time.Hour:
		return fmt.Sprintf("%d h %d min", int(d.Hours()), int(d.Minutes())%60)
	}
	return fmt.Sprintf("%d d %d h", int(d.Hours())/24, int(d.Hours())%24)
}

// bytesIEC is a size in MiB or GiB, as systemctl status shows memory.
func bytesIEC(n uint64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%d KiB", n>>10)
}
