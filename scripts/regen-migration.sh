#!/usr/bin/env bash
# Rebuild the one initial migration from the models against an empty SQLite database.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
rm -f oml_server/migrations/versions/*.py
# A throw-away database on a developer's machine: the development secrets are asked for.
OML_ENV=development DATABASE_URL="sqlite:///$tmp/empty.sqlite3" ARI_ENABLED=0 \
  .venv/bin/oml-server db migrate -m "initial schema"
rm -rf "$tmp"
