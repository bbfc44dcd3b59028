#!/usr/bin/env bash
# Audits the pinned dependencies in ./.venv for known vulnerabilities with pip-audit.
#   bash scripts/audit-deps.sh        (CI runs it before the tests)
#
# Exit status: 1 when a vulnerability is found; 0 otherwise. When the vulnerability
# service cannot be reached (no internet, a package mirror without PyPI's per-version
# JSON API), it prints a warning and exits 0: reporting, not gating.
#
# pip-audit lives in its own small venv (inside .venv, so git ignores it and removing
# .venv removes it), so its own dependencies neither change nor join the audited set.
# It reads the versions pinned in constraints.txt (what ./dev installs) and checks each pinned
# version as is (--no-deps --disable-pip: nothing is resolved or downloaded).
#
# Settings (environment): AUDIT_SERVICE=pypi|osv (default pypi: PyPI's JSON API,
# https://pypi.org/pypi/<name>/<version>/json), AUDIT_TIMEOUT seconds per request (15).
set -euo pipefail
cd "$(dirname "$0")/.."

PIP_AUDIT_VERSION=2.10.1
TOOL=.venv/pip-audit
SERVICE=${AUDIT_SERVICE:-pypi}
TIMEOUT=${AUDIT_TIMEOUT:-15}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

warn() { printf 'audit-deps: WARNING: %s\n' "$*" >&2; }

if [ ! -x .venv/bin/python ]; then
  echo "audit-deps: no .venv here; run ./dev test (or ./dev run) first" >&2
  exit 2
fi

if [ ! -x "$TOOL/bin/pip-audit" ] || ! "$TOOL/bin/pip-audit" --version 2>/dev/null | grep -q "$PIP_AUDIT_VERSION"; then
  .venv/bin/python -m venv "$TOOL"
  if ! "$TOOL/bin/python" -m pip install --quiet --disable-pip-version-check \
      "pip-audit==$PIP_AUDIT_VERSION" 2> "$WORK/install.txt"; then
    tail -n 5 "$WORK/install.txt" >&2
    warn "could not install pip-audit $PIP_AUDIT_VERSION (no package index?); dependencies NOT audited"
    exit 0
  fi
fi

grep '==' constraints.txt > "$WORK/requirements.txt"  # the pinned set that ./dev installs
count=$(grep -c '==' "$WORK/requirements.txt" || true)

# One quick request first: an unreachable service would otherwise cost a timeout per package.
probe() {
  "$TOOL/bin/python" - "$SERVICE" "$WORK/requirements.txt" "$TIMEOUT" <<'EOF'
import json, sys, urllib.error, urllib.request

service, requirements, timeout = sys.argv[1], sys.argv[2], float(sys.argv[3])
name, _, version = next(l.strip() for l in open(requirements) if "==" in l).partition("==")
if service == "osv":
    body = json.dumps({"package": {"name": name, "ecosystem": "PyPI"}, "version": version})
    request = urllib.request.Request("https://api.osv.dev/v1/query", body.encode(),
                                     {"Content-Type": "application/json"})
    url = request.full_url
else:
    url = f"https://pypi.org/pypi/{name}/{version}/json"
    request = urllib.request.Request(url)
try:
    with urllib.request.urlopen(request, timeout=timeout) as response:
        json.load(response)
except (urllib.error.URLError, OSError, ValueError) as exc:
    print(f"{url} -> {getattr(exc, 'code', '') or exc}")
    sys.exit(1)
EOF
}

if ! reason=$(probe); then
  warn "the $SERVICE vulnerability service is not usable from here ($reason)."
  warn "$count pinned packages were NOT audited. Run this script where https://pypi.org"
  warn "(or https://api.osv.dev with AUDIT_SERVICE=osv) answers."
  exit 0
fi

status=0
timeout 900 "$TOOL/bin/pip-audit" --requirement "$WORK/requirements.txt" --no-deps --disable-pip \
  --vulnerability-service "$SERVICE" --timeout "$TIMEOUT" --progress-spinner off \
  --format json --output "$WORK/report.json" 2> "$WORK/stderr.txt" || status=$?
if [ ! -s "$WORK/report.json" ]; then
  warn "pip-audit gave no report (exit $status); dependencies NOT audited:"
  tail -n 5 "$WORK/stderr.txt" >&2
  exit 0
fi

"$TOOL/bin/python" - "$WORK/report.json" "$count" <<'EOF'
import json, sys

report, count = json.load(open(sys.argv[1])), int(sys.argv[2])
dependencies = report.get("dependencies", [])
skipped = [d for d in dependencies if d.get("skip_reason")]
found = [(d, v) for d in dependencies for v in d.get("vulns", [])]
for dependency, vuln in found:
    fixes = ", ".join(vuln.get("fix_versions") or []) or "no fix yet"
    print(f"VULNERABLE {dependency['name']} {dependency.get('version', '?')}: "
          f"{vuln['id']} (fixed in: {fixes})")
if skipped:
    print(f"audit-deps: WARNING: {len(skipped)} of {count} packages could not be audited, "
          f"e.g. {skipped[0]['name']}: {skipped[0]['skip_reason']}", file=sys.stderr)
audited = len(dependencies) - len(skipped)
print(f"audit-deps: {audited} packages audited, {len(found)} known vulnerabilities")
sys.exit(1 if found else 0)
EOF
