# -*- coding: utf-8 -*-
# Copyright (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Private HTTP helper of the armstack.deploy.health_check module.

Standard library only: http.client over TCP, TLS or a Unix socket (the same
code talks to the Docker Engine API). One request per call, no redirects, no
proxies, no connection reuse. Errors are raised as HTTPRequestError with a
message meant for the operator.
"""

from __future__ import annotations

import base64
import http.client
import socket
import ssl
import time
from urllib.parse import unquote, urlsplit

USER_AGENT = 'armstack.deploy.health_check'

# Bodies are read up to this size; health endpoints are small.
MAX_BODY_BYTES = 4 * 1024 * 1024


class HTTPRequestError(Exception):
    """A request that got no HTTP response; the message says why."""


class URLError(ValueError):
    """A URL the module cannot use at all (not retried)."""


class _UnixSocketMixin(object):
    unix_socket = None

    def _connect_unix(self):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self.unix_socket)
        except Exception:
            sock.close()
            raise
        return sock


class UnixHTTPConnection(_UnixSocketMixin, http.client.HTTPConnection):
    """HTTP over a Unix socket; host and port only make the Host header."""

    def __init__(self, unix_socket, host, port=None, timeout=None):
        http.client.HTTPConnection.__init__(self, host, port, timeout=timeout)
        self.unix_socket = unix_socket

    def connect(self):
        self.sock = self._connect_unix()


class UnixHTTPSConnection(_UnixSocketMixin, http.client.HTTPSConnection):
    """HTTPS over a Unix socket; the URL's host is the TLS server name."""

    def __init__(self, unix_socket, host, port=None, timeout=None, context=None):
        http.client.HTTPSConnection.__init__(self, host, port, timeout=timeout, context=context)
        self.unix_socket = unix_socket

    def connect(self):
        sock = self._connect_unix()
        try:
            self.sock = self._context.wrap_socket(sock, server_hostname=self.host)
        except Exception:
            sock.close()
            raise


def split_url(url):
    """Check a URL and return (scheme, host, port, request_path, userinfo)."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise URLError('%s is not a valid URL: %s' % (url, exc)) from exc
    scheme = parts.scheme.lower()
    if scheme not in ('http', 'https'):
        raise URLError('%s: expected an http:// or https:// URL, got the scheme %r' % (url, parts.scheme))
    if not parts.hostname:
        raise URLError('%s: the URL has no host; write it like http://127.0.0.1:8000/health' % url)
    path = parts.path or '/'
    if parts.query:
        path += '?' + parts.query
    userinfo = None
    if parts.username is not None:
        userinfo = (unquote(parts.username), unquote(parts.password or ''))
    return scheme, parts.hostname, port, path, userinfo


def make_ssl_context(validate_certs=True, ca_path=None):
    if not validate_certs:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    context = ssl.create_default_context()
    if ca_path:
        try:
            context.load_verify_locations(cafile=ca_path)
        except (IOError, OSError, ssl.SSLError) as exc:
            raise URLError('cannot load the CA certificates of ca_path %s: %s; expected a PEM file' % (ca_path, exc)) from exc
    return context


def describe_error(exc, host, port, timeout, unix_socket=None):
    """A sentence for the operator about a request that got no response."""
    where = 'Unix socket %s' % unix_socket if unix_socket else '%s:%s' % (host, port)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return ('TLS error: the certificate of %s was not accepted: %s. Set ca_path to the CA that signed it, or '
                'validate_certs=false for a self-signed certificate' % (where, exc.verify_message or exc))
    if isinstance(exc, ssl.SSLError):
        return 'TLS error talking to %s: %s' % (where, exc.reason or exc)
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return 'no response from %s within the timeout of %s s' % (where, timeout)
    if isinstance(exc, ConnectionRefusedError):
        return 'connection refused by %s (is the service listening there yet?)' % where
    if isinstance(exc, socket.gaierror):
        return 'cannot resolve the host %s: %s' % (host, exc.strerror or exc)
    if unix_socket and isinstance(exc, FileNotFoundError):
        return 'the Unix socket %s does not exist' % unix_socket
    if isinstance(exc, PermissionError):
        return ('permission denied on %s; run the task with become, or as a user of the group that owns the socket'
                % where)
    if isinstance(exc, (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)):
        return 'the connection to %s was closed without a response' % where
    if isinstance(exc, http.client.HTTPException):
        return 'invalid HTTP response from %s: %s: %s' % (where, type(exc).__name__, exc)
    if isinstance(exc, OSError):
        return 'cannot connect to %s: %s' % (where, exc.strerror or exc)
    return '%s: %s' % (type(exc).__name__, exc)


def request(url, method='GET', headers=None, body=None, timeout=5.0, validate_certs=True, ca_path=None,
            unix_socket=None, ssl_context=None, max_body=MAX_BODY_BYTES):
    """Send one request and read the response.

    Returns a dict with ``status`` (int), ``reason``, ``headers`` (dict,
    lower-case names), ``body`` (bytes, at most max_body), ``truncated``
    (bool), ``charset`` and ``latency`` (seconds). Raises URLError for an
    unusable URL and HTTPRequestError when no response came.
    """
    scheme, host, port, path, userinfo = split_url(url)
    if port is None:
        port = 443 if scheme == 'https' else 80

    send_headers = {'User-Agent': USER_AGENT}
    if userinfo is not None:
        token = base64.b64encode(('%s:%s' % userinfo).encode('utf-8')).decode('ascii')
        send_headers['Authorization'] = 'Basic ' + token
    for name, value in (headers or {}).items():
        for existing in list(send_headers):
            if existing.lower() == str(name).lower():
                del send_headers[existing]
        send_headers[str(name)] = str(value)
    payload = body.encode('utf-8') if isinstance(body, str) else body

    if scheme == 'https':
        context = ssl_context or make_ssl_context(validate_certs, ca_path)
        if unix_socket:
            conn = UnixHTTPSConnection(unix_socket, host, port, timeout=timeout, context=context)
        else:
            conn = http.client.HTTPSConnection(host, port, timeout=timeout, context=context)
    elif unix_socket:
        conn = UnixHTTPConnection(unix_socket, host, port, timeout=timeout)
    else:
        conn = http.client.HTTPConnection(host, port, timeout=timeout)

    started = time.monotonic()
    try:
        conn.request(method, path, body=payload, headers=send_headers)
        response = conn.getresponse()
        chunks = []
        size = 0
        truncated = False
        while True:
            chunk = response.read(min(65536, max_body - size + 1))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > max_body:
                truncated = True
                break
        data = b''.join(chunks)[:max_body]
        latency = time.monotonic() - started
        return {
            'status': response.status,
            'reason': response.reason,
            'headers': dict((k.lower(), v) for k, v in response.getheaders()),
            'body': data,
            'truncated': truncated,
            'charset': response.msg.get_content_charset() or 'utf-8',
            'latency': latency,
        }
    except Exception as exc:  # pylint: disable=broad-except
        raise HTTPRequestError(describe_error(exc, host, port, timeout, unix_socket)) from exc
    finally:
        conn.close()


def decode_body(response):
    try:
        return response['body'].decode(response['charset'], errors='replace')
    except LookupError:  # an unknown charset
        return response['body'].decode('utf-8', errors='replace')
