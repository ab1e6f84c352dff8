// Command backend is the "server" both hubs spawn in the side-by-side benchmark: it answers
// HTTP with a fixed body and echoes WebSocket messages at its JUPYTERHUB_SERVICE_URL, so the
// figures measure the hubs and their proxies, not a notebook server.
//
//	GET <prefix>      1 KiB body
//	GET <prefix>1m    1 MiB body
//	GET <prefix>ws    WebSocket echo
//
// Anything else under the prefix answers 200 as well, because a hub's readiness check may ask
// for a path of its own.
package main

import (
	"bytes"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/gorilla/websocket"
)

func main() {
	listen, prefix, err := where(os.Args[1:], os.Getenv("JUPYTERHUB_SERVICE_URL"))
	if err != nil {
		log.Fatal(err)
	}
	h := handler(prefix)
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		log.Fatal(err)
	}
	log.Fatal(http.Serve(ln, h))
}

// handler serves the backend's three paths under prefix.
func handler(prefix string) http.Handler {
	p := "/" + strings.Trim(prefix, "/") + "/"
	if p == "//" {
		p = "/"
	}
	small := bytes.Repeat([]byte("x"), 1024)
	big := bytes.Repeat([]byte("y"), 1<<20)
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch strings.TrimPrefix(r.URL.Path, p) {
		case "1m":
			w.Header().Set("Content-Length", fmt.Sprint(len(big)))
			w.Write(big)
		case "ws":
			c, err := up.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			defer c.Close()
			for {
				t, m, err := c.ReadMessage()
				if err != nil {
					return
				}
				if err := c.WriteMessage(t, m); err != nil {
					return
				}
			}
		default:
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Length", "1024")
			w.Write(small)
		}
	})
}

// where is the address and path prefix to serve: -listen and -prefix if given, else from the
// service URL the spawner set. A spawner may append arguments of its own (JupyterHub's
// --port=..., --debug): they are not errors, so no flag package, which would refuse them.
func where(args []string, serviceURL string) (listen, prefix string, err error) {
	for i := 0; i+1 < len(args); i++ {
		switch args[i] {
		case "-listen":
			i++
			listen = args[i]
		case "-prefix":
			i++
			prefix = args[i]
		}
	}
	if serviceURL != "" {
		u, err := url.Parse(serviceURL)
		if err != nil {
			return "", "", fmt.Errorf("JUPYTERHUB_SERVICE_URL %q: %w", serviceURL, err)
		}
		if listen == "" {
			listen = u.Host
		}
		if prefix == "" {
			prefix = u.Path
		}
	}
	if listen == "" {
		return "", "", fmt.Errorf("no -listen and no JUPYTERHUB_SERVICE_URL")
	}
	return listen, prefix, nil
}
