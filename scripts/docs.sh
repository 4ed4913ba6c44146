#!/usr/bin/env bash
# Build (default) or serve the documentation site with the .venv of the repository this script is in.
#   bash scripts/docs.sh          # = build: mkdocs build --strict into site/
#   bash scripts/docs.sh serve    # mkdocs serve on http://127.0.0.1:8000
# The tutorials are rendered from EXECUTED copies of notebooks/*.ipynb in docs/tutorials/: for each notebook,
# its copy in build/notebooks/ when one is there (CI executes them there with pytest --nbmake --overwrite), else
# this script copies it there and executes it (DYNREP_TUTORIAL_STEPS, default 20). Delete build/notebooks/ to
# re-execute notebooks edited since.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-build}"
case "$mode" in build|serve) ;; *) echo "usage: $0 [build|serve]" >&2; exit 2 ;; esac
export NO_MKDOCS_2_WARNING=1
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"   # this checkout's dynrep (notebooks, world pictures)

shopt -s nullglob
executed=() missing=()
for notebook in notebooks/*.ipynb; do
    copy="build/notebooks/$(basename "$notebook")"
    executed+=("$copy")
    [ -f "$copy" ] || missing+=("$copy")
done
if [ ${#missing[@]} -gt 0 ]; then
    mkdir -p build/notebooks
    for copy in "${missing[@]}"; do cp "notebooks/$(basename "$copy")" "$copy"; done
    DYNREP_TUTORIAL_STEPS="${DYNREP_TUTORIAL_STEPS:-20}" \
        .venv/bin/python -m pytest --nbmake --overwrite "${missing[@]}" -q -p no:cacheprovider
fi
rm -rf docs/tutorials
mkdir -p docs/tutorials
# Copies of the executed notebooks; nbconvert's HTML templates drop image/gif outputs, so each GIF becomes an
# HTML <img> of the same data.
[ ${#executed[@]} -eq 0 ] || .venv/bin/python - "${executed[@]}" <<'EOF'
import json
import sys
from pathlib import Path

for source in map(Path, sys.argv[1:]):
    notebook = json.loads(source.read_text())
    for cell in notebook["cells"]:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if "image/gif" in data:
                gif = "".join(data.pop("image/gif")).replace("\n", "")
                data["text/html"] = f'<img src="data:image/gif;base64,{gif}" alt="GIF">'
    (Path("docs/tutorials") / source.name).write_text(json.dumps(notebook, indent=1))
EOF

if [ "$mode" = serve ]; then
    exec .venv/bin/mkdocs serve
fi
.venv/bin/mkdocs build --strict
