// Package web holds the small HTTP helpers every surface of the hub shares: JupyterHub's JSON error
// shape, body decoding with a size cap, and the request middleware. It knows nothing of users or
// servers.
package web

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/jupyterhub-go/jupyterhub-go/agent/config"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// Version is the JupyterHub API level this hub implements; it is what X-JupyterHub-Version says,
// so that stock single-user servers see a hub of the major version they expect.
const Version = "5.3.0"

// Error writes JupyterHub's JSON error shape.
func Error(w http.ResponseWriter, status int, format string, args ...any) {
	JSON(w, status, map[string]any{"status": status, "message": fmt.Sprintf(format, args...)})
}

// JSON writes v as the response body.
func JSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
}

// StatusClientClosed is nginx's status for a request whose client went away before the answer.
const StatusClientClosed = 499

// StatusError is an error with the HTTP status it should be answered with.
type StatusError struct {
	Status int
	Msg    string
}

func (e *StatusError) Error() string { return e.Msg }

// Errorf makes a StatusError.
func Errorf(status int, format string, args ...any) error {
	return &StatusError{status, fmt.Sprintf(format, args...)}
}

// WriteErr turns an error into a JSON error response: a StatusError keeps its status, the store's
// not-found and exists become 404 and 409, anything else is the hub's fault (500).
func WriteErr(w http.ResponseWriter, err error) {
	var se *StatusError
	switch {
	case errors.Is(err, context.Canceled):
		// The client went away mid-request (nginx's 499): nobody reads this, and it is no
		// failure of the hub's, so it must not count or log as one.
		w.WriteHeader(StatusClientClosed)
	case errors.As(err, &se):
		Error(w, se.Status, "%s", se.Msg)
	case errors.Is(err, store.ErrNotFound):
		Error(w, http.StatusNotFound, "%v", err)
	case errors.Is(err, store.ErrExists):
		Error(w, http.StatusConflict, "%v", err)
	default:
		Error(w, http.StatusInternalServerError, "%v", err)
	}
}

// DecodeJSON reads an optional JSON body of at most limit bytes into v. An empty body leaves v as
// it is. As in JupyterHub, the body's Content-Type matters only for cookie-authenticated requests
// (checkType): a form post from another site must not pass for JSON, but `curl -d` with a token
// sends application/x-www-form-urlencoded and means JSON. With strict, keys v has no field for
// are refused, as JupyterHub refuses unknown keys in a user model.
func DecodeJSON(w http.ResponseWriter, r *http.Request, limit int64, v any, checkType, strict bool) error {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return Errorf(http.StatusRequestEntityTooLarge, "request body over %d bytes (hub.max_body_bytes)", limit)
		}
		return Errorf(http.StatusBadRequest, "cannot read request body: %v", err)
	}
	if len(strings.TrimSpace(string(body))) == 0 {
		return nil
	}
	if ct := r.Header.Get("Content-Type"); checkType && ct != "" {
		if mt, _, _ := mime.ParseMediaType(ct); mt != "application/json" {
			return Errorf(http.StatusUnsupportedMediaType, "request body must be application/json, not %q", mt)
		}
	}
	dec := json.NewDecoder(strings.NewReader(string(body)))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return Errorf(http.StatusBadRequest, "malformed JSON body: %v", err)
	}
	return nil
}

// ValidName checks a user name taken from a URL or body.
func ValidName(name string) error {
	if err := config.ValidUsername(name); err != nil {
		return &StatusError{http.StatusBadRequest, err.Error()}
	}
	return nil
}

// WithQuery appends a raw query to a path, if there is one.
func WithQuery(path, rawQuery string) string {
	if rawQuery == "" {
		return path
	}
	return path + "?" + rawQuery
}

// ISOTime is JupyterHub's timestamp format; the zero time is null.
func ISOTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t.UTC().Format("2006-01-02T15:04:05.000000Z")
}

// Middleware stamps the version header, refuses dot segments, and logs each request. quiet says
// which paths log at debug level only (proxied traffic and keep-alives would drown the log).
func Middleware(log *slog.Logger, quiet func(path string) bool, next http.Handler) http.Handler {
	// One value for every response, set under its canonical key: Set would canonicalize the key
	// and make a slice per request. Sharing is safe because nothing writes into a header's value
	// slice, and Add appends to a full slice, which copies it.
	version := []string{Version}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["X-Jupyterhub-Version"] = version
		// ServeMux would answer "/hub/api/users/../x" with a redirect to the cleaned path; a
		// path that tries to climb out of where it points is refused outright instead.
		if HasDotSegment(r.URL.EscapedPath()) {
			Error(w, http.StatusBadRequest, "path contains '.' or '..' segments")
			return
		}
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		level := slog.LevelInfo
		if quiet(r.URL.Path) {
			level = slog.LevelDebug
		}
		if r.Context().Err() != nil && rec.status < 500 || rec.status == StatusClientClosed {
			rec.status, level = StatusClientClosed, slog.LevelDebug // the client left
		} else if rec.status >= 500 {
			level = slog.LevelWarn
		}
		if log.Enabled(r.Context(), level) { // the arguments alone cost allocations for every proxied request
			log.Log(r.Context(), level, "request", "method", r.Method, "path", r.URL.Path, "status", rec.status,
				"duration_ms", time.Since(start).Milliseconds(), "remote", r.RemoteAddr)
		}
	})
}

// HasDotSegment reports whether an escaped path has a "." or ".." segment, also percent-encoded
// (a server behind the router may decode "%2F" and "%2E" before it normalizes the path).
func HasDotSegment(p string) bool {
	for seg := range strings.SplitSeq(p, "/") {
		if !strings.Contains(seg, "%") { // the common case, checked without unescaping a copy
			if seg == "." || seg == ".." {
				return true
			}
			continue
		}
		u, err := url.PathUnescape(seg)
		if err != nil {
			continue
		}
		for part := range strings.SplitSeq(u, "/") {
			if part == "." || part == ".." {
				return true
			}
		}
	}
	return false
}

// statusRecorder remembers the status for the log. Unwrap lets http.ResponseController reach the
// real writer, which the router needs to stream (SSE) and upgrade (WebSocket) through it.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int)        { s.status = code; s.ResponseWriter.WriteHeader(code) }
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }
func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// formLimit caps the urlencoded forms of the hub's pages (login, spawn, stop, consent).
const formLimit = 64 << 10

// Guard protects the hub's own paths (everything but the /user/ router, whose traffic belongs
// to user servers): bodies are capped (apiLimit under /hub/api/, formLimit elsewhere) and must
// arrive within bodyTimeout, multipart bodies are refused before anything parses them, and
// responses carry the headers that keep hub pages out of frames and sniffing. A client that
// sends a body slowly would otherwise hold a goroutine and its buffers, and nothing the hub takes
// is large.
func Guard(prefix string, apiLimit int64, bodyTimeout time.Duration, next http.Handler) http.Handler {
	userPrefix, apiPrefix := prefix+"/user/", prefix+"/hub/api/"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, userPrefix) {
			next.ServeHTTP(w, r)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", "frame-ancestors 'none'; base-uri 'self'; object-src 'none'")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		if r.Body != nil && r.Body != http.NoBody {
			if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); strings.HasPrefix(mt, "multipart/") {
				// Go's form parsing would buffer up to 32 MiB of such a body per request.
				Error(w, http.StatusUnsupportedMediaType, "the hub takes no multipart bodies: send forms as application/x-www-form-urlencoded and API bodies as application/json")
				return
			}
			limit := int64(formLimit)
			if strings.HasPrefix(r.URL.Path, apiPrefix) {
				limit = apiLimit
			}
			rc := http.NewResponseController(w)
			if rc.SetReadDeadline(time.Now().Add(bodyTimeout)) == nil {
				r.Body = &deadlineBody{ReadCloser: http.MaxBytesReader(w, r.Body, limit), rc: rc}
			} else {
				r.Body = http.MaxBytesReader(w, r.Body, limit)
			}
		}
		next.ServeHTTP(w, r)
	})
}

// deadlineBody lifts the read deadline once the body has been read whole: after that the server
// reads the connection only to notice the client going away, which must not time out under a
// handler that waits (a spawn, a progress stream). After any other error the deadline stays, so
// the server gives up on the rest of the body too and closes the connection.
type deadlineBody struct {
	io.ReadCloser
	rc   *http.ResponseController
	done bool
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF && !b.done {
		b.done = true
		b.rc.SetReadDeadline(time.Time{})
	}
	return n, err
}

// Time is a timestamp in a request body. Like JupyterHub (dateutil's isoparse), it takes ISO 8601
// with or without a zone, a missing zone meaning UTC: Python clients send datetime.utcnow()
// without one.
type Time struct{ time.Time }

func (t *Time) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a timestamp must be an ISO 8601 string: %w", err)
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02 15:04:05.999999999Z07:00", "2006-01-02 15:04:05.999999999"} {
		if v, err := time.Parse(layout, s); err == nil {
			t.Time = v
			return nil
		}
	}
	return fmt.Errorf("%q is not an ISO 8601 timestamp (e.g. 2026-01-02T03:04:05.000000Z)", s)
}

type proxySocketKey struct{}

// OverProxySocket marks a connection's context as one accepted on hub.proxy_socket, the unix
// socket only the reverse proxy on this host may open (http.Server.ConnContext calls it).
func OverProxySocket(ctx context.Context) context.Context {
	return context.WithValue(ctx, proxySocketKey{}, true)
}

// FromProxySocket reports whether r arrived over hub.proxy_socket: its X-Forwarded-* headers are
// then the proxy's own.
func FromProxySocket(r *http.Request) bool {
	v, _ := r.Context().Value(proxySocketKey{}).(bool)
	return v
}
