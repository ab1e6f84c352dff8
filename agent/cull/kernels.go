package cull

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent/servers"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// ServerKernels asks a single-user server on loopback what its kernels and terminals are doing
// (see the package doc for why). It holds one token per running server, made on first use.
type ServerKernels struct {
	store  *store.Store
	url    func(user, server string) string // the path the server serves under
	client *http.Client

	mu     sync.Mutex
	tokens map[int64]serverToken
}

type serverToken struct {
	started time.Time // the run of the server the token was made for
	secret  string
}

// NewServerKernels asks servers under the paths url gives (servers.Manager.URL).
func NewServerKernels(st *store.Store, url func(user, server string) string) *ServerKernels {
	return &ServerKernels{
		store: st, url: url, tokens: map[int64]serverToken{},
		client: &http.Client{
			Timeout:       10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// token is the server's culler token, made for this run of the server if there is none; the
// server's stop revokes it with the server's own (store.DeleteServerTokens).
func (k *ServerKernels) token(ctx context.Context, sv store.Server) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if t, ok := k.tokens[sv.ID]; ok && t.started.Equal(sv.Started) {
		return t.secret, nil
	}
	_, secret, err := k.store.CreateToken(ctx, store.Token{
		UserID: sv.UserID, Kind: store.KindServer, ServerID: sv.ID,
		Note:   "The hub's culler: reads the server's kernels",
		Scopes: []string{servers.AccessScope(sv.UserName, sv.Name)},
	})
	if err != nil {
		return "", fmt.Errorf("make the culler's token for %s's server: %w", sv.UserName, err)
	}
	k.tokens[sv.ID] = serverToken{started: sv.Started, secret: secret}
	return secret, nil
}

// kernelModel is the part of jupyter_server's kernel and terminal models the culler reads.
type kernelModel struct {
	ExecutionState string   `json:"execution_state"`
	LastActivity   jsonTime `json:"last_activity"`
}

// jsonTime is an ISO 8601 time as jupyter_server writes it; one it cannot read (or null) is
// zero, so that one odd kernel does not hide the others.
type jsonTime time.Time

func (t *jsonTime) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) != nil {
		return nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999"} {
		if v, err := time.Parse(layout, s); err == nil {
			*t = jsonTime(v)
			return nil
		}
	}
	return nil
}

// Work asks the server for its kernels (required) and terminals (a server may have them off).
func (k *ServerKernels) Work(ctx context.Context, sv store.Server) (Work, error) {
	secret, err := k.token(ctx, sv)
	if err != nil {
		return Work{}, err
	}
	kernels, err := k.get(ctx, sv, secret, "api/kernels")
	if err != nil {
		if errors.Is(err, errRefused) {
			// Perhaps the hub lost the token (a restore from backup): make a new one next time.
			k.mu.Lock()
			delete(k.tokens, sv.ID)
			k.mu.Unlock()
		}
		return Work{}, err
	}
	terminals, _ := k.get(ctx, sv, secret, "api/terminals")
	var w Work
	for _, m := range kernels {
		w.Busy = w.Busy || m.ExecutionState == "busy"
		if t := time.Time(m.LastActivity); t.After(w.Last) {
			w.Last = t
		}
	}
	for _, m := range terminals {
		if t := time.Time(m.LastActivity); t.After(w.Last) {
			w.Last = t
		}
	}
	return w, nil
}

var errRefused = errors.New("the server refused the culler's token")

func (k *ServerKernels) get(ctx context.Context, sv store.Server, secret, path string) ([]kernelModel, error) {
	// no_track_activity: jupyter_server does not count this request as its user's activity.
	u := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(sv.Port)) + k.url(sv.UserName, sv.Name) + path + "?no_track_activity=1"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "token "+secret)
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("ask %s's server for %s: %w", sv.UserName, path, err)
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return nil, fmt.Errorf("%s's server answered %s for %s: %w", sv.UserName, resp.Status, path, errRefused)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("%s's server answered %s for %s", sv.UserName, resp.Status, path)
	}
	var out []kernelModel
	if err := json.NewDecoder(http.MaxBytesReader(nil, resp.Body, 4<<20)).Decode(&out); err != nil {
		return nil, fmt.Errorf("read %s's %s: %w", sv.UserName, path, err)
	}
	return out, nil
}
