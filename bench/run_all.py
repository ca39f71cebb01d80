"""Run every bench/bench_*.py and merge their JSON figures into bench/results.json (one flat object)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    results: dict[str, object] = {}
    failed = []
    for script in sorted(HERE.glob("bench_*.py")):
        print(f"bench: {script.name}", file=sys.stderr, flush=True)
        proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            failed.append(script.name)
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
