"""cleave runtime: a gRPC parameter server and device workers that train a model from GEMM tiles."""
