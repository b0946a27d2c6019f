"""Benchmark: importing a customer CSV.

Measures in one run, each phase in a fresh child process (so peak RSS is the phase's own):

  (a) ``pandas.read_csv(path, dtype=str)`` of the file: the floor for any pandas reader;
  (b) notibot's import use case (CustomerImporter on a csv_import job) into the in-memory
      store, end to end: file checks, chunked reading, vectorised validation, de-duplication,
      bulk writes, progress reports;
  (c) a row-by-row baseline into the same store: ``iterrows``, per-row validation with the
      domain rules and phonenumbers, per-row look-up by email and phone, per-row insert.

Prints the times, b/a, c/b and each phase's peak RSS. Targets (issue 3): b <= 4 x a,
c/b >= 20, peak RSS of b <= 1.5 GB. With ``--repeat N``, (a) and (b) run N times each,
alternately (a shared machine's load then weighs on both alike), and the ratios use their
medians; (c) runs once.

Usage:
    python benchmarks/import_csv.py [--rows 1000000] [--dirty 0.02] [--file PATH]
                                    [--repeat N] [--skip-baseline]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
GENERATOR_CANDIDATES = [
    HERE.parent.parent / "shared" / "tools" / "make_customers_csv.py",
    HERE.parent / ".." / "shared" / "tools" / "make_customers_csv.py",
]


def peak_rss_mb() -> float:
    """This process's peak resident set size in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def phase_read(path: str) -> dict:
    import pandas as pd

    started = time.perf_counter()
    frame = pd.read_csv(path, dtype=str)
    return {"seconds": time.perf_counter() - started, "rows": len(frame)}


def phase_notibot(path: str) -> dict:
    from notibot.testing import memory_notibot

    content = Path(path).read_bytes()

    async def run() -> dict:
        app = memory_notibot()
        await app.start()
        imports = app.container.import_service()
        imports.max_upload_bytes = len(content) + 1  # the benchmark file is over the API limit
        started = time.perf_counter()
        job = await imports.submit(content, filename=Path(path).name)
        await app.container.job_queue().join()
        seconds = time.perf_counter() - started
        job = await app.jobs.get(job.id)
        stored = await app.container.customer_repository().count()
        await app.stop()
        return {"seconds": seconds, "status": job.status.value, "counters": job.counters,
                "stored": stored, "failure": job.failure_reason}

    return asyncio.run(run())


def phase_baseline(path: str) -> dict:
    """The obvious row-by-row import through the same domain rules and repository."""
    import pandas as pd

    from notibot.adapters.memory import MemoryCustomerRepository
    from notibot.adapters.phone import to_e164
    from notibot.adapters.system import SystemClock, UuidIdGenerator
    from notibot.domain import Customer, NotibotError

    async def run() -> dict:
        repo = MemoryCustomerRepository()
        ids, clock = UuidIdGenerator(), SystemClock()
        counts = {"created": 0, "updated": 0, "failed": 0}
        started = time.perf_counter()
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
        for _, row in frame.iterrows():
            values = {k: (v.strip() or None) for k, v in row.items()}
            phone = to_e164(values["phone"], "VN") if values.get("phone") else None
            if values.get("phone") and phone is None:
                counts["failed"] += 1
                continue
            values["phone"] = phone
            values["tags"] = values.get("tags") or ""
            try:
                fresh = Customer.create(id=await ids.new_id(), now=await clock.now(), **values)
            except NotibotError:
                counts["failed"] += 1
                continue
            existing = None
            if fresh.email:
                existing = await repo.find_by_email(fresh.email)
            if existing is None and fresh.phone:
                existing = await repo.find_by_phone(fresh.phone)
            try:
                if existing is None:
                    await repo.add(fresh)
                    counts["created"] += 1
                else:
                    await repo.update(existing.merged_with(
                        {k: v for k, v in values.items() if k != "tags"}, now=await clock.now()))
                    counts["updated"] += 1
            except NotibotError:
                counts["failed"] += 1
        return {"seconds": time.perf_counter() - started, "counters": counts,
                "stored": await repo.count()}

    return asyncio.run(run())


PHASES = {"read": phase_read, "notibot": phase_notibot, "baseline": phase_baseline}


def run_child(phase: str, path: str) -> dict:
    """Run one phase in a fresh interpreter and return its JSON report."""
    out = subprocess.run(
        [sys.executable, __file__, "--child", phase, "--file", path],
        check=True, capture_output=True, text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def find_generator() -> Path:
    for candidate in GENERATOR_CANDIDATES:
        if candidate.exists():
            return candidate.resolve()
    raise SystemExit("make_customers_csv.py not found; pass --file")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--dirty", type=float, default=0.02)
    parser.add_argument("--file", help="use this CSV instead of generating one")
    parser.add_argument("--repeat", type=int, default=1,
                        help="run (a) and (b) this many times each and use the medians")
    parser.add_argument("--skip-baseline", action="store_true",
                        help="skip (c), which takes minutes on a million rows")
    parser.add_argument("--child", choices=sorted(PHASES), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        report = PHASES[args.child](args.file)
        report["peak_rss_mb"] = peak_rss_mb()
        print(json.dumps(report))
        return

    path = args.file
    if path is None:
        path = os.path.join(tempfile.gettempdir(), f"notibot-bench-{args.rows}-{args.dirty}.csv")
        if not os.path.exists(path):
            print(f"generating {args.rows} rows (--dirty {args.dirty}) into {path} ...")
            subprocess.run([sys.executable, str(find_generator()), str(args.rows), path,
                            "--dirty", str(args.dirty)], check=True)
    size_mb = os.path.getsize(path) / 1e6
    print(f"file: {path} ({size_mb:.1f} MB)")

    reads, runs = [], []
    for _ in range(max(1, args.repeat)):
        a = run_child("read", path)
        reads.append(a)
        print(f"(a) pandas.read_csv(dtype=str): {a['seconds']:.2f} s, {a['rows']} rows, "
              f"peak RSS {a['peak_rss_mb']:.0f} MiB")
        b = run_child("notibot", path)
        runs.append(b)
        print(f"(b) notibot import use case:     {b['seconds']:.2f} s, {b['status']}, "
              f"counters {b['counters']}, stored {b['stored']}, "
              f"peak RSS {b['peak_rss_mb']:.0f} MiB")
    a_s = statistics.median(r["seconds"] for r in reads)
    b_s = statistics.median(r["seconds"] for r in runs)
    b_rss = max(r["peak_rss_mb"] for r in runs)
    if len(runs) > 1:
        print(f"    medians of {len(runs)} runs: a = {a_s:.2f} s, b = {b_s:.2f} s")
    print(f"    b/a = {b_s / a_s:.2f}   (target <= 4)")
    print(f"    peak RSS of (b) = {b_rss / 1024:.2f} GiB   (target <= 1.5 GB)")
    if not args.skip_baseline:
        c = run_child("baseline", path)
        print(f"(c) row-by-row baseline:         {c['seconds']:.2f} s, counters "
              f"{c['counters']}, stored {c['stored']}, peak RSS {c['peak_rss_mb']:.0f} MiB")
        print(f"    c/b = {c['seconds'] / b_s:.1f}   (target >= 20)")


if __name__ == "__main__":
    main()
