#!/usr/bin/env bash
# `make demo`: index a real repository end to end on the local stack, then query it.
# The repository is the requests source distribution (fetched once into the data
# folder); offline, the installed kombu package's sources stand in for it. It is
# uploaded as a .tar.gz, as a CI runner would: the service reads no local folder unless
# its operator allows one (QUARRY_SOURCE_ALLOWED_ROOTS), and never its own data folder.
set -euo pipefail
BIN=${BIN:-.venv/bin}
DATA=${QUARRY_DATA_DIR:-.quarry}
DEMO="$DATA/demo"
mkdir -p "$DEMO"
if [[ ! -f "$DEMO/requests-2.32.3.tar.gz" ]]; then
  "$BIN/pip" download --quiet --no-deps --no-binary :all: requests==2.32.3 -d "$DEMO" 2>/dev/null || true
fi
if [[ -f "$DEMO/requests-2.32.3.tar.gz" ]]; then
  SOURCE="$DEMO/requests-2.32.3.tar.gz" REPO=requests
else
  KOMBU=$("$BIN/python" -c "import kombu, os; print(os.path.dirname(kombu.__file__))")
  SOURCE="$DEMO/kombu.tar.gz" REPO=kombu
  [[ -f "$SOURCE" ]] || tar -czf "$SOURCE" -C "$(dirname "$KOMBU")" --exclude=__pycache__ kombu
fi
echo "== indexing $SOURCE as '$REPO' (a progress bar per stage)"
"$BIN/quarry" index "$SOURCE" --repo "$REPO" --wait
echo
echo "== the same again: nothing changed, nothing is re-embedded"
"$BIN/quarry" index "$SOURCE" --repo "$REPO" --wait
echo
echo "== hybrid search (vector + full text, fused), each hit with its callers and callees"
"$BIN/quarry" search "send an HTTP request with a timeout and retries" --repo "$REPO" --k 5 \
  --expand callers --expand callees
echo
echo "== an identifier, through the full-text retriever alone"
"$BIN/quarry" search "get_netrc_auth" --repo "$REPO" --mode lexical --k 3 --lines 4
