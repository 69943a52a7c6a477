"""The bandit's context buckets and their state in Redis (issue 12), end to
end against leadscored (an ASan build under meson test) on a real Redis
and the dev broker.

  * A decision for a campaign with context keys, made without a request
    context for a lead whose attribute is stored, is answered with the
    bucket read from the lead (the keys used to point into a stack frame
    that had returned: the daemon died under ASan).
  * A stored attribute longer than a context value's 64 bytes (63 x 'a'
    + 'e-acute') is cut at a code-point boundary: the response has the
    bucket, Redis holds valid UTF-8 and the decision reaches the decisions
    topic.
  * 10,000 decisions with unique context values leave the campaign's
    Redis state bounded by max_buckets (keys, hash fields), not by the
    number of distinct values; the decisions past the cap are counted by
    leadscore_bandit_bucket_capped_total and still learn campaign-wide.
  * A decision that cannot reach the decisions topic (the broker is
    gone) is counted by leadscore_bandit_decisions_unlogged_total and
    logged.

Run with Debian's /usr/bin/python3 and LS_BUILD_ROOT set to the meson build
dir (meson test does both).
"""
import http.client
import json
import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import avro_events  # noqa: E402
import lstest as tp  # noqa: E402
import testenv  # noqa: E402

LONG = 'a' * 63 + '\u00e9'  # 65 bytes: a cut at 64 splits the e-acute
CAMPAIGNS = '''campaigns:
  - id: ind
    arms: [x, y]
    context: [industry]
  - id: longv
    arms: [x, y]
    context: [note]
  - id: many
    arms: [x, y]
    context: [industry]
    max_buckets: 5
    min_bucket_trials: 0
    reward_window: 1s
    default_reward: 0
'''


class Conn:
    """One keep-alive HTTP connection (thousands of decisions)."""

    def __init__(self, port):
        self.port = port
        self.c = None

    def call(self, method, path, body=None):
        for attempt in range(2):
            if self.c is None:
                self.c = http.client.HTTPConnection('127.0.0.1', self.port, timeout=30)
            try:
                data = json.dumps(body) if body is not None else None
                self.c.request(method, path, body=data,
                               headers={'Content-Type': 'application/json'} if data else {})
                r = self.c.getresponse()
                payload = r.read()
                return r.status, json.loads(payload) if payload else None
            except (http.client.RemoteDisconnected, ConnectionError,
                    http.client.CannotSendRequest):
                self.c.close()
                self.c = None
                if attempt == 1:
                    raise
        raise AssertionError('unreachable')

    def close(self):
        if self.c is not None:
            self.c.close()


def metric_sum(port, name):
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=30)
    c.request('GET', '/metrics')
    text = c.getresponse().read().decode()
    c.close()
    total = 0.0
    for line in text.splitlines():
        m = re.match(r'^%s(\{[^}]*\})? (\S+)$' % re.escape(name), line)
        if m:
            total += float(m.group(2))
    return total, text


class BanditState(tp.DaemonSuite):
    @classmethod
    def setUpClass(cls):
        cls.start_env('bstate', prefix='s:', extra=CAMPAIGNS)
        ts0 = int(time.time() * 1000) - 3600 * 1000
        testenv.produce(cls.broker.bootstrap, 'leads.profile', [
            ('st-lead', avro_events.encode('profile', {
                'event_id': 'st-p1', 'lead_id': 'st-lead', 'ts': ts0,
                'attributes': {'industry': 'saas', 'note': LONG},
                'metrics': {}}))])
        r = cls.redis.client()
        deadline = time.monotonic() + 30
        while r.get('s:{st-lead}:s') is None:
            if time.monotonic() > deadline:
                raise AssertionError('lead never stored\n' + cls.daemon.tail())
            time.sleep(0.1)
        deadline = time.monotonic() + 15
        conn = Conn(cls.port)
        while conn.call('GET', '/v1/campaigns/many')[0] != 200:
            if time.monotonic() > deadline:
                raise AssertionError('campaigns never loaded\n' + cls.daemon.tail())
            time.sleep(0.1)
        conn.close()

    def decide(self, campaign, body):
        conn = Conn(self.port)
        try:
            st, o = conn.call('POST', '/v1/campaigns/%s/decisions' % campaign, body)
        except (ConnectionError, http.client.HTTPException) as e:
            raise AssertionError('daemon gone: %r\n%s' % (e, self.daemon.tail()))
        finally:
            conn.close()
        self.assertEqual(st, 200, (o, self.daemon.tail()))
        return o

    def test_stored_context_without_request_context(self):
        for i in range(20):
            o = self.decide('ind', {'lead_id': 'st-lead'})
            self.assertEqual(o['bucket'], 'industry=saas', o)
        # a given context still wins over the stored one
        o = self.decide('ind', {'lead_id': 'st-lead', 'context': {'industry': 'retail'}})
        self.assertEqual(o['bucket'], 'industry=retail', o)
        self.assertIsNone(self.daemon.proc.poll(), self.daemon.tail())

    def test_long_stored_value_is_cut_on_a_code_point(self):
        ids = {}
        for i in range(5):
            o = self.decide('longv', {'lead_id': 'st-lead'})
            self.assertEqual(o.get('bucket'), 'note=' + 'a' * 63, o)
            ids[o['decision_id']] = o
        r = self.redis.client()
        for did in ids:
            key = 's:{bandit:longv}:d:' + did
            deadline = time.monotonic() + 15
            while r.hget(key, 'bkt') is None and time.monotonic() < deadline:
                time.sleep(0.1)
            raw = r.hget(key, 'bkt')
            self.assertIsNotNone(raw, did)
            self.assertEqual(raw.decode('utf-8'), 'note=' + 'a' * 63)
        # resolve one so the counters carry the bucket too
        did = next(iter(ids))
        conn = Conn(self.port)
        st, o = conn.call('POST', '/v1/decisions/%s/reward' % did, {'reward': 1})
        conn.close()
        self.assertEqual(st, 200, o)
        for f in r.hkeys('s:{bandit:longv}:counts'):
            f.decode('utf-8')  # raises on invalid UTF-8
        found = tp.decisions_on_topic(self.broker.bootstrap, ids,
                                      'state-check-%f' % time.time())
        self.assertEqual(set(found), set(ids), self.daemon.tail())
        for rec, _ in found.values():
            self.assertEqual(rec['context'], {'note': 'a' * 63})
        unlogged, _ = metric_sum(self.port, 'leadscore_bandit_decisions_unlogged_total')
        self.assertEqual(unlogged, 0)

    def test_unique_context_values_leave_state_bounded(self):
        n = 10000
        conn = Conn(self.port)
        r = self.redis.client()
        counts = 's:{bandit:many}:counts'
        # five buckets fill max_buckets as their decisions resolve (1 s)
        for i in range(5):
            st, o = conn.call('POST', '/v1/campaigns/many/decisions',
                              {'lead_id': 'f-%d' % i, 'context': {'industry': 'first%d' % i}})
            self.assertEqual(st, 200, o)
        deadline = time.monotonic() + 30
        while sum(int(r.hget(counts, 'n:%s:' % a) or 0) for a in 'xy') < 5:
            self.assertLess(time.monotonic(), deadline, (r.hgetall(counts), self.daemon.tail()))
            time.sleep(0.1)
        # a snapshot with them (and so with "nb" = 5, read with them)
        while True:
            st, o = conn.call('GET', '/v1/campaigns/many')
            self.assertEqual(st, 200, o)
            if {b['bucket'] for b in o['buckets']} >= {'industry=first%d' % i for i in range(5)}:
                break
            self.assertLess(time.monotonic(), deadline, o)
            time.sleep(0.1)
        for i in range(n):
            st, o = conn.call('POST', '/v1/campaigns/many/decisions',
                              {'lead_id': 'u-%d' % i, 'context': {'industry': 'v%05d' % i}})
            self.assertEqual(st, 200, o)
            self.assertEqual(o['bucket'], 'industry=v%05d' % i)
        conn.close()
        n += 5
        # every decision resolves with the default reward 1 s on
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            h = r.hgetall(counts)
            trials = sum(int(v) for f, v in h.items() if re.match(rb'^n:[xy]:$', f))
            if trials == n:
                break
            time.sleep(0.5)
        self.assertEqual(trials, n, self.daemon.tail())
        h = r.hgetall(counts)
        buckets = {f.split(b':', 2)[2] for f in h if re.match(rb'^[nr]:[xy]:.', f)}
        # at most max_buckets buckets get counters: 2 kinds x 2 arms x
        # (1 + 5) counters, one mark per stored bucket and the two
        # bookkeeping fields
        self.assertLessEqual(len(buckets), 5, sorted(buckets))
        self.assertLessEqual(len(h), 2 * 2 * 6 + 5 + 2, sorted(h))
        # keys: the counters, the pending set (gone when empty) and the
        # decision records, which expire reward_window + 1 h after their
        # decision: bounded by the decision rate, not the context values
        others = [k for k in r.scan_iter(match='s:{bandit:many}:*')
                  if not k.startswith(b's:{bandit:many}:d:')]
        self.assertLessEqual(len(others), 2, others)
        recs = 0
        for k in r.scan_iter(match='s:{bandit:many}:d:*', count=1000):
            recs += 1
            if recs % 500 == 0:
                ttl = r.pttl(k)
                self.assertGreater(ttl, 0)
                self.assertLessEqual(ttl, 1000 + 3600 * 1000)
        self.assertLessEqual(recs, n)
        # the posterior reads only the stored buckets
        conn = Conn(self.port)
        st, o = conn.call('GET', '/v1/campaigns/many')
        conn.close()
        self.assertEqual(st, 200)
        self.assertLessEqual(len(o['buckets']), 1 + 5)
        self.assertEqual(buckets, {b'industry=first%d' % i for i in range(5)})
        capped, text = metric_sum(self.port, 'leadscore_bandit_bucket_capped_total')
        # once 5 buckets are stored, every decision in a new one is known
        # to be past the cap when it is made
        self.assertEqual(capped, n - 5, text)


class UnloggedDecisions(tp.DaemonSuite):
    """The decisions topic is unreachable: every decision that cannot be
    delivered is counted and logged, and the daemon keeps deciding."""

    @classmethod
    def setUpClass(cls):
        cls.start_env('bunlog', prefix='n:', extra=CAMPAIGNS,
                      properties={'message.timeout.ms': '1500'})

    def test_undeliverable_decisions_are_counted_and_logged(self):
        conn = Conn(self.port)
        deadline = time.monotonic() + 15
        while conn.call('GET', '/v1/campaigns/ind')[0] != 200:
            self.assertLess(time.monotonic(), deadline)
            time.sleep(0.1)
        self.broker.stop()
        for i in range(10):
            st, o = conn.call('POST', '/v1/campaigns/ind/decisions', {'lead_id': 'g-%d' % i})
            self.assertEqual(st, 200, o)
        deadline = time.monotonic() + 30
        got = 0.0
        while time.monotonic() < deadline:
            got, text = metric_sum(self.port, 'leadscore_bandit_decisions_unlogged_total')
            if got >= 10:
                break
            time.sleep(0.5)
        conn.close()
        self.assertEqual(got, 10, text)
        self.daemon.wait_for_log(r'msg="decision not logged".*reason=delivery', timeout=10)


if __name__ == '__main__':
    unittest.main()
