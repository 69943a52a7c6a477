"""`leadscorectl campaign ID` against a running leadscored (real Redis,
the dev broker, the HTTP API with a bearer token):

  * after decisions and rewards, --json is the API's object (the counts
    exactly; the Monte Carlo numbers within their error) and the table
    shows every arm with its trials, rewards and allocation, and the
    context buckets of a campaign that has them;
  * the base URL and the token come from the config (http.listen,
    http.auth_token); --url overrides the URL; a wrong token exits 1;
  * an unknown campaign exits 3 with the API's message, also for an id
    that needs escaping; an unreachable daemon, one that answers garbage
    or not JSON, and one that hangs (--timeout-ms) exit 1; usage errors
    exit 2; --help exits 0 and documents the exit codes.

Run with Debian's /usr/bin/python3 and LS_BUILD_ROOT set to the meson build
dir (meson test does both).
"""
import http.client
import json
import os
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import lstest as tp  # noqa: E402
import testenv  # noqa: E402

TOKEN = 'ctl-campaign-token'
CAMPAIGNS = '''campaigns:
  - id: subj
    arms: [a, b, c]
    reward_window: 1h
  - id: seg
    arms: [x, y]
    context: [industry]
    min_bucket_trials: 3
'''


def call(port, method, path, body=None):
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=30)
    data = json.dumps(body) if body is not None else None
    headers = {'Authorization': 'Bearer ' + TOKEN}
    if data:
        headers['Content-Type'] = 'application/json'
    c.request(method, path, body=data, headers=headers)
    r = c.getresponse()
    payload = r.read()
    c.close()
    return r.status, json.loads(payload) if payload else None


def ctl(*args, timeout=60):
    return testenv.run([tp.LEADSCORECTL] + list(args), capture_output=True,
                       text=True, timeout=timeout)


class FakeServer:
    """A TCP server on loopback that answers every connection with
    `answer` (bytes), or never answers when it is None."""

    def __init__(self, answer):
        self.answer = answer
        self.sock = socket.socket()
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.conns = []
        self.stop = False
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while not self.stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            if self.answer is not None:
                try:
                    c.recv(65536)
                    c.sendall(self.answer)
                    c.close()
                except OSError:
                    pass

    def close(self):
        self.stop = True
        self.sock.close()
        for c in self.conns:
            c.close()


class CtlCampaign(tp.DaemonSuite):
    @classmethod
    def setUpClass(cls):
        cls.start_env('ctlcamp', prefix='cc:', auth_token=TOKEN, extra=CAMPAIGNS)
        cls.url = 'http://127.0.0.1:%d' % cls.port
        deadline = time.monotonic() + 15
        while call(cls.port, 'GET', '/v1/campaigns/subj')[0] != 200:
            if time.monotonic() > deadline:
                raise AssertionError('campaign never loaded\n' + cls.daemon.tail())
            time.sleep(0.1)
        # The same config with the daemon's real port: what an operator has.
        with open(cls.cfg) as f:
            text = f.read()
        cls.cfg_port = os.path.join(cls.tmp.name, 'with-port.yaml')
        with open(cls.cfg_port, 'w') as f:
            f.write(text.replace('listen: 127.0.0.1:0', 'listen: 127.0.0.1:%d' % cls.port))
        # decisions and rewards: a always rewarded, b every other time, c never
        cls.decided = {}
        for i in range(60):
            st, o = call(cls.port, 'POST', '/v1/campaigns/subj/decisions',
                         {'lead_id': 'cc-%d' % i})
            assert st == 200, o
            v = o['variant']
            cls.decided[v] = cls.decided.get(v, 0) + 1
            # every decision resolved (a trial counts once rewarded)
            reward = 1 if v == 'a' or (v == 'b' and i % 2 == 0) else 0
            st, r = call(cls.port, 'POST', '/v1/decisions/%s/reward' % o['decision_id'],
                         {'reward': reward})
            assert st == 200, r
        for i in range(12):
            st, o = call(cls.port, 'POST', '/v1/campaigns/seg/decisions',
                         {'lead_id': 'cs-%d' % i,
                          'context': {'industry': 'retail' if i % 2 else 'media'}})
            assert st == 200, o
            st, r = call(cls.port, 'POST', '/v1/decisions/%s/reward' % o['decision_id'],
                         {'reward': i % 2})
            assert st == 200, r
        # wait until the read API shows every decision
        deadline = time.monotonic() + 20
        while True:
            st, o = call(cls.port, 'GET', '/v1/campaigns/subj')
            total = sum(a['trials'] for a in o['buckets'][0]['arms'])
            if total == 60:
                break
            if time.monotonic() > deadline:
                raise AssertionError('trials never reached 60: %r' % o)
            time.sleep(0.2)

    def test_json_is_the_apis_object(self):
        r = ctl('--config', self.cfg, 'campaign', 'subj', '--json', '--url', self.url)
        self.assertEqual(r.returncode, 0, r.stderr)
        got = json.loads(r.stdout)
        st, api = call(self.port, 'GET', '/v1/campaigns/subj')
        self.assertEqual(st, 200)
        self.assertEqual(got['campaign'], 'subj')
        for k in ('min_share', 'min_bucket_trials', 'prior_trials', 'refresh_trials',
                  'refresh_interval_ms'):
            self.assertEqual(got[k], api[k], k)
        arms = {a['variant']: a for a in got['buckets'][0]['arms']}
        want = {a['variant']: a for a in api['buckets'][0]['arms']}
        self.assertEqual(set(arms), {'a', 'b', 'c'})
        self.assertEqual(sum(a['trials'] for a in arms.values()), 60)
        for v, a in arms.items():
            self.assertEqual((a['trials'], a['rewards']),
                             (want[v]['trials'], want[v]['rewards']), v)
            self.assertEqual(a['trials'], self.decided.get(v, 0), v)
            self.assertAlmostEqual(a['posterior_mean'], want[v]['posterior_mean'], places=9)
            # 10,000 draws per snapshot: Monte Carlo error well under 0.03
            self.assertAlmostEqual(a['p_best'], want[v]['p_best'], delta=0.03)
            self.assertAlmostEqual(a['probability'], want[v]['probability'], delta=0.03)
            lo, hi = a['ci95']
            self.assertLess(lo, a['posterior_mean'])
            self.assertLess(a['posterior_mean'], hi)
        # c never rewarded, a always: a is the best by far
        self.assertEqual(arms['c']['rewards'], 0)
        self.assertEqual(arms['a']['rewards'], arms['a']['trials'])
        self.assertGreater(arms['a']['p_best'], 0.5)
        self.assertAlmostEqual(sum(a['probability'] for a in arms.values()), 1, delta=1e-6)

    def test_table_from_config_listen_and_token(self):
        r = ctl('--config', self.cfg_port, 'campaign', 'subj')
        self.assertEqual(r.returncode, 0, r.stderr)
        out = r.stdout
        self.assertIn('campaign subj', out)
        self.assertIn('min_share=', out)
        self.assertIn('prior_trials=30', out)
        self.assertIn('campaign-wide: 60 trials', out)
        for col in ('trials', 'rewards', 'mean', '95% CI', 'P(best)', 'allocation'):
            self.assertIn(col, out)
        st, api = call(self.port, 'GET', '/v1/campaigns/subj')
        rows = {}
        for line in out.splitlines():
            f = line.split()
            if f and f[0] in ('a', 'b', 'c'):
                rows[f[0]] = f
        self.assertEqual(set(rows), {'a', 'b', 'c'}, out)
        for a in api['buckets'][0]['arms']:
            f = rows[a['variant']]
            self.assertEqual(int(f[1]), a['trials'])
            self.assertAlmostEqual(float(f[2]), a['rewards'], places=2)
            self.assertAlmostEqual(float(f[3]), a['posterior_mean'], places=4)

    def test_buckets_are_shown(self):
        r = ctl('--config', self.cfg_port, 'campaign', 'seg')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('campaign-wide: 12 trials', r.stdout)
        self.assertRegex(r.stdout, r'bucket \S*retail\S*: 6 trials')
        self.assertRegex(r.stdout, r'bucket \S*media\S*: 6 trials')
        r = ctl('--config', self.cfg_port, 'campaign', 'seg', '--json')
        self.assertEqual(r.returncode, 0, r.stderr)
        o = json.loads(r.stdout)
        self.assertEqual(len(o['buckets']), 3, o)

    def test_wrong_or_missing_token_exits_1(self):
        other = os.path.join(self.tmp.name, 'no-token.yaml')
        with open(self.cfg_port) as f:
            text = f.read()
        with open(other, 'w') as f:
            f.write(text.replace('auth_token: "%s"' % TOKEN, 'auth_token: "wrong"'))
        r = ctl('--config', other, 'campaign', 'subj')
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn('HTTP 401', r.stderr)

    def test_unknown_campaign_exits_3(self):
        r = ctl('--config', self.cfg_port, 'campaign', 'nosuch')
        self.assertEqual(r.returncode, 3, (r.stdout, r.stderr))
        self.assertIn('unknown_campaign: no campaign of that id is configured', r.stderr)
        self.assertEqual(r.stdout, '')
        # escaped, so they stay one path segment (or the daemon's router
        # sees the decoded '/' and answers no_route): never another route's 200
        for cid in ('a b?d=e#f%00\u00e9', 'a/b', '../../v1/leads/x', '..', 'subj/'):
            r = ctl('--config', self.cfg_port, 'campaign', cid)
            self.assertEqual(r.returncode, 3, (cid, r.stdout, r.stderr))
            self.assertIn('HTTP 404', r.stderr)
            self.assertEqual(r.stdout, '')

    def test_unreachable_garbage_and_hanging_daemons_exit_1(self):
        port = testenv.free_port()
        r = ctl('--config', self.cfg, 'campaign', 'subj', '--url', 'http://127.0.0.1:%d' % port)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn('127.0.0.1:%d' % port, r.stderr)
        answers = [b'garbage\r\n\r\n\x00\xff' * 100,
                   b'HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nnot json!',
                   b'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n[]',
                   b'HTTP/1.1 500 Oops\r\nContent-Length: 3\r\n\r\n{{{',
                   b'HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n{"buckets"']
        for ans in answers:
            srv = FakeServer(ans)
            try:
                r = ctl('--config', self.cfg, 'campaign', 'subj', '--timeout-ms', '3000',
                        '--url', 'http://127.0.0.1:%d/' % srv.port)
            finally:
                srv.close()
            self.assertEqual(r.returncode, 1, (ans[:40], r.stdout, r.stderr))
            self.assertTrue(r.stderr.startswith('leadscorectl: '), r.stderr)
        srv = FakeServer(None)  # accepts, never answers
        try:
            t0 = time.monotonic()
            r = ctl('--config', self.cfg, 'campaign', 'subj', '--timeout-ms', '500',
                    '--url', 'http://127.0.0.1:%d' % srv.port)
            took = time.monotonic() - t0
        finally:
            srv.close()
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn('within 500 ms', r.stderr)
        self.assertLess(took, 30)

    def test_usage_errors_exit_2(self):
        for args in ([], ['a', 'b'], ['subj', '--timeout-ms', '0'],
                     ['subj', '--timeout-ms', 'x'], ['subj', '--nope'], ['']):
            r = ctl('--config', self.cfg, 'campaign', *args)
            self.assertEqual(r.returncode, 2, (args, r.stderr))
        # the test config listens on port 0: the URL must be given
        r = ctl('--config', self.cfg, 'campaign', 'subj')
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn('--url', r.stderr)

    def test_help(self):
        r = ctl('campaign', '--help')
        self.assertEqual(r.returncode, 0, r.stderr)
        for word in ('Exit status', '--json', '--url', '--timeout-ms', 'P(best)',
                     'allocation', '3 unknown campaign'):
            self.assertIn(word, r.stdout)


if __name__ == '__main__':
    unittest.main()
