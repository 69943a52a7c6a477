#!/bin/sh
# run_fuzz.sh HARNESS SEEDS RUNS MAX_SECONDS ARTIFACTS
# One bounded libFuzzer run of HARNESS on a temporary copy of the seed
# corpus SEEDS: RUNS executions, stopped earlier after MAX_SECONDS on a
# slow machine. A crashing input is saved in ARTIFACTS (the build
# directory), never in the source tree. Uses SEEDS/../<harness>.dict when
# it exists.
set -eu
seeds=$2 runs=$3 secs=$4 artifacts=$5
name=$(basename "$1")
exe=$(cd "$(dirname "$1")" && pwd)/$name # the run happens in a temp dir
work=$(mktemp -d "${TMPDIR:-/tmp}/ls-fuzz-$name.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
mkdir "$work/corpus"
if [ -d "$seeds" ]; then
	cp "$seeds"/* "$work/corpus/" 2>/dev/null || true
fi
dict=""
if [ -f "$(dirname "$seeds")/$name.dict" ]; then
	dict="-dict=$(dirname "$seeds")/$name.dict"
fi
cd "$work"
# shellcheck disable=SC2086
"$exe" $dict -runs="$runs" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
	-print_final_stats=1 -artifact_prefix="$artifacts/$name-" corpus
