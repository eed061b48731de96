"""GET /healthz/: is this deployment able to do its work? One check per dependency, as JSON:

    {"status": "ok", "checks": {"database": "ok", "cache": "ok", "broker": "ok", "worker": "ok"}}

200 when every check passes, 503 (status "unavailable", the failing checks saying why) otherwise.
Load balancers and docker-compose's health check call it without signing in, over plain HTTP
(SECURE_REDIRECT_EXEMPT). Each check has a short timeout, so a dead dependency makes the
answer fail, not hang. With eager Celery (the embedded default, no broker) tasks run in the web
process itself: broker and worker then report "eager", which counts as ok.

The worker check reads the heartbeat key each worker keeps alive in Redis (config/celery.py)
rather than broadcasting `celery inspect ping`: one GET, no waiting out a ping timeout on every
probe while the worker is down, and no fan-out every worker must answer.
"""

import logging
import uuid

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import JsonResponse
from django.views.decorators.cache import never_cache

logger = logging.getLogger(__name__)

OK, EAGER = "ok", "eager"
TIMEOUT_SECONDS = 2


def _database() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return OK


def _cache() -> str:
    token = uuid.uuid4().hex
    cache.set("linli:healthz", token, timeout=30)
    if cache.get("linli:healthz") != token:
        return "cache did not keep a value"
    return OK


def _redis_client():
    import redis

    return redis.Redis.from_url(
        settings.CELERY_BROKER_URL,
        socket_timeout=TIMEOUT_SECONDS,
        socket_connect_timeout=TIMEOUT_SECONDS,
    )


def _broker() -> str:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return EAGER
    with _redis_client() as client:
        client.ping()
    return OK


def _worker() -> str:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return EAGER
    from config.celery import HEARTBEAT_KEY

    with _redis_client() as client:
        if client.get(HEARTBEAT_KEY) is None:
            return "no worker heartbeat"
    return OK


CHECKS = {"database": _database, "cache": _cache, "broker": _broker, "worker": _worker}


@never_cache
def healthz(request):
    """`?only=database,cache` runs just those checks: the web container's own health check asks
    for its own dependencies, so a stopped worker marks the worker unhealthy, not the web
    server (which still serves pages and payments; tasks wait in Redis)."""
    wanted = [name for name in request.GET.get("only", "").split(",") if name]
    unknown = sorted(set(wanted) - set(CHECKS))
    if unknown:
        return JsonResponse({"detail": f"unknown checks: {', '.join(unknown)}"}, status=400)
    checks = {}
    for name, check in CHECKS.items():
        if wanted and name not in wanted:
            continue
        try:
            checks[name] = check()
        except Exception as exc:  # any failure of a dependency is an answer here, not a 500
            logger.warning("health check %s failed: %s", name, exc)
            checks[name] = f"error: {type(exc).__name__}"
    healthy = all(result in (OK, EAGER) for result in checks.values())
    return JsonResponse(
        {"status": "ok" if healthy else "unavailable", "checks": checks},
        status=200 if healthy else 503,
    )
