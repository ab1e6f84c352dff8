#!/bin/bash
# run-tests.sh - the guest side of `make integration` (test/integration.sh); runs as root inside the
# vmtest guest with /mnt/io holding this script, setup.sh, pam.d-jupyterhub-go, the hub binary
# jupyterhub-go and the test binaries *.test (optionally NAME.testdata/ dirs beside NAME.test).
#
# Every *.test runs with -test.v -test.timeout 40m in its own work dir (with testdata/ if shipped),
# output streamed. The last line is `integration: N passed, N failed`, where N counts top-level
# tests (`--- PASS:` / `--- FAIL:` lines at column 0); a binary that exits non-zero without a
# top-level FAIL line (panic, timeout, bad flag) counts as one failed test. Exit 1 if any failed.
# Optional: /mnt/io/test.env (sourced; e.g. JHGO_TEST_RUN=TestSpawn to pass -test.run).
set -uo pipefail
io=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck disable=SC1091
[[ -f $io/test.env ]] && . "$io/test.env"

if ! "$io/setup.sh"; then
  echo "integration: 0 passed, 1 failed (setup.sh failed)"; exit 1
fi

# Binaries run from the local disk, not the 9p share.
bindir=/usr/local/libexec/jhgo-tests
work=/var/tmp/jhgo-tests
rm -rf "$bindir" "$work"; mkdir -p "$bindir" "$work"
if [[ -f $io/jupyterhub-go ]]; then
  install -m 0755 "$io/jupyterhub-go" /usr/local/bin/jupyterhub-go
fi
export JHGO_SYSTEMD_TESTS=1 JHGO_REAL_PAM_TESTS=1 JHGO_E2E=1 JHGO_BIN=/usr/local/bin/jupyterhub-go
# bookworm has notebook 6 and no JupyterLab/jupyter-server singleuser app; trixie's
# jupyterhub-singleuser 5 runs jupyter_server with JupyterLab, its default.
. /etc/os-release
if [[ $VERSION_CODENAME == bookworm ]]; then
  export JUPYTERHUB_SINGLEUSER_APP=${JUPYTERHUB_SINGLEUSER_APP:-notebook.notebookapp.NotebookApp}
fi
echo "run-tests.sh: Debian $VERSION_CODENAME, $(systemctl --version | head -1), jupyterhub-singleuser $(jupyterhub-singleuser --version 2>/dev/null | tail -1)"
args=(-test.v -test.timeout "${JHGO_TEST_TIMEOUT:-40m}")
[[ -n ${JHGO_TEST_RUN:-} ]] && args+=(-test.run "$JHGO_TEST_RUN")

passed=0 failed=0 skipped=0 summary=()
shopt -s nullglob
tests=("$io"/*.test)
((${#tests[@]})) || echo "run-tests.sh: no *.test binaries in $io"
for t in "${tests[@]}"; do
  name=$(basename "$t" .test)
  install -m 0755 "$t" "$bindir/$name.test"
  mkdir -p "$work/$name"
  [[ -d $io/$name.testdata ]] && cp -r "$io/$name.testdata" "$work/$name/testdata"
  echo "=== $name.test ($(date +%T), guest uptime $(cut -d' ' -f1 /proc/uptime)s)"
  start=$SECONDS
  (cd "$work/$name" && exec "$bindir/$name.test" "${args[@]}") 2>&1 | tee "$work/$name.log"
  rc=${PIPESTATUS[0]}
  p=$(grep -c '^--- PASS' "$work/$name.log")
  f=$(grep -c '^--- FAIL' "$work/$name.log")
  s=$(grep -c '^--- SKIP' "$work/$name.log")
  ((rc != 0 && f == 0)) && f=1
  passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
  summary+=("$(printf '%-16s rc=%-3s %3d passed %3d failed %3d skipped  %4ds' "$name.test" "$rc" "$p" "$f" "$s" $((SECONDS - start)))")
done

if ((failed)); then
  echo "=== journal tail (failed run)"
  journalctl -b --no-pager -o short-monotonic -n 80
fi
echo "=== summary"
((${#summary[@]})) && printf '  %s\n' "${summary[@]}"
((skipped)) && echo "  ($skipped top-level tests skipped)"
echo "integration: $passed passed, $failed failed"
((failed == 0))
