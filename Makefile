# The two set-up commands of the README: `make run` (the main job) and `make test`.
# Each creates the virtual environment and installs what it needs on a fresh machine.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
SPARK  := $(VENV)/.installed-spark
SUMO   := $(VENV)/.installed-sumo
FUZZ   := $(VENV)/.installed-fuzz
DOCS   := $(VENV)/.installed-docs

.PHONY: install run smoke test lint fuzz docs bench images k8s-e2e clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("corridor needs Python >= 3.11" if sys.version_info < (3, 11) else 0)'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/corridor stack jars
	$(BIN)/corridor stack etcd
	@touch $(STAMP)

install: $(STAMP)

# The cloud tier's Spark job (corridor analytics) is an optional extra: the tests need it, the
# route simulation does not. pyspark comes from PyPI as a source package (a few minutes to build).
$(SPARK): $(STAMP)
	$(BIN)/pip install -q -e '.[dev,spark]'
	@touch $(SPARK)

# SUMO (corridor simulate --traffic sumo) is an extra too: wheels with its binaries, no build.
$(SUMO): $(SPARK)
	$(BIN)/pip install -q -e '.[dev,spark,sumo]'
	@touch $(SUMO)

$(FUZZ): $(STAMP)
	$(BIN)/pip install -q -e '.[dev,fuzz]'
	@touch $(FUZZ)

$(DOCS): $(STAMP)
	$(BIN)/pip install -q -e '.[dev,docs]'
	@touch $(DOCS)

# The manual (docs/) as a site in site/; strict: a broken link or a page missing from the nav fails it.
docs: $(DOCS)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

# Coverage-guided fuzzing of the decoders (atheris), 60 s a target; an input that breaks one is kept
# under tests/fuzz/regressions/, which `make test` replays.
fuzz: $(FUZZ)
	$(BIN)/python -m tests.fuzz.run --seconds 60

run: $(STAMP)
	$(BIN)/corridor simulate bloomington-indianapolis

smoke: $(STAMP)
	$(BIN)/corridor stack smoke

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy

test: $(SPARK) $(SUMO) lint
	$(BIN)/pytest

clean:
	rm -rf $(VENV) .corridor .pytest_cache .ruff_cache .mypy_cache .hypothesis site

bench: $(STAMP)
	$(BIN)/corridor bench

# Kafka, etcd and corridor images, with Podman or Docker (whichever is present); unchanged ones are kept.
images: $(STAMP)
	$(BIN)/corridor images build

# The manifests on a real three-node Kubernetes 1.32 (built once from the Go module proxy into the
# cache; needs root, Go, containerd, runc and the CNI plugins; each node in network and mount
# namespaces of its own): dev-plain, dev-secure (its Secrets from `corridor k8s secrets`) and
# plain-quorum (three Kafka nodes, three etcd members, one of each per node), each applied, checked
# and its Job judged; a node is lost in the middle of plain-quorum's Job.
k8s-e2e: images
	$(BIN)/corridor k8s e2e --nodes 3 --overlay k8s/overlays/dev-plain --overlay k8s/overlays/dev-secure \
		--overlay k8s/overlays/plain-quorum --lose-node
