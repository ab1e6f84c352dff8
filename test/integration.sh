#!/bin/bash
# test/integration.sh - `make integration`: build the hub and the integration test binaries on this
# host, then run them as root inside throw-away Debian guests (bookworm, then trixie) with real
# systemd, PAM and jupyterhub-singleuser (test/vmtest/vmtest.sh; guest side: test/guest/run-tests.sh).
#
# Env: JHGO_BACKEND=vm (default: qemu VM, real cgroup v2 limits and NFS) | nspawn (quick loop,
#      limits not enforced), JHGO_TEST_RUN=REGEX (-test.run inside the guest),
#      JHGO_TEST_TIMEOUT (per binary, 40m: a loaded host runs the bookworm e2e binary past 15 min), VMTEST_TIMEOUT (whole guest run, default 3600 s here),
#      JHGO_SUITES (default "bookworm trixie": the guests to run in, in order),
#      plus the VMTEST_* variables of test/vmtest/vmtest.sh.
# The binaries are cgo builds for the host's glibc; the oldest guest is bookworm (glibc 2.36), so
# the host must not be newer than bookworm. GOAMD64=v1 because the VM's CPU model is qemu64.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
backend=${JHGO_BACKEND:-vm}
case $backend in vm) cmd=run ;; nspawn) cmd=nspawn ;; *) echo "JHGO_BACKEND must be vm or nspawn" >&2; exit 2 ;; esac
export VMTEST_TIMEOUT=${VMTEST_TIMEOUT:-3600}

say() { printf '[integration] %s\n' "$*" >&2; }
# shellcheck source=packaging/lib.sh
. packaging/lib.sh # need: install missing host packages
need gcc:gcc /usr/include/security/pam_appl.h:libpam0g-dev

io=$(mktemp -d "${TMPDIR:-/tmp}/jhgo-integration.XXXXXX")
trap 'rm -rf "$io"' EXIT
export CGO_ENABLED=1 GOAMD64=v1

has_go() { compgen -G "$1/*.go" >/dev/null; }
if has_go cmd/jupyterhub-go; then
  say "go build ./cmd/jupyterhub-go"
  go build -o "$io/jupyterhub-go" ./cmd/jupyterhub-go
else
  say "NOTE: ./cmd/jupyterhub-go does not exist yet: no hub binary in the guest"
fi
for pkg in spawner pam test/e2e test/packaging; do
  name=$(basename "$pkg")
  if ! compgen -G "$pkg/*_test.go" >/dev/null; then
    say "NOTE: ./$pkg has no tests yet: skipped"
    continue
  fi
  say "go test -c ./$pkg"
  go test -c -o "$io/$name.test" "./$pkg"
  [[ -d $pkg/testdata ]] && cp -r "$pkg/testdata" "$io/$name.testdata"
done
# The OIDC end-to-end test runs the Keycloak-shaped provider inside the guest (which has no
# network): hand over this host's node binary and the provider with its node_modules.
if command -v node >/dev/null && [[ -d $io/e2e.test || -f $io/e2e.test ]]; then
  [[ -f test/oidc-provider/node_modules/.package-lock.json ]] || (cd test/oidc-provider && npm ci --no-audit --no-fund >/dev/null)
  mkdir -p "$io/e2e.testdata"
  cp "$(readlink -f "$(command -v node)")" "$io/e2e.testdata/node"
  cp -r test/oidc-provider "$io/e2e.testdata/oidc-provider"
else
  say "NOTE: node is not installed: the OIDC end-to-end test will skip"
fi
# The Vault end-to-end test runs a real Vault dev server inside the guest: hand over the binary
# test/vault/build.sh cached (make test builds it first; ~330 MiB), if there is one.
vault_bin=${JHGO_VAULT_BIN:-${VAULT_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/jupyterhub-go-vault}/vault-${VAULT_VERSION:-v1.19.5}}
if [[ -x $vault_bin && ( -d $io/e2e.test || -f $io/e2e.test ) ]]; then
  mkdir -p "$io/e2e.testdata"
  cp "$vault_bin" "$io/e2e.testdata/vault"
  cp contrib/vault/admin-policy.hcl "$io/e2e.testdata/"
else
  say "NOTE: no Vault binary at $vault_bin (test/vault/build.sh builds it): the Vault end-to-end test will skip"
fi
# (vmtest.sh adds test/guest/*.sh and the PAM service file to every run)
# test/packaging installs the .deb in the guest as README.md's "Install" section does: build it
# (make deb) and hand it over as that test's testdata.
say "make deb"
make --no-print-directory deb
mkdir -p "$io/packaging.testdata"
cp dist/jupyterhub-go_*.deb "$io/packaging.testdata/"
[[ -n ${JHGO_TEST_RUN:-} ]] && printf 'JHGO_TEST_RUN=%q\n' "$JHGO_TEST_RUN" >> "$io/test.env"
[[ -n ${JHGO_TEST_TIMEOUT:-} ]] && printf 'JHGO_TEST_TIMEOUT=%q\n' "$JHGO_TEST_TIMEOUT" >> "$io/test.env"

# Two client generations, two guests: bookworm (jupyterhub-singleuser 3.0, classic notebook) runs
# everything; trixie (5.2.1, JupyterLab 4 on jupyter_server 2, systemd 257) runs the suites whose
# peers differ there. The .deb is built for bookworm; its install test runs on bookworm only.
suites=${JHGO_SUITES:-bookworm trixie}
rc=0 passed=0 failed=0
for suite in $suites; do
  files=("$io"/*)
  if [[ $suite != bookworm ]]; then
    files=()
    for f in "$io"/*; do
      case $(basename "$f") in packaging.test | packaging.testdata) ;; *) files+=("$f") ;; esac
    done
  fi
  say "running in the $suite guest ($backend): $(for f in "${files[@]}"; do basename "$f"; done | paste -sd' ')"
  set +e
  VMTEST_SUITE=$suite test/vmtest/vmtest.sh "$cmd" test/guest/run-tests.sh "${files[@]}" 2>&1 | tee "$io.$suite.log"
  src=${PIPESTATUS[0]}
  set -e
  line=$(grep -E '^integration: [0-9]+ passed, [0-9]+ failed' "$io.$suite.log" | tail -1 || true)
  rm -f "$io.$suite.log"
  if [[ -z $line ]]; then
    say "$suite: the guest reported no result (rc $src)"; failed=$((failed + 1))
  else
    p=${line#integration: }; p=${p%% passed*}
    f=${line#*passed, }; f=${f%% failed*}
    passed=$((passed + p)) failed=$((failed + f))
    say "$suite: $p passed, $f failed"
  fi
  ((src == 0)) || rc=$src
done
say "suites: $suites"
echo "integration: $passed passed, $failed failed"
((failed == 0)) || ((rc != 0)) || rc=1
exit "$rc"
