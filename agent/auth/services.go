package auth

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/jupyterhub-go/jupyterhub-go/agent/config"
	"github.com/jupyterhub-go/jupyterhub-go/agent/scopes"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// Service is a [[service]] as the hub knows it at run time.
type Service struct {
	config.Service
	Admin  bool       // "admin" is one of its roles
	Scopes scopes.Set // what its token may do

	tokenHash string // its API token, hashed as the store keeps secrets; "" without a token file
}

// loadServices reads each service's token file. The file must be private (no group or other
// access): the token is as good as the service's roles.
func loadServices(cfg config.Config) (map[string]*Service, map[string]*Service, error) {
	byName, byHash := map[string]*Service{}, map[string]*Service{}
	for _, sc := range cfg.Services {
		sv := &Service{Service: sc, Admin: slices.Contains(sc.Roles, "admin")}
		var raw []string
		for _, r := range sc.Roles {
			if r == "admin" {
				raw = append(raw, scopes.AdminRole...)
			}
			for _, cr := range cfg.Roles {
				if cr.Name == r {
					raw = append(raw, cr.Scopes...)
				}
			}
		}
		sv.Scopes = scopes.Expand(raw, "", nil)
		byName[sc.Name] = sv
		if sc.APITokenFile == "" {
			continue
		}
		fi, err := os.Stat(sc.APITokenFile)
		if err != nil {
			return nil, nil, fmt.Errorf("service %s: api_token_file: %w", sc.Name, err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			return nil, nil, fmt.Errorf("service %s: api_token_file %s has mode %04o: make it 0600 (chmod 600 %s), the token is as good as the service's roles",
				sc.Name, sc.APITokenFile, fi.Mode().Perm(), sc.APITokenFile)
		}
		b, err := os.ReadFile(sc.APITokenFile)
		if err != nil {
			return nil, nil, fmt.Errorf("service %s: api_token_file: %w", sc.Name, err)
		}
		tok := strings.TrimSpace(string(b))
		if len(tok) < 16 {
			return nil, nil, fmt.Errorf("service %s: the token in %s is shorter than 16 characters; use e.g. `openssl rand -hex 32`", sc.Name, sc.APITokenFile)
		}
		if other := byHash[store.Hash(tok)]; other != nil {
			return nil, nil, fmt.Errorf("services %s and %s have the same token", other.Name, sc.Name)
		}
		byHash[store.Hash(tok)] = sv
		sv.tokenHash = store.Hash(tok)
	}
	return byName, byHash, nil
}

// RegisterOAuthClients registers the services that log users in through the hub (HubOAuth) as
// OAuth clients, each with its API token as the client secret, as JupyterHub does. Clients of
// services no longer configured are left: their ids cannot collide with servers' (those start
// "jupyterhub-user-"), and re-adding the service reuses them.
func (g *Gate) RegisterOAuthClients(ctx context.Context) error {
	for _, sv := range g.Services() {
		if sv.OAuthClientID == "" {
			continue
		}
		if sv.tokenHash == "" {
			return fmt.Errorf("service %s: oauth_client_id needs api_token_file: the token is the client's secret", sv.Name)
		}
		err := g.store.SaveClientHash(ctx, store.OAuthClient{
			ID: sv.OAuthClientID, RedirectURI: sv.OAuthRedirectURI, Description: "Service " + sv.Name,
			AllowedScopes: []string{"access:services!service=" + sv.Name}, Service: sv.Name,
		}, sv.tokenHash)
		if err != nil {
			return fmt.Errorf("service %s: %w", sv.Name, err)
		}
	}
	return nil
}

// Services are the configured services, in config order.
func (g *Gate) Services() []*Service {
	out := make([]*Service, 0, len(g.cfg.Services))
	for _, sc := range g.cfg.Services {
		out = append(out, g.services[sc.Name])
	}
	return out
}

// ServiceByName is a configured service, or nil.
func (g *Gate) ServiceByName(name string) *Service { return g.services[name] }

// fromServiceToken resolves a service's API token; store.ErrNotFound if it is none.
func (g *Gate) fromServiceToken(_ context.Context, secret string) (*Caller, error) {
	sv := g.serviceTokens[store.Hash(secret)]
	if sv == nil {
		return nil, store.ErrNotFound
	}
	return &Caller{Service: sv, Scopes: sv.Scopes}, nil
}
