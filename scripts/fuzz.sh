#!/usr/bin/env bash
# Runs every Fuzz target of the module for the given time each (e.g. 3s).
set -euo pipefail
fuzztime=${1:-30s}
cd "$(dirname "$0")/.."
status=0
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	grep -lq '^func Fuzz' "$dir"/*_test.go 2>/dev/null || continue
	for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz'); do
		echo "fuzz $pkg $target ($fuzztime)"
		for attempt in 1 2; do
			if go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$pkg" >/tmp/fuzz.$$.log 2>&1; then
				break
			fi
			# A finding always writes its input to testdata/fuzz. Without one,
			# the fuzzing engine itself failed (on a loaded machine its workers
			# can miss a deadline): try once more before calling it a failure.
			if grep -q 'Failing input written' /tmp/fuzz.$$.log || [ $attempt = 2 ]; then
				cat /tmp/fuzz.$$.log
				status=1
				break
			fi
			echo "  fuzzing engine failed without a finding; retrying"
		done
	done
done
rm -f /tmp/fuzz.$$.log
exit $status
