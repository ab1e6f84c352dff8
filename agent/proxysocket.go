package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
)

// listenProxySocket opens hub.proxy_socket: a unix socket of mode 0660 owned by the proxy's group.
// Its default is directly in /run, which everyone may traverse; a directory it creates for
// another path is 0755 (one that exists is left as the administrator made it). A socket left by a hub that was killed is replaced; one that answers, or any other
// file there, is an error and never removed. lookupGroup is user.LookupGroup outside tests.
func listenProxySocket(path, group string, lookupGroup func(string) (*user.Group, error)) (net.Listener, string, error) {
	gid, group, err := proxyGroup(group, lookupGroup)
	if err != nil {
		return nil, "", err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, "", fmt.Errorf("create the directory of hub.proxy_socket: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != fs.ModeSocket {
			return nil, "", fmt.Errorf("hub.proxy_socket %s exists and is not a socket: move it away or choose another path", path)
		}
		if c, err := net.Dial("unix", path); err == nil {
			c.Close()
			return nil, "", fmt.Errorf("hub.proxy_socket %s: another process listens on it (a second hub?): stop it or choose another path", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, "", fmt.Errorf("remove the stale hub.proxy_socket %s: %w", path, err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, "", fmt.Errorf("hub.proxy_socket: %w", err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, "", fmt.Errorf("listen on %s (hub.proxy_socket): %w", path, err)
	}
	// Go's listener unlinks the socket file when closed, so a clean stop leaves nothing behind.
	if err := os.Chown(path, -1, gid); err != nil {
		ln.Close()
		return nil, "", fmt.Errorf("give hub.proxy_socket %s to group %s: %w", path, group, err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, "", fmt.Errorf("chmod hub.proxy_socket %s: %w", path, err)
	}
	return ln, group, nil
}

// proxyGroup resolves hub.proxy_socket_group, or with none set the first group that exists of
// those distributions run nginx's workers as (Debian and Ubuntu, Arch, Fedora and nginx.org's
// packages); with none of those the socket is root's alone (-1 keeps the hub's own group).
func proxyGroup(name string, lookupGroup func(string) (*user.Group, error)) (int, string, error) {
	if name != "" {
		g, err := lookupGroup(name)
		if err != nil {
			return 0, "", fmt.Errorf("hub.proxy_socket_group %q: %w (set it to the group your reverse proxy runs as)", name, err)
		}
		gid, err := strconv.Atoi(g.Gid)
		if err != nil {
			return 0, "", fmt.Errorf("hub.proxy_socket_group %q has gid %q: not a number", name, g.Gid)
		}
		return gid, name, nil
	}
	for _, n := range []string{"www-data", "http", "nginx"} {
		if g, err := lookupGroup(n); err == nil {
			if gid, err := strconv.Atoi(g.Gid); err == nil {
				return gid, n, nil
			}
		}
	}
	return -1, "", nil
}
