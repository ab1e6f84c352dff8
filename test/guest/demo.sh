#!/bin/bash
# demo.sh - guest side of `vmtest.sh demo HUB [config.toml]`: create the users (setup.sh), write a
# minimal hub config (or use /mnt/io/config.toml if the caller passed one), run the hub in the
# foreground on 0.0.0.0:8000 (the host forwards 127.0.0.1:$DEMO_PORT to it). Logs go to the
# host's terminal. Login: demo / demo (also alice / alice-pw, bob / bob-pw), and admin with the
# password the host wrote to admin-password.
set -euo pipefail
io=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
"$io/setup.sh"
if [[ -f $io/admin-password ]] && ! id admin >/dev/null 2>&1; then
  useradd -m -s /bin/bash admin
  echo "admin:$(cat "$io/admin-password")" | chpasswd
fi
install -m 0755 "$io/jupyterhub-go" /usr/local/bin/jupyterhub-go
mkdir -p /etc/jupyterhub-go /var/lib/jupyterhub-go
if [[ -f $io/config.toml ]]; then
  install -m 0644 "$io/config.toml" /etc/jupyterhub-go/config.toml
else
  cat > /etc/jupyterhub-go/config.toml <<'TOML'
[hub]
listen = "0.0.0.0:8000"
data_dir = "/var/lib/jupyterhub-go"
[auth]
admin_users = ["admin"]
TOML
fi
echo "demo.sh: /etc/jupyterhub-go/config.toml:"; sed 's/^/  /' /etc/jupyterhub-go/config.toml
# bookworm has notebook 6 and no JupyterLab: the single-user server must run the classic app
. /etc/os-release
if [[ $VERSION_CODENAME == bookworm ]]; then
  export JUPYTERHUB_SINGLEUSER_APP=${JUPYTERHUB_SINGLEUSER_APP:-notebook.notebookapp.NotebookApp}
fi
exec /usr/local/bin/jupyterhub-go serve --config /etc/jupyterhub-go/config.toml
