"""candle-ml: the library under the DVC stages (stages/) and the server (serve/); it imports neither."""

import os

# OpenMP threads (XGBoost's, scikit-learn's) wait for work briefly, then sleep, instead of spinning
# for milliseconds: a spinning thread holds a core another process needs, and on a shared 2-core
# machine one busy core made fitting the train stage's model 2.7x slower (18.1 s alone, 48.9 s
# beside a busy core). A 1,000-spin wait (GNU OpenMP, what Linux wheels ship): 20.9 s alone, 30.0 s
# beside it; passive (no spin, every OpenMP runtime): 25.7 s and 25.9 s (bench/shared_machine.py).
# Set before any OpenMP runtime loads, which reads them once; a user's own setting wins.
if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
    os.environ["GOMP_SPINCOUNT"] = "1000"  # libgomp: overrides the wait policy's spin count
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"  # other runtimes (LLVM's libomp on macOS)

__version__ = "0.1.0"
