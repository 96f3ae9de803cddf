"""The reference backend of armstack.deploy (test bed and local demo only).

Endpoints:
  GET  /                 what answers: service, version, host name
  GET  /health           liveness: 200 while the process serves requests
  GET  /ready            readiness: 200 once warm, 503 while warming up or
                         when built with READY=never (the "broken" release)
  GET  /metrics          Prometheus metrics, aggregated over all Gunicorn
                         workers (prometheus-client multiprocess mode)
  GET  /work?ms=N        answers after N ms (at most 5000): a slow request for
                         drain tests
  PUT  /uploads/{name}   stores the request body under UPLOAD_DIR
  GET  /uploads/{name}   returns a stored upload
  GET  /db/tables        tables in PostgreSQL's public schema (what the migrations made)
  GET  /db/items         the items table; POST /db/items?name=N adds one
  POST /jobs?count=N&ms=M&prefix=P   enqueues N jobs of M ms for the worker (Redis)
  GET  /jobs/stats       jobs queued, started and done
  GET  /jobs/report?prefix=P   who started and who finished each job of prefix P

Settings (environment): APP_VERSION, READY (auto|never), DATABASE_URL (logged,
password and all, while not ready: as careless apps do), STARTUP_DELAY
(seconds each worker spends "warming up" before it serves, like opening a DB
pool or loading credentials), UPLOAD_DIR, UPLOAD_MAX_BYTES.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import socket
import tempfile
import time

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client import multiprocess

import settings

VERSION = os.environ.get("APP_VERSION", "0.0.0")
READY_MODE = os.environ.get("READY", "auto")
STARTUP_DELAY = float(os.environ.get("STARTUP_DELAY", "0") or 0)
UPLOAD_DIR = os.environ.get("UPLOAD_DIR", "/data/uploads")
UPLOAD_MAX_BYTES = int(os.environ.get("UPLOAD_MAX_BYTES", str(10 * 1024 * 1024)))
HOSTNAME = socket.gethostname()
DATABASE_URL = os.environ.get("DATABASE_URL", "")
LOG = logging.getLogger("armstack.backend")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

REQUEST_DURATION = Histogram(
    "http_request_duration_seconds",
    "Duration of HTTP requests handled by the backend.",
    ["method", "path", "status"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
UPLOADS = Counter("backend_uploads", "Uploads stored.", ["result"])

_state = {"ready": False}


@contextlib.asynccontextmanager
async def lifespan(_app: FastAPI):
    # A heavy startup (DB pool, credentials, caches): the worker does not serve
    # before it is done, which is what a healthcheck start_period is for.
    if STARTUP_DELAY > 0:
        await asyncio.sleep(STARTUP_DELAY)
    _state["ready"] = READY_MODE != "never"
    yield


app = FastAPI(title="armstack reference backend", version=VERSION, lifespan=lifespan,
              docs_url=None, redoc_url=None, openapi_url=None)


@app.middleware("http")
async def observe(request: Request, call_next):
    start = time.perf_counter()
    status = 500
    try:
        response = await call_next(request)
        status = response.status_code
        response.headers["X-App-Version"] = VERSION
        return response
    finally:
        route = request.scope.get("route")
        path = getattr(route, "path", None) or "unmatched"
        REQUEST_DURATION.labels(request.method, path, str(status)).observe(time.perf_counter() - start)


@app.get("/")
async def root():
    return {"service": "armstack reference backend", "version": VERSION, "host": HOSTNAME}


@app.get("/health")
async def health():
    return {"status": "ok", "version": VERSION}


def _dependencies_problem():
    """Why PostgreSQL or Redis cannot be used right now, or None."""
    conninfo = settings.database_conninfo()
    if conninfo is not None:
        import psycopg  # pylint: disable=import-outside-toplevel
        try:
            with psycopg.connect(**conninfo) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error as exc:
            return "database: %s" % type(exc).__name__
    client = settings.redis_client()
    if client is not None:
        try:
            client.ping()
        except Exception as exc:  # pylint: disable=broad-except
            return "redis: %s" % type(exc).__name__
    return None


@app.get("/ready")
def ready():
    problem = _dependencies_problem() if _state["ready"] else None
    if problem:
        return JSONResponse({"status": "not ready", "reason": problem, "version": VERSION}, status_code=503)
    if not _state["ready"]:
        reason = "built with READY=never" if READY_MODE == "never" else "warming up"
        if DATABASE_URL:
            # What real apps do, and why a deploy tool must not print their
            # logs: the reason quotes a connection string with its password.
            LOG.warning("not ready (%s); database at %s", reason, DATABASE_URL)
        return JSONResponse({"status": "not ready", "reason": reason, "version": VERSION}, status_code=503)
    return {"status": "ready", "version": VERSION}


def _db():
    conninfo = settings.database_conninfo()
    if conninfo is None:
        raise HTTPException(status_code=404, detail="no database configured (DB_HOST)")
    import psycopg  # pylint: disable=import-outside-toplevel
    return psycopg.connect(**conninfo)


@app.get("/db/tables")
def db_tables():
    with _db() as conn:
        rows = conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1").fetchall()
    return {"tables": [r[0] for r in rows], "version": VERSION}


@app.get("/db/items")
def db_items():
    with _db() as conn:
        rows = conn.execute("SELECT id, name FROM items ORDER BY id").fetchall()
    return {"items": [{"id": r[0], "name": r[1]} for r in rows]}


@app.post("/db/items", status_code=201)
def db_add_item(name: str):
    with _db() as conn:
        row = conn.execute("INSERT INTO items (name) VALUES (%s) RETURNING id", (name,)).fetchone()
    return {"id": row[0], "name": name}


def _redis():
    client = settings.redis_client()
    if client is None:
        raise HTTPException(status_code=404, detail="no Redis configured (REDIS_HOST)")
    return client


@app.post("/jobs", status_code=201)
def enqueue_jobs(count: int = 1, ms: int = 100, prefix: str = "job"):
    client = _redis()
    count = max(1, min(count, 1000))
    ids = ["%s-%d" % (prefix, i) for i in range(count)]
    client.lpush(settings.QUEUE, *[json.dumps({"id": i, "ms": max(0, min(ms, 10000))}) for i in ids])
    return {"enqueued": len(ids)}


@app.get("/jobs/report")
def jobs_report(prefix: str = "job"):
    """Who started and who finished each job whose id starts with prefix (version@host)."""
    client = _redis()
    started = {k: v for k, v in client.hgetall(settings.STARTED).items() if k.startswith(prefix + "-")}
    done = {k: v for k, v in client.hgetall(settings.DONE).items() if k.startswith(prefix + "-")}
    return {"started": started, "done": done, "queued": client.llen(settings.QUEUE)}


@app.get("/jobs/stats")
def jobs_stats():
    client = _redis()
    return {"queued": client.llen(settings.QUEUE), "started": client.hlen(settings.STARTED),
            "done": client.hlen(settings.DONE)}


@app.get("/work")
async def work(ms: int = 50):
    ms = max(0, min(ms, 5000))
    await asyncio.sleep(ms / 1000)
    return {"slept_ms": ms, "version": VERSION}


@app.get("/metrics")
async def metrics():
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def _upload_path(name: str) -> str:
    if not NAME_RE.match(name):
        raise HTTPException(status_code=400, detail="name must match " + NAME_RE.pattern)
    return os.path.join(UPLOAD_DIR, name)


@app.put("/uploads/{name}", status_code=201)
async def put_upload(name: str, request: Request):
    path = _upload_path(name)
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > UPLOAD_MAX_BYTES:
            UPLOADS.labels("too_large").inc()
            raise HTTPException(status_code=413, detail="upload larger than %d bytes" % UPLOAD_MAX_BYTES)
    # Written beside the target and renamed: a reader never sees half a file.
    fd, tmp = tempfile.mkstemp(dir=UPLOAD_DIR, prefix=".upload-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    UPLOADS.labels("stored").inc()
    return {"name": name, "bytes": len(body), "version": VERSION}


@app.get("/uploads/{name}")
async def get_upload(name: str):
    path = _upload_path(name)
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except FileNotFoundError:
        raise HTTPException(status_code=404, detail="no such upload") from None
    return Response(data, media_type="application/octet-stream")
