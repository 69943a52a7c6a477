"""Secrets: no password or token reaches a log line, an error or /metrics;
a Redis ACL user authenticates as itself.

  * Leak: leadscored runs (log level debug, librdkafka's `debug: conf`
    dump on) against a real redis-server as the ACL user `app` (whose
    password holds a percent-escaped '@'), with distinctive values in
    kafka.properties (sasl.password and ssl.key.password, which librdkafka
    accepts and ignores on a PLAINTEXT connection, so the mock broker still
    serves it) and http.auth_token. The config is mode 0644, so start and
    --check-config warn about each secret by file:line:column and key. A
    SIGHUP reload with every secret changed logs the changed keys. Every
    stderr and stdout line of all of that, the --check-config outputs
    (including a misspelt property and a bad LEADSCORE_REDIS_URL that hold
    secrets) and /metrics are searched for every secret string.
  * AclUser: the daemon's Redis connections are the ACL user's (CLIENT
    LIST), and leadscorectl reaches Redis as `app`, as the default user by
    redis://:password@ and by the bare redis://password@ form, and fails
    with WRONGPASS (without the password) on a wrong one. Before user names
    were parsed, redis://app:pw@ sent AUTH pw and got WRONGPASS.

Run with Debian's /usr/bin/python3 and LS_BUILD_ROOT set to the meson build
dir (meson test does both).
"""
import http.client
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import avro_events  # noqa: E402
import lstest as tp  # noqa: E402
import testenv  # noqa: E402

DEFAULT_PW = 'Dflt-S3cret-0a'
APP_PW = 'App-S3cret@1b'          # '@' written %40 in the URL
APP_PW2 = 'App-S3cret-NEW@2c'
SASL_PW = 'Kafka-Sasl-S3cret-3d'
SASL_PW2 = 'Kafka-Sasl-S3cret-NEW-4e'
KEY_PW = 'Kafka-Key-S3cret-5f'
TOKEN = 'Http-T0ken-S3cret-6a'
TOKEN2 = 'Http-T0ken-S3cret-NEW-7b'
TYPO_PW = 'Typo-S3cret-8c'
ENV_PW = 'Env-S3cret-9d'
# Each secret's distinctive part: what must appear nowhere.
NEEDLES = ['Dflt-S3cret', 'App-S3cret', 'Kafka-Sasl-S3cret', 'Kafka-Key-S3cret',
           'Http-T0ken-S3cret', 'Typo-S3cret', 'Env-S3cret', 'S3cret%40', 'S3cret@']
NOW = int(time.time() * 1000) - 60000


def redis_url(port, user, password):
    return 'redis://%s:%s@127.0.0.1:%d/0' % (
        user, urllib.parse.quote(password, safe=''), port)


def write_config(path, broker, url, sasl_pw, token, extra_props=None):
    props = {'sasl.password': sasl_pw, 'ssl.key.password': KEY_PW,
             'sasl.username': 'svc-leadscore', 'debug': 'conf'}
    props.update(extra_props or {})
    tp.write_config(path, broker, url, 'secrets', prefix='sec:',
                    properties=props, level='debug', auth_token=token)
    os.chmod(path, 0o644)
    return path


def check_config(path, env=None):
    e = dict(os.environ)
    e.update(env or {})
    return subprocess.run([tp.LEADSCORED, '--check-config', path], capture_output=True,
                          text=True, timeout=60, env=e)


def get(port, path, token=None):
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=30)
    c.request('GET', path, headers={'Authorization': 'Bearer ' + token} if token else {})
    r = c.getresponse()
    body = r.read().decode('utf-8', 'replace')
    c.close()
    return r.status, body


class RedisAcl:
    """A redis-server whose default user needs DEFAULT_PW and whose ACL
    user `app` has APP_PW (and APP_PW2): AUTH with the wrong user gets
    WRONGPASS."""

    def __init__(self):
        self.server = testenv.RedisServer('tcp')

    def start(self):
        self.server.start()
        c = self.server.client()
        c.execute_command('ACL', 'SETUSER', 'app', 'on', '>' + APP_PW, '>' + APP_PW2,
                          '~*', '&*', '+@all')
        c.execute_command('CONFIG', 'SET', 'requirepass', DEFAULT_PW)
        c.close()
        return self

    def client(self):
        return self.server.client(username='app', password=APP_PW)

    def url(self, password=APP_PW):
        return redis_url(self.server.port, 'app', password)

    def stop(self):
        self.server.stop()
        self.server.cleanup()


def assert_no_secrets(tc, what, text):
    for n in NEEDLES:
        tc.assertNotIn(n, text, '%s leaks %r:\n%s' % (what, n, text[-3000:]))


class Leak(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        self.redis = RedisAcl().start()
        self.addCleanup(self.redis.stop)
        self.broker = testenv.DevBroker()
        self.broker.start()
        self.addCleanup(self.broker.stop)
        self.cfg = os.path.join(self.tmp.name, 'leadscore.yaml')

    def test_no_secret_in_logs_errors_or_metrics(self):
        outputs = []   # (what, text) searched at the end
        write_config(self.cfg, self.broker.bootstrap, self.redis.url(), SASL_PW, TOKEN)

        # --check-config: OK, with a warning per secret (0644)
        r = check_config(self.cfg)
        outputs.append(('--check-config', r.stdout + r.stderr))
        self.assertEqual(r.returncode, 0, r.stderr)
        for line, col, key in ((7, 5, 'kafka.properties.sasl.password'),
                               (8, 5, 'kafka.properties.ssl.key.password'),
                               (12, 8, 'redis.url'), (16, 15, 'http.auth_token')):
            self.assertIn('warning: %s:%d:%d: %s: holds a secret, but the file is readable '
                          'by every user (mode 0644)' % (self.cfg, line, col, key), r.stderr)
        # a misspelt secret property fails at its key; a bad URL from the
        # environment fails without quoting it
        bad = os.path.join(self.tmp.name, 'typo.yaml')
        write_config(bad, self.broker.bootstrap, self.redis.url(), SASL_PW, TOKEN,
                     {'sasl.pasword': TYPO_PW})
        r = check_config(bad)
        outputs.append(('--check-config typo', r.stdout + r.stderr))
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn('%s:11:5: kafka.properties.sasl.pasword: unknown librdkafka property '
                      '(did you mean sasl.password?)' % bad, r.stderr)
        r = check_config(self.cfg, {'LEADSCORE_REDIS_URL': 'redis://app:%s@h:99999/0' % ENV_PW})
        outputs.append(('--check-config env', r.stdout + r.stderr))
        self.assertEqual(r.returncode, 1, r.stdout)
        self.assertIn('environment LEADSCORE_REDIS_URL: expected redis://', r.stderr)
        self.assertIn('port must be a number', r.stderr)

        # the daemon, as the ACL user, consumes and writes state
        d = tp.start_daemon(self, self.cfg, name='leadscored-secrets')
        port = int(d.wait_for_log(r'msg="listening" .*port=(\d+)', timeout=60).group(1))
        d.wait_for_log(r'component=redis msg="connected"', timeout=30)
        d.wait_for_log('msg="ready"', timeout=90)
        warn = d.wait_for_log(r'msg="secret in a file other users can read".*redis\.url',
                              timeout=5)
        self.assertIn('level=warn', warn.string)
        # librdkafka's configuration dump ran, with its values masked
        d.wait_for_log(r'sasl\.password = ', timeout=10)
        recs = [('lead-%d' % i, avro_events.encode('email', {
            'event_id': 's%d' % i, 'lead_id': 'lead-%d' % i, 'ts': NOW + i,
            'type': 'OPENED'})) for i in range(5)]
        testenv.produce(self.broker.bootstrap, 'leads.email', recs)
        deadline = time.monotonic() + 60
        while True:
            st, metrics = get(port, '/metrics')
            self.assertEqual(st, 200)
            m = re.findall(r'^leadscore_events_consumed_total\{[^}]*\} (\S+)$', metrics, re.M)
            if sum(float(v) for v in m) >= 5:
                break
            self.assertLess(time.monotonic(), deadline, 'events never counted')
            time.sleep(0.2)
        c = self.redis.client()
        deadline = time.monotonic() + 30
        while not c.keys('sec:*'):
            self.assertLess(time.monotonic(), deadline, 'no state written as app')
            time.sleep(0.2)
        st, body = get(port, '/v1/leads/lead-1', TOKEN)
        outputs.append(('GET /v1/leads', body))
        self.assertIn(st, (200, 404), body)

        # SIGHUP with every secret changed: the keys are named, not the values
        since = len(d.lines)
        write_config(self.cfg, self.broker.bootstrap, self.redis.url(APP_PW2), SASL_PW2, TOKEN2)
        d.send_signal(signal.SIGHUP)
        d.wait_for_log('msg="reloaded"', timeout=30, since=since)
        reload_lines = '\n'.join(d.lines[since:])
        for key in ('kafka.properties', 'http.auth_token', 'redis.url'):
            self.assertIn('key=%s' % key, reload_lines)
        self.assertIn('msg="secret in a file other users can read"', reload_lines)
        st, metrics = get(port, '/metrics')
        outputs.append(('/metrics', metrics))
        self.assertEqual(d.terminate(), 0, d.tail())
        outputs.append(('stderr', '\n'.join(d.lines)))
        outputs.append(('stdout', '\n'.join(d.stdout_lines)))

        for what, text in outputs:
            assert_no_secrets(self, what, text)
        # the masking is what kept librdkafka's dump clean, or librdkafka
        # redacted it itself: either way the key is there, the value not
        self.assertRegex(outputs[-2][1], r'sasl\.password = (\[redacted\]|<redacted>)')


class AclUser(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.redis = RedisAcl().start()
        cls.cfg = os.path.join(cls.tmp.name, 'leadscore.yaml')
        tp.write_config(cls.cfg, '127.0.0.1:1', cls.redis.url(), 'acl', prefix='acl:')
        os.chmod(cls.cfg, 0o600)

    @classmethod
    def tearDownClass(cls):
        cls.redis.stop()
        cls.tmp.cleanup()

    def ctl(self, url):
        e = dict(os.environ, LEADSCORE_REDIS_URL=url)
        r = subprocess.run([tp.LEADSCORECTL, '--config', self.cfg, 'lead', 'nobody'],
                           capture_output=True, text=True, timeout=60, env=e)
        assert_no_secrets(self, 'leadscorectl', r.stdout + r.stderr)
        return r

    def test_each_url_form_authenticates_as_its_user(self):
        port = self.redis.server.port
        for url in (self.redis.url(),                                  # ACL user
                    'redis://:%s@127.0.0.1:%d/0' % (DEFAULT_PW, port),  # default user
                    'redis://%s@127.0.0.1:%d/0' % (DEFAULT_PW, port)):  # bare form
            r = self.ctl(url)
            # 3: the lead is not stored, which needed an authenticated GET
            self.assertEqual(r.returncode, 3, (url, r.stderr))
        r = self.ctl(redis_url(port, 'app', 'not-' + APP_PW))
        self.assertNotEqual(r.returncode, 3)
        self.assertIn('WRONGPASS', r.stderr)
        r = self.ctl('redis://app:%s@127.0.0.1:%d/0' % (DEFAULT_PW, port))
        self.assertIn('WRONGPASS', r.stderr)

    def test_daemon_connections_are_the_acl_user(self):
        broker = testenv.DevBroker()
        broker.start()
        self.addCleanup(broker.stop)
        cfg = os.path.join(self.tmp.name, 'daemon.yaml')
        tp.write_config(cfg, broker.bootstrap, self.redis.url(), 'acl-d', prefix='acld:')
        os.chmod(cfg, 0o600)
        d = tp.start_daemon(self, cfg, name='leadscored-acl')
        d.wait_for_log(r'component=redis msg="connected"', timeout=30)
        d.wait_for_log('msg="ready"', timeout=90)
        # no warning: the file is 0600
        self.assertNotIn('secret in a file', '\n'.join(d.lines))
        clients = self.redis.client().execute_command('CLIENT', 'LIST')
        if isinstance(clients, bytes):
            clients = clients.decode()
        users = re.findall(r'\buser=(\S+)', clients)
        # this test's client plus the daemon's store connection at least
        self.assertGreaterEqual(len(users), 2, clients)
        self.assertEqual(set(users), {'app'}, clients)


if __name__ == '__main__':
    unittest.main()
