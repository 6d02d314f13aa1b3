"""Speed, memory and quality benchmarks, each run as a module from the repository root:

    python -m benchmarks.bench_model --threads 2
    python -m benchmarks.bench_opennmt --threads 2 --steps 200

Each prints a table with a ratio against a baseline run in the same process or run, names the CPU
and fixes `torch.set_num_threads` (`--threads`). `benchmarks/README.md` holds the figures.
"""
