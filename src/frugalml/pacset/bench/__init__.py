"""pacset's measurements: cold-query latency against peers, fresh-process runs, layouts beside the paper."""
