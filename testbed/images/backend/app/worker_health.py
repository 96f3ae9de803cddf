"""Docker HEALTHCHECK of the worker: healthy while its loop beat within 30 s."""

import os
import sys
import time

try:
    sys.exit(0 if time.time() - os.path.getmtime("/tmp/worker-heartbeat") < 30 else 1)
except OSError as exc:
    print(exc)
    sys.exit(1)
