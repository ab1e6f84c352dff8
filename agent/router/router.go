// Package router is the built-in proxy for /user/<name>/...: it sends each request, WebSocket and
// server-sent event stream to the user's running server, or to the hub's page that explains why
// there is none.
package router

import (
	"context"
	"errors"
	"io"
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
	prefix     string
	userPrefix string // prefix + "/user/"
	servers    *servers.Manager
	gate       *auth.Gate
	render     *pages.Renderer
	log        *slog.Logger
	transport  *http.Transport
	buffers    *bufferPool
	calls      sync.Pool // of *call
	// frameBuffers are upgradedConn's copy buffers, of *[frameBufferSize]byte.
	frameBuffers sync.Pool
	hosts        loopbackHosts
}

// New makes the router; prefix is the hub's base URL without its trailing slash.
func New(prefix string, sv *servers.Manager, gate *auth.Gate, render *pages.Renderer, log *slog.Logger) *Router {
	rt := &Router{prefix: prefix, userPrefix: prefix + "/user/", servers: sv, gate: gate, render: render, log: log}
	rt.transport = newTransport()
	rt.buffers = newBufferPool()
	rt.calls.New = func() any { return rt.newCall() }
	rt.frameBuffers.New = func() any { return new([frameBufferSize]byte) }
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

// newTransport is the connection pool to user servers and services, shared by every call.
func newTransport() *http.Transport {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 64
	transport.ResponseHeaderTimeout = 0 // kernels and long polls may think for a while
	// A proxy passes the client's Accept-Encoding on as it came. Otherwise, for a client that
	// sent none, the transport would ask the server for gzip and the hub would inflate it again.
	transport.DisableCompression = true
	return transport
}

// call is one proxied request: its target and a reverse proxy whose hooks read that target. Calls
// are lent from a pool and the proxy's hooks are made once per call value, because handing the
// target to one shared proxy through the request's context cost a context, a request copy and a
// boxed target for every request. ReverseProxy keeps nothing of itself once ServeHTTP returns (an
// upgraded connection's copiers hold only the two connections), so the call is free again then.
type call struct {
	rt    *Router
	t     target
	proxy httputil.ReverseProxy
}

// newCall builds a call's reverse proxy. The path stays as it came (single-user servers serve
// under their prefix); cookies, Authorization, Origin and Sec-Fetch-* pass untouched because the
// server's XSRF checks rely on them; WebSocket upgrades and SSE streams go straight through.
func (rt *Router) newCall() *call {
	c := &call{rt: rt}
	c.proxy = httputil.ReverseProxy{
		Transport:      rt.transport,
		BufferPool:     rt.buffers,
		Rewrite:        c.rewrite,
		ModifyResponse: rt.upgraded,
		ErrorHandler:   c.fail,
	}
	return c
}

// upgraded wraps the server's end of a connection that switched protocols (a WebSocket), which
// ReverseProxy then copies to and from the client's; see upgradedConn.
func (rt *Router) upgraded(res *http.Response) error {
	if res.StatusCode != http.StatusSwitchingProtocols {
		return nil
	}
	if conn, ok := res.Body.(io.ReadWriteCloser); ok {
		res.Body = &upgradedConn{ReadWriteCloser: conn, buffers: &rt.frameBuffers}
	}
	return nil
}

func (c *call) rewrite(pr *httputil.ProxyRequest) {
	pr.Out.URL.Scheme = c.t.scheme
	pr.Out.URL.Host = c.t.host
	pr.Out.Host = pr.In.Host
	c.rt.forwardedHeaders(pr)
}

func (c *call) fail(w http.ResponseWriter, r *http.Request, err error) {
	rt, t := c.rt, c.t
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
}

// proxy sends r to t.
func (rt *Router) proxy(w http.ResponseWriter, r *http.Request, t target) {
	c := rt.calls.Get().(*call)
	c.t = t
	c.proxy.ServeHTTP(w, r)
	c.t = target{}
	rt.calls.Put(c)
}

// loopbackHosts remembers "127.0.0.1:<port>" for each port a user server has had, so that routing
// a request builds no string: ports come from the spawner's range, so the map stays small.
type loopbackHosts struct {
	mu sync.RWMutex
	m  map[int]string
}

func (h *loopbackHosts) of(port int) string {
	h.mu.RLock()
	host, ok := h.m[port]
	h.mu.RUnlock()
	if ok {
		return host
	}
	host = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	h.mu.Lock()
	if h.m == nil {
		h.m = map[int]string{}
	}
	h.m[port] = host
	h.mu.Unlock()
	return host
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
	host := in.Host
	if rt.gate.FromTrustedProxy(in) {
		if prior := in.Header.Get("X-Forwarded-For"); prior != "" {
			client = prior + ", " + client
		}
		if v := in.Header.Get("X-Forwarded-Proto"); v != "" {
			proto = v
		}
		if v := in.Header.Get("X-Forwarded-Host"); v != "" {
			host = v
		}
	}
	// One backing array for the three values, set under their canonical keys: Header.Set would
	// make a slice for each.
	v := []string{host, client, proto}
	out.Header["X-Forwarded-Host"] = v[0:1:1]
	out.Header["X-Forwarded-For"] = v[1:2:2]
	out.Header["X-Forwarded-Proto"] = v[2:3:3]
}

// ServeHTTP routes /user/<name>/... to the user's server, or explains why it cannot.
func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, rt.userPrefix)
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
	if server, _, slash := strings.Cut(rest[len(name)+1:], "/"); server != "" {
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
		rt.proxy(w, r, target{scheme: "http", host: rt.hosts.of(route.Port), serverID: route.ServerID})
		return
	}
	// Nothing routed: the hub's /hub/user/ page explains (login, wait, or start), as in JupyterHub.
	http.Redirect(w, r, web.WithQuery(rt.servers.Hosts().HubOrigin()+rt.prefix+"/hub/user/"+rest, r.URL.RawQuery), http.StatusFound)
}

// bufferPool lends the proxy its copy buffers: without one, ReverseProxy allocates 32 KiB per
// response, and a third of the hub's CPU under many small requests went to collecting them. It
// pools array pointers, which a returned slice converts back to without an allocation.
type bufferPool struct{ p sync.Pool }

const copyBufferSize = 32 << 10

func newBufferPool() *bufferPool {
	return &bufferPool{p: sync.Pool{New: func() any { return new([copyBufferSize]byte) }}}
}

func (b *bufferPool) Get() []byte { return b.p.Get().(*[copyBufferSize]byte)[:] }

func (b *bufferPool) Put(v []byte) {
	if cap(v) >= copyBufferSize {
		b.p.Put((*[copyBufferSize]byte)(v[:copyBufferSize]))
	}
}

// frameBufferSize is what one direction of an upgraded connection copies at a time. Kernel
// messages are mostly a few hundred bytes; a large output takes a few more reads.
const frameBufferSize = 8 << 10

// upgradedConn is the server's end of an upgraded connection. ReverseProxy copies each direction
// with io.Copy, which on its own gives each a fresh 32 KiB buffer held for as long as the
// connection is open: with a few hundred kernel WebSockets open that was half the hub's heap.
// io.Copy uses the WriteTo and ReadFrom here instead, which copy through a smaller buffer from a
// pool and give it back when their direction ends. (Splicing the two sockets would copy no
// bytes in the hub, but each direction would hold a pipe, two descriptors, for the socket's
// whole life, and for frames of a few hundred bytes it is no faster: see
// BenchmarkTCPRelayWebSocketFrame.)
type upgradedConn struct {
	io.ReadWriteCloser // ReverseProxy's: the bytes it read past the 101 first, then the socket
	buffers            *sync.Pool
}

// WriteTo copies what the server sends to the client.
func (u *upgradedConn) WriteTo(client io.Writer) (int64, error) {
	return u.copy(client, u.ReadWriteCloser)
}

// ReadFrom copies what the client sends to the server.
func (u *upgradedConn) ReadFrom(client io.Reader) (int64, error) {
	return u.copy(u.ReadWriteCloser, client)
}

func (u *upgradedConn) copy(dst io.Writer, src io.Reader) (int64, error) {
	buf := u.buffers.Get().(*[frameBufferSize]byte)
	defer u.buffers.Put(buf)
	// Hidden behind plain Reader and Writer, so that CopyBuffer uses buf and not the sockets'
	// own ReadFrom or WriteTo, which would come back here or bring their own buffer.
	return io.CopyBuffer(struct{ io.Writer }{dst}, struct{ io.Reader }{src}, buf[:])
}

// CloseWrite passes on the client's end of its sending, as ReverseProxy does when it can.
func (u *upgradedConn) CloseWrite() error {
	if cw, ok := u.ReadWriteCloser.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}

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
	rt.proxy(w, r, target{scheme: u.Scheme, host: u.Host})
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
