"""Settings of the benchmark's gunicorn: production settings (config.settings.base, DEBUG off)
with one addition, the bench-only URLconf that mounts the baseline endpoint of the payment rush.
Nothing else differs, so what is measured is what production runs."""

from config.settings.base import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
