"""Summarise a py-spy raw profile (``py-spy record -f raw --gil``) as text: inclusive and self
share of the samples per function, the gunicorn/click start-up frames left out.

    .venv/bin/py-spy record -d 5 -r 100 --gil --subprocesses -f raw -o /tmp/w.raw --pid <gunicorn master pid>
    .venv/bin/python bench/profile_summary.py /tmp/worker.raw --top 40 > bench/profiles/<name>.txt

``--gil`` samples only the thread holding the GIL: the Python work of the process, without the
threads that sit waiting (a gthread worker has four of them, plus the log writer and watcher).
"""
from __future__ import annotations

import argparse
import collections
import re
import sys
from pathlib import Path

_NOISE = ("click/", "gunicorn/arbiter.py", "gunicorn/app/base.py", "cli/serve.py", "<module> (ordergate",
          "Worker.init_process", "ThreadWorker.init_process", "ThreadWorker.run (", "threading.py")


def _clean(frame: str) -> str:
    frame = re.sub(r"\(/[^()]*?/site-packages/", "(", frame)
    frame = re.sub(r"\(/usr/lib/python3\.\d+/", "(", frame)
    frame = re.sub(r"\(/work/main/", "(", frame)
    return re.sub(r":\d+\)$", ")", frame)


def summarise(path: str, top: int) -> str:
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        stack, _, count = line.rstrip().rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = [_clean(f) for f in stack.split(";") if not f.startswith(("process ", "thread "))]
        total += n
        for frame in set(frames):
            inclusive[frame] += n
        if frames:
            own[frames[-1]] += n
    out = [f"samples holding the GIL: {total}", "", "inclusive (share of samples with the function on the stack):"]
    out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in inclusive.most_common()
            if not any(x in f for x in _NOISE)][:top]
    out += ["", "self (share of samples in the function itself):"]
    out += [f"  {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(top)]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("raw")
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args(argv)
    sys.stdout.write(summarise(args.raw, args.top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
