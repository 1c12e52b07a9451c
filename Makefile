# puzzlemix-repro: every target sets itself up (virtual environment + pinned dependencies).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# the mixing code is many small tensor ops: one thread is fastest on small CPUs
export OMP_NUM_THREADS ?= 1

.PHONY: setup test lab bench lint format env clean reproduce gpu-check

# make reproduce PROFILE=small|smoke|mini|paper DATA_ROOT=... DEVICE=cpu|cuda JOBS=N
#                ONLY="table3 table4" SEEDS="0 1 2 3 4"
#                LAUNCHER=submitit CLUSTER=experiments/cluster.yaml  (each run a Slurm job)
PROFILE   ?= small
DATA_ROOT ?= data
DEVICE    ?= cpu
JOBS      ?= 2
LAUNCHER  ?= local
CLUSTER   ?= experiments/cluster.yaml

$(STAMP): requirements.txt pyproject.toml
	@# Fashion-MNIST, the real data set these machines can have (Debian package), where apt works
	@if ! dpkg -s dataset-fashion-mnist >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 \
		&& [ "$$(id -u)" = 0 ]; then \
		apt-get update -qq >/dev/null && apt-get install -y -qq dataset-fashion-mnist >/dev/null \
		|| echo "note: could not install dataset-fashion-mnist (Fashion-MNIST tests will skip)"; \
	fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	@# imagecorruptions pulls opencv-python; both wheels provide cv2: the contrib build goes last
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --force-reinstall \
		$$(grep '^opencv-contrib-python-headless==' requirements.txt | cut -d' ' -f1)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	$(BIN)/python -m ipykernel install --prefix $(VENV) --name python3 --display-name "Python 3 (puzzlemix-repro)" >/dev/null
	touch $(STAMP)

setup: $(STAMP)  ## create .venv with the pinned dependencies and the package

test: $(STAMP)  ## pytest + the notebooks through nbval (lax: their asserts are the tests)
	@# runs go to a temporary folder, never into experiments/runs (tests/conftest.py checks)
	PUZZLE_RUN_ROOT=$$(mktemp -d) $(BIN)/python -m pytest tests notebooks --nbval-lax --nbval-current-env -p no:cacheprovider

reproduce: $(STAMP)  ## the profile's experiment notebooks (papermill), resumable, then the report
	$(BIN)/python -m puzzle_core.reproduce --profile $(PROFILE) --data-root $(DATA_ROOT) \
		--device $(DEVICE) --jobs $(JOBS) $(if $(ONLY),--only $(ONLY)) $(if $(SEEDS),--seeds $(SEEDS)) \
		--launcher $(LAUNCHER) $(if $(filter submitit,$(LAUNCHER)),--cluster $(CLUSTER))

# make gpu-check: the CUDA tests and vanilla vs Puzzle Mix step timings on one GPU (<= 10 min),
# a JSON under experiments/published/gpu/.  DEVICE=cpu runs it small, without a GPU.
GPU_DEVICE := $(if $(filter command line environment,$(origin DEVICE)),$(DEVICE),cuda)
GPU_CHECK_ARGS ?= $(if $(filter cpu,$(GPU_DEVICE)),--batch 8 --steps 2 --warmup 1 --settings fp32 fp32-cl)

gpu-check: $(STAMP)  ## CUDA tests + per-epoch cost of Puzzle Mix vs vanilla on a GPU
	$(BIN)/python -m puzzle_core.gpu_check --device $(GPU_DEVICE) $(GPU_CHECK_ARGS)

lab: $(STAMP)  ## JupyterLab with the project kernel
	$(BIN)/jupyter lab --notebook-dir=notebooks

bench: $(STAMP)  ## timings of the mixing stages, side by side
	$(BIN)/python -m puzzle_core.bench

lint: $(STAMP)  ## ruff + environment.yml in sync with requirements.txt
	$(BIN)/ruff check puzzle_core tests notebooks
	$(BIN)/ruff format --check puzzle_core tests notebooks
	$(BIN)/python -m puzzle_core.envfile --check

format: $(STAMP)
	$(BIN)/ruff format puzzle_core tests notebooks
	$(BIN)/ruff check --fix puzzle_core tests notebooks

env: $(STAMP)  ## regenerate environment.yml from requirements.txt
	$(BIN)/python -m puzzle_core.envfile

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
