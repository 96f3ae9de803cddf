#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright (c) 2026, armstack.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
---
module: health_check
short_description: Wait until HTTP(S) endpoints and a container are healthy
version_added: 0.1.0
description:
  - Sends requests to one or more HTTP or HTTPS endpoints and checks the status code, the body and values in a JSON body,
    with patience for backends that take long to start.
  - Optionally also requires the Docker healthcheck of a container to report C(healthy), read from the Docker Engine API
    over its Unix socket.
  - An attempt passes when every URL, and the container if one is given, passes every check. The module tries until an
    attempt passes, or until O(start_period) has elapsed and O(retries) further attempts have failed. Failures during
    O(start_period) do not count against O(retries).
  - Uses the Python standard library only; O(json_assertions) need C(jmespath) on the target. Redirects are not followed
    (a redirect is a status code like any other) and proxies are not used.
  - The module only reads; it never changes the host and runs the same checks in check mode.
options:
  url:
    description:
      - The endpoints to check, each an C(http://) or C(https://) URL. All of them must pass.
      - User and password in the URL (C(https://user:pass@host/)) are sent as basic authentication. The URLs are
        logged and returned, so prefer O(headers) for secrets.
      - Required unless O(container) is given.
    type: list
    elements: str
    aliases: [urls]
  method:
    description:
      - The HTTP method.
    type: str
    default: GET
  headers:
    description:
      - Request headers, for example C(Authorization) or C(Host).
      - The values are treated as secrets and are not logged.
    type: dict
  body:
    description:
      - The request body, sent as UTF-8. Set a C(Content-Type) in O(headers) when the endpoint needs one.
    type: str
  status_code:
    description:
      - The status codes that count as a pass.
    type: list
    elements: int
    default: [200]
  body_regex:
    description:
      - A Python regular expression that must be found (C(re.search)) in the decoded response body.
    type: str
  json_assertions:
    description:
      - Checks on the JSON body of every response. The body must be JSON when any is given.
      - Each item gives O(json_assertions[].equals), or O(json_assertions[].regex), or neither; then the query must
        return a truthy value in the JMESPath sense, that is not V(null), V(false), an empty string, an empty list or an
        empty object (V(0) is truthy).
      - Needs the Python library C(jmespath) on the target (Debian/Ubuntu package C(python3-jmespath)).
    type: list
    elements: dict
    suboptions:
      query:
        description:
          - A JMESPath expression evaluated on the parsed body.
        type: str
        required: true
      equals:
        description:
          - The value the query must return, any JSON value. Types matter, V(1) does not equal V(true) or V("1").
          - A V(null) here means "not set"; to require null, use a query like V(status == null) without O(json_assertions[].equals).
        type: raw
      regex:
        description:
          - A Python regular expression that must be found in the value the query returns. Strings are searched as
            they are, other values as their JSON text.
        type: str
  validate_certs:
    description:
      - Whether to verify the TLS certificate and host name of HTTPS endpoints.
      - Set to V(false) only for self-signed certificates you cannot give with O(ca_path).
    type: bool
    default: true
  ca_path:
    description:
      - A PEM file of CA certificates that are trusted for HTTPS endpoints, in addition to the system's.
    type: path
  unix_socket:
    description:
      - Send the requests over this Unix socket instead of TCP. The host of each URL is then only the C(Host) header
        (and the TLS server name for C(https://)).
    type: path
  timeout:
    description:
      - Seconds each request may take to connect and to deliver each part of its response.
    type: float
    default: 5
  start_period:
    description:
      - Seconds after the module starts during which failed attempts are expected and not counted against O(retries),
        like the C(start_period) of a Docker healthcheck.
    type: float
    default: 0
  interval:
    description:
      - Seconds to wait between attempts.
    type: float
    default: 2
  retries:
    description:
      - How many attempts that start after O(start_period) may fail before the module gives up.
      - With V(0), exactly one attempt is made after O(start_period).
    type: int
    default: 3
  container:
    description:
      - Name or ID of a Docker container whose own healthcheck must report C(healthy).
      - A container without a healthcheck counts as healthy while it runs, with a warning.
    type: str
  docker_socket:
    description:
      - The Unix socket of the Docker Engine API, used with O(container).
    type: path
    default: /var/run/docker.sock
  body_max:
    description:
      - How many characters of each response body to return in RV(results[].body) and to quote in messages.
    type: int
    default: 1024
extends_documentation_fragment:
  - armstack.deploy.attributes
notes:
  - Without O(json_assertions), JMESPath is not needed; PyYAML and other libraries are never needed.
  - O(timeout) bounds each network operation, not the whole request; a server that trickles a body can take longer.
seealso:
  - module: ansible.builtin.uri
  - module: ansible.builtin.wait_for
  - name: JMESPath specification
    description: The query language of O(json_assertions[].query).
    link: https://jmespath.org/specification.html
requirements:
  - jmespath, only with O(json_assertions)
author:
  - armstack.deploy contributors (!UNKNOWN)
"""

EXAMPLES = r"""
---
- name: Wait for the backend behind Caddy, allowing two minutes of startup
  armstack.deploy.health_check:
    url: https://api.example.com/healthz
    start_period: 120
    interval: 5
    retries: 3

- name: Check the backend and its dependencies in the JSON body
  armstack.deploy.health_check:
    url:
      - http://127.0.0.1:8000/health
      - http://127.0.0.1:8000/ready
    json_assertions:
      - query: status
        equals: ok
      - query: checks.database.ok
      - query: version
        regex: '^1\.'

- name: Talk to a backend listening on a Unix socket
  armstack.deploy.health_check:
    url: http://backend/health
    unix_socket: /run/app/gunicorn.sock
    body_regex: '"status":\s*"ok"'

- name: Require the container's own healthcheck as well
  armstack.deploy.health_check:
    url: https://127.0.0.1/health
    ca_path: /etc/armstack/ca.pem
    headers:
      Host: api.example.com
      Authorization: "Bearer {{ health_token }}"
    container: app-backend-1
    start_period: 60
  register: health

- name: Only the container
  armstack.deploy.health_check:
    container: app-postgres-1
    interval: 3
    retries: 10
"""

RETURN = r"""
---
status:
  description: V(healthy) on success, V(unhealthy) on failure.
  returned: always
  type: str
  sample: healthy
attempts:
  description: How many attempts were made.
  returned: always
  type: int
  sample: 4
elapsed:
  description: Seconds from the start of the module to the end of the last attempt.
  returned: always
  type: float
  sample: 6.512
latencies:
  description: The duration in seconds of each attempt, all URLs and the container included.
  returned: always
  type: list
  elements: float
  sample: [0.0021, 0.0019, 0.0034, 0.0022]
results:
  description: One entry per URL, from the last attempt.
  returned: always
  type: list
  elements: dict
  sample:
    - url: http://127.0.0.1:8000/health
      ok: true
      status: 200
      latency: 0.0022
      body: '{"status": "ok"}'
      json:
        status: ok
      error: null
  contains:
    url:
      description: The URL.
      returned: always
      type: str
      sample: http://127.0.0.1:8000/health
    ok:
      description: Whether the URL passed every check.
      returned: always
      type: bool
      sample: true
    status:
      description: The HTTP status code, V(null) when no response came.
      returned: always
      type: int
      sample: 200
    latency:
      description: Seconds the request took.
      returned: always
      type: float
      sample: 0.0022
    body:
      description: The decoded response body, cut to O(body_max) characters.
      returned: always
      type: str
      sample: '{"status": "ok"}'
    json:
      description: The parsed body when it is JSON (or O(json_assertions) are given and it parses), else V(null).
      returned: always
      type: raw
      sample:
        status: ok
    error:
      description: Why the URL failed, V(null) when it passed.
      returned: always
      type: str
      sample: null
container_health:
  description: The state of O(container) at the last attempt.
  returned: when O(container) is given
  type: dict
  sample:
    container: app-backend-1
    id: 4f1c2a9be7d0
    ok: true
    state: running
    health: healthy
    failing_streak: 0
    last_output: ''
    error: null
  contains:
    container:
      description: O(container).
      returned: always
      type: str
      sample: app-backend-1
    id:
      description: The short container ID, V(null) when the container was not found.
      returned: always
      type: str
      sample: 4f1c2a9be7d0
    ok:
      description: Whether the container counted as healthy.
      returned: always
      type: bool
      sample: true
    state:
      description: The container state (V(running), V(restarting), V(exited), ...), V(null) when not found.
      returned: always
      type: str
      sample: running
    health:
      description: The healthcheck status (V(starting), V(healthy), V(unhealthy)), V(null) without a healthcheck.
      returned: always
      type: str
      sample: healthy
    failing_streak:
      description: Consecutive failed healthchecks reported by Docker, V(null) without a healthcheck.
      returned: always
      type: int
      sample: 0
    last_output:
      description: Output of the last healthcheck run, cut to O(body_max) characters.
      returned: always
      type: str
      sample: ''
    error:
      description: Why the container failed, V(null) when it passed.
      returned: always
      type: str
      sample: null
"""

import json
import re
import time
from urllib.parse import quote

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.armstack.deploy.plugins.module_utils._http import (
    HTTPRequestError,
    URLError,
    decode_body,
    make_ssl_context,
    request,
    split_url,
)

EXCERPT_CHARS = 200


class ConfigError(Exception):
    """A problem with the options; reported at once, never retried."""


def _json_text(value, limit=EXCERPT_CHARS):
    text = json.dumps(value, sort_keys=True, default=str)
    if len(text) > limit:
        text = text[:limit] + '...'
    return text


def _excerpt(text, limit=EXCERPT_CHARS):
    text = text or ''
    if len(text) > limit:
        return text[:limit] + '...'
    return text


def json_equal(actual, expected):
    """Equality of JSON values where booleans are not numbers."""
    if isinstance(actual, bool) or isinstance(expected, bool):
        return isinstance(actual, bool) and isinstance(expected, bool) and actual == expected
    if isinstance(actual, (int, float)) and isinstance(expected, (int, float)):
        return actual == expected
    if isinstance(actual, dict) and isinstance(expected, dict):
        return set(actual) == set(expected) and all(json_equal(actual[k], expected[k]) for k in actual)
    if isinstance(actual, list) and isinstance(expected, list):
        return len(actual) == len(expected) and all(json_equal(a, e) for a, e in zip(actual, expected))
    return type(actual) is type(expected) and actual == expected  # pylint: disable=unidiomatic-typecheck


def jmespath_truthy(value):
    """JMESPath truthiness: null, false, "" , [] and {} are false; numbers (0 too) are true."""
    if value is None or value is False:
        return False
    if isinstance(value, (str, list, dict)):
        return len(value) > 0
    return True


class Assertions(object):
    def __init__(self, params):
        self.status_codes = params['status_code']
        self.body_regex = None
        self.body_regex_text = params['body_regex']
        if params['body_regex'] is not None:
            try:
                self.body_regex = re.compile(params['body_regex'])
            except re.error as exc:
                raise ConfigError('body_regex %r is not a valid regular expression: %s' % (params['body_regex'], exc)) from exc
        self.json = []
        for index, item in enumerate(params['json_assertions'] or []):
            if item.get('equals') is not None and item.get('regex') is not None:
                raise ConfigError('json_assertions[%d]: give equals or regex, not both' % index)
            # A copy: the compiled query must not end up in the module's own
            # parameters, which Ansible serialises into the result (invocation).
            self.json.append(dict(item))
        if self.json:
            self._compile_json()

    def _compile_json(self):
        try:
            import jmespath
        except ImportError:
            raise ConfigError(
                '%s json_assertions need it on the target: install python3-jmespath (apt-get install '
                'python3-jmespath) or pip install jmespath, or drop json_assertions and use body_regex'
                % missing_required_lib('jmespath')) from None
        for index, item in enumerate(self.json):
            try:
                item['_compiled'] = jmespath.compile(item['query'])
            except jmespath.exceptions.JMESPathError as exc:
                raise ConfigError('json_assertions[%d]: query %r is not valid JMESPath: %s'
                                  % (index, item['query'], exc)) from exc
            if item.get('regex') is not None:
                try:
                    item['_regex'] = re.compile(item['regex'])
                except re.error as exc:
                    raise ConfigError('json_assertions[%d]: regex %r is not a valid regular expression: %s'
                                      % (index, item['regex'], exc)) from exc

    def check(self, response, text, parsed, parse_error):
        """Returns a list of failure messages, empty when all pass."""
        if response['status'] not in self.status_codes:
            return ['status %d %s, expected %s' % (
                response['status'], response['reason'] or '',
                'status %d' % self.status_codes[0] if len(self.status_codes) == 1
                else 'one of %s' % ', '.join(str(c) for c in self.status_codes))]
        failures = []
        if self.body_regex is not None and not self.body_regex.search(text):
            failures.append('the body does not match body_regex %r' % self.body_regex_text)
        if self.json:
            if parse_error is not None:
                failures.append('the body is not JSON (%s), json_assertions need a JSON body' % parse_error)
                return failures
            for index, item in enumerate(self.json):
                value = item['_compiled'].search(parsed)
                if item.get('equals') is not None:
                    if not json_equal(value, item['equals']):
                        failures.append('json_assertions[%d]: query %r returned %s, expected %s'
                                        % (index, item['query'], _json_text(value), _json_text(item['equals'])))
                elif item.get('regex') is not None:
                    subject = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
                    if value is None or not item['_regex'].search(subject):
                        failures.append('json_assertions[%d]: query %r returned %s, which does not match regex %r'
                                        % (index, item['query'], _json_text(value), item['regex']))
                elif not jmespath_truthy(value):
                    failures.append('json_assertions[%d]: query %r returned %s, expected a truthy value'
                                    % (index, item['query'], _json_text(value)))
        return failures


class HealthCheck(object):
    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.assertions = Assertions(self.params)
        self.ssl_context = None
        self.warned_no_healthcheck = False
        for url in self.params['url'] or []:
            try:
                split_url(url)
            except URLError as exc:
                raise ConfigError(str(exc)) from exc
        if any(u.lower().startswith('https:') for u in self.params['url'] or []):
            try:
                self.ssl_context = make_ssl_context(self.params['validate_certs'], self.params['ca_path'])
            except URLError as exc:
                raise ConfigError(str(exc)) from exc

    def check_url(self, url):
        params = self.params
        result = dict(url=url, ok=False, status=None, latency=None, body='', json=None, error=None)
        started = time.monotonic()
        try:
            response = request(
                url, method=params['method'].upper(), headers=params['headers'], body=params['body'],
                timeout=params['timeout'], unix_socket=params['unix_socket'], ssl_context=self.ssl_context,
            )
        except URLError as exc:
            raise ConfigError(str(exc)) from exc
        except HTTPRequestError as exc:
            result['latency'] = round(time.monotonic() - started, 4)
            result['error'] = str(exc)
            return result, ''
        result['latency'] = round(response['latency'], 4)
        result['status'] = response['status']
        text = decode_body(response)
        result['body'] = text[:max(params['body_max'], 0)]

        parsed = None
        parse_error = None
        content_type = response['headers'].get('content-type', '')
        if self.assertions.json or 'json' in content_type.lower():
            try:
                parsed = json.loads(text)
            except ValueError as exc:
                parse_error = str(exc)
        result['json'] = parsed

        failures = self.assertions.check(response, text, parsed, parse_error)
        if failures:
            result['error'] = '; '.join(failures)
        else:
            result['ok'] = True
        return result, text

    def check_container(self):
        params = self.params
        name = params['container']
        info = dict(container=name, id=None, ok=False, state=None, health=None, failing_streak=None,
                    last_output='', error=None)
        url = 'http://docker/containers/%s/json' % quote(name, safe='')
        try:
            response = request(url, timeout=params['timeout'], unix_socket=params['docker_socket'])
        except HTTPRequestError as exc:
            info['error'] = 'cannot ask the Docker Engine API: %s. Is Docker running, and is docker_socket right?' % exc
            return info
        text = decode_body(response)
        if response['status'] == 404:
            info['error'] = 'no such container %s (see docker ps -a for the names)' % name
            return info
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if response['status'] != 200 or not isinstance(data, dict):
            message = data.get('message') if isinstance(data, dict) else _excerpt(text)
            info['error'] = 'the Docker Engine API answered status %d: %s' % (response['status'], message)
            return info

        state = data.get('State') or {}
        info['id'] = (data.get('Id') or '')[:12] or None
        info['state'] = state.get('Status')
        health = state.get('Health')
        if health:
            info['health'] = health.get('Status')
            info['failing_streak'] = health.get('FailingStreak')
            log = health.get('Log') or []
            if log:
                info['last_output'] = (log[-1].get('Output') or '').strip()[:max(params['body_max'], 0)]
        if info['health'] == 'healthy':
            info['ok'] = True
        elif info['health'] is None and state.get('Running'):
            info['ok'] = True
            if not self.warned_no_healthcheck:
                self.warned_no_healthcheck = True
                self.module.warn('container %s has no healthcheck; it counts as healthy because it is running. Add a '
                                 'healthcheck to its image or Compose service to check it for real' % name)
        elif info['health'] is None:
            info['error'] = 'container %s is %s (exit code %s), not running' % (
                name, info['state'], state.get('ExitCode'))
        else:
            info['error'] = 'container %s health is %s, expected healthy (state %s, failing streak %s)%s' % (
                name, info['health'], info['state'], info['failing_streak'],
                ', last check output: %r' % _excerpt(info['last_output']) if info['last_output'] else '')
        return info

    def attempt(self):
        """One attempt: returns (passed, results, container_info, texts)."""
        results = []
        texts = []
        for url in self.params['url'] or []:
            result, text = self.check_url(url)
            results.append(result)
            texts.append(text)
        container = self.check_container() if self.params['container'] else None
        passed = all(r['ok'] for r in results) and (container is None or container['ok'])
        return passed, results, container, texts

    def run(self):
        params = self.params
        start_period = max(params['start_period'], 0.0)
        started = time.monotonic()
        attempts = 0
        counted_failures = 0
        latencies = []
        while True:
            attempts += 1
            attempt_started = time.monotonic()
            in_start_period = attempt_started - started < start_period
            passed, results, container, texts = self.attempt()
            now = time.monotonic()
            latencies.append(round(now - attempt_started, 4))
            outcome = dict(
                attempts=attempts,
                elapsed=round(now - started, 3),
                latencies=latencies,
                results=results,
            )
            if container is not None:
                outcome['container_health'] = container
            if passed:
                outcome['status'] = 'healthy'
                return True, outcome, None
            if not in_start_period:
                counted_failures += 1
                if counted_failures > params['retries']:
                    outcome['status'] = 'unhealthy'
                    return False, outcome, self.failure_message(outcome, texts, start_period)
            time.sleep(max(params['interval'], 0.0))

    def failure_message(self, outcome, texts, start_period):
        params = self.params
        problems = []
        for result, text in zip(outcome['results'], texts):
            if result['ok']:
                continue
            problem = '%s: %s' % (result['url'], result['error'])
            limit = min(EXCERPT_CHARS, params['body_max'])
            if text and limit > 0:
                problem += '; body: %r' % _excerpt(' '.join(text.split()), limit)
            problems.append(problem)
        container = outcome.get('container_health')
        if container is not None and not container['ok']:
            problems.append('container %s: %s' % (container['container'], container['error']))
        return ('Not healthy after %s in %.1f s (start_period %s s, then %s allowed): %s. '
                'Check the service logs (docker compose logs), or give it more time with start_period, interval '
                'or retries' % (_plural(outcome['attempts'], 'attempt'), outcome['elapsed'], _number(start_period),
                                _plural(params['retries'], 'retry', 'retries'), ' | '.join(problems)))


def _plural(count, singular, plural=None):
    return '%d %s' % (count, singular if count == 1 else (plural or singular + 's'))


def _number(value):
    return ('%f' % value).rstrip('0').rstrip('.')


def main():
    argument_spec = dict(
        url=dict(type='list', elements='str', aliases=['urls']),
        method=dict(type='str', default='GET'),
        headers=dict(type='dict', no_log=True),
        body=dict(type='str'),
        status_code=dict(type='list', elements='int', default=[200]),
        body_regex=dict(type='str'),
        json_assertions=dict(type='list', elements='dict', options=dict(
            query=dict(type='str', required=True),
            equals=dict(type='raw'),
            regex=dict(type='str'),
        )),
        validate_certs=dict(type='bool', default=True),
        ca_path=dict(type='path'),
        unix_socket=dict(type='path'),
        timeout=dict(type='float', default=5),
        start_period=dict(type='float', default=0),
        interval=dict(type='float', default=2),
        retries=dict(type='int', default=3),
        container=dict(type='str'),
        docker_socket=dict(type='path', default='/var/run/docker.sock'),
        body_max=dict(type='int', default=1024),
    )
    module = AnsibleModule(
        argument_spec=argument_spec,
        required_one_of=[('url', 'container')],
        supports_check_mode=True,
    )
    params = module.params
    empty = dict(changed=False, status='unhealthy', attempts=0, elapsed=0.0, latencies=[], results=[])

    for key in ('timeout', 'start_period', 'interval', 'retries', 'body_max'):
        if params[key] < 0:
            module.fail_json(msg='%s must be 0 or more, got %s' % (key, params[key]), **empty)
    if params['timeout'] == 0:
        module.fail_json(msg='timeout must be more than 0 seconds, got 0', **empty)
    if not params['status_code']:
        module.fail_json(msg='status_code must list at least one status code, for example [200]', **empty)
    if params['url'] is not None and not params['url'] and not params['container']:
        module.fail_json(msg='url is empty; give at least one URL to check, or a container', **empty)

    try:
        check = HealthCheck(module)
        ok, outcome, message = check.run()
    except ConfigError as exc:
        module.fail_json(msg=str(exc), **empty)

    outcome['changed'] = False
    if not ok:
        module.fail_json(msg=message, **outcome)
    module.exit_json(**outcome)


if __name__ == '__main__':
    main()
