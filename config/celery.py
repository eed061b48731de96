"""The Celery app. Configuration comes from Django settings (CELERY_* names); tasks are
discovered in each installed app's tasks.py; the beat timetable is CELERY_BEAT_SCHEDULE."""

import logging
import os
import time

from celery import Celery, bootsteps

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.base")

logger = logging.getLogger(__name__)

app = Celery("linli")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Read by /healthz/ (config/health.py): present while some worker's event loop is running.
HEARTBEAT_KEY = "linli:worker-heartbeat"


class WorkerHeartbeat(bootsteps.StartStopStep):
    """Every WORKER_HEARTBEAT_SECONDS the worker sets HEARTBEAT_KEY in the broker's Redis, to
    expire after three beats. The health check then only reads one key: it stays fast when the
    worker is down (a broadcast `inspect ping` would wait out its timeout on every probe) and
    sends no fan-out traffic that every worker must answer. The beat runs on the worker's own
    timer, which the consumer's event loop drives, so a worker that is alive but stuck (its
    broker connection gone, its loop blocked) stops beating too."""

    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker, **kwargs):
        super().__init__(worker, **kwargs)
        self.tref = None
        self.client = None

    def start(self, worker):
        from django.conf import settings

        broker = app.conf.broker_url or ""
        if not broker.startswith(("redis://", "rediss://", "unix://")):
            return  # only a Redis broker is supported (README); nothing to write to
        import redis

        self.interval = settings.WORKER_HEARTBEAT_SECONDS
        self.client = redis.Redis.from_url(broker, socket_timeout=2, socket_connect_timeout=2)
        self.hostname = worker.hostname
        self.beat()
        self.tref = worker.timer.call_repeatedly(self.interval, self.beat)

    def beat(self):
        try:
            self.client.set(
                HEARTBEAT_KEY, f"{self.hostname} {time.time():.0f}", ex=3 * self.interval
            )
        except Exception as exc:  # a broker outage must not stop the timer; the key just expires
            logger.warning("worker heartbeat not written: %s", exc)

    def stop(self, worker):
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None
        if self.client is not None:
            self.client.close()


app.steps["worker"].add(WorkerHeartbeat)
