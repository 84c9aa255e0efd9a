#!/usr/bin/env bash
# Mutation score of the core modules with mutmut 3 (pip install -r requirements-dev.txt).
#
#   tools/mutation.sh                  # every core module ([tool.mutmut] in pyproject.toml)
#   tools/mutation.sh MUTANT_NAME...   # only these mutants (names as printed by mutmut)
#   tools/mutation.sh --modules sklearn_mem/metrics.py sklearn_mem/neighbors.py
#                                      # only these modules (only_mutate of the copy)
#   tools/mutation.sh --modules ... --tests tests/test_metrics.py ... [-- MUTANT_NAME...]
#                                      # and this test selection instead of the configured one
#
# mutmut writes a mutants/ tree next to the sources, so the run happens in a scratch
# copy of the working tree (tracked and untracked, not ignored, files); the checkout is
# never touched. The copy is kept (its path is printed) for `mutmut results` /
# `mutmut show NAME` there. Environment: JOBS (parallel mutants, default: the number of
# CPUs), KEEP_DIR (reuse this scratch directory: mutmut then only runs what changed).
# RETRIES (reruns after mutmut stops on a stray process, default 30).
# CPU-heavy (about 40 minutes on two cores); not part of CI. docs/contributing.rst lists
# the score and the equivalent mutants.
set -euo pipefail

modules=() tests=()
while [[ $# -gt 0 ]]; do
    case $1 in
    --modules | --tests)
        which=$1
        shift
        while [[ $# -gt 0 && $1 != --* ]]; do
            if [[ $which == --modules ]]; then modules+=("$1"); else tests+=("$1"); fi
            shift
        done
        ;;
    --)
        shift
        break
        ;;
    *) break ;;
    esac
done

root=$(cd "$(dirname "$0")/.." && pwd)
work=${KEEP_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/sklearn_mem_mutation.XXXXXX")}
mkdir -p "$work"
(cd "$root" && git ls-files -z --cached --others --exclude-standard |
    xargs -0 cp --parents -f -t "$work" 2>/dev/null || true)

# --modules / --tests: rewrite the copy's [tool.mutmut] lists (the checkout's stay as they are)
if [[ ${#modules[@]} -gt 0 || ${#tests[@]} -gt 0 ]]; then
    python - "$work/pyproject.toml" "${modules[*]:-}" "${tests[*]:-}" <<'PY'
import re
import sys

path, modules, tests = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
text = open(path).read()
for key, values in (("only_mutate", modules), ("pytest_add_cli_args_test_selection", tests)):
    if values:
        listed = "[\n" + "".join(f'    "{v}",\n' for v in values) + "]"
        text, n = re.subn(rf"^{key} = \[.*?\]", lambda m: f"{key} = {listed}", text,
                          count=1, flags=re.S | re.M)
        if n != 1:
            sys.exit(f"no {key} list in {path}")
open(path, "w").write(text)
PY
fi

export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 MKL_NUM_THREADS=1
cd "$work"
echo "mutation run in $work"
# the progress line is redrawn in place: keep it in a log, print its last state
# mutmut 3.8.1 stops with a KeyError when it reaps a process that is not one of its
# mutants (e.g. a loky worker left by a mutant killed for its timeout); a rerun
# resumes where it stopped, so rerun until it ends without a traceback
for attempt in $(seq 1 "${RETRIES:-30}"); do
    mutmut run --max-children "${JOBS:-$(nproc)}" "$@" >mutmut-run.log 2>&1 || true
    grep -q '^Traceback' mutmut-run.log || break
    echo "mutmut stopped ($(tail -n 1 mutmut-run.log)); resuming (attempt $((attempt + 1)))"
done
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
