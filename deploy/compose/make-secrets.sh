#!/bin/sh
# Makes the compose deployment's secrets (deploy/compose.yaml), once, as files only their owner
# reads: the Redis password, the broker's Redis URL holding it, an admin API token and the
# Grafana admin password. Existing files are kept (run it again after deleting one to renew it).
set -eu
dir="$(dirname "$0")/secrets"
umask 077
mkdir -p "$dir"
new() { python3 -c 'import secrets; print(secrets.token_urlsafe(32))'; }
[ -s "$dir/redis-password" ] || new > "$dir/redis-password"
# token_urlsafe needs no quoting in a URL
[ -s "$dir/redis-url" ] || printf 'redis://superfed:%s@redis:6379/0\n' "$(cat "$dir/redis-password")" > "$dir/redis-url"
[ -s "$dir/admin-token" ] || new > "$dir/admin-token"
[ -s "$dir/grafana-admin-password" ] || new > "$dir/grafana-admin-password"
# the containers run as other uids (redis 999, superfed 10001): compose bind-mounts these files,
# so they must be readable by them; keep the folder itself closed to other users
chmod 0700 "$dir" && chmod 0644 "$dir"/*
echo "secrets in $dir (the admin token: $dir/admin-token)"
