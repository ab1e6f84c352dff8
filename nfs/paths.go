package nfs

import (
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/coreos/go-systemd/v22/unit"
)

// Vars are the values the nfs.what and nfs.where templates can name.
type Vars struct {
	Server string // nfs.server: {SERVER}
	Export string // nfs.export: {EXPORT}
	User   string // {USERNAME}
	UID    int    // {UID}
	Home   string // the account's home in passwd: {HOME}
}

// Expand replaces {SERVER}, {EXPORT}, {USERNAME}, {UID} and {HOME} in tmpl. The config package
// refuses templates with other placeholders, so anything else is left as it is.
func Expand(tmpl string, v Vars) string {
	return strings.NewReplacer(
		"{SERVER}", v.Server,
		"{EXPORT}", v.Export,
		"{USERNAME}", v.User,
		"{UID}", strconv.Itoa(v.UID),
		"{HOME}", v.Home,
	).Replace(tmpl)
}

// checkWhere refuses mount points systemd would refuse or that would hide more than a home: they
// must be absolute and clean (systemd names mount units after the path, so "/home/alice/" and
// "/home//alice" are not what the unit would say), and not "/".
func checkWhere(where string) error {
	switch {
	case !filepath.IsAbs(where):
		return fmt.Errorf("mount point %q is not an absolute path", where)
	case filepath.Clean(where) != where:
		return fmt.Errorf("mount point %q is not a clean path (no trailing slash, \"//\", \".\" or \"..\")", where)
	case where == "/":
		return errors.New("refusing to mount a home on /")
	case strings.ContainsAny(where, "\x00\n"):
		return fmt.Errorf("mount point %q contains a control character", where)
	}
	return nil
}

// maxUnitName is systemd's UNIT_NAME_MAX minus the terminating NUL.
const maxUnitName = 255

// MountUnitName is the name systemd gives the mount unit of the mount point where, as
// `systemd-escape --path --suffix=mount` prints it: "/home/alice" is "home-alice.mount",
// "/home/a-b" is "home-a\x2db.mount". systemd accepts a transient mount unit only under this name.
func MountUnitName(where string) (string, error) {
	if err := checkWhere(where); err != nil {
		return "", err
	}
	name := unit.UnitNamePathEscape(where) + ".mount"
	if len(name) > maxUnitName {
		return "", fmt.Errorf("mount point %q is too long for a systemd unit name", where)
	}
	return name, nil
}

// splitWhat splits "host:/path" (or "[v6 address]:/path") into host and path.
func splitWhat(what string) (host, path string, ok bool) {
	if rest, found := strings.CutPrefix(what, "["); found {
		addr, path, found := strings.Cut(rest, "]:")
		return addr, path, found && addr != "" && strings.HasPrefix(path, "/")
	}
	host, path, found := strings.Cut(what, ":")
	return host, path, found && host != "" && strings.HasPrefix(path, "/")
}

// probeAddr is the host:port to try before mounting what with these mount options, or "" when
// the mount does not go over TCP to a port we can know (proto=udp or rdma).
func probeAddr(what, options string) string {
	host, _, ok := splitWhat(what)
	if !ok {
		return ""
	}
	port := "2049" // NFSv4 needs no portmapper: the server listens here unless port= says otherwise
	for _, o := range strings.Split(options, ",") {
		k, v, _ := strings.Cut(o, "=")
		switch k {
		case "port":
			if n, err := strconv.Atoi(v); err == nil && n > 0 && n < 65536 {
				port = v
			}
		case "proto":
			if v != "tcp" && v != "tcp6" {
				return ""
			}
		}
	}
	return net.JoinHostPort(host, port)
}
