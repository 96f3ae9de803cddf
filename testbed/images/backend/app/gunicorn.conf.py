"""Gunicorn settings of the reference backend, all from the environment."""

import glob
import os

from prometheus_client import multiprocess

bind = os.environ.get("BIND", "0.0.0.0:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "uvicorn_worker.UvicornWorker"
# SIGTERM: stop accepting, let in-flight requests finish for this long.
graceful_timeout = int(os.environ.get("GRACEFUL_TIMEOUT", "20"))
timeout = int(os.environ.get("WORKER_TIMEOUT", "60"))
# Longer than the proxy's idle keep-alive towards us, so that the proxy closes
# idle connections first and never reuses one we are closing.
keepalive = int(os.environ.get("KEEPALIVE", "75"))
# The heartbeat file lives in memory: the root file system is read-only.
worker_tmp_dir = "/dev/shm"
accesslog = None
errorlog = "-"
loglevel = os.environ.get("LOG_LEVEL", "info")
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "*")


def on_starting(_server):
    path = os.environ["PROMETHEUS_MULTIPROC_DIR"]
    os.makedirs(path, exist_ok=True)
    for stale in glob.glob(os.path.join(path, "*.db")):
        os.unlink(stale)


def child_exit(_server, worker):
    multiprocess.mark_process_dead(worker.pid)
