#!/usr/bin/env bash
# A Python with Flair 0.12.2, for the start-up row's baseline: Flair's own tuner
# (SequenceTaggerParamSelector), which Flair 0.13 removed. It reuses this project's environment for
# everything Flair 0.12.2 shares with it (torch, hyperopt, transformers, ...) and adds only
# Flair 0.12.2 and the two imports it has that 0.15 lacks:
#
#   bash benchmarks/flair012_env.sh /tmp/flair012
#   FLAIR_012_PYTHON=/tmp/flair012/bin/python FLAIR_CACHE_ROOT=... python benchmarks/bench_search.py --only startup
set -euo pipefail
target="${1:?usage: flair012_env.sh FOLDER}"
project_site="$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
python -m venv "$target"
site="$("$target/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
# after the venv's own packages, so Flair 0.12.2 wins; the project itself too (its offline GloVe reader)
printf '%s\n%s\n' "$project_site" "$(cd "$(dirname "$0")/.." && pwd)" > "$site/zz_project.pth"
"$target/bin/pip" install --quiet --no-deps flair==0.12.2
"$target/bin/pip" install --quiet gensim bpemb
"$target/bin/python" -c "import flair.hyperparameter, flair; assert flair.__version__ == '0.12.2'"
echo "$target/bin/python"
