"""Docker HEALTHCHECK of the reference backend: healthy when /ready answers 200."""

import sys
import urllib.request

try:
    with urllib.request.urlopen("http://127.0.0.1:8000/ready", timeout=2) as response:
        sys.exit(0 if response.status == 200 else 1)
except Exception as exc:  # pylint: disable=broad-except
    print(exc)
    sys.exit(1)
