package metrics

import (
	"net/http"
	"strconv"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent/web"
)

// Middleware times every request into jupyterhub_request_duration_seconds. route names what
// serves a request, a pattern of the hub's mux (the wiring passes the mux's own matching), never
// the path, so that the label has as many values as the hub has routes; "" counts as
// "unmatched". JupyterHub's handler label is its Tornado handler's class name; the pattern is
// this hub's counterpart.
//
// A request whose client went away before the hub answered is counted with code 499, nginx's
// word for it (web.StatusClientClosed), whatever the handler wrote meanwhile: it is no failure
// of the hub's and must not raise the 5xx rate. This covers an event stream or a proxied
// response that the browser closed, too. A WebSocket keeps its 101.
func (m *Metrics) Middleware(route func(*http.Request) string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handler := route(r)
		if handler == "" {
			handler = "unmatched"
		}
		start := time.Now()
		rec := &recorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		code := rec.status
		switch {
		case code == 0:
			code = http.StatusOK // nothing written: net/http sends 200
		case code == http.StatusSwitchingProtocols:
		case r.Context().Err() != nil:
			code = web.StatusClientClosed
		}
		m.requests.WithLabelValues(methodLabel(r.Method), handler, strconv.Itoa(code)).Observe(time.Since(start).Seconds())
	})
}

// methodLabel keeps the method label bounded: a client may send any token as a method.
func methodLabel(method string) string {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch,
		http.MethodDelete, http.MethodOptions, http.MethodConnect, http.MethodTrace:
		return method
	}
	return "OTHER"
}

// recorder remembers the status written. Unwrap lets http.ResponseController reach the real
// writer, which the router needs to stream (SSE) and upgrade (WebSocket) through it.
type recorder struct {
	http.ResponseWriter
	status int
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 || r.status < 200 && code >= 200 { // informational answers come before the real one
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (r *recorder) Flush() {
	if f, ok := r.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
