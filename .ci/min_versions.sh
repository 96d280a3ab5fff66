#!/usr/bin/env bash
# CI, second job: the training tests (all but the slow ones) against the LOWEST transformers,
# peft, accelerate, tokenizers and tensorboard that pyproject.toml's [train] extra allows, in a
# virtual environment of their own (torch 2.13, the CPU wheel on disk). Fails when a floor in
# pyproject.toml and the pins below disagree.
set -euo pipefail
cd "$(dirname "$0")/.."

PINS=(transformers==5.23.0 peft==0.18.0 accelerate==1.1.0 tokenizers==0.23.1 tensorboard==2.14.0)

python3 - "${PINS[@]}" <<'PY'
import re, sys, tomllib
extra = tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["train"]
floors = dict(re.match(r"([\w-]+)>=([\w.]+)", r).groups() for r in extra)
for pin in sys.argv[1:]:
    name, version = pin.split("==")
    if floors.get(name, "").split(".") != version.split(".")[: len(floors.get(name, "").split("."))]:
        sys.exit(f"pyproject.toml's floor {name}>={floors.get(name)} is not the pin {pin}")
print("floors match the pins:", " ".join(sys.argv[1:]))
PY

venv="$(mktemp -d)/venv"
python3 -m venv "$venv"
"$venv/bin/pip" install -q torch==2.13.0
"$venv/bin/pip" install -q -e '.[study,train]' "${PINS[@]}" pytest pytest-xdist hypothesis
"$venv/bin/python" -c "import transformers, peft, accelerate; print('lowest allowed:', \
    'transformers', transformers.__version__, 'peft', peft.__version__, \
    'accelerate', accelerate.__version__)"
# the tests that exercise transformers, peft and accelerate (labels and metrics do not)
"$venv/bin/python" -m pytest -q -n 2 -m "not slow" -p no:cacheprovider \
    tests/training/test_train_model.py tests/training/test_train_families.py \
    tests/training/test_train_run.py tests/training/test_train_throughput.py
