#!/usr/bin/env bash
# The library as its users install it: the wheel built from this checkout, in a fresh virtual environment
# with the oldest torch and torchvision pyproject.toml declares, then the library's tests from there
# (not the chapters', not the notebooks': `-m "(not book and not slow) or outside"`), with a model cache
# of their own so every model is trained under that torch.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
oldest() {  # the lower bound of a dependency in pyproject.toml: torch>=2.4,<2.12 -> 2.4.*
  python3 -c "import re, sys, tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; \
print(next(re.search(r'>=([0-9.]+)', d).group(1) for d in deps if re.match(sys.argv[1] + r'\b', d)) + '.*')" "$1"
}
torch_spec="torch==$(oldest torch)"
vision_spec="torchvision==$(oldest torchvision)"
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q --upgrade pip
"$work/venv/bin/pip" wheel -q --no-deps -w "$work/dist" .
wheel=$(ls "$work"/dist/advlab-*.whl)
"$work/venv/bin/pip" install -q "$torch_spec" "$vision_spec" "$wheel[run]" pytest torchattacks==3.5.1
(cd "$work" && "$work/venv/bin/python" -c "import advlab, torch, torchvision; assert 'site-packages' in advlab.__file__; \
print(f'wheel: advlab from {advlab.__file__}, torch {torch.__version__}, torchvision {torchvision.__version__}')")
ADVLAB_CACHE="$work/cache" "$work/venv/bin/python" -m pytest -p no:cacheprovider -m "(not book and not slow) or outside" tests
