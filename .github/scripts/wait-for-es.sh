#!/usr/bin/env bash
# Wait (up to 5 minutes) for the Elasticsearch at $1 to be yellow or green, then print its banner.
set -euo pipefail
url=$1
for _ in $(seq 1 60); do
  if curl -fsS "$url/_cluster/health?wait_for_status=yellow&timeout=5s"; then
    echo
    curl -fsS "$url/"
    exit 0
  fi
  sleep 5
done
echo "Elasticsearch at ${url%%@*}... did not come up" >&2
exit 1
