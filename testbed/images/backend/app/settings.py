"""Connection settings of the reference backend, from the environment the
backend role gives it for its accessories: DB_HOST, DB_PORT, DB_NAME,
DB_USER, DB_PASSWORD_FILE (PostgreSQL) and REDIS_HOST, REDIS_PORT,
REDIS_PASSWORD_FILE (Redis). Passwords are read from files, never from the
environment. Without DB_HOST / REDIS_HOST the app runs without them."""

from __future__ import annotations

import os


def _secret(name):
    path = os.environ.get(name + "_PASSWORD_FILE")
    if not path:
        return None
    with open(path, encoding="utf-8") as handle:
        return handle.read().strip()


def database_conninfo():
    if not os.environ.get("DB_HOST"):
        return None
    return {
        "host": os.environ["DB_HOST"],
        "port": int(os.environ.get("DB_PORT", "5432")),
        "dbname": os.environ.get("DB_NAME", "app"),
        "user": os.environ.get("DB_USER", "app"),
        "password": _secret("DB"),
        "connect_timeout": 3,
    }


def redis_client():
    if not os.environ.get("REDIS_HOST"):
        return None
    import redis  # pylint: disable=import-outside-toplevel

    return redis.Redis(host=os.environ["REDIS_HOST"], port=int(os.environ.get("REDIS_PORT", "6379")),
                       password=_secret("REDIS"), socket_timeout=5, socket_connect_timeout=3, decode_responses=True)


QUEUE = "armstack:jobs"
STARTED = "armstack:jobs:started"
DONE = "armstack:jobs:done"
