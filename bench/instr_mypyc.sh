#!/bin/bash
# Throwaway (the mypyc probe): /work/instr.sh with the source tree as an argument, so that
# builds of several module sets can be measured side by side with this worktree's venv.
# usage: bench/instr_mypyc.sh SRCDIR [--close] -> instructions per request
cd "$(dirname "$0")/.."
src=$1; shift
run() { local n=$1; shift; PYTHONHASHSEED=0 PYTHONPATH=$src valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null .venv/bin/python bench/hotpath.py --requests $n "$@" 2>&1 | grep "I *refs" | tr -d ',' | awk '{print $NF}'; }
a=$(run 5000 "$@"); b=$(run 15000 "$@")
echo "$(( (b - a) / 30000 ))"
