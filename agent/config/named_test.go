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

func TestServerNamesThatAreOneSafePathSegment(t *testing.T) {
	for _, ok := range []string{"gpu", "my-server", "exp_2", "v1.2", "a~b", "X", strings.Repeat("a", 64)} {
		if err := ValidServerName(ok); err != nil {
			t.Errorf("ValidServerName(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"", "a/b", "/", ".", "..", ".hidden", "with space", "ü", "a%2Fb", "a?b", "a#b", strings.Repeat("a", 65)} {
		if err := ValidServerName(bad); err == nil {
			t.Errorf("ValidServerName(%q) accepted", bad)
		}
	}
}
