"""Run every bench/bench_*.py and merge their JSON figures into bench/results.json (one flat object)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# Benchmarks run again with these arguments, each adding its own figures (the footprint of the agent with a
# thermal array, and with secure aggregation configured: agent.thermal.*, agent.secagg.*).
EXTRA_RUNS = {"bench_footprint.py": (["--config", "thermal"], ["--config", "secagg"])}


def main() -> int:
    results: dict[str, object] = {}
    failed = []
    runs = [(s, args) for s in sorted(HERE.glob("bench_*.py")) for args in ([], *EXTRA_RUNS.get(s.name, ()))]
    for script, args in runs:
        print(f"bench: {script.name} {' '.join(args)}", file=sys.stderr, flush=True)
        proc = subprocess.run([sys.executable, str(script), *args], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            failed.append(" ".join([script.name, *args]))
            print(proc.stderr[-2000:], file=sys.stderr)
            continue
        figures = json.loads(proc.stdout.strip().splitlines()[-1])
        results.update(figures)
        print(json.dumps(figures, indent=1), file=sys.stderr)
    (HERE / "results.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    print(f"wrote {HERE / 'results.json'} ({len(results)} figures)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
