package servers

import (
	"context"
	"encoding/json"
	"net/url"
	"strconv"

	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// Credentials is the first spawn step, and the hub's own: it makes the server's API token,
// registers its OAuth client (the token is also the client secret, as in JupyterHub), and puts
// both into the JUPYTERHUB_* environment a stock jupyterhub-singleuser reads.
type Credentials struct {
	Store *store.Store
	Hub   HubURLs
}

// HubURLs is where a single-user server finds the hub.
type HubURLs struct {
	Prefix     string // base URL without its trailing slash
	BaseURL    string // base URL with its trailing slash (JUPYTERHUB_BASE_URL)
	APIURL     string // the hub's API as the server reaches it, e.g. http://127.0.0.1:8000/hub/api
	PublicURL  string // hub.public_url, "" if not set
	DefaultURL string // spawner.default_url, "" for the server's own default
	Hosts      UserHosts
}

// ClientID is the OAuth client id of a server, as JupyterHub names it.
func ClientID(user, server string) string {
	id := "jupyterhub-user-" + url.PathEscape(user)
	if server != "" {
		id += "-" + url.PathEscape(server)
	}
	return id
}

// AccessScope is the scope that lets a browser into a server.
func AccessScope(user, server string) string { return "access:servers!server=" + user + "/" + server }

func (Credentials) Name() string { return "credentials" }

func (c Credentials) Start(ctx context.Context, job *Job) error {
	sv := job.Server
	if err := c.Stop(ctx, sv); err != nil { // leftovers of an earlier run
		return err
	}
	prefix := URL(c.Hub.Prefix, sv.UserName, sv.Name)
	// With servers on hosts of their own, the server's OAuth callback is on its host: the URL
	// must be absolute, and JUPYTERHUB_HOST tells the server where it is (as JupyterHub does).
	origin := c.Hub.Hosts.Origin(sv.UserName)
	_, secret, err := c.Store.CreateToken(ctx, store.Token{
		UserID: sv.UserID, Kind: store.KindServer, ServerID: sv.ID, Note: "Server at " + prefix,
		Scopes: []string{"users:activity!user", AccessScope(sv.UserName, sv.Name)},
	})
	if err != nil {
		return err
	}
	err = c.Store.SaveClient(ctx, store.OAuthClient{
		ID: ClientID(sv.UserName, sv.Name), RedirectURI: origin + prefix + "oauth_callback", Description: "Server at " + origin + prefix,
		AllowedScopes: []string{AccessScope(sv.UserName, sv.Name)}, ServerID: sv.ID,
	}, secret)
	if err != nil {
		return err
	}
	access, _ := json.Marshal([]string{AccessScope(sv.UserName, sv.Name), "access:servers!user=" + sv.UserName})
	allowed, _ := json.Marshal([]string{AccessScope(sv.UserName, sv.Name)})
	for k, v := range map[string]string{
		"JUPYTERHUB_API_TOKEN":                   secret,
		"JPY_API_TOKEN":                          secret,
		"JUPYTERHUB_CLIENT_ID":                   ClientID(sv.UserName, sv.Name),
		"JUPYTERHUB_HOST":                        origin,
		"JUPYTERHUB_OAUTH_CALLBACK_URL":          origin + prefix + "oauth_callback",
		"JUPYTERHUB_OAUTH_ACCESS_SCOPES":         string(access),
		"JUPYTERHUB_OAUTH_SCOPES":                string(access),
		"JUPYTERHUB_OAUTH_CLIENT_ALLOWED_SCOPES": string(allowed),
		"JUPYTERHUB_USER":                        sv.UserName,
		"JUPYTERHUB_SERVER_NAME":                 sv.Name,
		"JUPYTERHUB_API_URL":                     c.Hub.APIURL,
		"JUPYTERHUB_ACTIVITY_URL":                c.Hub.APIURL + "/users/" + url.PathEscape(sv.UserName) + "/activity",
		"JUPYTERHUB_BASE_URL":                    c.Hub.BaseURL,
		"JUPYTERHUB_SERVICE_PREFIX":              prefix,
		"JUPYTERHUB_SERVICE_URL":                 "http://127.0.0.1:" + strconv.Itoa(sv.Port) + prefix,
		"JUPYTERHUB_PUBLIC_URL":                  publicURL(origin, prefix),
		"JUPYTERHUB_PUBLIC_HUB_URL":              c.Hub.PublicURL,
		"JUPYTERHUB_COOKIE_HOST_PREFIX_ENABLED":  "0",
	} {
		job.Env[k] = v
	}
	if c.Hub.DefaultURL != "" {
		job.Env["JUPYTERHUB_DEFAULT_URL"] = c.Hub.DefaultURL
	}
	job.Progress(10, "Preparing your server")
	return nil
}

func (c Credentials) Stop(ctx context.Context, sv store.Server) error {
	id := ClientID(sv.UserName, sv.Name)
	if err := c.Store.DeleteServerTokens(ctx, sv.ID, id); err != nil {
		return err
	}
	return c.Store.DeleteClient(ctx, id)
}

// publicURL is JUPYTERHUB_PUBLIC_URL: the server's full URL once it has a host of its own.
func publicURL(origin, prefix string) string {
	if origin == "" {
		return ""
	}
	return origin + prefix
}
