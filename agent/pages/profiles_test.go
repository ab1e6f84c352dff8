package pages_test

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/jupyterhub-go/jupyterhub-go/agent/config"
	"github.com/jupyterhub-go/jupyterhub-go/agent/hubtest"
)

func withProfiles(c *config.Config) {
	c.Profiles = []config.Profile{
		{Name: "minimal", DisplayName: "Minimal", Description: "Python and Jupyter only", Enabled: true, MemoryMax: 1 << 30},
		{Name: "datascience", DisplayName: "Data science", Description: "pandas & friends", Enabled: true, Default: true, MemoryMax: 4 << 30},
		{Name: "pyspark", Enabled: false},
		{Name: "pytorch", Enabled: true, AllowedGroups: []string{"gpu-users"}},
	}
}

// The spawn page is an options form in KubeSpawner's profile_list shape: a radio button named
// "profile" per profile alice may use, the default checked; disabled and forbidden ones are not
// offered.
func TestTheSpawnPageOffersTheProfilesAsAForm(t *testing.T) {
	h := hubtest.New(t, withProfiles)
	h.User("alice", false)
	alice := browse{h, h.Login("alice")}
	page := alice.get("/hub/spawn")
	body := string(page.Body)
	if page.Status != http.StatusOK {
		t.Fatalf("/hub/spawn = %d", page.Status)
	}
	for _, want := range []string{
		`<input type="radio" name="profile" id="profile-item-minimal" value="minimal">`,
		`<input type="radio" name="profile" id="profile-item-datascience" value="datascience" checked>`,
		`<strong>Data science</strong>`, `pandas &amp; friends`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("spawn page lacks %s:\n%s", want, body)
		}
	}
	for _, not := range []string{"pyspark", "pytorch"} {
		if strings.Contains(body, not) {
			t.Errorf("spawn page offers %s", not)
		}
	}
	// Home's Start leads to the form rather than starting the default at once.
	if b := string(alice.get("/hub/home").Body); !strings.Contains(b, `<a class="button" href="/hub/spawn">Start my server</a>`) {
		t.Errorf("home's Start does not lead to the form:\n%s", b)
	}
	// A ?profile= link preselects an offered one.
	if b := string(alice.get("/hub/spawn?profile=minimal").Body); !strings.Contains(b, `value="minimal" checked`) {
		t.Errorf("?profile=minimal is not preselected:\n%s", b)
	}
}

// The form's choice is what the server starts with, stored in user_options and preselected on
// the form next time; a forbidden or disabled profile posted anyway is refused with the API's
// statuses.
func TestTheFormsChoiceIsStoredAndPreselectedNextTime(t *testing.T) {
	h := hubtest.New(t, withProfiles)
	h.User("alice", false)
	alice := browse{h, h.Login("alice")}
	xsrf := string(xsrfField.FindSubmatch(alice.get("/hub/spawn").Body)[1])
	for profile, status := range map[string]int{"pytorch": http.StatusForbidden, "pyspark": http.StatusBadRequest, "nope": http.StatusBadRequest} {
		if r := alice.post("/hub/spawn", url.Values{"_xsrf": {xsrf}, "profile": {profile}}); r.Status != status || !strings.Contains(string(r.Body), profile) {
			t.Errorf("posting %s = %d, want %d saying why:\n%s", profile, r.Status, status, r.Body)
		}
	}
	if r := alice.post("/hub/spawn", url.Values{"_xsrf": {xsrf}, "profile": {"minimal"}}); r.Status != http.StatusFound {
		t.Fatalf("start with minimal = %d %s", r.Status, r.Body)
	}
	ctx := context.Background()
	u, _ := h.Store().GetUser(ctx, "alice")
	sv, _ := h.Store().Server(ctx, u.ID, "")
	if !strings.Contains(string(sv.UserOptions), `"profile":"minimal"`) {
		t.Errorf("user_options = %s", sv.UserOptions)
	}
	done, err := h.Servers().Stop(sv)
	if err != nil {
		t.Fatal(err)
	}
	<-done
	if b := string(alice.get("/hub/spawn").Body); !strings.Contains(b, `value="minimal" checked`) {
		t.Errorf("the last choice is not preselected:\n%s", b)
	}
}

// Without profiles the spawn page has no options form.
func TestWithoutProfilesTheSpawnPageHasNoForm(t *testing.T) {
	h := hubtest.New(t)
	h.User("alice", false)
	alice := browse{h, h.Login("alice")}
	if b := string(alice.get("/hub/spawn").Body); strings.Contains(b, `name="profile"`) || !strings.Contains(b, ">Start<") {
		t.Errorf("spawn page without profiles:\n%s", b)
	}
}
