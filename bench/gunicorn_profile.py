"""gunicorn hooks (`-c bench/gunicorn_profile.py`) that profile every worker with pyinstrument
from fork to exit and write one text report per worker into $BENCH_PROFILE_DIR: where the
workers' time went during a load run, request handling and waiting included."""

import os
from pathlib import Path

_profiler = None


def post_fork(server, worker):
    global _profiler
    from pyinstrument import Profiler

    # The sync worker serves requests on its main thread, the one that runs this hook.
    _profiler = Profiler(interval=0.001, async_mode="disabled")
    _profiler.start()


def worker_exit(server, worker):
    if _profiler is None or not _profiler.is_running:
        return
    _profiler.stop()
    folder = Path(os.environ["BENCH_PROFILE_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"worker-{os.getpid()}.txt").write_text(
        _profiler.output_text(unicode=True, color=False, show_all=False)
    )
