package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/user"
	"strconv"
	"strings"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
	"github.com/jupyterhub-go/jupyterhub-go/spawner"
)

// spawnJob is what the steps of one spawn share.
type spawnJob struct {
	user     store.User
	server   store.Server
	progress *spawnProgress
	token    string            // the server's API token, set by the credentials step
	env      map[string]string // extra environment steps contribute (GPUs, Vault, ...)
}

// spawnStep is one stage of starting a server. start runs in order; stop runs in reverse, when a
// later step fails and when the server stops, and must work from the stored record alone because
// the hub may have restarted in between. stop must be idempotent.
type spawnStep interface {
	name() string
	start(ctx context.Context, job *spawnJob) error
	stop(ctx context.Context, sv store.Server) error
}

// steps is the spawn pipeline. Home mounts, GPUs and Vault tokens slot in before the unit.
func (h *Hub) steps() []spawnStep {
	return []spawnStep{credentialsStep{h}, unitStep{h}}
}

// startServer marks a server as spawning and runs the pipeline in the background. If it is
// already spawning, the running spawn's progress is returned.
func (h *Hub) startServer(u store.User, name string, opts json.RawMessage) (*spawnProgress, error) {
	ctx := h.life
	h.mu.Lock()
	defer h.mu.Unlock()
	sv, err := h.store.Server(ctx, u.ID, name)
	if err != nil {
		return nil, err
	}
	switch sv.State {
	case store.Running:
		return nil, errConflict("%s's server is already running", u.Name)
	case store.Spawning:
		if p := h.spawns[sv.ID]; p != nil {
			return p, nil
		}
		return nil, errConflict("%s's server is starting", u.Name)
	case store.Stopping:
		return nil, errConflict("%s's server is stopping; start it again once it has stopped", u.Name)
	}
	port, err := h.pickPort(ctx)
	if err != nil {
		return nil, err
	}
	sv.State, sv.Port, sv.Started, sv.UserOptions = store.Spawning, port, time.Time{}, opts
	sv.Unit = spawner.UnitName(h.cfg.Spawner.UnitPrefix, u.Name, name)
	if err := h.store.SaveServer(ctx, sv); err != nil {
		return nil, err
	}
	prog := newSpawnProgress()
	spawnCtx, cancel := context.WithTimeout(ctx, h.cfg.Spawner.StartTimeout.D())
	prog.cancel = cancel
	h.spawns[sv.ID] = prog
	h.log.Info("spawn requested", "user", u.Name, "server", name, "unit", sv.Unit, "port", port)
	go h.spawn(spawnCtx, cancel, u, sv, prog)
	return prog, nil
}

func (h *Hub) spawn(ctx context.Context, cancel func(), u store.User, sv store.Server, prog *spawnProgress) {
	defer cancel()
	start := time.Now()
	prog.step(0, "Server requested")
	job := &spawnJob{user: u, server: sv, progress: prog, env: map[string]string{}}
	steps := h.steps()
	for i, step := range steps {
		err := step.start(ctx, job)
		if err == nil {
			continue
		}
		reason := err.Error()
		switch {
		case errors.Is(ctx.Err(), context.Canceled):
			reason = "Spawn cancelled"
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			reason = fmt.Sprintf("%v (spawner.start_timeout is %s)", err, h.cfg.Spawner.StartTimeout.D())
		}
		time.Sleep(300 * time.Millisecond) // let journald catch the unit's last words
		journal, _ := h.units.Journal(context.WithoutCancel(ctx), sv.Unit, 20)
		h.log.Warn("spawn failed", "user", u.Name, "server", sv.Name, "step", step.name(), "err", reason, "journal", strings.Join(journal, "\n"))
		undo := context.WithoutCancel(ctx)
		for j := i; j >= 0; j-- {
			if err := steps[j].stop(undo, sv); err != nil {
				h.log.Warn("undo spawn step", "user", u.Name, "step", steps[j].name(), "err", err)
			}
		}
		h.mu.Lock()
		if h.stops[sv.ID] == nil { // a stop in progress records the outcome itself
			sv.State = store.Stopped
			if err := h.store.SaveServer(undo, sv); err != nil {
				h.log.Error("record failed spawn", "user", u.Name, "err", err)
			}
		}
		h.mu.Unlock()
		prog.emit(failedEvent(reason, journal))
		return
	}
	h.mu.Lock()
	sv.State, sv.Started = store.Running, time.Now()
	err := h.store.SaveServer(context.WithoutCancel(ctx), sv)
	if err == nil {
		h.routes[routeKey(u.Name, sv.Name)] = route{serverID: sv.ID, port: sv.Port}
	}
	h.mu.Unlock()
	if err != nil {
		prog.emit(failedEvent(err.Error(), nil))
		return
	}
	h.activity.touch(sv.ID)
	h.log.Info("server ready", "user", u.Name, "server", sv.Name, "unit", sv.Unit, "port", sv.Port, "seconds", time.Since(start).Seconds())
	prog.emit(h.readyEvent(sv))
}

func (h *Hub) readyEvent(sv store.Server) progressEvent {
	u := h.serverURL(sv.UserName, sv.Name)
	return progressEvent{
		Progress: 100, Ready: true, URL: u,
		Message:     "Server ready at " + u,
		HTMLMessage: fmt.Sprintf(`Server ready at <a href="%s">%s</a>`, html.EscapeString(u), html.EscapeString(u)),
	}
}

func failedEvent(reason string, journal []string) progressEvent {
	ev := progressEvent{Progress: 100, Failed: true, Message: "Spawn failed: " + reason}
	ev.HTMLMessage = "Spawn failed: " + html.EscapeString(reason)
	if len(journal) > 0 {
		ev.Message += "\nLast lines of the server's log:\n" + strings.Join(journal, "\n")
		ev.HTMLMessage += "<pre>" + html.EscapeString(strings.Join(journal, "\n")) + "</pre>"
	}
	return ev
}

// stopServer marks a server as stopping and tears it down in the background; the channel closes
// when it has stopped. A spawn in progress is cancelled first.
func (h *Hub) stopServer(sv store.Server) (<-chan struct{}, error) {
	ctx := h.life
	h.mu.Lock()
	defer h.mu.Unlock()
	if ch := h.stops[sv.ID]; ch != nil {
		return ch, nil
	}
	cur, err := h.store.Server(ctx, sv.UserID, sv.Name)
	if err != nil {
		return nil, err
	}
	done := make(chan struct{})
	if cur.State == store.Stopped {
		close(done)
		return done, nil
	}
	cur.State = store.Stopping
	if err := h.store.SaveServer(ctx, cur); err != nil {
		return nil, err
	}
	delete(h.routes, routeKey(cur.UserName, cur.Name))
	h.stops[cur.ID] = done
	prog := h.spawns[cur.ID]
	h.log.Info("stop requested", "user", cur.UserName, "server", cur.Name, "unit", cur.Unit)
	go func() {
		defer close(done)
		if prog != nil {
			prog.cancel()
			<-prog.finished()
		}
		stopCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), h.cfg.Spawner.StopTimeout.D())
		defer cancel()
		err := h.teardown(stopCtx, cur)
		h.mu.Lock()
		defer h.mu.Unlock()
		delete(h.stops, cur.ID)
		delete(h.spawns, cur.ID)
		if err != nil {
			h.log.Error("stop server", "user", cur.UserName, "server", cur.Name, "err", err)
			// Leave it marked running so nobody starts a second copy; the next reconcile retries.
			cur.State = store.Running
			h.store.SaveServer(stopCtx, cur)
			return
		}
		cur.State = store.Stopped
		if err := h.store.SaveServer(stopCtx, cur); err != nil {
			h.log.Error("record stopped server", "user", cur.UserName, "err", err)
			return
		}
		h.log.Info("server stopped", "user", cur.UserName, "server", cur.Name)
	}()
	return done, nil
}

// teardown runs every step's stop in reverse order; the first failure ends it, so a unit that
// would not stop keeps its credentials.
func (h *Hub) teardown(ctx context.Context, sv store.Server) error {
	steps := h.steps()
	for i := len(steps) - 1; i >= 0; i-- {
		if err := steps[i].stop(ctx, sv); err != nil {
			return fmt.Errorf("%s: %w", steps[i].name(), err)
		}
	}
	return nil
}

// pickPort finds a free loopback port in spawner.port_range that no other server holds.
func (h *Hub) pickPort(ctx context.Context) (int, error) {
	lo, hi, _ := h.cfg.Spawner.Ports()
	taken := map[int]bool{}
	servers, err := h.store.Servers(ctx, 0, true)
	if err != nil {
		return 0, err
	}
	for _, sv := range servers {
		taken[sv.Port] = true
	}
	for range 100 {
		p := lo + rand.IntN(hi-lo+1)
		if taken[p] {
			continue
		}
		ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			continue
		}
		ln.Close()
		return p, nil
	}
	return 0, fmt.Errorf("no free port in spawner.port_range %s", h.cfg.Spawner.PortRange)
}

// credentialsStep makes the server's API token and registers its OAuth client; the token is
// also the client secret, as in JupyterHub.
type credentialsStep struct{ h *Hub }

func (credentialsStep) name() string { return "credentials" }

func clientID(user, server string) string {
	id := "jupyterhub-user-" + url.PathEscape(user)
	if server != "" {
		id += "-" + url.PathEscape(server)
	}
	return id
}

func accessScope(user, server string) string { return "access:servers!server=" + user + "/" + server }

func (s credentialsStep) start(ctx context.Context, job *spawnJob) error {
	h, sv := s.h, job.server
	if err := s.stop(ctx, sv); err != nil { // leftovers of an earlier run
		return err
	}
	prefix := h.serverURL(sv.UserName, sv.Name)
	tok, secret, err := h.store.CreateToken(ctx, store.Token{
		UserID: sv.UserID, Kind: store.KindServer, ServerID: sv.ID, Note: "Server at " + prefix,
		Scopes: []string{"users:activity!user", accessScope(sv.UserName, sv.Name)},
	})
	if err != nil {
		return err
	}
	err = h.store.SaveClient(ctx, store.OAuthClient{
		ID: clientID(sv.UserName, sv.Name), RedirectURI: prefix + "oauth_callback", Description: "Server at " + prefix,
		AllowedScopes: []string{accessScope(sv.UserName, sv.Name)}, ServerID: sv.ID,
	}, secret)
	if err != nil {
		return err
	}
	job.token = secret
	job.progress.step(10, "Created the server's API token ("+tok.APIID()+") and OAuth client")
	return nil
}

func (s credentialsStep) stop(ctx context.Context, sv store.Server) error {
	id := clientID(sv.UserName, sv.Name)
	if err := s.h.store.DeleteServerTokens(ctx, sv.ID, id); err != nil {
		return err
	}
	return s.h.store.DeleteClient(ctx, id)
}

// unitStep starts the server as a transient systemd unit and waits until it answers HTTP.
type unitStep struct{ h *Hub }

func (unitStep) name() string { return "unit" }

func (s unitStep) start(ctx context.Context, job *spawnJob) error {
	h, sv := s.h, job.server
	spec, err := h.unitSpec(job)
	if err != nil {
		return err
	}
	job.progress.step(30, fmt.Sprintf("Starting unit %s as user %s", spec.Unit, spec.User))
	if err := h.units.Start(ctx, spec); err != nil {
		return err
	}
	job.progress.step(50, fmt.Sprintf("Unit %s is running; waiting for the server to answer on port %d", spec.Unit, sv.Port))
	return h.waitUp(ctx, sv)
}

func (s unitStep) stop(ctx context.Context, sv store.Server) error {
	if sv.Unit == "" {
		return nil
	}
	if err := s.h.units.Stop(ctx, sv.Unit); err != nil {
		return fmt.Errorf("stop unit %s: %w", sv.Unit, err)
	}
	return nil
}

// waitUp polls the server's URL until it answers anything but a 5xx, as JupyterHub does, and
// gives up early if the unit dies.
func (h *Hub) waitUp(ctx context.Context, sv store.Server) error {
	u := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(sv.Port)) + h.serverURL(sv.UserName, sv.Name)
	client := &http.Client{
		Timeout:       5 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	delay := 100 * time.Millisecond
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode < 500 {
				return nil
			}
		}
		st, err := h.units.State(ctx, sv.Unit)
		if err == nil && !st.Running() {
			return fmt.Errorf("unit %s exited before the server answered (state %s/%s, result %s)", sv.Unit, st.ActiveState, st.SubState, st.Result)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("server did not answer at %s: %w", u, ctx.Err())
		case <-time.After(delay):
		}
		delay = min(delay*2, time.Second)
	}
}

// unitSpec builds the unit the way JupyterHub's Spawner.get_env and systemdspawner would.
func (h *Hub) unitSpec(job *spawnJob) (spawner.Spec, error) {
	sc, sv := h.cfg.Spawner, job.server
	acct, err := user.Lookup(sv.UserName)
	if err != nil {
		return spawner.Spec{}, fmt.Errorf("user %s has no Unix account on this host: %w", sv.UserName, err)
	}
	prefix := h.serverURL(sv.UserName, sv.Name)
	api := h.cfg.APIURLFor()
	access, _ := json.Marshal([]string{accessScope(sv.UserName, sv.Name), "access:servers!user=" + sv.UserName})
	allowed, _ := json.Marshal([]string{accessScope(sv.UserName, sv.Name)})
	env := map[string]string{}
	for _, k := range sc.EnvKeep {
		if v, ok := os.LookupEnv(k); ok {
			env[k] = v
		}
	}
	for k, v := range map[string]string{
		"JUPYTERHUB_API_TOKEN":                   job.token,
		"JPY_API_TOKEN":                          job.token,
		"JUPYTERHUB_CLIENT_ID":                   clientID(sv.UserName, sv.Name),
		"JUPYTERHUB_HOST":                        "",
		"JUPYTERHUB_OAUTH_CALLBACK_URL":          prefix + "oauth_callback",
		"JUPYTERHUB_OAUTH_ACCESS_SCOPES":         string(access),
		"JUPYTERHUB_OAUTH_SCOPES":                string(access),
		"JUPYTERHUB_OAUTH_CLIENT_ALLOWED_SCOPES": string(allowed),
		"JUPYTERHUB_USER":                        sv.UserName,
		"JUPYTERHUB_SERVER_NAME":                 sv.Name,
		"JUPYTERHUB_API_URL":                     api,
		"JUPYTERHUB_ACTIVITY_URL":                api + "/users/" + url.PathEscape(sv.UserName) + "/activity",
		"JUPYTERHUB_BASE_URL":                    h.cfg.Hub.BaseURL,
		"JUPYTERHUB_SERVICE_PREFIX":              prefix,
		"JUPYTERHUB_SERVICE_URL":                 "http://127.0.0.1:" + strconv.Itoa(sv.Port) + prefix,
		"JUPYTERHUB_PUBLIC_URL":                  "",
		"JUPYTERHUB_PUBLIC_HUB_URL":              h.cfg.Hub.PublicURL,
		"JUPYTERHUB_COOKIE_HOST_PREFIX_ENABLED":  "0",
		"HOME":                                   acct.HomeDir,
		"USER":                                   sv.UserName,
		"SHELL":                                  "/bin/bash",
		"PATH":                                   sc.Path,
	} {
		env[k] = v
	}
	if sc.DefaultURL != "" {
		env["JUPYTERHUB_DEFAULT_URL"] = sc.DefaultURL
	}
	if sc.MemoryMax > 0 {
		env["MEM_LIMIT"] = strconv.FormatUint(uint64(sc.MemoryMax), 10)
	}
	if sc.CPUQuota > 0 {
		env["CPU_LIMIT"] = strconv.FormatFloat(float64(sc.CPUQuota)/100, 'f', -1, 64)
	}
	for k, v := range job.env {
		env[k] = v
	}
	for k, v := range sc.Env {
		env[k] = v
	}
	wd := acct.HomeDir
	if sc.WorkingDir != "" {
		wd = strings.ReplaceAll(sc.WorkingDir, "{USERNAME}", sv.UserName)
	}
	return spawner.Spec{
		Unit:             sv.Unit,
		Description:      fmt.Sprintf("Jupyter server for %s at %s", sv.UserName, prefix),
		User:             sv.UserName,
		WorkingDirectory: wd,
		Command:          append(append([]string{}, sc.Cmd...), sc.Args...),
		Env:              env,
		MemoryMax:        uint64(sc.MemoryMax),
		CPUQuota:         float64(sc.CPUQuota),
		TasksMax:         sc.TasksMax,
		Slice:            sc.Slice,
		Sandbox: spawner.Sandbox{
			PrivateTmp: sc.PrivateTmp, NoNewPrivileges: sc.NoNewPrivileges, ProtectSystem: sc.ProtectSystem,
		},
	}, nil
}
