# Two entry points for a fresh machine: `make demo` (the main job) and `make test`.
# Both build the locked environment first; nothing else needs installing by hand.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench mutate clean

$(STAMP): requirements.lock pyproject.toml
	bash scripts/bootstrap
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/prism-dr drill --demo

# Two workers (this machine's two cores); a file's tests stay on one worker, sharing its fixtures.
test: $(STAMP)
	$(VENV)/bin/lint-imports
	$(VENV)/bin/python -m pytest -n 2 --dist loadfile

lint: $(STAMP)
	$(VENV)/bin/ruff check .

bench: $(STAMP)
	$(VENV)/bin/python -m bench.restore

# Mutation testing (issue 20), by hand, not in CI: hours on 2 cores (aws.reaper about 40 min,
# verify.data 30); report in bench/MUTATION.md.
mutate: $(STAMP)
	$(PY) -m bench.mutate

clean:
	rm -rf $(VENV)
