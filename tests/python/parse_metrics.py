"""Parse an OpenMetrics text exposition (stdin) with the Prometheus
project's own parser and print its samples as JSON: the e2e tests check
that meshgate's /metrics is valid and read values from it."""

import json
import sys

from prometheus_client.openmetrics.parser import text_string_to_metric_families

samples = [
    {"name": s.name, "labels": s.labels, "value": s.value}
    for family in text_string_to_metric_families(sys.stdin.read())
    for s in family.samples
]
json.dump(samples, sys.stdout)
