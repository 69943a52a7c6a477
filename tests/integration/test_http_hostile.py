"""leadscored's HTTP server against hostile clients, on a real Redis and
the dev broker. Every client here talks to 127.0.0.0/8 only.

  * A flood of 1,100 slow connections from one address (127.0.0.2, one
    header byte a second): all but http.max_connections_per_address are
    refused at once, the rest are cut after http.request_timeout, and
    /healthz from 127.0.0.1 answers throughout. Refusals and cuts are
    counted in leadscore_http_connections_dropped_total and logged at
    most once per 10 s per reason.
  * Connections from many addresses past http.max_connections are refused
    and counted; the server serves again once they are cut.
  * A slowloris (one byte a second, never idle long enough for the
    inactivity timeout) is cut by the whole-request deadline, while a
    keep-alive client making a request a second is not.
  * With too few file descriptors for http.max_connections, the start
    warns, and accept() failing with EMFILE is logged and counted; the
    soft fd limit is raised to the hard one at start.
  * The bearer scheme is case-insensitive; a wrong token with a 10 MB
    Content-Length and no body is answered 401 at once (the body is never
    waited for), a declared oversized body 413 at once.
  * %00 (or another control byte) in a path id is 400 bad_path, never a
    truncated id.
  * A 503 while Redis is down names no socket path (the log does).
  * Start-up warnings: a non-loopback listener without a token, a token
    under 16 bytes; neither for the loopback daemon with a long token.

Run with Debian's /usr/bin/python3 and LS_BUILD_ROOT set to the meson build
dir (meson test does both).
"""
import http.client
import json
import os
import re
import resource
import select
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import lstest as tp  # noqa: E402
import testenv  # noqa: E402
from test_ops import samples  # noqa: E402

TOKEN = 'hostile-test-token-0123456789abcdef'
PER_ADDRESS = 50
MAX_CONNECTIONS = 200
TIMEOUT_S = 4
FLOOD = 1100


def raise_own_fd_limit(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need and (hard == resource.RLIM_INFINITY or hard >= need):
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0] >= need


class Slow:
    """Connections that send one byte of a never-ending header per tick;
    which of them the server has closed."""

    HEADER = b'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: ' + b'a' * 4000

    def __init__(self):
        self.socks = []
        self.sent = {}
        self.closed_at = {}
        self.refused = 0

    def open(self, port, source, n):
        for _ in range(n):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((source, 0))
            s.settimeout(5)
            try:
                s.connect(('127.0.0.1', port))
            except OSError:
                s.close()
                self.refused += 1
                continue
            s.setblocking(False)
            self.socks.append(s)
            self.sent[s] = 0
        return self

    def open_count(self):
        return len(self.socks) - len(self.closed_at)

    def poll(self):
        """Note the sockets the server closed (readable with EOF or reset)."""
        live = {s.fileno(): s for s in self.socks if s not in self.closed_at}
        p = select.poll()
        for fd in live:
            p.register(fd, select.POLLIN)
        for fd, _ in p.poll(0):
            s = live[fd]
            if True:
                try:
                    data = s.recv(4096)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    data = b''
                if data == b'' or data.startswith(b'HTTP/'):
                    self.closed_at[s] = time.monotonic()

    def tick(self):
        """One more header byte on every open socket."""
        for s in self.socks:
            if s in self.closed_at:
                continue
            i = self.sent[s]
            try:
                s.send(self.HEADER[i:i + 1])
                self.sent[s] = i + 1
            except (BlockingIOError, InterruptedError):
                pass
            except OSError:
                self.closed_at[s] = time.monotonic()

    def close(self):
        for s in self.socks:
            s.close()


class HostileHttp(tp.DaemonSuite):
    @classmethod
    def setUpClass(cls):
        if not raise_own_fd_limit(FLOOD + 400):
            raise unittest.SkipTest('cannot open %d sockets here' % FLOOD)
        cls.start_services('hostile', prefix='hh:', auth_token=TOKEN)
        cls.daemon = cls.start_daemon(cls.cfg, 'leadscored-hostile', {
            'LEADSCORE_HTTP_THREADS': '2',
            'LEADSCORE_HTTP_MAX_CONNECTIONS': str(MAX_CONNECTIONS),
            'LEADSCORE_HTTP_MAX_CONNECTIONS_PER_ADDRESS': str(PER_ADDRESS),
            'LEADSCORE_HTTP_REQUEST_TIMEOUT': '%ds' % TIMEOUT_S})
        cls.port = cls.daemon.http_port

    @classmethod
    def start_daemon(cls, cfg, name, env, argv_prefix=()):
        d = testenv.Daemon(list(argv_prefix) + [tp.LEADSCORED, '--config', cfg],
                           env=env, name=name)
        d.start()
        m = d.wait_for_log(r'msg="listening" .*port=(\d+)', timeout=30)
        d.http_port = int(m.group(1))
        return d

    # ------------------------------------------------------------ helpers

    def call(self, path, headers=None, method='GET', body=None, port=None, timeout=10):
        c = http.client.HTTPConnection('127.0.0.1', port or self.port, timeout=timeout)
        try:
            c.request(method, path, body=body, headers=headers or {})
            resp = c.getresponse()
            data = resp.read()
            return resp.status, (json.loads(data) if data else None)
        finally:
            c.close()

    def auth(self, scheme='Bearer', token=TOKEN):
        return {'Authorization': '%s %s' % (scheme, token)}

    def _metrics(self, port=None):
        c = http.client.HTTPConnection('127.0.0.1', port or self.port, timeout=10)
        try:
            c.request('GET', '/metrics')
            return c.getresponse().read().decode()
        finally:
            c.close()

    def dropped(self, reason, port=None):
        s = samples(self._metrics(port), 'leadscore_http_connections_dropped_total')
        return s.get(frozenset({('reason', reason)}), 0.0)

    def open_connections(self):
        return samples(self._metrics(), 'leadscore_http_connections')[frozenset()]

    def wait_quiet(self, baseline=1, timeout=30):
        """Until the server holds at most baseline connections (the scrape's)."""
        deadline = time.monotonic() + timeout
        while self.open_connections() > baseline:
            self.assertLess(time.monotonic(), deadline, self.daemon.tail())
            time.sleep(0.2)

    def raw(self, data, timeout=10, port=None):
        """Send data on a fresh connection; what comes back before the
        server closes or the timeout (socket.timeout propagates)."""
        s = socket.create_connection(('127.0.0.1', port or self.port), timeout=timeout)
        try:
            s.sendall(data)
            out = b''
            while b'\r\n\r\n' not in out:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
            head, _, rest = out.partition(b'\r\n\r\n')
            m = re.search(rb'(?i)content-length: *(\d+)', head)
            while m and len(rest) < int(m.group(1)):
                chunk = s.recv(65536)
                if not chunk:
                    break
                rest += chunk
            return head.decode('latin-1'), rest
        finally:
            s.close()

    # -------------------------------------------------------------- tests

    def test_bearer_scheme_is_case_insensitive(self):
        for scheme in ('Bearer', 'bearer', 'BEARER', 'bEaReR', 'Bearer '):
            status, body = self.call('/v1/leads/nobody', self.auth(scheme))
            self.assertEqual(status, 404, (scheme, body))   # authorized
            self.assertEqual(body['error'], 'unknown_lead')
        for headers in (self.auth('Basic'), self.auth(token=TOKEN[:-1]),
                        self.auth(token=TOKEN + 'x'), self.auth(token=''),
                        {'Authorization': 'Bearer'}, {'Authorization': 'Bearerx ' + TOKEN},
                        {}):
            status, body = self.call('/v1/leads/nobody', headers)
            self.assertEqual(status, 401, (headers, body))
            self.assertEqual(body['error'], 'unauthorized')

    def test_wrong_token_is_refused_before_the_body(self):
        # 10 MB announced, none sent: the answer cannot wait for the body
        head = ('POST /v1/campaigns/c/decisions HTTP/1.1\r\nHost: x\r\n'
                'Authorization: Bearer wrong\r\nContent-Type: application/json\r\n'
                'Content-Length: 10000000\r\n\r\n').encode()
        status, body = self.raw(head)
        self.assertTrue(status.startswith('HTTP/1.1 401'), status)
        self.assertEqual(json.loads(body)['error'], 'unauthorized')
        # the right token and the same announcement: 413 without reading
        head = head.replace(b'Bearer wrong', b'Bearer ' + TOKEN.encode())
        status, body = self.raw(head)
        self.assertTrue(status.startswith('HTTP/1.1 413'), status)
        self.assertEqual(json.loads(body)['error'], 'body_too_large')
        # and a normal request still works
        status, _ = self.call('/v1/leads/nobody', self.auth())
        self.assertEqual(status, 404)

    def test_control_bytes_in_a_path_id_are_400(self):
        for path in ('/v1/leads/abc%00def', '/v1/leads/%00', '/v1/leads/a%0ab',
                     '/v1/leads/a%7fb', '/v1/models/conversion%00x',
                     '/v1/decisions/d%00x/reward'):
            status, body = self.call(path, self.auth(),
                                     method='POST' if path.endswith('reward') else 'GET',
                                     body=b'{"reward": 1}' if path.endswith('reward') else None)
            self.assertEqual(status, 400, (path, body))
            self.assertEqual(body['error'], 'bad_path')
        # a literal "%00" (escaped percent) is an ordinary id
        status, body = self.call('/v1/leads/abc%2500def', self.auth())
        self.assertEqual(status, 404, body)
        # and the connection after a refused one is served normally
        status, _ = self.call('/healthz')
        self.assertEqual(status, 200)

    def test_keepalive_requests_are_not_cut(self):
        # one connection, a request a second for longer than the deadline:
        # each request has its own clock
        s = socket.create_connection(('127.0.0.1', self.port), timeout=10)
        try:
            start = time.monotonic()
            n = 0
            while time.monotonic() - start < TIMEOUT_S + 2:
                s.sendall(b'GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n')
                got = b''
                while not got.endswith(b'}'):
                    chunk = s.recv(4096)
                    self.assertTrue(chunk, 'closed after %d requests' % n)
                    got += chunk
                self.assertTrue(got.startswith(b'HTTP/1.1 200'), got)
                n += 1
                time.sleep(1)
        finally:
            s.close()

    def trickle(self, slow):
        """A byte a second on slow's connection: the seconds until the
        server closed it (fails past 25)."""
        start = time.monotonic()
        try:
            while slow.open_count() and time.monotonic() - start < 25:
                slow.tick()
                time.sleep(1)
                slow.poll()
            took = time.monotonic() - start
            # well under the 30 s idle timeout a byte a second never trips
            self.assertEqual(slow.open_count(), 0,
                             'a byte a second kept the connection for %.0f s' % took)
            return took
        finally:
            slow.close()

    def test_slowloris_is_cut_by_the_request_deadline(self):
        before = self.dropped('request_timeout')
        took = self.trickle(Slow().open(self.port, '127.0.0.1', 1))
        self.assertGreaterEqual(took, TIMEOUT_S - 1)
        self.assertGreaterEqual(self.dropped('request_timeout'), before + 1)
        self.daemon.wait_for_log(r'msg="connection closed: request took longer than '
                                 r'http.request_timeout" reason=request_timeout', timeout=5)
        # the headers at once, then the body a byte a second
        body = b'{"reward": 1}' + b' ' * 100
        slow = Slow().open(self.port, '127.0.0.1', 1)
        slow.socks[0].sendall(('POST /v1/decisions/d/reward HTTP/1.1\r\nHost: x\r\n'
                               'Authorization: Bearer %s\r\nContent-Length: %d\r\n\r\n'
                               % (TOKEN, len(body))).encode())
        slow.HEADER = body
        self.assertGreaterEqual(self.trickle(slow), TIMEOUT_S - 1)
        self.assertGreaterEqual(self.dropped('request_timeout'), before + 2)

    def test_flood_from_one_address(self):
        before = {r: self.dropped(r) for r in ('address_limit', 'request_timeout')}
        since = len(self.daemon.lines)
        slow = Slow()
        health = []
        stop = threading.Event()

        def probe():
            while not stop.is_set():
                t0 = time.monotonic()
                try:
                    status, _ = self.call('/healthz', timeout=5)
                except OSError as e:
                    status = repr(e)
                health.append((status, time.monotonic() - t0))
                time.sleep(0.3)

        prober = threading.Thread(target=probe)
        prober.start()
        try:
            slow.open(self.port, '127.0.0.2', FLOOD)
            held_max = 0
            start = time.monotonic()
            while time.monotonic() - start < TIMEOUT_S + 15:
                slow.tick()
                time.sleep(1)
                slow.poll()
                held_max = max(held_max, slow.open_count())
                if slow.open_count() == 0:
                    break
            # the server closed every one of them: the refused at once,
            # the held after the deadline
            self.assertEqual(slow.open_count(), 0)
            self.assertLessEqual(held_max, PER_ADDRESS + 2)
        finally:
            stop.set()
            prober.join()
            slow.close()
        failures = [h for h in health if h[0] != 200]
        self.assertEqual(failures, [], health)
        self.assertGreaterEqual(len(health), 5)
        refused = self.dropped('address_limit') - before['address_limit']
        cut = self.dropped('request_timeout') - before['request_timeout']
        self.assertGreaterEqual(refused, FLOOD - PER_ADDRESS - 2)
        self.assertGreaterEqual(cut, PER_ADDRESS - 2)
        # logged, but not once per connection
        lines = [l for l in self.daemon.lines[since:] if 'reason=address_limit' in l]
        self.assertGreaterEqual(len(lines), 1)
        self.assertLessEqual(len(lines), 5, lines)
        self.assertIn('address=127.0.0.2', lines[0])
        self.wait_quiet()

    def test_total_limit_over_many_addresses(self):
        before = self.dropped('connection_limit')
        slow = Slow()
        try:
            for i in range(3, 3 + 8):   # 8 addresses x 40: under 50 each, 320 in all
                slow.open(self.port, '127.0.0.%d' % i, 40)
            time.sleep(1)
            slow.poll()
            held = slow.open_count()
        finally:
            slow.close()
        self.assertLessEqual(held, MAX_CONNECTIONS + 2)
        self.assertGreaterEqual(held, MAX_CONNECTIONS - 2)
        # the server answers again once they are gone (no /metrics before:
        # this client would be refused too)
        deadline = time.monotonic() + 30
        while True:
            try:
                if self.call('/healthz', timeout=5)[0] == 200:
                    break
            except OSError:
                pass
            self.assertLess(time.monotonic(), deadline, self.daemon.tail())
            time.sleep(0.2)
        self.wait_quiet()
        self.assertGreaterEqual(self.dropped('connection_limit') - before, 320 - held)

    def test_no_startup_warning_for_loopback_and_long_token(self):
        for line in self.daemon.lines:
            self.assertNotIn('http.auth_token is not set', line)
            self.assertNotIn('shorter than 16 bytes', line)
        m = self.daemon.wait_for_log(r'msg="connection limits" max_connections=(\d+) '
                                     r'max_connections_per_address=(\d+) '
                                     r'request_timeout_ms=(\d+)')
        self.assertEqual(m.groups(), (str(MAX_CONNECTIONS), str(PER_ADDRESS),
                                      str(TIMEOUT_S * 1000)))

    def test_warnings_for_open_listener_without_token(self):
        cfg = tp.write_config(os.path.join(self.tmp.name, 'open.yaml'),
                              self.broker.bootstrap, self.redis.url, 'hostile-open',
                              prefix='ho:')
        d = self.start_daemon(cfg, 'leadscored-open', {'LEADSCORE_HTTP_LISTEN': '0.0.0.0:0'})
        try:
            d.wait_for_log(r'level=warn component=http msg="http.listen is not a loopback '
                           r'address and http.auth_token is not set" listen=0.0.0.0:0')
            # defaults sized from the fd limit: at most 4096, an eighth per address
            m = d.wait_for_log(r'msg="connection limits" max_connections=(\d+) '
                               r'max_connections_per_address=(\d+) .* nofile=(\d+)')
            total, per, nofile = (int(g) for g in m.groups())
            self.assertEqual(total, max(8, min(4096, nofile - 256)))
            self.assertEqual(per, max(1, total // 8))
            status, _ = self.call('/healthz', port=d.http_port)
            self.assertEqual(status, 200)
        finally:
            self.assertEqual(d.terminate(), 0, d.tail())

    def test_out_of_fds_is_logged_and_counted(self):
        # soft 300, hard 400: raised to 400 at start; a connection limit
        # the descriptors cannot carry warns, and EMFILE is reported
        cfg = tp.write_config(os.path.join(self.tmp.name, 'fds.yaml'),
                              self.broker.bootstrap, self.redis.url, 'hostile-fds',
                              prefix='hf:', auth_token='tok3n')
        d = self.start_daemon(cfg, 'leadscored-fds', {
            'LEADSCORE_HTTP_MAX_CONNECTIONS': '1000',
            'LEADSCORE_HTTP_MAX_CONNECTIONS_PER_ADDRESS': '1000',
            'LEADSCORE_HTTP_REQUEST_TIMEOUT': '%ds' % TIMEOUT_S},
            argv_prefix=('prlimit', '--nofile=300:400', '--'))
        slow = Slow()
        try:
            d.wait_for_log(r'msg="fd limit raised" from=300 to=400')
            d.wait_for_log(r'level=warn component=http msg="http.auth_token is shorter '
                           r'than 16 bytes"')
            d.wait_for_log(r'level=warn component=http msg="http.max_connections leaves '
                           r'too few file descriptors" max_connections=1000 nofile=400')
            self.assertNotIn('tok3n', '\n'.join(d.lines))   # the token is never logged
            slow.open(d.http_port, '127.0.0.1', 500)
            d.wait_for_log(r'level=error component=http msg="accept failed: out of file '
                           r'descriptors" reason=out_of_fds', timeout=15)
            slow.close()
            # serving again once the flood is gone
            deadline = time.monotonic() + 30
            while True:
                try:
                    status, _ = self.call('/healthz', port=d.http_port, timeout=5)
                    if status == 200:
                        break
                except OSError:
                    pass
                self.assertLess(time.monotonic(), deadline, d.tail())
                time.sleep(0.5)
            self.assertGreaterEqual(self.dropped('out_of_fds', port=d.http_port), 1)
        finally:
            slow.close()
            self.assertEqual(d.terminate(), 0, d.tail())

    def test_zz_503_names_no_socket_path(self):
        # last: Redis goes away (and comes back for the teardown)
        status, _ = self.call('/v1/leads/nobody', self.auth())
        self.assertEqual(status, 404)
        self.redis.stop()
        try:
            bodies = []
            for _ in range(3):
                status, body = self.call('/v1/leads/nobody', self.auth())
                self.assertEqual(status, 503, body)
                bodies.append(body)
            for body in bodies:
                self.assertEqual(body, {'error': 'redis_unavailable',
                                        'detail': 'redis unavailable'})
                text = json.dumps(body)
                self.assertNotIn(self.redis.url.split('://')[-1].split('?')[0], text)
                self.assertNotIn('/', text)
            # the details are in the log, once per 10 s however many requests
            self.daemon.wait_for_log(r'msg="redis unavailable for an HTTP request" error=')
            lines = [l for l in self.daemon.lines
                     if 'msg="redis unavailable for an HTTP request"' in l]
            self.assertEqual(len(lines), 1, lines)
        finally:
            self.redis.restart()


if __name__ == '__main__':
    unittest.main()
