"""Settings for every environment, read from environment variables through one `env` object.

With no variables set this is the embedded default a newcomer can run with nothing installed:
DEBUG on only if asked, SQLite in ./var/, Celery tasks run eagerly in-process, mail to the console.
Production sets DATABASE_URL, CELERY_BROKER_URL, SECRET_KEY and friends (see README).
"""

from datetime import timedelta
from pathlib import Path

import environ
from celery.schedules import crontab
from django.core.exceptions import ImproperlyConfigured
from django.utils.csp import CSP
from django.utils.translation import gettext_lazy as _

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()
# A developer's .env is read if present; real deployments set the environment itself.
if (BASE_DIR / ".env").is_file():
    env.read_env(BASE_DIR / ".env")

DEBUG = env.bool("DEBUG", default=False)

# Only a development server may run on the well-known key; production must bring its own.
_DEV_ONLY_SECRET_KEY = "django-insecure-linli-development-only-key-never-use-in-production"
SECRET_KEY = env.str("SECRET_KEY", default=_DEV_ONLY_SECRET_KEY if DEBUG else "")
if not SECRET_KEY:
    raise ImproperlyConfigured(
        "SECRET_KEY is required when DEBUG is off. Set SECRET_KEY in the environment "
        "(for local development, DEBUG=true uses a development-only key)."
    )

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    # Estate workbooks in and out (community/imports.py): resources, dry run, transactions.
    "import_export",
    # Domain apps, in dependency order: each may use the ones above it, never below.
    "community",
    "billing",
    "repairs",
    "alliance",
    "points",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.csp.ContentSecurityPolicyMiddleware",
    "config.security.PermissionsPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "config.middleware.ChineseFirstLocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Who and from where, for the audit log of what the request changes (community.audit).
    "community.audit.AuditContextMiddleware",
    # Last, as django-axes asks: turns a lock-out flagged during sign-in into its response.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                # The CSP nonce, for the admin's few inline <style> blocks (never for scripts).
                "django.template.context_processors.csp",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------
# No DATABASE_URL: an SQLite file under var/, so the demo runs with nothing installed.
_EMBEDDED_SQLITE = BASE_DIR / "var" / "linli.sqlite3"
if "DATABASE_URL" not in env.ENVIRON:
    _EMBEDDED_SQLITE.parent.mkdir(exist_ok=True)
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{_EMBEDDED_SQLITE}")}
# Services own their transactions (services.py); a request is not one implicit transaction.
DATABASES["default"]["ATOMIC_REQUESTS"] = False
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # Take SQLite's write lock when a transaction begins, so two writers queue instead of one
    # failing mid-transaction ("database is locked") after reading stale values.
    DATABASES["default"].setdefault("OPTIONS", {})["transaction_mode"] = "IMMEDIATE"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "community.User"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

# django-axes first: it refuses a locked-out sign-in before any password is checked.
AUTHENTICATION_BACKENDS = [
    "config.security.AxesBackend",
    "django.contrib.auth.backends.ModelBackend",
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# --- Cache ----------------------------------------------------------------------------------
# Throttling and rate limits need a cache shared by all web processes: Redis in production.
CACHES = {"default": env.cache("CACHE_URL", default="locmemcache://linli")}

# --- Internationalisation -------------------------------------------------------------------
LANGUAGE_CODE = "zh-hans"
LANGUAGES = [("zh-hans", _("Simplified Chinese")), ("en", _("English"))]
LOCALE_PATHS = [BASE_DIR / "locale"]
# Django's zh_Hans formats with money grouped by thousands (config/formats/zh_Hans/formats.py).
FORMAT_MODULE_PATH = ["config.formats"]
# The language switch is remembered for a year, not only until the browser closes (Django's
# default), and survives logging out, since it is a cookie and not part of the session.
LANGUAGE_COOKIE_AGE = 365 * 24 * 60 * 60
TIME_ZONE = "Asia/Shanghai"
USE_I18N = True
USE_TZ = True

# --- Static and media -----------------------------------------------------------------------
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "staticfiles")
MEDIA_URL = "media/"
MEDIA_ROOT = env.path("MEDIA_ROOT", default=BASE_DIR / "var" / "media")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        # Hashed, compressed files in production (collectstatic runs in the image);
        # plain files while developing so nothing has to be collected first.
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage",
    },
}

# --- E-mail (reminders, escalations) ---------------------------------------------------------
# Off until configured: without EMAIL_URL mail goes to the console log. Production sets
# EMAIL_URL (e.g. smtp+tls://user:password@smtp.example.com:587); `check --deploy` insists on it.
_EMAIL = env.email_url("EMAIL_URL", default="consolemail://")
_SMTP_OPTIONS = {
    "EMAIL_HOST": "host",
    "EMAIL_PORT": "port",
    "EMAIL_HOST_USER": "username",
    "EMAIL_HOST_PASSWORD": "password",
    "EMAIL_USE_TLS": "use_tls",
    "EMAIL_USE_SSL": "use_ssl",
    "EMAIL_TIMEOUT": "timeout",
}
MAILERS = {
    "default": {
        "BACKEND": _EMAIL["EMAIL_BACKEND"],
        "OPTIONS": {
            option: _EMAIL[key]
            for key, option in _SMTP_OPTIONS.items()
            if _EMAIL.get(key) not in (None, "")
        }
        if _EMAIL["EMAIL_BACKEND"].endswith("smtp.EmailBackend")
        else {},
    }
}
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Linli <noreply@linli.local>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# --- Security ---------------------------------------------------------------------------------
# Production runs behind a TLS-terminating proxy (see docker-compose.yml / README).
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
# Container health checks call plain HTTP from inside the network.
SECURE_REDIRECT_EXEMPT = [r"^healthz/$"]
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_AGE = 60 * 60 * 24 * 14
# The number of reverse proxies in front of the app that append to X-Forwarded-For. 0 (the
# default): the client is REMOTE_ADDR and X-Forwarded-For, which anyone can send, is ignored.
# Used for sign-in lock-outs, throttling and the audit log (config.security.client_ip).
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)

# Content-Security-Policy (Django's own middleware): scripts and styles only from our origin,
# never inline. The nonce is added only on the pages that ask for it (the admin's inline
# <style> blocks, the API docs' page style); a page that does not use it sends no nonce.
# Images also from data: URIs (the admin's and Swagger UI's icons are data: SVGs in their CSS).
# Forms post to us; a payment page may redirect to the enabled gateways' cashiers.
_GATEWAY_ORIGINS = {
    "alipay": ["https://openapi.alipay.com", "https://openapi-sandbox.dl.alipaydev.com"],
    "wechat": ["https://wx.tenpay.com"],
}
SECURE_CSP = {
    "default-src": [CSP.SELF],
    "script-src": [CSP.SELF],
    "style-src": [CSP.SELF, CSP.NONCE],
    "img-src": [CSP.SELF, "data:"],
    "object-src": [CSP.NONE],
    "base-uri": [CSP.SELF],
    "frame-ancestors": [CSP.NONE],
    "form-action": [
        CSP.SELF,
        *[
            origin
            for gateway in env.list("PAYMENT_GATEWAYS", default=["sandbox"])
            for origin in _GATEWAY_ORIGINS.get(gateway, [])
        ],
    ],
}
# Browser features no page of ours uses (config.security.PermissionsPolicyMiddleware).
PERMISSIONS_POLICY = "camera=(), microphone=(), geolocation=(), payment=(), usb=()"

# --- Sign-in lock-out (django-axes) ----------------------------------------------------------
# After LOGIN_FAILURE_LIMIT wrong passwords for one username from one address, that pair is
# locked out for LOGIN_COOLOFF_MINUTES (every further try restarts the wait): the browser login,
# the admin's and POST /api/v1/auth/token/ all answer 429 then. Locking the pair, not the
# address alone, keeps one guesser from locking out a whole estate behind a carrier's shared
# address, and keeps a stranger from locking a resident out of their own account from afar.
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("LOGIN_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "config.security.client_ip"
AXES_LOCKOUT_CALLABLE = "config.security.lockout_response"

# --- API ------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    # Token first: an anonymous API call then gets 401 with a WWW-Authenticate header (the
    # contract), not the 403 that session authentication alone would give.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "config.api.StandardPagination",
    # DRF's own two, the HTML one with the inline styles its templates need (config.security).
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "config.security.BrowsableAPIRenderer",
    ],
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "config.api.exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        # Per client address: slows password guessing on the token endpoint.
        "auth": env.str("AUTH_THROTTLE_RATE", default="20/min"),
    },
    # Client addresses for throttling: behind TRUSTED_PROXY_COUNT proxies, as config.security.
    "NUM_PROXIES": TRUSTED_PROXY_COUNT,
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Linli API",
    "DESCRIPTION": "JSON API of the Linli future-community portal (contract: API.md, v1).",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SCHEMA_PATH_PREFIX": r"/api/v1",
    # Swagger UI from the drf-spectacular-sidecar package: served locally, works offline.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # The error answers every endpoint shares (400, 401, 403, 404), with their bodies.
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "config.schema.document_error_responses",
    ],
    # Several models have a "status" field: name each choice set after its model.
    "ENUM_NAME_OVERRIDES": {
        # The API serves live bills only (void ones stay in the books): its four statuses.
        "BillStatusEnum": "billing.models.Bill.live_status_choices",
        "PaymentStatusEnum": "billing.models.Payment.Status",
        "RefundStatusEnum": "billing.models.Refund.Status",
        "TicketKindEnum": "repairs.models.Kind",
        "TicketStatusEnum": "repairs.models.Status",
        "ActivityKindEnum": "community.models.Activity.Kind",
        "ConsultationStatusEnum": "community.models.Consultation.Status",
        "PointsCurrencyEnum": "points.models.Currency",
        "PointsEntryKindEnum": "points.models.Entry.Kind",
        "RedemptionStatusEnum": "points.models.Redemption.Status",
        "PublicFundSpendStatusEnum": "billing.public_fund_models.PublicFundSpend.Status",
    },
}

# --- Payments -------------------------------------------------------------------------------
# Gateways residents may pay through. The built-in sandbox behaves like a real gateway (pay page,
# signed notification) and is what the demo and tests use; Alipay and WeChat Pay switch on when
# listed here and their keys are set (see README).
PAYMENT_GATEWAYS = env.list("PAYMENT_GATEWAYS", default=["sandbox"])
SANDBOX_GATEWAY_SECRET = env.str(
    "SANDBOX_GATEWAY_SECRET", default="sandbox-development-secret" if DEBUG else ""
)
if "sandbox" in PAYMENT_GATEWAYS and not SANDBOX_GATEWAY_SECRET:
    raise ImproperlyConfigured("SANDBOX_GATEWAY_SECRET is required when the sandbox gateway is on.")
# A payment the payer never completes frees its bills after this many minutes.
PAYMENT_PENDING_MINUTES = env.int("PAYMENT_PENDING_MINUTES", default=30)
# Payments one user may start (API and pay page together), as DRF rates: "30/min", "500/hour".
PAYMENT_THROTTLE_RATE = env.str("PAYMENT_THROTTLE_RATE", default="30/min")
# Receipt check codes one client address may check (/check/ and its API), as a DRF rate.
RECEIPT_CHECK_THROTTLE_RATE = env.str("RECEIPT_CHECK_THROTTLE_RATE", default="30/min")
# The font of PDF receipts: a TrueType font (.ttf, or .ttc with RECEIPT_PDF_FONT_INDEX) with
# Chinese glyphs, embedded in each receipt as a subset. Debian's fonts-wqy-microhei by default
# (.ci/run and the Dockerfile install it); OpenType/CFF fonts such as Noto CJK cannot be embedded.
RECEIPT_PDF_FONT = env.str(
    "RECEIPT_PDF_FONT", default="/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"
)
RECEIPT_PDF_FONT_INDEX = env.int("RECEIPT_PDF_FONT_INDEX", default=0)
# Public base URL of the site, for the gateways' notify and return URLs (no trailing slash).
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000")
# Alipay (支付宝), on when "alipay" is in PAYMENT_GATEWAYS. Keys: PEM text (a one-line value may
# write newlines as \n), the path of a PEM file, or the bare base64 the Alipay open platform shows.
ALIPAY_APP_ID = env.str("ALIPAY_APP_ID", default="")
ALIPAY_APP_PRIVATE_KEY = env.str("ALIPAY_APP_PRIVATE_KEY", default="", multiline=True)
ALIPAY_PUBLIC_KEY = env.str("ALIPAY_PUBLIC_KEY", default="", multiline=True)
ALIPAY_SANDBOX = env.bool("ALIPAY_SANDBOX", default=False)
# WeChat Pay (微信支付) APIv3 in WeChat Pay public-key mode (微信支付公钥), on when "wechat" is in
# PAYMENT_GATEWAYS. Keys as for Alipay.
WECHATPAY_MCHID = env.str("WECHATPAY_MCHID", default="")
WECHATPAY_APPID = env.str("WECHATPAY_APPID", default="")
WECHATPAY_PRIVATE_KEY = env.str("WECHATPAY_PRIVATE_KEY", default="", multiline=True)
WECHATPAY_CERT_SERIAL_NO = env.str("WECHATPAY_CERT_SERIAL_NO", default="")
WECHATPAY_APIV3_KEY = env.str("WECHATPAY_APIV3_KEY", default="")
WECHATPAY_PUBLIC_KEY = env.str("WECHATPAY_PUBLIC_KEY", default="", multiline=True)
WECHATPAY_PUBLIC_KEY_ID = env.str("WECHATPAY_PUBLIC_KEY_ID", default="")
WECHATPAY_TRADE_TYPE = env.str("WECHATPAY_TRADE_TYPE", default="native")  # or "h5"
for _gateway, _required in {
    "alipay": ["ALIPAY_APP_ID", "ALIPAY_APP_PRIVATE_KEY", "ALIPAY_PUBLIC_KEY"],
    "wechat": [
        "WECHATPAY_MCHID",
        "WECHATPAY_APPID",
        "WECHATPAY_PRIVATE_KEY",
        "WECHATPAY_CERT_SERIAL_NO",
        "WECHATPAY_APIV3_KEY",
        "WECHATPAY_PUBLIC_KEY",
        "WECHATPAY_PUBLIC_KEY_ID",
    ],
}.items():
    _missing = [name for name in _required if not globals()[name]]
    if _gateway in PAYMENT_GATEWAYS and _missing:
        raise ImproperlyConfigured(f"{', '.join(_missing)} required when {_gateway} is on.")

# --- Repairs (tickets) ----------------------------------------------------------------------
# Largest photo a resident or staff member may attach to a ticket (bytes; 6 photos per ticket).
REPAIRS_PHOTO_MAX_BYTES = env.int("REPAIRS_PHOTO_MAX_BYTES", default=8 * 1024 * 1024)
# Tickets one user may file (API and form together), as DRF rates: "10/min", "100/hour".
TICKET_THROTTLE_RATE = env.str("TICKET_THROTTLE_RATE", default="10/min")
# Days after its resolution during which the filer may reopen a ticket.
REPAIRS_REOPEN_DAYS = env.int("REPAIRS_REOPEN_DAYS", default=7)
# Minutes between two runs of the SLA check that escalates overdue tickets (Celery beat).
REPAIRS_SLA_CHECK_MINUTES = env.int("REPAIRS_SLA_CHECK_MINUTES", default=5)
# Seconds between two refreshes of the staff console's ticket queue in the browser.
REPAIRS_QUEUE_REFRESH_SECONDS = env.int("REPAIRS_QUEUE_REFRESH_SECONDS", default=15)

# --- Alliance (ratings, inspections, scorecards) --------------------------------------------
# Day of the month (1–28) from which the daily job finalizes the previous month's scorecards and
# releases their hold-back. After the agreements' payout day: a month not yet paid out is tried
# again the next day.
ALLIANCE_FINALIZE_DAY = env.int("ALLIANCE_FINALIZE_DAY", default=10)
if not 1 <= ALLIANCE_FINALIZE_DAY <= 28:
    raise ImproperlyConfigured("ALLIANCE_FINALIZE_DAY must be a day from 1 to 28.")
# Seconds between two refreshes of the staff's ratings page in the browser.
ALLIANCE_RATINGS_REFRESH_SECONDS = env.int("ALLIANCE_RATINGS_REFRESH_SECONDS", default=30)
# A rating burst (alliance/trust.py): this many all-5★ or all-1★ ratings from one building
# within 60 minutes flag the month for a look by the centre.
ALLIANCE_RATING_BURST_SIZE = env.int("ALLIANCE_RATING_BURST_SIZE", default=5)

# --- Notifications (community/notifications.py) -------------------------------------------
# Quiet hours in the site's time zone, "HH:MM-HH:MM" (may wrap past midnight; empty: none). Text
# and WeChat messages due inside the window are held and sent when it ends; in-app and e-mail
# are not held (they do not ring a phone at night).
NOTIFY_QUIET_HOURS = env.str("NOTIFY_QUIET_HOURS", default="21:00-08:00")
# SMS: off until LINLI_SMS_PROVIDER is set. "aliyun": Alibaba Cloud SMS (dysmsapi SendSms).
LINLI_SMS_PROVIDER = env.str("LINLI_SMS_PROVIDER", default="")
ALIYUN_SMS_ACCESS_KEY_ID = env.str("ALIYUN_SMS_ACCESS_KEY_ID", default="")
ALIYUN_SMS_ACCESS_KEY_SECRET = env.str("ALIYUN_SMS_ACCESS_KEY_SECRET", default="")
ALIYUN_SMS_SIGN_NAME = env.str("ALIYUN_SMS_SIGN_NAME", default="")
ALIYUN_SMS_ENDPOINT = env.str("ALIYUN_SMS_ENDPOINT", default="https://dysmsapi.aliyuncs.com/")
# The approved template code (SMS_...) per kind of message; a kind without one is not texted.
ALIYUN_SMS_TEMPLATES = {
    "bill_reminder": env.str("ALIYUN_SMS_TEMPLATE_BILL_REMINDER", default=""),
    "ticket_update": env.str("ALIYUN_SMS_TEMPLATE_TICKET_UPDATE", default=""),
}
if LINLI_SMS_PROVIDER not in ("", "aliyun"):
    raise ImproperlyConfigured("LINLI_SMS_PROVIDER must be empty or aliyun.")
_missing = [
    name
    for name in ("ALIYUN_SMS_ACCESS_KEY_ID", "ALIYUN_SMS_ACCESS_KEY_SECRET", "ALIYUN_SMS_SIGN_NAME")
    if not globals()[name]
]
if LINLI_SMS_PROVIDER == "aliyun" and _missing:
    raise ImproperlyConfigured(f"{', '.join(_missing)} required when LINLI_SMS_PROVIDER=aliyun.")
# WeChat subscription messages (订阅消息): off until the mini program's app id and secret are set.
WECHAT_MP_APPID = env.str("WECHAT_MP_APPID", default="")
WECHAT_MP_SECRET = env.str("WECHAT_MP_SECRET", default="")
# Per kind: the template id, and which of our variables fills which template field
# ("period=thing1,amount=amount2,due=date3"); a kind without a template id is not sent.
WECHAT_MP_TEMPLATES = {
    "bill_reminder": env.str("WECHAT_MP_TEMPLATE_BILL_REMINDER", default=""),
    "ticket_update": env.str("WECHAT_MP_TEMPLATE_TICKET_UPDATE", default=""),
}
WECHAT_MP_FIELDS = {
    "bill_reminder": env.dict("WECHAT_MP_FIELDS_BILL_REMINDER", default={}),
    "ticket_update": env.dict("WECHAT_MP_FIELDS_TICKET_UPDATE", default={}),
}

# --- Celery ---------------------------------------------------------------------------------
# No broker configured: run tasks eagerly in the calling process (embedded default).
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default=CELERY_BROKER_URL or None)
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_EXPIRES = 60 * 60 * 24
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# acks_late tasks keep their message in Redis's "unacked" set until they finish. A worker killed
# outright (SIGKILL, OOM, a lost host) never acks, and Redis hands such a message to a worker
# again only once it is older than the visibility timeout. The timeout must stay above the
# longest task and the longest retry countdown, or a slow task is delivered twice (harmless, as
# every acks_late task is idempotent, but wasted). Workers look for such messages every tenth of
# the timeout (1 to 10 s); the fault tests shorten CELERY_VISIBILITY_TIMEOUT to a few seconds.
_VISIBILITY_TIMEOUT = env.int("CELERY_VISIBILITY_TIMEOUT", default=60 * 60)
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": _VISIBILITY_TIMEOUT,
    "unacked_restore_interval": max(1, min(10, _VISIBILITY_TIMEOUT // 10)),
    "unacked_restore_throttle": 1,
}
# A worker writes this Redis key (with a time to live) while its event loop runs; /healthz/
# reads it to tell whether any worker is alive (config/celery.py, config/health.py).
WORKER_HEARTBEAT_SECONDS = env.int("WORKER_HEARTBEAT_SECONDS", default=10)
# Beat schedule: each app adds its periodic jobs here, so the whole timetable reads in one place.
CELERY_BEAT_SCHEDULE = {
    "community-clear-expired-sessions": {
        "task": "community.tasks.clear_expired_sessions",
        "schedule": crontab(hour=3, minute=17),
    },
    "billing-generate-bills": {
        "task": "billing.tasks.generate_bills",
        "schedule": crontab(day_of_month=1, hour=1, minute=5),
    },
    # Bill reminders by the schedule held as data (billing.ReminderStep); those due in the quiet
    # hours wait for their end. Text/WeChat messages held or waiting for a retry go out with
    # the sweep.
    "billing-send-bill-reminders": {
        "task": "billing.tasks.send_bill_reminders",
        "schedule": crontab(hour=9, minute=10),
    },
    "community-send-due-deliveries": {
        "task": "community.tasks.send_due_deliveries",
        "schedule": crontab(minute="*/10"),
    },
    # Late fees first, so the morning's reminders show what is owed today.
    "billing-assess-late-fees": {
        "task": "billing.tasks.assess_late_fees",
        "schedule": crontab(hour=0, minute=40),
    },
    "billing-mark-overdue": {
        "task": "billing.tasks.mark_overdue_bills",
        "schedule": crontab(hour=9, minute=0),
    },
    # Payment awards and refund clawbacks whose task the broker lost (points.tasks).
    "points-award-missed-payments": {
        "task": "points.tasks.award_missed_payments",
        "schedule": crontab(minute="7,22,37,52"),
    },
    "points-clawback-missed-refunds": {
        "task": "points.tasks.clawback_missed_refunds",
        "schedule": crontab(minute="8,23,38,53"),
    },
    "billing-expire-stale-payments": {
        "task": "billing.tasks.expire_stale_payments",
        "schedule": crontab(minute="*/5"),
    },
    "billing-run-due-payouts": {
        "task": "billing.tasks.run_due_payouts",
        "schedule": crontab(hour=2, minute=30),
    },
    # After the gateways publish yesterday's statement (WeChat Pay after 10:00 Beijing time).
    "billing-reconcile-settlements": {
        "task": "billing.tasks.reconcile_settlements",
        "schedule": crontab(hour=10, minute=40),
    },
    "repairs-escalate-overdue-tickets": {
        "task": "repairs.tasks.escalate_overdue_tickets",
        "schedule": REPAIRS_SLA_CHECK_MINUTES * 60.0,  # seconds
    },
    "alliance-refresh-scorecard-drafts": {
        "task": "alliance.tasks.refresh_drafts",
        "schedule": crontab(hour=1, minute=40),
    },
    # Daily, after billing's payouts (02:30): acts from ALLIANCE_FINALIZE_DAY on, and catches up.
    "alliance-finalize-scorecards": {
        "task": "alliance.tasks.finalize_due_scorecards",
        "schedule": crontab(hour=3, minute=20),
    },
}

# --- Logging --------------------------------------------------------------------------------
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
