package router

import (
	"net/http/httptest"
	"testing"
)

func TestOnlyRequestsSomeoneMadeOnPurposeAreInteractions(t *testing.T) {
	for _, c := range []struct {
		name, method, path string
		hdr                []string
		want               bool
	}{
		{"a page load", "GET", "/user/a/lab", []string{"Sec-Fetch-Mode", "navigate"}, true},
		{"a save", "PUT", "/user/a/api/contents/x.ipynb", []string{"Sec-Fetch-Mode", "cors"}, true},
		{"a new kernel", "POST", "/user/a/api/sessions", []string{"Sec-Fetch-Mode", "cors"}, true},
		{"JupyterLab polling its kernels", "GET", "/user/a/api/kernels", []string{"Sec-Fetch-Mode", "cors"}, false},
		{"an image in a notebook", "GET", "/user/a/files/x.png", []string{"Sec-Fetch-Mode", "no-cors"}, false},
		{"a kernel WebSocket", "GET", "/user/a/api/kernels/1/channels", []string{"Upgrade", "websocket", "Sec-Fetch-Mode", "websocket"}, false},
		{"curl fetching a file", "GET", "/user/a/files/data.csv", nil, true},
		{"a client without fetch metadata polling", "GET", "/user/a/api/sessions", nil, false},
	} {
		r := httptest.NewRequest(c.method, c.path, nil)
		for i := 0; i+1 < len(c.hdr); i += 2 {
			r.Header.Set(c.hdr[i], c.hdr[i+1])
		}
		if got := interactive(r); got != c.want {
			t.Errorf("%s: interactive = %v, want %v", c.name, got, c.want)
		}
	}
}
