"""sparse24's benchmarks: quality vs dense, CPU speed, GPU checks and speed, and reproduce."""
