# Targets mirror CI. The build cache lives outside the work tree.
export PINPIPE_CACHE ?= $(HOME)/.cache/pinpipe
export CARGO_TARGET_DIR ?= $(PINPIPE_CACHE)/target

.PHONY: demo test services-up services-down lint bench bench-batch bench-stream bench-python bench-mwaa wheel wheel-dev

demo:            ## run the pipeline end to end on embedded defaults
	scripts/setup.sh
	cargo run -p pinpipe-cli -- demo

test:            ## the whole test suite against real services
	scripts/test.sh

services-up:
	scripts/services.sh up

services-down:
	scripts/services.sh down

lint:
	cargo fmt --all --check
	cargo clippy --all-targets -- -D warnings
	cargo clippy -p pinpipe-py -- -D warnings
	ruff check tests scripts python dags

wheel:           ## the release wheel (manylinux, for MWAA and pip users) into target/wheels
	scripts/wheel.sh

wheel-dev:       ## a debug wheel for this machine, as the tests use it
	scripts/wheel.sh --dev

bench:
	scripts/bench.sh

bench-batch:     ## pinpipe batch against PySpark and DuckDB, the decode floor, 30 days then day 31
	scripts/bench_batch.sh

bench-stream:    ## pinpipe stream against a bare GetRecords loop; PutRecord-to-row latency
	scripts/bench_stream.sh

bench-python:    ## pinpipe.batch/query from Python against the CLI and the deltalake package
	scripts/bench_python.sh

bench-mwaa:      ## mwaa deploy (first, unchanged) against a boto3 re-upload, on the tests' MWAA fake
	scripts/bench_mwaa.sh
