#!/bin/sh
# One command: installs nginx/haproxy/wrk if missing and prints one table (see bench/bench_proxy.py).
cd "$(dirname "$0")/.." && exec "${PYTHON:-.venv/bin/python}" bench/bench_proxy.py "$@"
