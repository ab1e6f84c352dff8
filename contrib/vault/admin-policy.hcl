# jupyterhub-admin: the policy of the hub's own Vault token (vault.admin_token_file).
# It lets the hub write each user's policy (jupyter-user-<name>), make each server's orphan
# token with it, revoke those tokens by accessor, and look up and renew its own token. See
# README.md in this folder for the setup steps.

# Each user's policy. The hub writes it at every spawn, from vault.policy_template.
path "sys/policies/acl/jupyter-user-*" {
  capabilities = ["create", "read", "update"]
}

# Each server's token: an orphan (its life is not tied to the hub's token), with a user's
# policy. sudo is what lets a token attach a policy it does not hold itself. Vault cannot keep
# this to jupyter-user-* here (allowed_parameters globs do not apply to a list of policies), and
# since the hub writes those policies anyway, its token reaches whatever a policy can grant:
# keep the token file private to root (mode 0600), as the hub insists.
path "auth/token/create-orphan" {
  capabilities = ["create", "update", "sudo"]
}

# Revoking a stopped server's token. The hub keeps only accessors, never the tokens.
path "auth/token/revoke-accessor" {
  capabilities = ["update"]
}

# The hub's own token: it looks itself up and renews itself at half its TTL.
path "auth/token/lookup-self" {
  capabilities = ["read"]
}
path "auth/token/renew-self" {
  capabilities = ["update"]
}
