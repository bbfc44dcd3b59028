#!/usr/bin/env bash
# Installs what the end-to-end tests need beyond Python packages (nothing yet beyond the venv).
set -euo pipefail
exit 0
