# -*- coding: utf-8 -*-
# Copyright (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Tests of armstack.deploy.health_check against real servers in this process.

HTTP and HTTPS servers listen on 127.0.0.1 with a free port, Unix-socket
servers in a temporary directory; a fake Docker Engine API answers
GET /containers/{name}/json on a Unix socket. Each test controls what the
server answers through ServerState.respond.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import socketserver
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from ansible.module_utils import basic

from ansible_collections.armstack.deploy.plugins.modules import health_check

FAST = dict(interval=0.05, timeout=2)


def json_response(data, status=200, delay=0.0):
    return status, {'Content-Type': 'application/json'}, json.dumps(data).encode(), delay


def text_response(text, status=200, delay=0.0, content_type='text/plain; charset=utf-8'):
    return status, {'Content-Type': content_type}, text.encode('utf-8'), delay


class ServerState(object):
    def __init__(self):
        self.lock = threading.Lock()
        self.count = 0
        self.requests = []
        self.respond = lambda n, req: json_response({'status': 'ok'})


class Handler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.0'

    def _handle(self):
        state = self.server.state
        length = int(self.headers.get('Content-Length') or 0)
        body = self.rfile.read(length) if length else b''
        req = dict(method=self.command, path=self.path, headers=dict(self.headers.items()), body=body,
                   time=time.monotonic())
        with state.lock:
            n = state.count
            state.count += 1
            state.requests.append(req)
        status, headers, payload, delay = state.respond(n, req)
        if delay:
            time.sleep(delay)
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header('Content-Length', str(len(payload)))
            self.end_headers()
            if self.command != 'HEAD':
                self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout tests)

    do_GET = do_POST = do_PUT = do_HEAD = _handle

    def log_message(self, format, *args):  # noqa: A002  pylint: disable=redefined-builtin
        pass


class QuietThreadingHTTPServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass


class ThreadingUnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass


class Server(object):
    def __init__(self, server, scheme='http'):
        self.server = server
        self.state = ServerState()
        server.state = self.state
        self.scheme = scheme
        self.thread = threading.Thread(target=server.serve_forever, kwargs=dict(poll_interval=0.02))
        self.thread.daemon = True
        self.thread.start()

    @property
    def port(self):
        return self.server.server_address[1]

    def url(self, path='/health'):
        return '%s://127.0.0.1:%d%s' % (self.scheme, self.port, path)

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def http_server():
    server = Server(QuietThreadingHTTPServer(('127.0.0.1', 0), Handler))
    yield server
    server.stop()


@pytest.fixture
def short_tmp():
    """A short directory path: Unix socket paths are limited to about 100 characters."""
    path = tempfile.mkdtemp(prefix='hc-')
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def unix_server(short_tmp):
    path = os.path.join(short_tmp, 'app.sock')
    server = Server(ThreadingUnixHTTPServer(path, Handler))
    server.socket_path = path
    yield server
    server.stop()


@pytest.fixture(scope='module')
def tls_cert(tmp_path_factory):
    if shutil.which('openssl') is None:
        pytest.skip('the openssl command is needed to make a test certificate')
    directory = tmp_path_factory.mktemp('tls')
    cert = str(directory / 'cert.pem')
    key = str(directory / 'key.pem')
    subprocess.run(
        ['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
         '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=127.0.0.1',
         '-addext', 'subjectAltName=IP:127.0.0.1'],
        check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    return cert, key


@pytest.fixture
def https_server(tls_cert):
    cert, key = tls_cert
    httpd = QuietThreadingHTTPServer(('127.0.0.1', 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    server = Server(httpd, scheme='https')
    server.cert = cert
    yield server
    server.stop()


def container_json(name, status='running', health=None, failing_streak=0, output='', exit_code=0):
    data = {
        'Id': '4f1c2a9be7d0aa11bb22cc33dd44ee55ff66aa77bb88cc99dd00ee11ff22aa33',
        'Name': '/' + name,
        'State': {'Status': status, 'Running': status == 'running', 'ExitCode': exit_code},
    }
    if health is not None:
        data['State']['Health'] = {
            'Status': health,
            'FailingStreak': failing_streak,
            'Log': [{'ExitCode': 0 if health == 'healthy' else 1, 'Output': output}],
        }
    return data


@pytest.fixture
def docker_api(short_tmp):
    """A fake Docker Engine API; set .containers[name] to a list of states, the last one repeats."""
    path = os.path.join(short_tmp, 'docker.sock')
    server = Server(ThreadingUnixHTTPServer(path, Handler))
    server.socket_path = path
    server.containers = {}
    calls = {}

    def respond(n, req):
        parts = req['path'].split('/')
        if len(parts) == 4 and parts[1] == 'containers' and parts[3] == 'json':
            name = parts[2]
            states = server.containers.get(name)
            if states is None:
                return json_response({'message': 'No such container: %s' % name}, status=404)
            index = calls.get(name, 0)
            calls[name] = index + 1
            return json_response(states[min(index, len(states) - 1)])
        return json_response({'message': 'page not found'}, status=404)

    server.state.respond = respond
    yield server
    server.stop()


def free_port():
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


# ---------------------------------------------------------------------------
# plain HTTP

def test_healthy_at_once(run_module, http_server):
    http_server.state.respond = lambda n, req: json_response({'status': 'ok', 'version': '1.4.2'})
    result = run_module(health_check, dict(url=http_server.url(), **FAST))
    assert result['changed'] is False
    assert result['status'] == 'healthy'
    assert result['attempts'] == 1
    assert len(result['latencies']) == 1 and result['latencies'][0] >= 0
    assert isinstance(result['elapsed'], float)
    assert 'container_health' not in result
    [entry] = result['results']
    assert entry['url'] == http_server.url()
    assert entry['ok'] is True and entry['error'] is None
    assert entry['status'] == 200
    assert entry['json'] == {'status': 'ok', 'version': '1.4.2'}
    assert json.loads(entry['body']) == entry['json']
    assert http_server.state.requests[0]['method'] == 'GET'
    assert http_server.state.requests[0]['path'] == '/health'


def test_fails_first_then_succeeds(run_module, http_server):
    http_server.state.respond = lambda n, req: (
        text_response('starting', status=503) if n < 2 else json_response({'status': 'ok'}))
    result = run_module(health_check, dict(url=http_server.url(), retries=3, **FAST))
    assert result['status'] == 'healthy'
    assert result['attempts'] == 3
    assert len(result['latencies']) == 3


def test_retries_exhausted_message(run_module, http_server):
    http_server.state.respond = lambda n, req: text_response('database connection refused', status=503)
    result = run_module(health_check, dict(url=http_server.url('/ready'), retries=2, **FAST), expect_failure=True)
    assert result['attempts'] == 3
    assert result['status'] == 'unhealthy'
    assert len(result['latencies']) == 3
    msg = result['msg']
    assert http_server.url('/ready') in msg
    assert 'status 503' in msg and 'expected status 200' in msg
    assert 'database connection refused' in msg
    assert 'after 3 attempts' in msg
    assert 'then 2 retries allowed' in msg
    assert result['results'][0]['status'] == 503
    assert result['results'][0]['ok'] is False


def test_retries_zero_means_one_attempt(run_module, http_server):
    http_server.state.respond = lambda n, req: text_response('no', status=500)
    result = run_module(health_check, dict(url=http_server.url(), retries=0, **FAST), expect_failure=True)
    assert result['attempts'] == 1
    assert http_server.state.count == 1


def test_start_period_failures_do_not_count(run_module, http_server):
    started = time.monotonic()
    http_server.state.respond = lambda n, req: (
        text_response('warming up', status=503) if time.monotonic() - started < 0.4 else json_response({}))
    result = run_module(health_check, dict(url=http_server.url(), start_period=0.6, retries=0, **FAST))
    # many more failures than retries=0 allows, all inside the start period
    assert result['status'] == 'healthy'
    assert result['attempts'] >= 3


def test_start_period_then_retries(run_module, http_server):
    http_server.state.respond = lambda n, req: text_response('down', status=503)
    before = time.monotonic()
    result = run_module(health_check, dict(url=http_server.url(), start_period=0.3, retries=1, **FAST),
                        expect_failure=True)
    assert result['elapsed'] >= 0.3
    # attempts during the start period plus retries + 1 after it
    assert result['attempts'] >= 3
    assert result['attempts'] == http_server.state.count
    after_start_period = [r for r in http_server.state.requests if r['time'] - before >= 0.3]
    # the module started a moment after `before`, so one start-period attempt may land here too
    assert len(after_start_period) in (2, 3)
    assert 'start_period 0.3 s, then 1 retry allowed' in result['msg']


def test_success_during_start_period(run_module, http_server):
    result = run_module(health_check, dict(url=http_server.url(), start_period=30, **FAST))
    assert result['attempts'] == 1
    assert result['elapsed'] < 10


def test_timeout(run_module, http_server):
    http_server.state.respond = lambda n, req: json_response({'status': 'ok'}, delay=1.0)
    result = run_module(health_check, dict(url=http_server.url(), timeout=0.2, retries=0, interval=0.05),
                        expect_failure=True)
    assert 'within the timeout of 0.2 s' in result['msg']
    assert result['results'][0]['status'] is None
    assert result['elapsed'] < 1.0 + 5  # generous: the attempt gave up before the server answered


def test_connection_refused(run_module):
    url = 'http://127.0.0.1:%d/health' % free_port()
    result = run_module(health_check, dict(url=url, retries=1, **FAST), expect_failure=True)
    assert result['attempts'] == 2
    assert url in result['msg']
    assert 'connection refused' in result['msg']
    assert result['results'][0]['error'].startswith('connection refused')


def test_all_urls_must_pass(run_module, http_server):
    http_server.state.respond = lambda n, req: (
        json_response({'status': 'ok'}) if req['path'] == '/health' else text_response('missing', status=404))
    result = run_module(health_check, dict(urls=[http_server.url('/health'), http_server.url('/ready')],
                                           retries=0, **FAST), expect_failure=True)
    assert [r['ok'] for r in result['results']] == [True, False]
    assert http_server.url('/ready') in result['msg']
    assert http_server.url('/health') + ':' not in result['msg']


def test_status_code_list(run_module, http_server):
    http_server.state.respond = lambda n, req: (204, {}, b'', 0)
    result = run_module(health_check, dict(url=http_server.url(), status_code=[200, 204], **FAST))
    assert result['results'][0]['status'] == 204
    result = run_module(health_check, dict(url=http_server.url(), retries=0, **FAST), expect_failure=True)
    assert 'status 204' in result['msg']


def test_redirect_is_not_followed(run_module, http_server):
    http_server.state.respond = lambda n, req: (302, {'Location': '/login'}, b'', 0)
    result = run_module(health_check, dict(url=http_server.url(), status_code=[302], **FAST))
    assert result['results'][0]['status'] == 302
    assert http_server.state.count == 1


def test_status_code_list_in_message(run_module, http_server):
    http_server.state.respond = lambda n, req: text_response('oops', status=500)
    result = run_module(health_check, dict(url=http_server.url(), status_code=[200, 204], retries=0, **FAST),
                        expect_failure=True)
    assert 'expected one of 200, 204' in result['msg']


def test_body_regex(run_module, http_server):
    http_server.state.respond = lambda n, req: text_response('service: UP\ndb: UP\n')
    run_module(health_check, dict(url=http_server.url(), body_regex=r'db:\s+UP', **FAST))
    result = run_module(health_check, dict(url=http_server.url(), body_regex=r'cache:\s+UP', retries=0, **FAST),
                        expect_failure=True)
    assert "does not match body_regex 'cache:\\\\s+UP'" in result['msg']
    assert 'db: UP' in result['msg']  # body excerpt


def test_invalid_body_regex_fails_at_once(run_module, http_server):
    result = run_module(health_check, dict(url=http_server.url(), body_regex='(', **FAST), expect_failure=True)
    assert 'not a valid regular expression' in result['msg']
    assert result['attempts'] == 0
    assert http_server.state.count == 0


HEALTH_DOC = {
    'status': 'ok',
    'version': '2.3.1',
    'uptime': 0,
    'checks': {'database': {'ok': True, 'latency_ms': 3}, 'cache': {'ok': False}},
    'workers': [1, 2, 3],
    'degraded': [],
    'maintenance': None,
}


@pytest.mark.parametrize('assertion', [
    dict(query='status', equals='ok'),
    dict(query='checks.database', equals={'ok': True, 'latency_ms': 3}),
    dict(query='length(workers)', equals=3),
    dict(query='checks.database.ok', equals=True),
    dict(query='version', regex=r'^2\.'),
    dict(query='checks.database.latency_ms', regex=r'^\d+$'),
    dict(query='checks.database.ok'),
    dict(query='workers'),
    dict(query='uptime'),  # 0 is truthy in JMESPath
    dict(query='maintenance == null'),
])
def test_json_assertions_pass(run_module, http_server, assertion):
    http_server.state.respond = lambda n, req: json_response(HEALTH_DOC)
    result = run_module(health_check, dict(url=http_server.url(), json_assertions=[assertion], **FAST))
    assert result['results'][0]['json'] == HEALTH_DOC


@pytest.mark.parametrize('assertion, text', [
    (dict(query='status', equals='degraded'), "query 'status' returned \"ok\", expected \"degraded\""),
    (dict(query='checks.database.ok', equals=1), "query 'checks.database.ok' returned true, expected 1"),
    (dict(query='uptime', equals=False), "query 'uptime' returned 0, expected false"),
    (dict(query='version', regex=r'^3\.'), "query 'version' returned \"2.3.1\", which does not match regex '^3\\\\.'"),
    (dict(query='missing', regex='.'), "query 'missing' returned null, which does not match"),
    (dict(query='checks.cache.ok'), "query 'checks.cache.ok' returned false, expected a truthy value"),
    (dict(query='degraded'), "query 'degraded' returned [], expected a truthy value"),
    (dict(query='maintenance'), "query 'maintenance' returned null, expected a truthy value"),
])
def test_json_assertions_fail(run_module, http_server, assertion, text):
    http_server.state.respond = lambda n, req: json_response(HEALTH_DOC)
    result = run_module(health_check, dict(url=http_server.url(), json_assertions=[assertion], retries=0, **FAST),
                        expect_failure=True)
    assert text in result['msg']
    assert 'json_assertions[0]' in result['msg']


def test_json_assertions_need_json_body(run_module, http_server):
    http_server.state.respond = lambda n, req: text_response('<html>Bad gateway</html>', content_type='text/html')
    result = run_module(health_check, dict(url=http_server.url(), json_assertions=[dict(query='status')],
                                           retries=0, **FAST), expect_failure=True)
    assert 'the body is not JSON' in result['msg']
    assert 'Bad gateway' in result['msg']
    assert result['results'][0]['json'] is None


def test_json_assertions_invalid_query(run_module, http_server):
    result = run_module(health_check, dict(url=http_server.url(), json_assertions=[dict(query='status[')], **FAST),
                        expect_failure=True)
    assert "query 'status[' is not valid JMESPath" in result['msg']
    assert http_server.state.count == 0


def test_json_assertions_equals_and_regex_exclusive(run_module, http_server):
    result = run_module(health_check, dict(url=http_server.url(),
                                           json_assertions=[dict(query='status', equals='ok', regex='o')], **FAST),
                        expect_failure=True)
    assert 'not both' in result['msg']


def test_missing_jmespath_message(run_module, http_server, monkeypatch):
    monkeypatch.setitem(sys.modules, 'jmespath', None)  # makes "import jmespath" raise ImportError
    result = run_module(health_check, dict(url=http_server.url(), json_assertions=[dict(query='status')], **FAST),
                        expect_failure=True)
    assert 'python3-jmespath' in result['msg']
    # without json_assertions jmespath is not needed
    run_module(health_check, dict(url=http_server.url(), **FAST))


def test_headers_method_and_body_are_sent(run_module, http_server):
    http_server.state.respond = lambda n, req: json_response({'status': 'ok'})
    run_module(health_check, dict(
        url=http_server.url('/api/health?deep=1'), method='post', body='{"probe": true}',
        headers={'Authorization': 'Bearer s3cr3t', 'Content-Type': 'application/json', 'X-Probe': 42},
        **FAST))
    [req] = http_server.state.requests
    assert req['method'] == 'POST'
    assert req['path'] == '/api/health?deep=1'
    assert req['body'] == b'{"probe": true}'
    assert req['headers']['Authorization'] == 'Bearer s3cr3t'
    assert req['headers']['Content-Type'] == 'application/json'
    assert req['headers']['X-Probe'] == '42'
    assert req['headers']['User-Agent'] == 'armstack.deploy.health_check'


def test_host_header_and_basic_auth_from_url(run_module, http_server):
    url = 'http://probe:p%%40ss@127.0.0.1:%d/health' % http_server.port
    run_module(health_check, dict(url=url, headers={'Host': 'api.example.com'}, **FAST))
    [req] = http_server.state.requests
    assert req['headers']['Host'] == 'api.example.com'
    assert req['headers']['Authorization'] == 'Basic cHJvYmU6cEBzcw=='  # probe:p@ss


def test_body_max_truncates(run_module, http_server):
    http_server.state.respond = lambda n, req: text_response('x' * 5000)
    result = run_module(health_check, dict(url=http_server.url(), body_max=100, **FAST))
    assert result['results'][0]['body'] == 'x' * 100


def test_headers_are_no_log(http_server, tmp_path):
    """Run the module for real (as a subprocess) and check the header values are masked in its output."""
    # The directory that holds ansible_collections/armstack/deploy, whichever it is
    # (the checkout's .cache/collections link, or ansible-test's tree).
    collections = os.path.abspath(os.path.join(os.path.dirname(health_check.__file__), *[os.pardir] * 5))
    args = tmp_path / 'args.json'
    args.write_text(json.dumps({'ANSIBLE_MODULE_ARGS': {
        'url': http_server.url(), 'headers': {'Authorization': 'Bearer topsecret'}, 'interval': 0.05}}))
    # ... and the ansible-core this test runs with (ansible-test puts its own on the path).
    ansible_lib = os.path.dirname(os.path.dirname(os.path.abspath(basic.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([collections, os.path.dirname(ansible_lib)]))
    proc = subprocess.run(
        [sys.executable, '-m', 'ansible_collections.armstack.deploy.plugins.modules.health_check', str(args)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, check=False, timeout=60,
    )
    output = proc.stdout.decode()
    assert output, proc.stderr.decode()
    result = json.loads(output)
    assert result['status'] == 'healthy', output
    assert 'topsecret' not in output
    assert http_server.state.requests[0]['headers']['Authorization'] == 'Bearer topsecret'


def test_invalid_url_fails_at_once(run_module):
    result = run_module(health_check, dict(url='ftp://127.0.0.1/health', **FAST), expect_failure=True)
    assert "expected an http:// or https:// URL" in result['msg']
    assert result['attempts'] == 0


def test_url_or_container_required(run_module):
    result = run_module(health_check, dict(**FAST), expect_failure=True)
    assert 'url' in result['msg'] and 'container' in result['msg']


def test_check_mode_runs_the_same_checks(run_module, http_server):
    http_server.state.respond = lambda n, req: (
        text_response('starting', status=503) if n % 2 == 0 else json_response({'status': 'ok'}))
    result = run_module(health_check, dict(url=http_server.url(), json_assertions=[dict(query='status', equals='ok')],
                                           **FAST), check_mode=True)
    assert result['changed'] is False
    assert result['status'] == 'healthy'
    assert result['attempts'] == 2
    assert http_server.state.count == 2


# ---------------------------------------------------------------------------
# HTTPS

def test_https_without_validation(run_module, https_server):
    result = run_module(health_check, dict(url=https_server.url(), validate_certs=False, **FAST))
    assert result['results'][0]['status'] == 200


def test_https_self_signed_fails_validation(run_module, https_server):
    result = run_module(health_check, dict(url=https_server.url(), retries=0, **FAST), expect_failure=True)
    assert 'TLS error' in result['msg']
    assert 'certificate' in result['msg']
    assert 'ca_path' in result['msg']  # what to do next
    assert result['results'][0]['status'] is None


def test_https_with_ca_path(run_module, https_server):
    result = run_module(health_check, dict(url=https_server.url(), ca_path=https_server.cert, **FAST))
    assert result['status'] == 'healthy'
    assert https_server.state.count == 1


def test_https_bad_ca_path(run_module, https_server, tmp_path):
    bogus = tmp_path / 'ca.pem'
    bogus.write_text('not a certificate')
    result = run_module(health_check, dict(url=https_server.url(), ca_path=str(bogus), **FAST), expect_failure=True)
    assert 'ca_path' in result['msg']


# ---------------------------------------------------------------------------
# Unix socket

def test_unix_socket(run_module, unix_server):
    unix_server.state.respond = lambda n, req: json_response({'status': 'ok'})
    result = run_module(health_check, dict(url='http://backend/health', unix_socket=unix_server.socket_path,
                                           json_assertions=[dict(query='status', equals='ok')], **FAST))
    assert result['status'] == 'healthy'
    [req] = unix_server.state.requests
    assert req['headers']['Host'] == 'backend'
    assert req['path'] == '/health'


def test_https_over_unix_socket(run_module, short_tmp, tls_cert):
    cert, key = tls_cert
    path = os.path.join(short_tmp, 'tls.sock')
    httpd = ThreadingUnixHTTPServer(path, Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    httpd.socket = context.wrap_socket(httpd.socket, server_side=True)
    server = Server(httpd)
    try:
        # the URL's host is the TLS server name: the certificate is for IP 127.0.0.1
        result = run_module(health_check, dict(url='https://127.0.0.1/health', unix_socket=path, ca_path=cert, **FAST))
        assert result['results'][0]['status'] == 200
        result = run_module(health_check, dict(url='https://backend/health', unix_socket=path, ca_path=cert,
                                               retries=0, **FAST), expect_failure=True)
        assert 'TLS error' in result['msg']
    finally:
        server.stop()


def test_unix_socket_missing(run_module, short_tmp):
    path = os.path.join(short_tmp, 'missing.sock')
    result = run_module(health_check, dict(url='http://backend/health', unix_socket=path, retries=0, **FAST),
                        expect_failure=True)
    assert 'the Unix socket %s does not exist' % path in result['msg']


# ---------------------------------------------------------------------------
# container health through the Docker Engine API

def test_container_healthy(run_module, docker_api):
    docker_api.containers['app-backend-1'] = [container_json('app-backend-1', health='healthy')]
    result = run_module(health_check, dict(container='app-backend-1', docker_socket=docker_api.socket_path, **FAST))
    assert result['status'] == 'healthy'
    assert result['results'] == []
    assert result['container_health'] == dict(
        container='app-backend-1', id='4f1c2a9be7d0', ok=True, state='running', health='healthy', failing_streak=0,
        last_output='', error=None)
    assert docker_api.state.requests[0]['path'] == '/containers/app-backend-1/json'


def test_container_unhealthy(run_module, docker_api):
    docker_api.containers['db'] = [container_json(
        'db', health='unhealthy', failing_streak=4, output='pg_isready: no response\n')]
    result = run_module(health_check, dict(container='db', docker_socket=docker_api.socket_path, retries=1, **FAST),
                        expect_failure=True)
    assert result['attempts'] == 2
    assert result['container_health']['health'] == 'unhealthy'
    assert result['container_health']['failing_streak'] == 4
    msg = result['msg']
    assert 'container db health is unhealthy, expected healthy' in msg
    assert 'pg_isready: no response' in msg


def test_container_starting_then_healthy(run_module, docker_api, http_server):
    docker_api.containers['backend'] = [
        container_json('backend', health='starting'),
        container_json('backend', health='starting'),
        container_json('backend', health='healthy'),
    ]
    result = run_module(health_check, dict(url=http_server.url(), container='backend',
                                           docker_socket=docker_api.socket_path, retries=3, **FAST))
    assert result['attempts'] == 3
    assert result['container_health']['health'] == 'healthy'
    assert result['results'][0]['ok'] is True
    assert http_server.state.count == 3  # the URL is checked in every attempt


def test_container_without_healthcheck(run_module, docker_api):
    docker_api.containers['caddy'] = [container_json('caddy')]
    result = run_module(health_check, dict(container='caddy', docker_socket=docker_api.socket_path, **FAST))
    assert result['container_health']['ok'] is True
    assert result['container_health']['health'] is None
    assert len(run_module.warnings) == 1
    assert 'caddy has no healthcheck' in run_module.warnings[0]


def test_container_without_healthcheck_not_running(run_module, docker_api):
    docker_api.containers['migrate'] = [container_json('migrate', status='exited', exit_code=1)]
    result = run_module(health_check, dict(container='migrate', docker_socket=docker_api.socket_path, retries=0,
                                           **FAST), expect_failure=True)
    assert 'container migrate is exited (exit code 1), not running' in result['msg']


def test_container_not_found(run_module, docker_api):
    result = run_module(health_check, dict(container='nope', docker_socket=docker_api.socket_path, retries=0,
                                           **FAST), expect_failure=True)
    assert 'no such container nope' in result['msg']
    assert result['container_health']['id'] is None


def test_container_without_docker(run_module, short_tmp):
    path = os.path.join(short_tmp, 'docker.sock')
    result = run_module(health_check, dict(container='app', docker_socket=path, retries=0, **FAST),
                        expect_failure=True)
    assert 'Docker Engine API' in result['msg'] and path in result['msg']


def test_json_assertions_leave_the_module_parameters_serialisable():
    """Ansible serialises the module's parameters into the result: compiled
    JMESPath queries must not be written into them (seen on a real VM as
    "Value of unknown type: jmespath ParsedResult")."""
    params = {
        'status_code': [200], 'body_regex': None,
        'json_assertions': [{'query': 'status', 'equals': 'ok', 'regex': None},
                            {'query': 'version', 'equals': None, 'regex': '^1\\.'}],
    }
    before = json.dumps(params, sort_keys=True)
    health_check.Assertions(params)
    assert json.dumps(params, sort_keys=True) == before
