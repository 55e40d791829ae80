"""Percentiles of per-request latencies recorded by `oha --db-url`.

    latency_pool.py run FILE.db        prints `name p50 p99` of one run
    latency_pool.py pool FILE.db ...   pools runs named NAME.ROUND.db and
                                       prints each name's percentiles over
                                       all its requests, what they add to
                                       `direct`'s, and RESULT lines for
                                       compare.sh

A request's latency is from its intended start (oha's latency correction:
a request held back by a slow one before it counts the wait) to its end.
"""

import os
import sqlite3
import sys
from collections import defaultdict


def latencies_ms(path):
    query = "select end - coalesce(start_latency_correction, start) from oha"
    with sqlite3.connect(path) as db:
        return sorted(row[0] * 1e3 for row in db.execute(query))


def percentile(sorted_values, q):
    return sorted_values[min(len(sorted_values) - 1, int(q * len(sorted_values)))]


def name_of(path):
    return os.path.basename(path).split(".")[0]


def run(path):
    values = latencies_ms(path)
    print("%s %.3f %.3f" % (name_of(path), percentile(values, 0.5), percentile(values, 0.99)))


def pool(paths):
    pooled = defaultdict(list)
    run_p99s = defaultdict(list)
    for path in paths:
        values = latencies_ms(path)
        pooled[name_of(path)] += values
        run_p99s[name_of(path)].append(percentile(values, 0.99))
    for values in pooled.values():
        values.sort()
    quantiles = (0.5, 0.9, 0.99, 0.999)
    base = {q: percentile(pooled["direct"], q) for q in quantiles} if "direct" in pooled else None
    for name, values in pooled.items():
        p = {q: percentile(values, q) for q in quantiles}
        line = "%-20s %6d requests  p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f ms" % (
            name, len(values), p[0.5], p[0.9], p[0.99], p[0.999])
        if base:
            line += "  added +%.3f / +%.3f ms" % (p[0.5] - base[0.5], p[0.99] - base[0.99])
        line += "  (run p99s %.3f–%.3f)" % (min(run_p99s[name]), max(run_p99s[name]))
        print(line)
        if base:
            print("RESULT proxy_latency.%s_added_p50_ms %.3f" % (name, p[0.5] - base[0.5]))
            print("RESULT proxy_latency.%s_added_p99_ms %.3f" % (name, p[0.99] - base[0.99]))


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "run":
        run(sys.argv[2])
    elif len(sys.argv) >= 3 and sys.argv[1] == "pool":
        pool(sys.argv[2:])
    else:
        sys.exit(__doc__)
