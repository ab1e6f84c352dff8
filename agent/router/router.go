// Package router is the built-in proxy for /user/<name>/...: it sends each request, WebSocket and
// server-sent event stream to the user's running server, or to the hub's page that explains why
// there is none.
package router

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/jupyterhub-go/jupyterhub-go/agent/auth"
	"github.com/jupyterhub-go/jupyterhub-go/agent/pages"
	"github.com/jupyterhub-go/jupyterhub-go/agent/servers"
	"github.com/jupyterhub-go/jupyterhub-go/agent/web"
)

// Router serves <base>/user/.
type Router struct {
	prefix  string
	servers *servers.Manager
	gate    *auth.Gate
	render  *pages.Renderer
	log     *slog.Logger
	proxy   *httputil.ReverseProxy
}

type routeCtxKey struct{}

// New makes the router; prefix is the hub's base URL without its trailing slash.
func New(prefix string, sv *servers.Manager, gate *auth.Gate, render *pages.Renderer, log *slog.Logger) *Router {
	rt := &Router{prefix: prefix, servers: sv, gate: gate, render: render, log: log}
	rt.proxy = rt.newProxy()
	return rt
}

// Register mounts the router at <base>/user/ and <base>/services/.
func (rt *Router) Register(mux *http.ServeMux) {
	mux.Handle(rt.prefix+"/user/", rt)
	mux.HandleFunc(rt.prefix+"/services/", rt.serveService)
}

// target is where one proxied request goes: a user server's loopback port, or a service's URL.
type target struct {
	scheme, host string
	serverID     int64 // the user server, for its health check; 0 for a service
}

// newProxy builds the reverse proxy. The path stays as it came (single-user servers serve under
// their prefix); cookies, Authorization, Origin and Sec-Fetch-* pass untouched because the
// server's XSRF checks rely on them; WebSocket upgrades and SSE streams go straight through.
func (rt *Router) newProxy() *httputil.ReverseProxy {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 64
	transport.ResponseHeaderTimeout = 0 // kernels and long polls may think for a while
	return &httputil.ReverseProxy{
		Transport:  transport,
		BufferPool: newBufferPool(),
		Rewrite: func(pr *httputil.ProxyRequest) {
			t := pr.In.Context().Value(routeCtxKey{}).(target)
			pr.Out.URL.Scheme = t.scheme
			pr.Out.URL.Host = t.host
			pr.Out.Host = pr.In.Host
			rt.forwardedHeaders(pr)
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			t := r.Context().Value(routeCtxKey{}).(target)
			if errors.Is(err, context.Canceled) {
				w.WriteHeader(web.StatusClientClosed) // the browser went away
				return
			}
			rt.log.Warn("proxy error", "path", r.URL.Path, "target", t.host, "err", err)
			if t.serverID == 0 {
				rt.render.Error(w, r, http.StatusBadGateway, "Service not responding", "The service did not answer the hub. Tell whoever looks after this hub.")
				return
			}
			go rt.servers.Check(t.serverID)
			rt.render.Error(w, r, http.StatusServiceUnavailable, "Server not responding",
				"Your server did not answer the hub. It may have crashed or be overloaded; if this persists, stop and start it from the home page.")
		},
	}
}

// forwardedHeaders sets X-Forwarded-*; behind a trusted proxy (nginx) its values are kept, from
// anyone else they are replaced, so a browser cannot claim to be on HTTPS or another address.
func (rt *Router) forwardedHeaders(pr *httputil.ProxyRequest) {
	in, out := pr.In, pr.Out
	client, _, _ := net.SplitHostPort(in.RemoteAddr)
	proto := "http"
	if in.TLS != nil {
		proto = "https"
	}
	if rt.gate.FromTrustedProxy(in) {
		if prior := in.Header.Get("X-Forwarded-For"); prior != "" {
			client = prior + ", " + client
		}
		if v := in.Header.Get("X-Forwarded-Proto"); v != "" {
			proto = v
		}
		if v := in.Header.Get("X-Forwarded-Host"); v != "" {
			out.Header.Set("X-Forwarded-Host", v)
		} else {
			out.Header.Set("X-Forwarded-Host", in.Host)
		}
	} else {
		out.Header.Set("X-Forwarded-Host", in.Host)
	}
	out.Header.Set("X-Forwarded-For", client)
	out.Header.Set("X-Forwarded-Proto", proto)
}

// ServeHTTP routes /user/<name>/... to the user's server, or explains why it cannot.
func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, rt.prefix+"/user/")
	name, _, _ := strings.Cut(rest, "/")
	if name == "" || web.ValidName(name) != nil {
		rt.render.Error(w, r, http.StatusNotFound, "Not found", "There is no such user.")
		return
	}
	if !strings.Contains(rest, "/") {
		// "/user/alice" → "/user/alice/": the server serves under the slash-terminated prefix.
		http.Redirect(w, r, web.WithQuery(r.URL.Path+"/", r.URL.RawQuery), http.StatusFound)
		return
	}
	route, ok := rt.servers.Route(name, "")
	// A running named server's prefix, /user/<name>/<server>/, is longer than the default
	// server's and wins, as the longest prefix does in JupyterHub's proxy.
	if server, _, slash := strings.Cut(strings.TrimPrefix(rest, name+"/"), "/"); server != "" {
		if named, running := rt.servers.Route(name, server); running {
			if !slash {
				http.Redirect(w, r, web.WithQuery(r.URL.Path+"/", r.URL.RawQuery), http.StatusFound)
				return
			}
			route, ok = named, true
		}
	}
	if ok {
		rt.servers.Touch(route.ServerID)
		if interactive(r) {
			rt.servers.Interacted(route.ServerID)
		}
		t := target{scheme: "http", host: net.JoinHostPort("127.0.0.1", strconv.Itoa(route.Port)), serverID: route.ServerID}
		rt.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), routeCtxKey{}, t)))
		return
	}
	// Nothing routed: the hub's /hub/user/ page explains (login, wait, or start), as in JupyterHub.
	http.Redirect(w, r, web.WithQuery(rt.servers.Hosts().HubOrigin()+rt.prefix+"/hub/user/"+rest, r.URL.RawQuery), http.StatusFound)
}

// bufferPool lends the proxy its copy buffers: without one, ReverseProxy allocates 32 KiB per
// response, and a third of the hub's CPU under many small requests went to collecting them.
type bufferPool struct{ p sync.Pool }

func newBufferPool() *bufferPool {
	return &bufferPool{p: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}
}

func (b *bufferPool) Get() []byte  { return *(b.p.Get().(*[]byte)) }
func (b *bufferPool) Put(v []byte) { b.p.Put(&v) }

// serveService routes /services/<name>/... to a [[service]]'s url, the path kept as it came, as
// configurable-http-proxy routes JupyterHub's services. Who may use the service is the service's
// business (HubOAuth asks the hub); the router only forwards.
func (rt *Router) serveService(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, rt.prefix+"/services/")
	name, _, _ := strings.Cut(rest, "/")
	sv := rt.gate.ServiceByName(name)
	if sv == nil || sv.URL == "" {
		rt.render.Error(w, r, http.StatusNotFound, "No such service", "This hub has no service "+strconv.Quote(name)+" that answers on the web.")
		return
	}
	if !strings.Contains(rest, "/") {
		http.Redirect(w, r, web.WithQuery(r.URL.Path+"/", r.URL.RawQuery), http.StatusFound)
		return
	}
	u, err := url.Parse(sv.URL)
	if err != nil || u.Host == "" {
		rt.render.Error(w, r, http.StatusBadGateway, "Service misconfigured", "The service's url is not an absolute URL.")
		return
	}
	t := target{scheme: u.Scheme, host: u.Host}
	rt.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), routeCtxKey{}, t)))
}

// Hosts sends requests for users' own hosts (hub.subdomain_host) to their servers, and keeps
// everything else, the hub's pages and API among it, on the hub's host: a user host serves only
// its own user's /user/<name>/, and the hub's host sends /user/<name>/ on to that user's host.
// With subdomains off it is next itself.
func (rt *Router) Hosts(next http.Handler) http.Handler {
	hosts := rt.servers.Hosts()
	if !hosts.On() {
		return next
	}
	userPrefix := rt.prefix + "/user/"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, userPrefix), "/")
		isUserPath := strings.HasPrefix(r.URL.Path, userPrefix) && name != "" && web.ValidName(name) == nil
		label, onUserHost := hosts.LabelOf(r.Host)
		switch {
		case !onUserHost && isUserPath:
			http.Redirect(w, r, hosts.Origin(name)+r.URL.RequestURI(), http.StatusFound)
		case !onUserHost:
			next.ServeHTTP(w, r)
		case isUserPath && servers.Label(name) == label:
			rt.ServeHTTP(w, r)
		default:
			// Not this user's server: the hub's pages and other users' servers are elsewhere.
			http.Redirect(w, r, hosts.HubOrigin()+r.URL.RequestURI(), http.StatusFound)
		}
	})
}
