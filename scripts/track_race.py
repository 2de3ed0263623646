"""Parallel processes logging into one SQLite MLflow store, with or without the lock of
mnist_pairs.results.track.session: the measurement behind docs/tracking.md's "Parallel jobs".

    python scripts/track_race.py --workers 4 --records 3 [--fresh] [--no-lock]

Copies of a frozen test record (distinct seeds and identities) are logged by ``--workers``
processes released at once into a store made beforehand (or, with ``--fresh``, a new one);
prints how many MLflow runs the store then holds, the duplicates and the errors."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORD = "record.json"
WORKER = """
import sys, time
from pathlib import Path
from mlflow import MlflowClient
from mnist_pairs.results import records, track
uri, lock, dirs, go = sys.argv[1], sys.argv[2] == "1", sys.argv[3].split(","), Path(sys.argv[4])
where = track.Target(uri, "race")
while not go.exists():
    time.sleep(0.01)
for d in dirs:
    try:
        record = records.read_record(Path(d) / records.RECORD_FILE)
        if lock:
            with track.session(where) as (client, experiment_id):
                track.log_record(client, experiment_id, record, Path(d), d, "none")
        else:  # the same calls, unguarded
            client = MlflowClient(uri)
            found = client.get_experiment_by_name("race")
            experiment_id = found.experiment_id if found else client.create_experiment("race")
            track.log_record(client, experiment_id, record, Path(d), d, "none")
    except Exception as error:
        print("ERROR", track.first_line(error)[:200], flush=True)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--records", type=int, default=3, help="records each worker logs")
    parser.add_argument("--fresh", action="store_true", help="a new store (its schema migrated by the workers)")
    parser.add_argument("--no-lock", action="store_true", help="without the lock file")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="track_race_"))
    base = json.loads(next((ROOT / "tests" / "frozen_records" / "smoke").rglob(RECORD)).read_text())
    base.pop("weights", None)
    dirs = []
    for i in range(args.workers * args.records):
        run_dir = root / "runs" / f"seed={i}"
        run_dir.mkdir(parents=True)
        record = {**base, "seed": i, "config_hash": f"{i:064x}", "config": {**base["config"], "seed": i}}
        (run_dir / RECORD).write_text(json.dumps(record))
        dirs.append(str(run_dir))
    uri = f"sqlite:///{root}/mlflow.db"
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    if not args.fresh:
        made = f"from mnist_pairs.results import track\nwith track.session(track.Target({uri!r}, 'race')): pass"
        subprocess.run([sys.executable, "-c", made], check=True, cwd=ROOT, env=env, capture_output=True)
    go = root / "go"
    lock = "0" if args.no_lock else "1"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, uri, lock, ",".join(dirs[i :: args.workers]), str(go)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(args.workers)
    ]
    time.sleep(10)  # all imported and waiting
    tic = time.perf_counter()
    go.touch()
    errors = [line for w in workers for line in w.communicate()[0].splitlines() if line.startswith("ERROR")]
    wall = time.perf_counter() - tic
    try:
        from mlflow import MlflowClient

        client = MlflowClient(uri)
        found = client.get_experiment_by_name("race")
        runs = client.search_runs([found.experiment_id], max_results=1000) if found else []
        held = f"{len(runs)} runs, {sum(n - 1 for n in Counter(r.data.tags['config_hash'] for r in runs).values())} dup"
    except Exception as error:
        held = f"store unusable ({type(error).__name__}: {str(error).splitlines()[0][:120]})"
    print(
        f"{'fresh' if args.fresh else 'made'} store, lock={lock}, {args.workers} workers x {args.records} records: "
        f"{held}, {len(errors)} errors, {wall:.1f} s"
    )
    for line in sorted(set(errors))[:5]:
        print("  ", line)


if __name__ == "__main__":
    main()
