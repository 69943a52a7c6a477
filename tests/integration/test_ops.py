"""Operations: GET /metrics checked by Prometheus's own tools, /healthz and
/readyz, against leadscored on a real Redis and the dev broker.

  * /metrics passes `promtool check metrics` (format and naming lint), and
    its event counters equal the events this test sent, by topic and type,
    plus the dead-lettered record by reason.
  * A real Prometheus server (Debian package) scrapes the daemon on
    loopback; after two scrapes, leadscore_events_consumed_total queried
    through Prometheus's HTTP API equals what was sent.
  * /readyz is 200 while consuming, 503 with a reason once Redis is gone
    (and a batch failed), and 200 again when Redis returns; /healthz stays
    200 throughout. Neither needs the bearer token.

Run with Debian's /usr/bin/python3 and LS_BUILD_ROOT set to the meson build
dir (meson test does both).
"""
import http.client
import json
import os
import re
import subprocess
import sys
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import avro_events  # noqa: E402
import lstest as tp  # noqa: E402
import testenv  # noqa: E402

TOKEN = 'ops-token'
NOW = int(time.time() * 1000) - 60000


def get(port, path, headers=None):
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=30)
    c.request('GET', path, headers=headers or {})
    r = c.getresponse()
    body = r.read()
    ctype = r.getheader('Content-Type')
    c.close()
    return r.status, ctype, body


def samples(text, name):
    """{frozenset(labels): value} of every sample of metric name."""
    out = {}
    for line in text.splitlines():
        m = re.match(r'^%s(\{(.*)\})? (\S+)$' % re.escape(name), line)
        if m is None:
            continue
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ''))
        out[labels] = float(m.group(3))
    return out


class Ops(tp.DaemonSuite):
    @classmethod
    def setUpClass(cls):
        cls.start_env('ops', prefix='o:', auth_token=TOKEN)
        # known traffic: 7 OPENED + 3 CLICKED emails, 4 page views, 1 call,
        # and one undecodable web record
        cls.sent = {('leads.email', 'OPENED'): 7, ('leads.email', 'CLICKED'): 3,
                    ('leads.web', 'PAGE_VIEW'): 4, ('leads.call', 'CONNECTED'): 1}
        msgs, k = [], 0
        for (topic, typ), n in cls.sent.items():
            for _ in range(n):
                k += 1
                lead = 'ops-%d' % (k % 5)
                if topic == 'leads.email':
                    rec = avro_events.encode('email', {'event_id': 'e%d' % k, 'lead_id': lead,
                                                       'ts': NOW + k, 'type': typ})
                elif topic == 'leads.web':
                    rec = avro_events.encode('web', {'event_id': 'e%d' % k, 'lead_id': lead,
                                                     'ts': NOW + k, 'type': typ,
                                                     'url': 'https://x.test/'})
                else:
                    rec = avro_events.encode('call', {'event_id': 'e%d' % k, 'lead_id': lead,
                                                      'ts': NOW + k, 'direction': 'INBOUND',
                                                      'outcome': typ, 'duration_s': 30})
                msgs.append((topic, lead, rec))
        for topic in ('leads.email', 'leads.web', 'leads.call'):
            testenv.produce(cls.broker.bootstrap, topic,
                            [(lead, rec) for t, lead, rec in msgs if t == topic])
        testenv.produce(cls.broker.bootstrap, 'leads.web', [('ops-bad', b'\x02garbage')])
        deadline = time.monotonic() + 30
        while True:
            text = cls.metrics()
            got = samples(text, 'leadscore_events_consumed_total')
            # the bad record is produced last and may be counted a batch
            # after the good ones: wait for it too
            dead = samples(text, 'leadscore_events_dead_lettered_total')
            if sum(got.values()) >= sum(cls.sent.values()) and sum(dead.values()) >= 1:
                break
            if time.monotonic() > deadline:
                raise AssertionError('events or the dead letter never counted\n' + text[-2000:])
            time.sleep(0.2)

    @classmethod
    def metrics(cls):
        st, ctype, body = get(cls.port, '/metrics')
        assert st == 200, (st, body)
        assert ctype.startswith('text/plain; version=0.0.4'), ctype
        return body.decode()

    def test_metrics_pass_promtool_and_count_the_events(self):
        text = self.metrics()
        r = subprocess.run(['promtool', 'check', 'metrics'], input=text, capture_output=True,
                           text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stdout.strip(), '', r.stdout)
        got = samples(text, 'leadscore_events_consumed_total')
        want = {frozenset({('topic', t), ('type', ty)}): float(n)
                for (t, ty), n in self.sent.items()}
        self.assertEqual({k: v for k, v in got.items() if v > 0}, want)
        dead = samples(text, 'leadscore_events_dead_lettered_total')
        self.assertEqual(dead.get(frozenset({('reason', 'malformed')})), 1.0, dead)
        for name in ('leadscore_batch_seconds_count', 'leadscore_redis_roundtrip_seconds_count'):
            self.assertGreater(sum(samples(text, name).values()), 0, name)
        # a ScoreChange caused by a record read: its latencies, at most one
        # observation per ScoreChange produced
        published = sum(samples(text, 'leadscore_score_changes_published_total').values())
        for name in ('leadscore_read_to_score_seconds_count',
                     'leadscore_record_to_score_seconds_count'):
            n = sum(samples(text, name).values())
            self.assertGreater(n, 0, name)
            self.assertLessEqual(n, published, name)
        self.assertEqual(samples(text, 'leadscore_build_info'),
                         {frozenset({('version', '0.1.0')}): 1.0})
        for name in ('process_resident_memory_bytes', 'process_cpu_seconds_total',
                     'process_open_fds'):
            self.assertGreater(samples(text, name)[frozenset()], 0, name)
        # every documented family is exposed with HELP and TYPE
        for name in ('leadscore_events_late_dropped_total',
                     'leadscore_score_changes_published_total', 'leadscore_model_auc',
                     'leadscore_model_logloss', 'leadscore_model_calibration_error',
                     'leadscore_model_labels_total', 'leadscore_bandit_decisions_total',
                     'leadscore_bandit_rewards_total', 'leadscore_consumer_lag_messages',
                     'leadscore_event_to_score_seconds', 'leadscore_http_request_seconds',
                     'leadscore_redis_memory_bytes'):
            self.assertIn('# HELP %s ' % name, text)
            self.assertIn('# TYPE %s ' % name, text)

    def test_dashboard_uses_only_exported_metrics(self):
        text = self.metrics()
        exported = set(re.findall(r'^# TYPE (\S+) ', text, re.M))
        src = os.environ.get('LS_SOURCE_ROOT', os.path.join(os.path.dirname(__file__), '..', '..'))
        with open(os.path.join(src, 'conf', 'grafana-leadscore.json')) as f:
            dash = f.read()
        used = set(re.findall(r'\b((?:leadscore|process)_[a-z_]+)', dash))
        used = {re.sub(r'_(bucket|sum|count)$', '', u) if re.sub(r'_(bucket|sum|count)$', '', u)
                in exported else u for u in used}
        self.assertTrue(used, 'no metric found in the dashboard')
        self.assertEqual(used - exported, set())

    def test_consumer_lag_from_librdkafka_statistics(self):
        # statistics arrive every 5 s; every assigned input partition has
        # caught up, so its lag is 0
        deadline = time.monotonic() + 20
        lag = {}
        while time.monotonic() < deadline:
            lag = samples(self.metrics(), 'leadscore_consumer_lag_messages')
            if len(lag) >= 5 and all(v == 0 for v in lag.values()):
                break
            time.sleep(0.5)
        topics = {dict(k)['topic'] for k in lag}
        self.assertTrue({'leads.email', 'leads.web', 'leads.call'} <= topics, lag)
        self.assertTrue(all(v == 0 for v in lag.values()), lag)

    def test_prometheus_scrapes_it(self):
        port = testenv.free_port()
        d = os.path.join(self.tmp.name, 'prom')
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, 'prometheus.yml'), 'w') as f:
            f.write('global:\n  scrape_interval: 1s\nscrape_configs:\n'
                    '  - job_name: leadscore\n    static_configs:\n'
                    '      - targets: ["127.0.0.1:%d"]\n' % self.port)
        prom = testenv.Daemon(['prometheus', '--config.file=' + os.path.join(d, 'prometheus.yml'),
                               '--storage.tsdb.path=' + os.path.join(d, 'data'),
                               '--web.listen-address=127.0.0.1:%d' % port],
                              name='prometheus')
        prom.start()
        try:
            def query(q):
                st, _, body = get(port, '/api/v1/query?query=' + urllib.parse.quote(q))
                if st != 200:
                    return None
                return json.loads(body)['data']['result']
            deadline = time.monotonic() + 60
            scrapes = None
            while time.monotonic() < deadline:
                try:
                    res = query('count_over_time(up{job="leadscore"}[5m])')
                except (ConnectionError, OSError):
                    res = None
                if res:
                    scrapes = float(res[0]['value'][1])
                    if scrapes >= 2:
                        break
                time.sleep(0.5)
            self.assertIsNotNone(scrapes, prom.tail())
            self.assertGreaterEqual(scrapes, 2)
            self.assertEqual(float(query('up{job="leadscore"}')[0]['value'][1]), 1.0)
            res = query('sum(leadscore_events_consumed_total{job="leadscore"})')
            self.assertEqual(float(res[0]['value'][1]), float(sum(self.sent.values())))
            res = query('leadscore_events_consumed_total{topic="leads.email",type="OPENED"}')
            self.assertEqual(float(res[0]['value'][1]), 7.0)
        finally:
            prom.terminate()

    def test_zz_readyz_follows_redis(self):
        st, _, body = get(self.port, '/readyz')
        self.assertEqual(st, 200, body)
        self.assertTrue(json.loads(body)['ready'])
        self.assertEqual(get(self.port, '/healthz')[0], 200)
        self.redis.stop()
        try:
            # a batch must touch Redis to find out
            testenv.produce(self.broker.bootstrap, 'leads.email', [(
                'ops-r', avro_events.encode('email', {'event_id': 'r1', 'lead_id': 'ops-r',
                                                      'ts': NOW, 'type': 'OPENED'}))])
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                st, _, body = get(self.port, '/readyz')
                if st == 503:
                    break
                time.sleep(0.2)
            self.assertEqual(st, 503, body)
            o = json.loads(body)
            self.assertFalse(o['ready'])
            self.assertTrue(any('redis' in r for r in o['reasons']), o)
            self.assertEqual(get(self.port, '/healthz')[0], 200)
        finally:
            self.redis.restart()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            st, _, body = get(self.port, '/readyz')
            if st == 200:
                break
            time.sleep(0.2)
        self.assertEqual(st, 200, body)


if __name__ == '__main__':
    unittest.main()
