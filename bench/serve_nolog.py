"""``ordergate serve`` with the decision log replaced by a writer that keeps nothing: a BENCHMARK
ONLY server, so that bench/load.py --log-off can show what the log costs. It is not part of the
service (the service has no switch to turn its log off) and must never answer real callers.

    .venv/bin/python bench/serve_nolog.py --port 8080 --database sqlite:///tmp/x.sqlite [--workers N]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


class DiscardingWriter:
    """Accepts every record (after the same validation and serialisation) and writes nothing."""

    def __init__(self) -> None:
        self.accepted = 0

    def record(self, records) -> set:
        from store.chain import prepare_record

        for record in records:
            prepare_record(record)
            self.accepted += 1
        return set()

    def stats(self) -> dict:
        return {"queued": 0, "written": 0, "failed_batches": 0, "dropped": 0, "healthy": True,
                "last_error": None, "on_full": "block"}

    def flush(self, timeout=None) -> bool:
        return True

    def close(self, timeout=None) -> bool:
        return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--database", required=True)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--server", choices=["granian", "gunicorn"], default="granian")
    parser.add_argument("--worker-class", default="gthread")
    parser.add_argument("--rules", default=None)
    args = parser.parse_args(argv)
    from cli.folders import rules_folder
    from cli.serve import GranianServer, GunicornServer, app_loader, granian_options, gunicorn_options, prepare_store

    rules_dir = rules_folder(args.rules)
    active = prepare_store(args.database, rules_dir)
    print(f"serve_nolog: BENCHMARK server, decision log OFF, version {active}", file=sys.stderr)
    config = {"database_url": args.database, "rules_dir": str(rules_dir), "tokens": None, "migrate": False,
              "decision_log_writer": DiscardingWriter()}
    if args.server == "granian":
        GranianServer.run(
            app_loader(config), granian_options("127.0.0.1", args.port, workers=args.workers, threads=args.threads)
        )
    else:
        GunicornServer.run(app_loader(config), gunicorn_options("127.0.0.1", args.port, workers=args.workers,
                                                    threads=args.threads, worker_class=args.worker_class))


if __name__ == "__main__":
    main()
