#!/usr/bin/env bash
# `make demo`: index a real repository end to end on the local stack, then query it.
# The repository is the requests source distribution (fetched once into the data
# folder); offline, the installed kombu package's sources stand in for it.
set -euo pipefail
BIN=${BIN:-.venv/bin}
DATA=${QUARRY_DATA_DIR:-.quarry}
DEMO="$DATA/demo"
mkdir -p "$DEMO"
if [[ ! -d "$DEMO/requests-2.32.3" ]]; then
  if "$BIN/pip" download --quiet --no-deps --no-binary :all: requests==2.32.3 -d "$DEMO" 2>/dev/null; then
    tar -xzf "$DEMO/requests-2.32.3.tar.gz" -C "$DEMO"
  fi
fi
if [[ -d "$DEMO/requests-2.32.3" ]]; then
  SOURCE="$DEMO/requests-2.32.3" REPO=requests
else
  SOURCE=$("$BIN/python" -c "import kombu, os; print(os.path.dirname(kombu.__file__))") REPO=kombu
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
