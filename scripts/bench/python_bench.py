"""Side by side, one process: pinpipe.batch() vs the `pinpipe batch` command on one landing zone,
and pinpipe.query() vs deltalake's to_pyarrow_table() on one 1M-row table. Prints a table of
medians and ratios (the machine is shared and noisy: read the ratios)."""

from __future__ import annotations

import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import deltalake
import pinpipe
import pyarrow

binary, work, runs = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
landing = work / "landing"


def fresh(name: str) -> Path:
    lake = work / name
    shutil.rmtree(lake, ignore_errors=True)
    return lake


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


cli_times, py_times = [], []
for i in range(runs):
    lake = fresh("lake-cli")
    cli_times.append(timed(lambda: subprocess.run(
        [binary, "batch", "--landing", str(landing), "--lake", str(lake), "--quiet"],
        check=True, stdout=subprocess.DEVNULL)))
    lake = fresh("lake-py")
    py_times.append(timed(lambda: pinpipe.batch(landing=landing, lake=lake)))

lake = work / "lake-py"
table = "_raw_pin"
rows = pinpipe.query(sql=f'SELECT count(*) AS n FROM "{table}"', lake=lake).column("n")[0].as_py()
q_times, d_times = [], []
for i in range(runs):
    got: list[pyarrow.Table] = []
    q_times.append(timed(lambda: got.append(pinpipe.query(table, lake=lake))))
    want: list[pyarrow.Table] = []
    d_times.append(timed(lambda: want.append(deltalake.DeltaTable(str(lake / "batch" / table)).to_pyarrow_table())))
    assert got[0].num_rows == want[0].num_rows == rows

records = sum(1 for _ in landing.rglob("*.json"))  # objects, for the header
print(f"pinpipe {pinpipe.__version__}, deltalake {deltalake.__version__}, pyarrow {pyarrow.__version__}; "
      f"{runs} runs each, alternated; landing: {records} objects")
print()
print("| what | median s | runs s | ratio |")
print("|---|---|---|---|")
c, p = statistics.median(cli_times), statistics.median(py_times)
print(f"| `pinpipe batch` (CLI, baseline) | {c:.2f} | {' '.join(f'{t:.2f}' for t in cli_times)} | 1.00 |")
print(f"| `pinpipe.batch()` (Python) | {p:.2f} | {' '.join(f'{t:.2f}' for t in py_times)} | {p / c:.2f} |")
d, q = statistics.median(d_times), statistics.median(q_times)
print(f"| deltalake `to_pyarrow_table()`, {rows:,} rows (baseline) | {d:.2f} | "
      f"{' '.join(f'{t:.2f}' for t in d_times)} | 1.00 |")
print(f"| `pinpipe.query()` into pyarrow, {rows:,} rows | {q:.2f} | {' '.join(f'{t:.2f}' for t in q_times)} | "
      f"{q / d:.2f} |")
