package nfs

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/godbus/dbus/v5"
)

func dbusVariant(v any) dbus.Variant { return dbus.MakeVariant(v) }

func isDBusError(err error, name string) bool {
	var e dbus.Error
	if errors.As(err, &e) {
		return e.Name == name
	}
	var pe *dbus.Error
	return errors.As(err, &pe) && pe.Name == name
}

func isNoSuchUnit(err error) bool {
	return isDBusError(err, "org.freedesktop.systemd1.NoSuchUnit") || isDBusError(err, "org.freedesktop.DBus.Error.UnknownObject")
}

// journalLines is the unit's log since a moment, from journalctl: sd-journal would need cgo, and
// this only runs when a mount has failed. systemd's own lines about the unit ("Mounting timed
// out") come with it, as do mount.nfs4's.
func journalLines(ctx context.Context, unit string, since time.Time) ([]string, error) {
	args := []string{"-u", unit, "-n", "30", "-o", "cat", "--no-pager", "-q", "--since", "@" + strconv.FormatInt(since.Unix(), 10)}
	cmd := exec.CommandContext(ctx, "journalctl", args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("journalctl -u %s: %w: %s", unit, err, strings.TrimSpace(stderr.String()))
	}
	s := strings.TrimRight(string(b), "\n")
	if s == "" {
		return nil, nil
	}
	return strings.Split(s, "\n"), nil
}
