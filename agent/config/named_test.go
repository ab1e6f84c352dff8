package config

import (
	"strings"
	"testing"
)

func TestNamedServersAreOffByDefaultWithoutALimit(t *testing.T) {
	c := Default()
	if c.Hub.AllowNamedServers || c.Hub.NamedServerLimitPerUser != 0 {
		t.Errorf("defaults: allow_named_servers=%v named_server_limit_per_user=%d, want false and 0 as in JupyterHub",
			c.Hub.AllowNamedServers, c.Hub.NamedServerLimitPerUser)
	}
	var cfg = Default()
	if err := Parse([]byte("[hub]\nallow_named_servers = true\nnamed_server_limit_per_user = 3\n"), &cfg); err != nil {
		t.Fatal(err)
	}
	if !cfg.Hub.AllowNamedServers || cfg.Hub.NamedServerLimitPerUser != 3 {
		t.Errorf("parsed %+v", cfg.Hub)
	}
}

func TestNegativeNamedServerLimitIsRefusedByKey(t *testing.T) {
	c := Default()
	c.Hub.NamedServerLimitPerUser = -1
	err := c.Validate()
	if err == nil || !strings.Contains(err.Error(), "hub.named_server_limit_per_user") {
		t.Errorf("Validate = %v, want an error naming hub.named_server_limit_per_user", err)
	}
}
