package router

import (
	"net/http"
	"strings"
)

// interactive tells a request someone made on purpose from the background traffic of an open
// tab, for the culler (servers.Manager.Interacted). JupyterLab and the classic notebook poll
// their server's REST API every few seconds (kernels, sessions, contents, terminals) and hold
// kernel WebSockets open for as long as the tab is open, so that traffic says nothing about
// whether anyone is there. What does: loading a page, and anything that changes something
// (saving a notebook, starting a kernel), which is never a GET. Work a kernel does is seen in
// the kernel's own state, which the culler asks the server for.
//
// Browsers mark a script's requests with Sec-Fetch-Mode; a client without fetch metadata (curl,
// a Python script, a browser over plain HTTP to a remote host) counts unless it reads the API,
// which is what polling does.
func interactive(r *http.Request) bool {
	if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
		return false
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead && r.Method != http.MethodOptions {
		return true
	}
	switch r.Header.Get("Sec-Fetch-Mode") {
	case "navigate":
		return true
	case "":
		return !strings.Contains(r.URL.Path, "/api/")
	}
	return false
}
