#!/usr/bin/env bash
# Generate the Docker secrets docker-compose.yml reads, once, into ./secrets (git-ignored).
# Re-running keeps existing secrets. Usage: scripts/compose-secrets.sh
set -euo pipefail
cd "$(dirname "$0")/.."
umask 077
mkdir -p secrets
gen() { python3 -c 'import secrets; print(secrets.token_urlsafe(24))'; }
[ -s secrets/postgres_password ] || gen > secrets/postgres_password
[ -s secrets/neo4j_password ] || gen > secrets/neo4j_password
[ -s secrets/flower_password ] || gen > secrets/flower_password
[ -s secrets/webhook_secret ] || gen > secrets/webhook_secret
[ -s secrets/grafana_admin_password ] || gen > secrets/grafana_admin_password
# 32 random bytes, URL-safe base64: seals the tenants' git credentials. Never regenerate
# it while credentials are stored (they would no longer decrypt): rotate it by moving the
# old one to QUARRY_CREDENTIALS_PREVIOUS_KEYS (README, Private repositories).
[ -s secrets/credentials_key ] || python3 -c 'import base64, os; print(base64.urlsafe_b64encode(os.urandom(32)).decode())' > secrets/credentials_key
printf 'postgresql://quarry:%s@postgres:5432/quarry\n' "$(cat secrets/postgres_password)" > secrets/postgres_dsn
printf 'neo4j/%s\n' "$(cat secrets/neo4j_password)" > secrets/neo4j_auth
# Empty until `quarry token create` fills it (README, Metrics): Prometheus starts, and
# the API answers its scrapes 401 until then.
[ -e secrets/prometheus_api_token ] || : > secrets/prometheus_api_token
echo "secrets written to $(pwd)/secrets"
