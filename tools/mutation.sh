#!/usr/bin/env bash
# Mutation score of the core modules with mutmut 3 (pip install -r requirements-dev.txt).
#
#   tools/mutation.sh                  # every core module ([tool.mutmut] in pyproject.toml)
#   tools/mutation.sh MUTANT_NAME...   # only these mutants (names as printed by mutmut)
#
# mutmut writes a mutants/ tree next to the sources, so the run happens in a scratch
# copy of the working tree (tracked and untracked, not ignored, files); the checkout is
# never touched. The copy is kept (its path is printed) for `mutmut results` /
# `mutmut show NAME` there. Environment: JOBS (parallel mutants, default: the number of
# CPUs), KEEP_DIR (reuse this scratch directory: mutmut then only runs what changed).
# CPU-heavy (about 40 minutes on two cores); not part of CI. docs/contributing.rst lists
# the score and the equivalent mutants.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
work=${KEEP_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/sklearn_mem_mutation.XXXXXX")}
mkdir -p "$work"
(cd "$root" && git ls-files -z --cached --others --exclude-standard |
    xargs -0 cp --parents -f -t "$work" 2>/dev/null || true)

export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
cd "$work"
echo "mutation run in $work"
# the progress line is redrawn in place: keep it in a log, print its last state
mutmut run --max-children "${JOBS:-$(nproc)}" "$@" >mutmut-run.log 2>&1 || true
tail -c 300 mutmut-run.log | tr '\r' '\n' | tail -n 3
mutmut export-cicd-stats
python - <<'PY'
import json

stats = json.load(open("mutants/mutmut-cicd-stats.json"))
print(json.dumps(stats, indent=1))
tested = stats["total"] - stats.get("skipped", 0)
killed = stats["killed"] + stats.get("timeout", 0)
print(f"killed {killed} of {tested} mutants ({100 * killed / max(tested, 1):.1f}%)")
PY
echo "per mutant: cd $work && mutmut results  (mutmut show NAME for the diff)"
