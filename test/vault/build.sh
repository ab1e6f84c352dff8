#!/bin/bash
# Builds a real, unpatched Vault server from the Go module proxy once and caches the binary by
# version outside the work tree (there is no Vault package in Debian). Prints the binary's path.
# The recipe is ../shared/DESIGN.md §6: vault v1.19.5 needs sdk v0.17.0 (the v0.15.2 its go.mod
# names lacks consts.PluginTier) and two whole-module replaces; go.sum is seeded from Vault's own,
# since some plugin tags have no checksum-database entry. Cold: ~12 min and ~4.4 GB; cached: instant.
#
#   VAULT_VERSION   (v1.19.5) the version to build
#   VAULT_CACHE     (~/.cache/jupyterhub-go-vault) where binaries are kept, one per version
set -euo pipefail

version=${VAULT_VERSION:-v1.19.5}
sdk=${VAULT_SDK_VERSION:-v0.17.0}
cache=${VAULT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/jupyterhub-go-vault}
bin=$cache/vault-$version
if [[ -x $bin ]]; then echo "$bin"; exit 0; fi

mkdir -p "$cache"
exec 9>"$cache/build.lock"
flock 9
if [[ -x $bin ]]; then echo "$bin"; exit 0; fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
cat >main.go <<'GO'
// A Vault server built from the module proxy for jupyterhub-go's tests.
package main

import (
	"os"

	"github.com/hashicorp/vault/command"
)

func main() { os.Exit(command.Run(os.Args[1:])) }
GO
cat >go.mod <<MOD
module jupyterhub-go.test/vault

go 1.23

require (
	github.com/hashicorp/vault $version
	github.com/hashicorp/vault/sdk $sdk
)

replace (
	github.com/99designs/keyring => github.com/Jeffail/keyring v1.2.3
	github.com/ma314smith/signedxml v1.1.1 => github.com/moov-io/signedxml v1.1.1
)
MOD
export GOFLAGS='-p=2 -mod=mod' GOTOOLCHAIN=local
echo "[vault] building vault $version (sdk $sdk) into $bin; cold this takes ~12 min" >&2
go mod download "github.com/hashicorp/vault@$version" >&2
src=$(go env GOMODCACHE)/github.com/hashicorp/vault@$version
cp "$src/go.sum" go.sum
chmod u+w go.sum
start=$SECONDS
go build -trimpath -ldflags='-s -w' -o "$bin.tmp" . >&2
mv "$bin.tmp" "$bin"
echo "[vault] built in $((SECONDS - start)) s: $("$bin" version)" >&2
echo "$bin"
