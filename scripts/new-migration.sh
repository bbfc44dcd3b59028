#!/usr/bin/env bash
# Writes the next numbered schema migration: what the SQLModel tables have that the migrations
# in assistant/migrations/versions/ do not yet create. Read the file it writes before committing;
# `./dev test` then checks that migrating an empty database gives exactly the models' schema.
#   scripts/new-migration.sh "residents get a nickname"
#   scripts/new-migration.sh --initial   # rewrite 0001 from scratch (only before any real
#                                        # database was migrated: it deletes every revision)
set -euo pipefail
cd "$(dirname "$0")/.."
initial=""
if [ "${1:-}" = "--initial" ]; then
  initial=1
  shift
fi
message="${1:-}"
if [ -z "$message" ]; then
  [ -n "$initial" ] && message="initial schema" || {
    echo "usage: $0 \"what changes\" | $0 --initial" >&2
    exit 2
  }
fi
exec .venv/bin/python - "$message" "$initial" <<'PY'
import sys

from assistant.store.migrate import new_revision

path = new_revision(sys.argv[1], initial=bool(sys.argv[2]))
print(path or "nothing to do: the migrations already create the models' schema")
PY
