#!/usr/bin/env bash
# The capacity simulation (issue 19): the domain flows over the in-memory store wrapped in the
# recording store, which counts the DynamoDB partitions, reads and writes each store operation
# would cost (the DynamoDB adapter's own key builders). Prints the hottest partitions, the
# per-flow costs and the SNS, SES, Lambda and API Gateway rates against their default quotas;
# its last line is `hottest partition: <W> writes/s, <R> reads/s (limits 1000 / 3000)`.
#
#   bench/capacity.sh                      the default scenario: one tenant of 10 million users
#                                          at 2,000 enrollments, 5,000 SMS and 5,000 app
#                                          sign-ins a second, beside 1,000 small tenants
#   bench/capacity.sh --policy-cache-secs 0 --seconds 1     flags change the scenario (--help)
#
# Built in release (the first build takes a few minutes; the run then takes well under a minute).
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --quiet --release -p mfa-bench --bin capacity -- "$@"
