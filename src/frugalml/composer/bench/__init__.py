"""composer's benchmarks: search efficiency, aggregators, BO ablation, proxy fidelity, decoding, reproduce."""
