#!/usr/bin/env bash
# npm test with every core saturated: one busy-loop process per core (SLUICE_STRESS_HOGS to
# change the count) runs beside the suite, so a test that lets a short real delay race an
# assertion fails here rather than on a loaded CI machine. The hogs are ended by their PIDs
# when the suite ends, however it ends (pass, fail, Ctrl-C). Extra arguments go to vitest.
set -uo pipefail
cd "$(dirname "$0")/.."

hogs=${SLUICE_STRESS_HOGS:-$(nproc)}
pids=()
stop_hogs() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
}
trap stop_hogs EXIT
trap 'stop_hogs; exit 130' INT TERM

for ((i = 0; i < hogs; i++)); do
  node -e 'for (;;) {}' &
  pids+=("$!")
done
echo "test:stress: ${hogs} CPU hogs running (pids ${pids[*]}) beside npm test" >&2

npm test -- "$@"
status=$?
stop_hogs
echo "test:stress: npm test exited ${status}; hogs stopped" >&2
exit "$status"
