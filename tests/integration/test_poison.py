"""No record can stall a partition (issue 12, item 1).

Each test starts its own redis-server, dev broker and leadscored (default
pipeline settings unless said), sends poison records followed by good
events, and checks that everything is committed past them:

  * PoisonRecords: four records that used to stop all ingestion forever
    (each alone, then all four together): a malformed record between the
    dead-letter producer's message.max.bytes (1,000,000) and the old
    max_record_size (1 MiB), a 1,100,000-byte value, a valid event under a
    1,000,001-byte key and a valid event whose lead_id is 600,000 bytes.
    Every good event is committed (offsets in Redis), the dead letters
    are read back from the dead-letter topic with their reasons and
    truncation headers, /readyz is 200 and the metrics count them.
    On the code before the fix none of the good events is committed (the
    batch fails and is replayed forever), so these tests time out there.
  * Readiness: /readyz turns 503 with a pipeline reason while Redis is
    stopped longer than pipeline.ready_stall with records waiting, and
    while Redis refuses every commit (pipeline.ready_failed_batches
    batches in a row), and 200 again after each.
  * HttpIds: path ids and a body lead_id over pipeline.max_id_bytes get
    400 id_too_long as JSON; at the cap they are looked up as usual.
  * LogRate: 2,000 dead letters with pipeline.dead_letter_log_rate 5: far
    fewer lines than dead letters, the lines plus the suppressed=K
    summaries add up to exactly 2,000, and so does the counter; with a
    producer queue of 10 messages (full most of the time: waited out, no
    batch fails) all 2,000 reach the dead-letter topic.

Mind the mock broker's retention (about 5 MiB per partition): only a few
records here are near a megabyte.
"""
import http.client
import json
import os
import re
import shutil
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import avro_events  # noqa: E402
import lstest as tp  # noqa: E402
import testenv  # noqa: E402
from test_ops import get, samples  # noqa: E402

NOW = int(time.time() * 1000) - 3600 * 1000
BIG = {'message.max.bytes': 2000000}  # our producer must send the poison


def email(lead, event_id, ts=NOW, **kw):
    rec = {'event_id': event_id, 'lead_id': lead, 'ts': ts, 'type': 'OPENED'}
    rec.update(kw)
    return avro_events.encode('email', rec)


def poison_records():
    """name -> (topic, key, value, reason, truncated, original sizes)."""
    long_lead = 'L' * 600000
    return {
        # malformed Avro of 1,020,000 bytes: over max_record_size now,
        # so "oversized", and too large to go whole: truncated
        'between': ('leads.web', b'p-between', b'\x02' + b'\xff' * 1019999,
                    'oversized', 'value', {'ls.original_size': '1020000'}),
        'huge_value': ('leads.call', b'p-huge', b'\x02' + b'\xee' * 1099999,
                       'oversized', 'value', {'ls.original_size': '1100000'}),
        'huge_key': ('leads.email', b'K' * 1000001, email('p-key', 'pk-1'),
                     'id_too_long', 'key', {'ls.original_key_size': '1000001'}),
        'long_lead_id': ('leads.email', long_lead.encode(), email(long_lead, 'pl-1'),
                         'id_too_long', 'key', {'ls.original_key_size': '600000'}),
    }


class PoisonTest(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix='ls-poison-')
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.broker = testenv.DevBroker(partitions=tp.PARTITIONS).start()
        self.addCleanup(self.broker.stop)
        self.r = testenv.RedisServer('unix').start()
        self.addCleanup(self.r.cleanup)

    def start(self, group, **kw):
        self.cfg = tp.write_config(os.path.join(self.dir, group + '.yaml'),
                                   self.broker.bootstrap, self.r.url, group, **kw)
        d = tp.start_daemon(self, self.cfg)
        m = d.wait_for_log(r'msg="listening" .*port=(\d+)', timeout=30)
        self.port = int(m.group(1))
        d.wait_for_log(r'msg="ready"', timeout=60)
        return d

    def metrics(self):
        return get(self.port, '/metrics')[2].decode()

    def ready(self):
        st, _, body = get(self.port, '/readyz')
        return st, json.loads(body)

    def wait_ready(self, want, pattern=None, timeout=60, daemon=None):
        deadline = time.monotonic() + timeout
        while True:
            st, o = self.ready()
            hit = (st == 200) == want and (
                pattern is None or any(re.search(pattern, r) for r in o['reasons']))
            if hit:
                return o
            if time.monotonic() > deadline:
                self.fail('readyz never %s%s: %d %s\n%s' % (
                    'ready' if want else 'unready',
                    '' if pattern is None else ' with ' + pattern, st, o,
                    daemon.tail(40) if daemon is not None else ''))
            time.sleep(0.2)


class PoisonRecords(PoisonTest):

    def run_poison(self, names):
        group = 'poison-' + '-'.join(names)
        d = self.start(group)
        bad = poison_records()
        s = tp.Sender(self.broker.bootstrap)
        s.p = tp.Producer({'bootstrap.servers': self.broker.bootstrap,
                           'enable.idempotence': True, 'linger.ms': 5,
                           'message.timeout.ms': 30000, **BIG})
        where = {}
        for name in names:
            topic, key, value, *_ = bad[name]

            def cb(msg, name=name):
                where[name] = (msg.topic(), msg.partition(), msg.offset())
            s.send(topic, key, value, cb)
        s.flush()
        # then good events on every partition of three topics
        good = []
        for i in range(60):
            lead = 'good-%d' % (i % 20)
            good.append(('leads.email', lead, email(lead, 'g-%d' % i, NOW + i)))
            good.append(('leads.web', lead, avro_events.encode('web', {
                'event_id': 'gw-%d' % i, 'lead_id': lead, 'ts': NOW + i,
                'type': 'PAGE_VIEW', 'url': 'https://x.test/pricing'})))
        for topic, lead, value in good:
            s.send(topic, lead.encode(), value)
        s.flush()

        client = self.r.client()
        t0 = time.monotonic()
        tp.wait_offsets(client, 'ls:', group, s.ends, 90, d)
        sys.stderr.write('test_poison: %s: every good event committed %.1f s after the '
                         'last was sent\n' % ('+'.join(names), time.monotonic() - t0))
        self.assertTrue(d.running)
        for i in range(20):
            self.assertIsNotNone(tp.ctl_lead(self.cfg, 'good-%d' % i), i)

        msgs = testenv.consume(self.broker.bootstrap, tp.DEAD_LETTER, len(names),
                               timeout=30)
        self.assertEqual(len(msgs), len(names))
        by_src = {}
        for m in msgs:
            h = {k: v.decode() for k, v in (m.headers() or [])}
            by_src[(h['ls.source.topic'], int(h['ls.source.partition']),
                    int(h['ls.source.offset']))] = (m, h)
        for name in names:
            topic, key, value, reason, cut, sizes = bad[name]
            m, h = by_src[where[name]]
            self.assertEqual(h['ls.reason'], reason, (name, h))
            self.assertEqual(h['ls.truncated'], cut, (name, h))
            for k, v in sizes.items():
                self.assertEqual(h[k], v, (name, k, h))
            # a truncated copy is a prefix of the record, and fits
            self.assertTrue(value.startswith(m.value() or b''), name)
            self.assertTrue(key.startswith(m.key() or b''), name)
            self.assertLessEqual(len(m.value() or b'') + len(m.key() or b''), 1000000)
            if cut == 'key':
                self.assertEqual(m.value(), value, name)
                self.assertEqual(len(m.key()), 256, name)
            else:
                self.assertEqual(m.key(), key, name)
                self.assertLess(len(m.value()), len(value), name)

        st, o = self.ready()
        self.assertEqual(st, 200, o)
        text = self.metrics()
        want = {}
        for name in names:
            want[bad[name][3]] = want.get(bad[name][3], 0) + 1
        got = samples(text, 'leadscore_events_dead_lettered_total')
        for reason, n in want.items():
            self.assertEqual(got.get(frozenset({('reason', reason)})), n, (reason, got))
        self.assertEqual(samples(text, 'leadscore_dead_letters_truncated_total'),
                         {frozenset(): float(len(names))})
        self.assertEqual(samples(text, 'leadscore_batches_failed_consecutive'),
                         {frozenset(): 0.0})
        self.assertEqual(d.terminate(), 0, d.tail())

    def test_between_producer_and_codec_limits(self):
        self.run_poison(['between'])

    def test_huge_value(self):
        self.run_poison(['huge_value'])

    def test_huge_key(self):
        self.run_poison(['huge_key'])

    def test_long_lead_id(self):
        self.run_poison(['long_lead_id'])

    def test_all_four_together(self):
        self.run_poison(['between', 'huge_value', 'huge_key', 'long_lead_id'])


class Readiness(PoisonTest):

    def test_readyz_turns_unready_while_nothing_commits(self):
        group = 'ready'
        d = self.start(group, pipeline={'ready_stall': '2s', 'ready_failed_batches': 3})
        s = tp.Sender(self.broker.bootstrap)
        for i in range(10):
            s.send('leads.email', b'r-%d' % i, email('r-%d' % i, 'r%d' % i, NOW + i))
        s.flush()
        client = self.r.client()
        tp.wait_offsets(client, 'ls:', group, s.ends, 60, d)
        self.wait_ready(True)

        # Redis down longer than ready_stall while records wait
        self.r.stop()
        try:
            for i in range(10):
                s.send('leads.email', b'r-%d' % i, email('r-%d' % i, 'rs%d' % i, NOW + 100 + i))
            s.flush()
            o = self.wait_ready(False, r'^pipeline: records have waited \d+ ms with nothing '
                                       r'committed \(pipeline.ready_stall 2000 ms\)')
            self.assertFalse(o['ready'])
        finally:
            self.r.restart()
        client = self.r.client()
        tp.wait_offsets(client, 'ls:', group, s.ends, 60, d)
        self.wait_ready(True)

        # Redis answers but refuses every write (no replica for
        # min-replicas-to-write): the batch fails at its commit, and the
        # resync cannot take a replay epoch (an INCR), so consumption
        # stays paused, the reason logged, until Redis takes writes again
        client.config_set('min-replicas-to-write', 1)
        try:
            n = len(d.lines)
            for i in range(10):
                s.send('leads.email', b'r-%d' % i, email('r-%d' % i, 'rw%d' % i, NOW + 150 + i))
            s.flush()
            o = self.wait_ready(False, r'^redis: unreachable; consumption is paused',
                                daemon=d)
            d.wait_for_log(r'msg="resync failed" .*NOREPLICAS', timeout=30, since=n)
        finally:
            client.config_set('min-replicas-to-write', 0)
        tp.wait_offsets(client, 'ls:', group, s.ends, 60, d)
        self.wait_ready(True)

        # Redis answers and takes the epoch but refuses the commit (its
        # offsets write, HSET, is not allowed): each batch fails at its
        # commit and is replayed
        client.execute_command('ACL', 'SETUSER', 'default', '-hset')
        try:
            for i in range(10):
                s.send('leads.email', b'r-%d' % i, email('r-%d' % i, 'rf%d' % i, NOW + 200 + i))
            s.flush()
            o = self.wait_ready(False, r'^pipeline: \d+ batches in a row failed and will be '
                                       r'replayed \(pipeline.ready_failed_batches 3\); each '
                                       r'failure is logged as "batch not committed"$', daemon=d)
            # the body never carries the failure's detail (it may name
            # Redis's socket or address); the log does
            self.assertNotIn('/', ''.join(o['reasons']), o)
            gauge = samples(self.metrics(), 'leadscore_batches_failed_consecutive')
            self.assertGreaterEqual(gauge[frozenset()], 1.0, gauge)
        finally:
            client.execute_command('ACL', 'SETUSER', 'default', '+hset')
        tp.wait_offsets(client, 'ls:', group, s.ends, 60, d)
        self.wait_ready(True)
        self.assertEqual(d.terminate(), 0, d.tail())


class HttpIds(PoisonTest):

    def test_ids_over_the_cap_get_400(self):
        d = self.start('httpids', pipeline={'max_id_bytes': 128})

        def call(method, path, body=None):
            c = http.client.HTTPConnection('127.0.0.1', self.port, timeout=30)
            c.request(method, path, body=None if body is None else json.dumps(body),
                      headers={'Content-Type': 'application/json'})
            r = c.getresponse()
            out = (r.status, r.getheader('Content-Type'), r.read())
            c.close()
            return out

        over, at = 'a' * 129, 'a' * 128
        for method, path, body in (
                ('GET', '/v1/leads/' + over, None),
                ('GET', '/v1/campaigns/' + over, None),
                ('GET', '/v1/models/' + over, None),
                ('POST', '/v1/campaigns/%s/decisions' % over, {'lead_id': 'x'}),
                ('POST', '/v1/campaigns/c/decisions', {'lead_id': over}),
                ('POST', '/v1/decisions/%s/activate' % over, None),
                ('POST', '/v1/decisions/%s/reward' % over, {'reward': 1})):
            st, ctype, raw = call(method, path, body)
            self.assertEqual(st, 400, (method, path, raw))
            self.assertEqual(ctype, 'application/json', path)
            self.assertEqual(json.loads(raw)['error'], 'id_too_long', (path, raw))
        # at the cap: an ordinary answer
        st, _, raw = call('GET', '/v1/leads/' + at)
        self.assertEqual(st, 404, raw)
        self.assertEqual(json.loads(raw)['error'], 'unknown_lead')
        st, _, raw = call('POST', '/v1/campaigns/c/decisions', {'lead_id': at})
        self.assertEqual(st, 404, raw)
        self.assertEqual(d.terminate(), 0, d.tail())


class LogRate(PoisonTest):

    def test_dead_letter_lines_are_limited_counts_exact(self):
        group = 'lograte'
        n = 2000
        # a producer queue of 10 messages: it is full most of the time,
        # which is waited out, never a failed batch
        d = self.start(group, pipeline={'dead_letter_log_rate': 5},
                       properties={'queue.buffering.max.messages': '10'})
        s = tp.Sender(self.broker.bootstrap)
        for i in range(n):
            s.send('leads.web', b'm-%d' % i, b'\x02garbage')
        s.flush()
        tp.wait_offsets(self.r.client(), 'ls:', group, s.ends, 60, d)

        def tally():
            lines = list(d.lines)
            logged = sum(1 for ln in lines if 'msg="dead-lettered"' in ln)
            left = sum(int(m.group(1)) for ln in lines
                       for m in [re.search(r'msg="dead letters not logged" suppressed=(\d+)', ln)]
                       if m)
            return logged, left
        # the last window's summary follows once that second has passed
        deadline = time.monotonic() + 30
        while sum(tally()) < n and time.monotonic() < deadline:
            time.sleep(0.2)
        logged, left = tally()
        sys.stderr.write('test_poison: %d dead letters: %d lines, %d suppressed\n'
                         % (n, logged, left))
        self.assertEqual(logged + left, n, (logged, left))
        self.assertGreater(left, 0)
        self.assertLess(logged, n // 10)
        text = self.metrics()
        got = samples(text, 'leadscore_events_dead_lettered_total')
        self.assertEqual(got.get(frozenset({('reason', 'malformed')})), float(n), got)
        self.assertFalse([ln for ln in d.lines if 'batch not committed' in ln])
        msgs = testenv.consume(self.broker.bootstrap, tp.DEAD_LETTER, n, timeout=60)
        self.assertEqual(len(msgs), n)
        self.assertEqual(d.terminate(), 0, d.tail())


if __name__ == '__main__':
    unittest.main()
