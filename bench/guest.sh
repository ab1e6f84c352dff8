#!/bin/bash
# guest.sh - runs inside the bench guest (run.sh enters it with nsenter): sets up the users and
# both hubs with equal settings, and (re)starts them as transient units.
set -euo pipefail
GO=127.0.0.1:18100   # jupyterhub-go: pages, API and router on one port
PY=127.0.0.1:18000   # JupyterHub: CHP's public port; the hub is on 18081, CHP's API on 18001
wait_http() { # URL UNIT: until it answers 200; the unit's log if it does not
  for _ in $(seq 600); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "guest.sh: $1 does not answer; the log of $2:" >&2; journalctl -u "$2" -n 40 --no-pager >&2; return 1
}
start_go() {
  systemd-run -q --unit=gohub -p StandardOutput=journal /bench/jupyterhub-go --config /etc/gohub.toml serve
}
start_py() {
  systemd-run -q --unit=pyhub -p WorkingDirectory=/var/lib/pyhub /usr/bin/jupyterhub -f /etc/pyhub_config.py
}
# The command both hubs spawn: bench/backend for every figure but the singleuser spawn, which
# switches both to /usr/bin/jupyterhub-singleuser (set-cmd) and back.
SINGLEUSER=/usr/bin/jupyterhub-singleuser
set_cmd() { # go|py PATH: that hub spawns PATH from now on (restarted: both read it at start only)
  case $1 in
  go) sed -i "s|^cmd = .*|cmd = [\"$2\"]|" /etc/gohub.toml
      systemctl stop gohub; start_go; wait_http "http://$GO/hub/api/" gohub ;;
  py) sed -i "s|^c.Spawner.cmd = .*|c.Spawner.cmd = [\"$2\"]|" /etc/pyhub_config.py
      systemctl stop pyhub; start_py; wait_http "http://$PY/hub/api/" pyhub ;;
  esac
}
case $1 in
setup)
  gotok=$2 pytok=$3
  # alice for the data path; spawn01..spawn20 for the concurrent spawns
  for u in alice $(seq -f 'spawn%02g' 1 20); do id "$u" >/dev/null 2>&1 || useradd -m -s /bin/bash "$u"; done
  install -m 0644 /bench/pam.d-jupyterhub-go /etc/pam.d/jupyterhub-go
  install -d -m 0700 /var/lib/gohub /var/lib/pyhub
  (umask 077; printf '%s\n' "$gotok" > /var/lib/gohub/bench-token)
  cat > /etc/gohub.toml <<T
[hub]
listen = "$GO"
data_dir = "/var/lib/gohub"
log_level = "${BENCH_GO_LOG_LEVEL:-warn}"
api_page_default_limit = 50
api_page_max_limit = 1000
[spawner]
cmd = ["/bench/backend"]
[[service]]
name = "bench"
api_token_file = "/var/lib/gohub/bench-token"
roles = ["admin"]
T
  cat > /etc/pyhub_config.py <<T
c.JupyterHub.bind_url = "http://$PY"
c.JupyterHub.hub_bind_url = "http://127.0.0.1:18081"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:18001"
c.JupyterHub.db_url = "sqlite:////var/lib/pyhub/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "/var/lib/pyhub/cookie_secret"
c.JupyterHub.log_level = "WARN"
c.ConfigurableHTTPProxy.log_level = "warn"
c.JupyterHub.api_page_default_limit = 50
c.JupyterHub.api_page_max_limit = 1000
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allow_all = True
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = ["/bench/backend"]
c.JupyterHub.services = [{"name": "bench", "api_token": "$pytok"}]
c.JupyterHub.load_roles = [{"name": "admin", "services": ["bench"]}]
T
  start_go; start_py
  wait_http "http://$GO/hub/api/" gohub; wait_http "http://$PY/hub/api/" pyhub
  for u in alice; do
    curl -sf -o /dev/null -X POST -H "Authorization: token $gotok" "http://$GO/hub/api/users/$u" || true
    curl -sf -o /dev/null -X POST -H "Authorization: token $pytok" "http://127.0.0.1:18081/hub/api/users/$u" || true
  done
  ;;
start-go) start_go ;;
start-py) start_py ;;
set-cmd) # go|py backend|singleuser
  case $3 in backend) set_cmd "$2" /bench/backend ;; singleuser) set_cmd "$2" "$SINGLEUSER" ;; esac ;;
own-singleuser) # start|t0|stop PORT: jupyterhub-singleuser as alice on its own, without a hub
  # spawning it, with the environment a hub gives it (a token no hub knows: it asks nothing at
  # start-up). The guest's systemd runs it, as the hubs' servers run there (entered with nsenter
  # alone it would stay in the host's cgroup and get CPU as the host's processes do); its clock
  # starts at exec, written down by the unit itself, so the unit's own start is not counted.
  case $2 in
  start) systemd-run -q --unit="own-singleuser-$3" -p StandardOutput=journal /bench/guest.sh own-singleuser-exec "$3" ;;
  t0) cat "/run/own-singleuser-$3.t0" ;;
  stop) systemctl stop "own-singleuser-$3" 2>/dev/null || true; rm -f "/run/own-singleuser-$3.t0" ;;
  esac ;;
own-singleuser-exec) # PORT: the unit's command. setpriv, as a spawner's setuid, opens no PAM session.
  cd /home/alice
  date +%s%N > "/run/own-singleuser-$2.t0"
  exec setpriv --reuid=alice --regid=alice --init-groups env -i HOME=/home/alice USER=alice SHELL=/bin/bash PATH=/usr/bin:/bin \
    JUPYTERHUB_API_TOKEN=bench-own-start JUPYTERHUB_API_URL="http://$GO/hub/api" \
    JUPYTERHUB_CLIENT_ID=jupyterhub-user-alice JUPYTERHUB_USER=alice JUPYTERHUB_SERVER_NAME= \
    JUPYTERHUB_BASE_URL=/ JUPYTERHUB_SERVICE_PREFIX=/user/alice/ \
    JUPYTERHUB_SERVICE_URL="http://127.0.0.1:$2/user/alice/" \
    JUPYTERHUB_OAUTH_CALLBACK_URL=/user/alice/oauth_callback "$SINGLEUSER" ;;
fill-go) # N TOKEN: create users in pages of 1,000 until the hub has N
  n=$2 tok=$3 i=0
  while ((i < n)); do
    names=$(seq -f "fill%05g" "$i" "$((i + 999 < n - 1 ? i + 999 : n - 1))" | sed 's/.*/"&"/' | paste -sd,)
    curl -sf -o /dev/null -X POST -H "Authorization: token $tok" -d "{\"usernames\": [$names]}" "http://$GO/hub/api/users"
    i=$((i + 1000))
  done ;;
fill-py) # N: straight into the database through JupyterHub's own ORM (its API would take minutes)
  python3 - "$2" <<'P'
import sys
from jupyterhub import orm
db = orm.new_session_factory("sqlite:////var/lib/pyhub/jupyterhub.sqlite")()
have = {n for (n,) in db.query(orm.User.name)}
db.add_all([orm.User(name=f"fill{i:05d}") for i in range(int(sys.argv[1])) if f"fill{i:05d}" not in have])
db.commit()
P
  ;;
*) echo "guest.sh: unknown command $1" >&2; exit 2 ;;
esac
