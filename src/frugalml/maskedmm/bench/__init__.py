"""maskedmm's benchmarks: ours vs numpy/OpenBLAS and CSR peers, sweeps, the target table, thread runs."""
