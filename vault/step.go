package vault

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/jupyterhub-go/jupyterhub-go/agent/servers"
	"github.com/jupyterhub-go/jupyterhub-go/agent/store"
)

// Environment variables a server gets from the vault step.
const (
	EnvToken   = "NOTEBOOK_VAULT_TOKEN"
	EnvAddress = "VAULT_ADDR"
	EnvCACert  = "VAULT_CACERT" // only with vault.ca_file
)

var plainName = regexp.MustCompile(`^[a-z0-9_][a-z0-9_.-]*$`)

// PathName is a user's name as it appears in Vault paths and in the policy name (see the
// package doc).
func PathName(user string) string {
	if plainName.MatchString(user) && !strings.HasPrefix(user, "u-") && !strings.Contains(user, "..") {
		return user
	}
	sum := sha256.Sum256([]byte(user))
	return "u-" + hex.EncodeToString(sum[:8])
}

// PolicyName is the name of a user's policy in Vault.
func PolicyName(user string) string { return "jupyter-user-" + PathName(user) }

// Policy is the policy a user's token gets, from the template.
func (v *Vault) Policy(user string) string {
	return strings.ReplaceAll(v.opts.PolicyTemplate, "{NAME}", PathName(user))
}

// Step is the vault spawn step.
func (v *Vault) Step() servers.Step { return step{v} }

type step struct{ v *Vault }

func (step) Name() string { return "vault" }

// Start gives the server a token of its own (see the package doc). With vault.required off, a
// Vault that cannot make one is said on the progress stream and the server starts without it.
func (s step) Start(ctx context.Context, job *servers.Job) error {
	v, sv := s.v, job.Server
	if old := sv.StepState[s.Name()]; old != "" { // a token an earlier run left behind
		if err := v.revoke(ctx, old); err != nil {
			v.queueRevocation(old, sv, err)
		}
	}
	job.Progress(15, "Getting a Vault token")
	token, accessor, err := v.mint(ctx, sv)
	if err != nil {
		reason := v.explain(err)
		if v.opts.Required {
			return fmt.Errorf("%s; no token for the server, and vault.required is on", reason)
		}
		v.log.Warn("vault: server starts without a Vault token", "user", sv.UserName, "server", sv.Name, "err", reason)
		job.Progress(20, "No Vault token for this server: "+reason+". It starts without "+EnvToken+".")
		return nil
	}
	// The accessor is in the store before the unit can use the token: a hub that dies from
	// here on still revokes it at its next start.
	if err := job.KeepState(ctx, accessor); err != nil {
		if rerr := v.revoke(context.WithoutCancel(ctx), accessor); rerr != nil {
			v.queueRevocation(accessor, sv, rerr)
		}
		return fmt.Errorf("record the Vault token's accessor: %w", err)
	}
	job.Env[EnvToken] = token
	job.Env[EnvAddress] = v.opts.Address
	if v.opts.CAFile != "" {
		job.Env[EnvCACert] = v.opts.CAFile
	}
	v.log.Info("vault: token made for server", "user", sv.UserName, "server", sv.Name, "policy", PolicyName(sv.UserName), "accessor", accessor, "ttl", v.opts.TTL, "max_ttl", v.opts.MaxTTL)
	job.Progress(20, fmt.Sprintf("Vault token ready (policy %s, valid for %s)", PolicyName(sv.UserName), v.opts.TTL))
	return nil
}

// Stop revokes the server's token by its accessor. Revoking one that is gone already
// (revoked, expired) succeeds. If Vault cannot be reached the stop still succeeds, since the
// server is gone either way: the revocation is tried again every renewal period while the hub
// runs (the gauge jupyterhub_vault_revocations_pending counts them), and the token's TTL
// bounds it after that.
func (s step) Stop(ctx context.Context, sv store.Server) error {
	accessor := sv.StepState[s.Name()]
	if accessor == "" {
		return nil
	}
	if err := s.v.revoke(ctx, accessor); err != nil {
		s.v.queueRevocation(accessor, sv, err)
		return nil
	}
	s.v.log.Info("vault: token revoked", "user", sv.UserName, "server", sv.Name, "accessor", accessor)
	return nil
}

// mint writes the user's policy and makes the server's orphan token; a refusal reads the admin
// token file again and tries once more.
func (v *Vault) mint(ctx context.Context, sv store.Server) (token, accessor string, err error) {
	for try := 0; ; try++ {
		token, accessor, err = v.mintOnce(ctx, sv)
		if err == nil {
			return token, accessor, nil
		}
		if !refused(err) || try > 0 {
			break
		}
		if _, ok := v.reload(ctx); !ok {
			break
		}
	}
	// A Vault that is down, sealed or refusing the hub is then said by the admin token's gauge
	// and the log at once, not at the next renewal minutes away.
	v.checkNow()
	return token, accessor, err
}

func (v *Vault) mintOnce(ctx context.Context, sv store.Server) (string, string, error) {
	policy := PolicyName(sv.UserName)
	if err := v.client.Sys().PutPolicyWithContext(ctx, policy, v.Policy(sv.UserName)); err != nil {
		return "", "", fmt.Errorf("write policy %s: %w", policy, err)
	}
	renewable := true
	secret, err := v.client.Auth().Token().CreateOrphanWithContext(ctx, &api.TokenCreateRequest{
		Policies:        []string{policy},
		NoDefaultPolicy: true,
		TTL:             seconds(v.opts.TTL),
		ExplicitMaxTTL:  seconds(v.opts.MaxTTL),
		Renewable:       &renewable,
		DisplayName:     "jupyter-" + PathName(sv.UserName),
		Metadata:        map[string]string{"user": sv.UserName, "server": sv.Name},
	})
	if err != nil {
		return "", "", fmt.Errorf("create the server's token: %w", err)
	}
	if secret == nil || secret.Auth == nil || secret.Auth.ClientToken == "" || secret.Auth.Accessor == "" {
		return "", "", fmt.Errorf("create the server's token: Vault's answer holds no token and accessor")
	}
	return secret.Auth.ClientToken, secret.Auth.Accessor, nil
}

func seconds(d time.Duration) string { return fmt.Sprintf("%ds", int64(d/time.Second)) }

// revoke revokes a token by its accessor; one Vault no longer knows is revoked already.
func (v *Vault) revoke(ctx context.Context, accessor string) error {
	err := v.client.Auth().Token().RevokeAccessorWithContext(ctx, accessor)
	var re *api.ResponseError
	if errors.As(err, &re) && re.StatusCode == 400 && strings.Contains(strings.Join(re.Errors, " "), "invalid accessor") {
		return nil
	}
	return err
}

// queueRevocation keeps an accessor whose revocation failed, for the renewal loop to retry.
func (v *Vault) queueRevocation(accessor string, sv store.Server, err error) {
	v.log.Error("vault: cannot revoke the server's token now; trying again while the hub runs", "user", sv.UserName, "server", sv.Name, "accessor", accessor, "err", v.explain(err))
	v.mu.Lock()
	defer v.mu.Unlock()
	v.pending = append(v.pending, accessor)
}

// retryRevocations tries the queued revocations again.
func (v *Vault) retryRevocations(ctx context.Context) {
	v.mu.Lock()
	todo := v.pending
	v.pending = nil
	v.mu.Unlock()
	var left []string
	for _, a := range todo {
		if err := v.revoke(ctx, a); err != nil {
			left = append(left, a)
			continue
		}
		v.log.Info("vault: token revoked after all", "accessor", a)
	}
	v.mu.Lock()
	v.pending = append(v.pending, left...)
	v.mu.Unlock()
}

// Pending is how many revocations wait to be tried again.
func (v *Vault) Pending() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	return len(v.pending)
}
