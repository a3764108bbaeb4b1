# Shared by scripts/demo and scripts/test: make .venv with a Python >= 3.11 and install into it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
  echo "WardWatch needs Python 3.11 or newer (found: $("$PYTHON" --version 2>&1))." >&2
  echo "Install it (Debian/Ubuntu: apt-get install python3 python3-venv) or set PYTHON=..." >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
install_project() {  # $1: extras, e.g. "" or "[dev]"
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".$1"
}
