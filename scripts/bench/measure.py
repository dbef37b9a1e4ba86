"""Measuring helpers for scripts/bench_batch.sh (standard library only, plus orjson for the floor).

    measure.py run --out FILE.json [--stdout FILE] -- CMD ARGS...
        Runs CMD; writes {"wall_secs", "peak_tree_rss_kib", "max_process_rss_kib", "exit_code"}.
        peak_tree_rss_kib: the largest sum of VmRSS over CMD and all its descendants, polled from
        /proc every 20 ms (for PySpark: the Python driver and the JVM it starts, together).
        max_process_rss_kib: the peak of the largest single process: ru_maxrss from wait4 (what
        `/usr/bin/time -f %M` prints; exact, but it only covers descendants that were waited
        for, and PySpark never waits for its JVM) or the largest polled VmRSS, whichever is more.
        peak_tree_rss_kib is at least max_process_rss_kib.

    measure.py floor --landing DIR [--user-id UID]
        The decode floor over every landed line of the three topics: `cat` of all objects to
        /dev/null (the I/O floor, page cache warm) and orjson.loads of every line, one thread
        (a native JSON parser into Python objects, no typing or columnar build). Prints JSON.

    measure.py compare --spark DIR --pinpipe BIN --lake LAKE NAME...
        Compares analytics tables: Parquet under DIR/analytics/NAME against
        `pinpipe query NAME --lake LAKE --json`. Prints one line per table and exits 1 on a mismatch.
"""

import argparse
import glob
import json
import os
import subprocess
import sys
import time

PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024


def _kcmp_vm():
    """kcmp(KCMP_VM) on x86-64 Linux: whether two processes share one address space."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if os.uname().machine != "x86_64" or libc.syscall(312, os.getpid(), os.getpid(), 1, 0, 0) != 0:
            return None
        return lambda a, b: libc.syscall(312, a, b, 1, 0, 0) == 0
    except (OSError, AttributeError):
        return None


SAME_VM = _kcmp_vm()


def _children(pid):
    out = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{tid}/children") as f:
                out.extend(int(c) for c in f.read().split())
    except OSError:
        pass
    return out


def _tree_rss_kib(root):
    """(sum, largest) of VmRSS over root and its descendants, KiB. A child still sharing its
    parent's address space (vfork/posix_spawn before exec: the JVM starts helpers that way) is
    not counted twice."""
    total, largest, todo, seen = 0, 0, [(root, None)], set()
    while todo:
        pid, parent = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        try:
            with open(f"/proc/{pid}/statm") as f:
                rss = int(f.read().split()[1]) * PAGE_KIB
        except OSError:
            continue
        if not (parent and SAME_VM and SAME_VM(parent, pid)):
            total += rss
            largest = max(largest, rss)
        todo.extend((c, pid) for c in _children(pid))
    return total, largest


def run(args):
    cmd = args.cmd[1:] if args.cmd and args.cmd[0] == "--" else args.cmd
    stdout = open(args.stdout, "wb") if args.stdout else None
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=stdout)
    peak = peak_one = 0
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        total, largest = _tree_rss_kib(proc.pid)
        peak, peak_one = max(peak, total), max(peak_one, largest)
        time.sleep(0.02)
    wall = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    result = {
        "wall_secs": wall,
        "peak_tree_rss_kib": max(peak, peak_one, usage.ru_maxrss),
        "max_process_rss_kib": max(peak_one, usage.ru_maxrss),
        "exit_code": proc.returncode,
    }
    with open(args.out, "w") as f:
        json.dump(result, f)
    sys.exit(proc.returncode)


def floor(args):
    import orjson

    files = sorted(glob.glob(f"{args.landing}/topics/{args.user_id}.*/partition=*/*.json"))
    t0 = time.monotonic()
    for i in range(0, len(files), 500):
        subprocess.run(["cat", *files[i:i + 500]], stdout=subprocess.DEVNULL, check=True)
    cat_secs = time.monotonic() - t0
    lines = nbytes = 0
    loads = orjson.loads
    t0 = time.monotonic()
    for path in files:
        with open(path, "rb") as f:
            data = f.read()
        nbytes += len(data)
        for line in data.split(b"\n"):
            if line.strip():
                loads(line)
                lines += 1
    orjson_secs = time.monotonic() - t0
    print(json.dumps({"files": len(files), "lines": lines, "bytes": nbytes,
                      "cat_secs": cat_secs, "orjson_secs": orjson_secs}))


def _normalize(rows):
    """Rows as sorted tuples of (column, value), nulls left out (pinpipe's JSON omits them)."""
    return sorted((tuple(sorted((k, v) for k, v in r.items() if v is not None)) for r in rows), key=repr)


def compare(args):
    import pyarrow.parquet as pq

    ok = True
    for name in args.names:
        spark_rows = pq.read_table(f"{args.spark}/analytics/{name}").to_pylist()
        q = subprocess.run([args.pinpipe, "query", name, "--lake", args.lake, "--json"],
                           capture_output=True, text=True, check=True, env={**os.environ, "PINPIPE_LOG": "warn"})
        pin_rows = json.loads(q.stdout)
        same = _normalize(spark_rows) == _normalize(pin_rows)
        ok &= same
        print(f"  {name:<46} {len(pin_rows):>4} rows pinpipe, {len(spark_rows):>4} rows Spark: "
              f"{'MATCH' if same else 'DIFFER'}")
        if not same:
            a, b = _normalize(pin_rows), _normalize(spark_rows)
            print(f"    pinpipe only: {[r for r in a if r not in b][:5]}")
            print(f"    spark only:   {[r for r in b if r not in a][:5]}")
    sys.exit(0 if ok else 1)


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="what", required=True)
    r = sub.add_parser("run")
    r.add_argument("--out", required=True)
    r.add_argument("--stdout")
    r.add_argument("cmd", nargs=argparse.REMAINDER)
    f = sub.add_parser("floor")
    f.add_argument("--landing", required=True)
    f.add_argument("--user-id", default="0eaf46a0829f")
    c = sub.add_parser("compare")
    c.add_argument("--spark", required=True)
    c.add_argument("--pinpipe", required=True)
    c.add_argument("--lake", required=True)
    c.add_argument("names", nargs="+")
    a = ap.parse_args()
    {"run": run, "floor": floor, "compare": compare}[a.what](a)


if __name__ == "__main__":
    main()
