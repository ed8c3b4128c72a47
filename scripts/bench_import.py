"""Benchmark: how long ``import pylme`` takes, against the libraries a fit cannot do without.

Each measurement is a fresh Python process (nothing cached in memory but the operating system's
file cache). For ``import pylme`` and for the floor (numpy, pandas, scipy.sparse, scipy.linalg,
scikit-sparse's CHOLMOD and nlopt, which every fit uses) it prints the median wall-clock and CPU
seconds of ``--repeat`` runs and their ratio, and numpy with pandas alone (the part no
pandas-based library avoids), with the load average beside them. The goal is ``import pylme``
under 0.5 s on an idle machine; on a loaded one compare the ratio, as both numbers grow together.

    .venv/bin/python scripts/bench_import.py --repeat 11

The processes read compiled bytecode, as a pip-installed pylme does (pip compiles it at install
time): PYTHONDONTWRITEBYTECODE is dropped and PYTHONPYCACHEPREFIX points at a temporary folder,
filled by one warm-up run of each statement. Without it, an environment that sets
PYTHONDONTWRITEBYTECODE compiles pylme's sources on every import (about 0.3 s of ``compile``),
which a user never pays.

``python -X importtime -c "import pylme"`` shows where the time goes, module by module.
No timing is asserted in the test suite; tests/test_packaging.py checks which modules load.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile

FLOOR = "import numpy, pandas, scipy.sparse, scipy.linalg, sksparse.cholmod, nlopt"
PROBE = """
import time
t, c = time.perf_counter(), time.process_time()
{statement}
print(time.perf_counter() - t, time.process_time() - c)
"""


def measure(statement: str, repeat: int, env: dict[str, str]) -> tuple[float, float]:
    """Median wall-clock and CPU seconds of ``statement`` in ``repeat`` fresh processes, after
    one warm-up process that writes the bytecode."""
    subprocess.run([sys.executable, "-c", statement], check=True, env=env)
    walls, cpus = [], []
    for _ in range(repeat):
        out = subprocess.run([sys.executable, "-c", PROBE.format(statement=statement)],
                             capture_output=True, text=True, check=True, env=env).stdout.split()
        walls.append(float(out[0]))
        cpus.append(float(out[1]))
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=11, help="fresh processes per measurement")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as cache:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = cache
        rows = [("import pylme", measure("import pylme", args.repeat, env)),
                ("floor", measure(FLOOR, args.repeat, env)),
                ("numpy+pandas", measure("import numpy, pandas", args.repeat, env))]
    print(f"{'':14}{'wall s':>8}{'cpu s':>8}   (medians of {args.repeat} processes)")
    for name, (wall, cpu) in rows:
        print(f"{name:14}{wall:8.3f}{cpu:8.3f}")
    (pw, pc), (fw, fc) = rows[0][1], rows[1][1]
    print(f"{'pylme / floor':14}{pw / fw:8.2f}{pc / fc:8.2f}")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


if __name__ == "__main__":
    main()
