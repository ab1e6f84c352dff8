package agent

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"strings"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// route is where a running server listens.
type route struct {
	serverID int64
	port     int
}

func routeKey(user, server string) string { return user + "/" + server }

type routeCtxKey struct{}

// newProxy builds the reverse proxy for /user/. The path stays as it came (single-user servers
// serve under their prefix); cookies, Authorization, Origin and Sec-Fetch-* pass untouched because
// the server's XSRF checks rely on them; WebSocket upgrades and SSE streams go straight through.
func (h *Hub) newProxy() http.Handler {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConnsPerHost = 64
	transport.ResponseHeaderTimeout = 0 // kernels and long polls may think for a while
	return &httputil.ReverseProxy{
		Transport: transport,
		Rewrite: func(pr *httputil.ProxyRequest) {
			rt := pr.In.Context().Value(routeCtxKey{}).(route)
			pr.Out.URL.Scheme = "http"
			pr.Out.URL.Host = net.JoinHostPort("127.0.0.1", strconv.Itoa(rt.port))
			pr.Out.Host = pr.In.Host
			h.forwardedHeaders(pr)
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			rt := r.Context().Value(routeCtxKey{}).(route)
			if errors.Is(err, context.Canceled) {
				return // the browser went away
			}
			h.log.Warn("proxy error", "path", r.URL.Path, "port", rt.port, "err", err)
			go h.checkServer(rt.serverID)
			h.pages.error(w, r, http.StatusServiceUnavailable, "Server not responding",
				"Your server did not answer the hub. It may have crashed or be overloaded; if this persists, stop and start it from the home page.")
		},
	}
}

// forwardedHeaders sets X-Forwarded-*; behind a trusted proxy (nginx) its values are kept, from
// anyone else they are replaced, so a browser cannot claim to be on HTTPS or another address.
func (h *Hub) forwardedHeaders(pr *httputil.ProxyRequest) {
	in, out := pr.In, pr.Out
	client, _, _ := net.SplitHostPort(in.RemoteAddr)
	proto := "http"
	if in.TLS != nil {
		proto = "https"
	}
	if h.fromTrustedProxy(in) {
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

// serveUser routes /user/<name>/... to the user's server, or explains why it cannot.
func (h *Hub) serveUser(w http.ResponseWriter, r *http.Request) {
	rest := strings.TrimPrefix(r.URL.Path, h.prefix+"/user/")
	name, _, _ := strings.Cut(rest, "/")
	if name == "" || validName(name) != nil {
		h.pages.error(w, r, http.StatusNotFound, "Not found", "There is no such user.")
		return
	}
	if !strings.Contains(rest, "/") {
		// "/user/alice" → "/user/alice/": the server serves under the slash-terminated prefix.
		target := r.URL.Path + "/"
		if r.URL.RawQuery != "" {
			target += "?" + r.URL.RawQuery
		}
		http.Redirect(w, r, target, http.StatusFound)
		return
	}
	h.mu.Lock()
	rt, ok := h.routes[routeKey(name, "")]
	h.mu.Unlock()
	if ok {
		h.activity.touch(rt.serverID)
		h.proxy.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), routeCtxKey{}, rt)))
		return
	}
	// Nothing routed: the hub's /hub/user/ page explains (login, wait, or start), as in JupyterHub.
	http.Redirect(w, r, withQuery(h.prefix+"/hub/user/"+rest, r.URL.RawQuery), http.StatusFound)
}

// checkServer looks at a server the proxy could not reach; if its unit is gone it is recorded
// as stopped and its credentials released.
func (h *Hub) checkServer(serverID int64) {
	ctx, cancel := context.WithTimeout(h.life, 10*time.Second)
	defer cancel()
	sv, err := h.store.ServerByID(ctx, serverID)
	if err != nil || sv.State != store.Running {
		return
	}
	st, err := h.units.State(ctx, sv.Unit)
	if err != nil || st.Running() {
		return
	}
	h.log.Warn("server's unit is gone; marking it stopped", "user", sv.UserName, "unit", sv.Unit, "state", st.ActiveState)
	h.stopServer(sv)
}
