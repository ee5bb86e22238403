"""gridflow's benchmarks: each figure measured against the raw capability of the same servers."""
