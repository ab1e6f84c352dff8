// Package jupyterclient does what a browser does with a hub and a single-user server in the
// integration tests: log in through the login form, follow the spawn progress stream, and run
// code in a kernel over its WebSocket. The *http.Client passed in carries the person's cookies.
package jupyterclient

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

// Event is one spawn progress event and when it arrived.
type Event struct {
	Progress int    `json:"progress"`
	Message  string `json:"message"`
	Ready    bool   `json:"ready"`
	Failed   bool   `json:"failed"`
	URL      string `json:"url"`
	At       time.Time
}

// Progress reads a spawn progress stream (server-sent events) until its ready or failed event.
func Progress(ctx context.Context, c *http.Client, streamURL string) ([]Event, error) {
	req, _ := http.NewRequestWithContext(ctx, "GET", streamURL, nil)
	client := *c
	client.Timeout = 0 // the stream lasts as long as the spawn; ctx bounds it
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("progress stream: %w", err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode != 200 || ct != "text/event-stream" {
		body, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("progress stream answered %d %s: %s", resp.StatusCode, ct, body)
	}
	var events []Event
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		ev := Event{At: time.Now()}
		if err := json.Unmarshal([]byte(data), &ev); err != nil {
			return events, fmt.Errorf("bad event %q: %w", data, err)
		}
		events = append(events, ev)
		if ev.Ready || ev.Failed {
			return events, nil
		}
	}
	return events, fmt.Errorf("progress stream ended without a ready or failed event after %d events (%v)", len(events), sc.Err())
}

// RunCode starts a python3 kernel on the server at serverURL (e.g. "http://127.0.0.1:8000/user/alice/")
// and runs code over the kernel's WebSocket, returning the text/plain result. dialer may be nil.
func RunCode(c *http.Client, dialer *websocket.Dialer, serverURL, code string) (string, error) {
	if dialer == nil {
		dialer = websocket.DefaultDialer
	}
	base, err := url.Parse(strings.TrimSuffix(serverURL, "/") + "/")
	if err != nil {
		return "", err
	}
	var cookies []string
	xsrf := ""
	for _, ck := range c.Jar.Cookies(base) {
		cookies = append(cookies, ck.Name+"="+ck.Value)
		if ck.Name == "_xsrf" {
			xsrf = ck.Value
		}
	}
	req, _ := http.NewRequest("POST", base.String()+"api/kernels", strings.NewReader(`{"name": "python3"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-XSRFToken", xsrf) // the notebook's own XSRF check
	resp, err := c.Do(req)
	if err != nil {
		return "", fmt.Errorf("start kernel: %w", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 201 {
		return "", fmt.Errorf("start kernel answered %d: %s", resp.StatusCode, body)
	}
	var kernel struct{ ID string }
	json.Unmarshal(body, &kernel)

	ws := *base
	ws.Scheme = map[string]string{"http": "ws", "https": "wss"}[base.Scheme]
	hdr := http.Header{"Cookie": {strings.Join(cookies, "; ")}} // one header, as browsers send it
	conn, resp, err := dialer.Dial(ws.String()+"api/kernels/"+kernel.ID+"/channels", hdr)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		return "", fmt.Errorf("kernel WebSocket: %w (status %d)", err, status)
	}
	defer conn.Close()
	msgID := fmt.Sprintf("test-%d", time.Now().UnixNano())
	msg := map[string]any{
		"header":        map[string]any{"msg_id": msgID, "username": "test", "session": "test", "msg_type": "execute_request", "version": "5.3"},
		"parent_header": map[string]any{}, "metadata": map[string]any{}, "channel": "shell", "buffers": []any{},
		"content": map[string]any{"code": code, "silent": false, "store_history": false, "user_expressions": map[string]any{}, "allow_stdin": false},
	}
	if err := conn.WriteJSON(msg); err != nil {
		return "", fmt.Errorf("send execute_request: %w", err)
	}
	conn.SetReadDeadline(time.Now().Add(120 * time.Second))
	for {
		var in struct {
			Header struct {
				MsgType string `json:"msg_type"`
			} `json:"header"`
			ParentHeader struct {
				MsgID string `json:"msg_id"`
			} `json:"parent_header"`
			Content struct {
				Data  map[string]any `json:"data"`
				Ename string         `json:"ename"`
			} `json:"content"`
		}
		if err := conn.ReadJSON(&in); err != nil {
			return "", fmt.Errorf("read kernel reply: %w", err)
		}
		if in.ParentHeader.MsgID != msgID {
			continue
		}
		switch in.Header.MsgType {
		case "execute_result":
			s, _ := in.Content.Data["text/plain"].(string)
			return s, nil
		case "error":
			return "", fmt.Errorf("kernel raised %s", in.Content.Ename)
		}
	}
}

var xsrfField = regexp.MustCompile(`name="_xsrf" value="([^"]+)"`)

// Login logs in through the hub's login form at base (e.g. "http://127.0.0.1:8000") as a browser
// does: it loads the form (whose cookie and XSRF token the hub binds together), then posts it.
// c must have a cookie jar. hdr is added to both requests. It returns the answer to the POST as
// c delivers it (after redirects, if c follows them) and its body.
func Login(c *http.Client, base, user, password, next string, hdr http.Header) (*http.Response, string, error) {
	do := func(method, u string, body io.Reader) (*http.Response, string, error) {
		req, err := http.NewRequest(method, u, body)
		if err != nil {
			return nil, "", err
		}
		for k, v := range hdr {
			req.Header[k] = v
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := c.Do(req)
		if err != nil {
			return nil, "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp, string(b), err
	}
	_, page, err := do("GET", base+"/hub/login", nil)
	if err != nil {
		return nil, "", fmt.Errorf("load the login form: %w", err)
	}
	m := xsrfField.FindStringSubmatch(page)
	if m == nil {
		return nil, "", fmt.Errorf("the login page has no _xsrf field:\n%.1000s", page)
	}
	form := url.Values{"username": {user}, "password": {password}, "next": {next}, "_xsrf": {m[1]}}
	return do("POST", base+"/hub/login", strings.NewReader(form.Encode()))
}
