# Thin wrappers: each target is one command.
.PHONY: demo test lint bench
demo:
	./scripts/demo
test:
	./scripts/test
lint:
	.venv/bin/ruff check src tests bench && .venv/bin/mypy
bench:
	.venv/bin/python bench/bench_snapshot.py --backend both && .venv/bin/python bench/bench_events.py --backend both && .venv/bin/python bench/bench_hl7.py --backend both
