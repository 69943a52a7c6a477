"""leadscored as a process: command line, config errors, start, reload, stop.

Runs the real binary against a real redis-server and the dev broker
(librdkafka's mock cluster). Run with Debian's /usr/bin/python3 and
LS_BUILD_ROOT set to the meson build dir.
"""
import json
import os
import re
import signal
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import avro_events  # noqa: E402
import lstest as tp  # noqa: E402
import testenv  # noqa: E402
from confluent_kafka import Producer  # noqa: E402

BUILD = os.environ.get('LS_BUILD_ROOT', 'build')
SOURCE = avro_events.SOURCE_ROOT
LEADSCORED = os.path.join(BUILD, 'daemon', 'leadscored')
EXAMPLE = os.path.join(SOURCE, 'conf', 'leadscore.yaml')


def run(*args, env=None):
    e = dict(os.environ)
    e.update(env or {})
    return testenv.run([LEADSCORED] + list(args), capture_output=True,
                       text=True, timeout=30, env=e)


class CommandLine(unittest.TestCase):

    def test_version(self):
        r = run('--version')
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout, r'^leadscored \d+\.\d+\.\d+\n$')

    def test_help_and_bad_option(self):
        r = run('--help')
        self.assertEqual(r.returncode, 0)
        self.assertIn('--check-config', r.stdout)
        r = run('--no-such-option')
        self.assertEqual(r.returncode, 2)
        self.assertIn('usage:', r.stderr)

    def test_check_config_example(self):
        r = run('--check-config', EXAMPLE)
        self.assertEqual(r.returncode, 0, r.stderr)
        r = run('--config', EXAMPLE, '--check-config')
        self.assertEqual(r.returncode, 0, r.stderr)

    def check_bad(self, text, expect):
        with tempfile.NamedTemporaryFile('w', suffix='.yaml', delete=False) as f:
            f.write(text)
        try:
            r = run('--check-config', f.name)
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn(f.name + ':' + expect, r.stderr)
        finally:
            os.unlink(f.name)

    def test_unknown_key(self):
        self.check_bad('kafka:\n  brokers: k:9092\n  brokrs: x\n', '3:3: kafka.brokrs: unknown key')

    def test_wrong_type(self):
        self.check_bad('kafka:\n  brokers: k:9092\npipeline:\n  batch_size: lots\n',
                       '4:15: pipeline.batch_size')

    def test_missing_brokers(self):
        self.check_bad('kafka:\n  group_id: g\n', '2:3: kafka.brokers')

    def test_malformed_duration(self):
        self.check_bad('kafka:\n  brokers: k:9092\nredis:\n  lead_ttl: 30 days\n',
                       '4:13: redis.lead_ttl')

    def test_check_config_transforms(self):
        ok = ('kafka:\n  brokers: k:9092\nfeatures:\n  - name: views\n    source: web\n'
              '    windows: [7d]\n    transform: {quantiles: 8, linear: none}\n'
              'models:\n  - name: m\n'
              '    metrics: [employees, {name: revenue, transform: {bins: [1, 10]}}]\n')
        with tempfile.NamedTemporaryFile('w', suffix='.yaml', delete=False) as f:
            f.write(ok)
        try:
            r = run('--check-config', f.name)
            self.assertEqual(r.returncode, 0, r.stderr)
        finally:
            os.unlink(f.name)
        self.check_bad(ok.replace('quantiles: 8', 'quantiles: 1'),
                       '7:28: features[0].transform.quantiles: must be between 2 and 64')
        self.check_bad(ok.replace('[1, 10]', '[10, 1]'),
                       '10:65: models[0].metrics[1].transform.bins[1]: not above the edge')

    def test_env_fills_required_key(self):
        with tempfile.NamedTemporaryFile('w', suffix='.yaml', delete=False) as f:
            f.write('kafka:\n  group_id: g\n')
        try:
            r = run('--check-config', f.name, env={'LEADSCORE_KAFKA_BROKERS': 'k:9092'})
            self.assertEqual(r.returncode, 0, r.stderr)
            r = run('--check-config', f.name, env={'LEADSCORE_KAFKA_BROKERS': 'k:9092',
                                                   'LEADSCORE_PIPELINE_BATCH_SIZE': '0'})
            self.assertEqual(r.returncode, 1)
            self.assertIn('environment LEADSCORE_PIPELINE_BATCH_SIZE', r.stderr)
        finally:
            os.unlink(f.name)


class Lifecycle(unittest.TestCase):
    """Start against the dev broker and a real redis-server, then stop."""

    def setUp(self):
        self.redis = testenv.RedisServer('unix').start()
        self.addCleanup(self.redis.cleanup)
        self.broker = testenv.DevBroker(partitions=2).start()
        self.addCleanup(self.broker.stop)
        self.dir = tempfile.mkdtemp(prefix='ls-lifecycle-')
        self.config = os.path.join(self.dir, 'leadscore.yaml')
        self.write_config('info')

    def write_config(self, level, extra=''):
        with open(self.config, 'w') as f:
            # a short session so a member that died without leaving the
            # group (the shutdown-timeout test) is replaced quickly
            f.write('kafka:\n  brokers: "%s"\n  group_id: lifecycle\n'
                    '  properties:\n    session.timeout.ms: "6000"\n'
                    '    heartbeat.interval.ms: "500"\n'
                    'redis:\n  url: "%s"\n'
                    'http:\n  listen: 127.0.0.1:0\n'
                    'log:\n  level: %s\n%s' % (self.broker.bootstrap, self.redis.url, level, extra))

    def start_daemon(self, leak_check=True):
        d = testenv.Daemon([LEADSCORED, '--config', self.config],
                           leak_check=leak_check)
        d.start()
        self.addCleanup(d.terminate)
        return d

    def test_ready_consumes_and_stops_within_5s(self):
        d = self.start_daemon()
        d.wait_for_log(r'component=redis msg="connected"', timeout=15)
        d.wait_for_log(r'component=main msg="ready" partitions=10', timeout=30)
        p = Producer({'bootstrap.servers': self.broker.bootstrap})
        p.produce('leads.email', key=b'lead-1', value=avro_events.encode(
            'email', {'event_id': 'e-1', 'lead_id': 'lead-1', 'ts': 1700000000000, 'type': 'OPENED'}))
        p.produce('leads.call', key=b'lead-1', value=avro_events.encode(
            'call', {'event_id': 'e-2', 'lead_id': 'lead-1', 'ts': 1700000000001,
                     'direction': 'INBOUND', 'outcome': 'CONNECTED', 'duration_s': 60}, schema_id=None))
        p.produce('leads.web', key=b'lead-1', value=b'\x02garbage')
        self.assertEqual(p.flush(10), 0)
        d.wait_for_log(r'msg="dead-lettered" topic=leads.web .*reason=malformed', timeout=15)
        t0 = time.monotonic()
        d.send_signal(signal.SIGTERM)
        rc = d.wait(timeout=5)
        self.assertLess(time.monotonic() - t0, 5.0)
        self.assertEqual(rc, 0, d.tail())
        m = d.wait_for_log(r'msg="stopped" consumed=(\d+) applied=(\d+) duplicates=(\d+) '
                           r'too_late=(\d+) dead_lettered=(\d+)', timeout=1)
        self.assertEqual(m.groups(), ('2', '2', '0', '0', '1'))
        # the lead's state and the offsets past all three messages were committed
        c = self.redis.client()
        self.assertIsNotNone(c.get('ls:{lead-1}:s'))
        offsets = {k.decode(): int(v) for k, v in c.hgetall('ls:offsets:lifecycle').items()}
        self.assertEqual(sum(offsets.values()), 3, offsets)
        d.wait_for_log(r'component=kafka msg="left the group"', timeout=1)

    def test_waits_for_redis_then_proceeds(self):
        self.redis.stop()
        d = self.start_daemon()
        d.wait_for_log(r'component=redis msg="connect failed, retrying"', timeout=10)
        self.redis.restart()
        d.wait_for_log(r'component=redis msg="connected"', timeout=15)
        d.wait_for_log(r'msg="ready"', timeout=30)
        d.send_signal(signal.SIGINT)
        self.assertEqual(d.wait(timeout=5), 0)

    def test_stop_before_redis_answers_is_clean(self):
        self.redis.stop()
        d = self.start_daemon()
        d.wait_for_log(r'msg="connect failed, retrying"', timeout=10)
        d.send_signal(signal.SIGTERM)
        self.assertEqual(d.wait(timeout=5), 0)

    def test_shutdown_timeout_bounds_a_stuck_drain(self):
        # work stays pending (1 minute commit interval) and Redis is frozen
        # when SIGTERM arrives: the final commit would wait for the command
        # timeout (5 s), the drain bound (1 s) ends the process first
        # (no rescore sweep: a sweep due after a batch would read the
        # frozen Redis and fail the batch before SIGTERM, leaving nothing
        # to drain)
        self.write_config('debug', 'pipeline:\n  commit_interval: 1m\n'
                          '  shutdown_timeout: 1s\n'
                          'scoring:\n  rescore_interval: 0s\n'
                          'models:\n  - name: conversion\n    label_timeout: 0s\n')
        # the drain bound _exit()s with everything still allocated
        d = self.start_daemon(leak_check=False)
        d.wait_for_log(r'msg="ready"', timeout=30)
        p = Producer({'bootstrap.servers': self.broker.bootstrap})
        p.produce('leads.email', key=b'lead-9', value=avro_events.encode(
            'email', {'event_id': 'e-9', 'lead_id': 'lead-9', 'ts': 1700000000000, 'type': 'CLICKED'}))
        self.assertEqual(p.flush(10), 0)
        d.wait_for_log(r'msg="batch applied" messages=1 ', timeout=15)
        self.redis.suspend()
        t0 = time.monotonic()
        d.send_signal(signal.SIGTERM)
        rc = d.wait(timeout=10)
        took = time.monotonic() - t0
        self.redis.resume()
        self.assertEqual(rc, 1, d.tail())
        d.wait_for_log(r'msg="shutdown timed out, exiting; uncommitted work will be replayed"', timeout=1)
        self.assertLess(took, 5.0, 'exited by the command timeout, not the drain bound')
        # The MULTI/EXEC sent to the frozen Redis may run once it thaws
        # (the ambiguous commit): lead and offsets are there together or
        # not at all.
        c = self.redis.client()
        offsets = c.hgetall('ls:offsets:lifecycle')
        self.assertEqual(c.get('ls:{lead-9}:s') is None, not offsets)
        # nothing lost, nothing twice: the next start replays from the
        # stored offsets and the event is counted exactly once
        self.write_config('info')
        d2 = self.start_daemon()
        d2.wait_for_log(r'msg="ready"', timeout=30)
        deadline = time.monotonic() + 15
        while c.get('ls:{lead-9}:s') is None:
            self.assertLess(time.monotonic(), deadline, d2.tail())
            time.sleep(0.05)
        d2.send_signal(signal.SIGTERM)
        self.assertEqual(d2.wait(timeout=5), 0)
        r = testenv.run([os.path.join(BUILD, 'tools', 'leadscorectl'), '--config',
                         self.config, 'lead', 'lead-9'], capture_output=True, text=True,
                        timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        lead = json.loads(r.stdout)
        self.assertEqual(lead['events']['email'], 1)
        self.assertEqual(lead['features']['email_clicks_30d'], 1.0)

    def test_sighup_applies_live_keys_and_reports_restart_keys(self):
        d = self.start_daemon()
        d.wait_for_log(r'msg="ready"', timeout=30)
        n = len(d.lines)
        # two live keys and one that needs a restart
        self.write_config('debug', 'pipeline:\n  batch_size: 100\n')
        with open(self.config) as f:
            text = f.read().replace('group_id: lifecycle', 'group_id: other')
        with open(self.config, 'w') as f:
            f.write(text)
        d.send_signal(signal.SIGHUP)
        d.wait_for_log(r'msg="applied live" key=log.level', timeout=10, since=n)
        d.wait_for_log(r'msg="applied live" key=pipeline.batch_size', timeout=10, since=n)
        d.wait_for_log(r'level=warn component=config msg="changed, needs a restart to apply" key=kafka.group_id',
                       timeout=10, since=n)
        d.wait_for_log(r'msg="reloaded" .*restart_needed=true', timeout=10, since=n)
        # a configuration with errors is refused as a whole
        n = len(d.lines)
        with open(self.config, 'w') as f:
            f.write('kafka:\n  brokers: [not, a, string]\n')
        d.send_signal(signal.SIGHUP)
        d.wait_for_log(r'level=error component=config msg="reload rejected, keeping the running configuration"',
                       timeout=10, since=n)
        d.send_signal(signal.SIGTERM)
        self.assertEqual(d.wait(timeout=5), 0)
        self.assertFalse(any('msg="reloaded"' in l for l in d.lines[n:]))

    def test_sighup_changes_model_thresholds_live(self):
        """min_delta and tiers move on SIGHUP with the model kept: read
        back as ScoreChange records (version, tier) and GET /v1/leads.
        The untrained model scores every lead 0.5, so which records exist
        depends only on the thresholds."""
        models = ('models:\n  - name: conversion\n    min_delta: %s\n'
                  '    tiers: %s\n%s')
        one_tier = '[{name: all}]'
        self.write_config('debug', models % ('1', one_tier, ''))
        d = self.start_daemon()
        d.wait_for_log(r'msg="ready"', timeout=30)
        port = int(d.wait_for_log(r'component=http msg="listening" .*port=(\d+)',
                                  timeout=1).group(1))
        ts = [1700000000000]

        def event():
            # one event per batch: each rescores lead-1 once
            n = len(d.lines)
            ts[0] += 1000
            testenv.produce(self.broker.bootstrap, 'leads.email', [(b'lead-1', avro_events.encode(
                'email', {'event_id': 'e-%d' % ts[0], 'lead_id': 'lead-1', 'ts': ts[0],
                          'type': 'OPENED'}))])
            d.wait_for_log(r'msg="batch applied" messages=1 ', timeout=15, since=n)

        def reload(extra, *logs):
            n = len(d.lines)
            self.write_config('debug', extra)
            d.send_signal(signal.SIGHUP)
            for pattern in logs:
                d.wait_for_log(pattern, timeout=10, since=n)

        def lead_score(key, want):
            # the handlers' copy of the models is republished right
            # after the reload's log lines
            deadline = time.monotonic() + 5
            while True:
                status, body = tp.http_get_json(port, '/v1/leads/lead-1')
                self.assertEqual(status, 200, body)
                got = body['scores']['conversion'][key]
                if got == want or time.monotonic() > deadline:
                    return got

        def lead_tier(want):
            return lead_score('tier', want)

        # min_delta 1 and one tier: the first score only
        event()
        event()
        # min_delta 0: every score; two tiers, 0.5 is hot. A learning key
        # changed with them waits for a restart and says so.
        reload(models % ('0', '[{name: cold}, {name: hot, min: 0.4}]',
                         '    ftrl: {alpha: 0.2}\n'),
               r'msg="applied live" key=models\[conversion\]\.min_delta$',
               r'msg="applied live" key=models\[conversion\]\.tiers$',
               r'level=warn .*msg="changed, needs a restart to apply" '
               r'key=models\[conversion\]\.ftrl\.alpha$',
               r'msg="reloaded" .*restart_needed=true')
        # the stored tier is index 0, read with the new names
        self.assertEqual(lead_tier('cold'), 'cold')
        event()
        self.assertEqual(lead_tier('hot'), 'hot')
        event()
        # one tier again: the stored "hot" (index 1) is past the end of
        # the list, so the next score is published as a tier change
        reload(models % ('0', one_tier, ''),
               r'msg="applied live" key=models\[conversion\]\.tiers$',
               r'msg="reloaded" .*restart_needed=false')
        # past the end: no tier until the next score
        self.assertIsNone(lead_tier(None))
        event()
        self.assertEqual(lead_tier('all'), 'all')
        # read-time decay, live: toward the base rate of the labels
        # learned, here one negative (lead-2 lost), so 0 for an event
        # from 2023
        self.assertEqual(lead_score('decayed_score', 0.5), 0.5)
        n = len(d.lines)
        testenv.produce(self.broker.bootstrap, 'leads.outcome', [(b'lead-2', avro_events.encode(
            'outcome', {'event_id': 'o-1', 'lead_id': 'lead-2', 'ts': ts[0], 'outcome': 'LOST'}))])
        d.wait_for_log(r'msg="batch applied" messages=1 ', timeout=15, since=n)
        reload(models % ('0', one_tier, '    decay_half_life: 1d\n'),
               r'msg="applied live" key=models\[conversion\]\.decay_half_life$')
        self.assertEqual(lead_score('decayed_score', 0.0), 0.0)
        d.send_signal(signal.SIGTERM)
        self.assertEqual(d.wait(timeout=5), 0, d.tail())

        got = [avro_events.decode('score_change', m.value())
               for m in testenv.consume(self.broker.bootstrap, 'leads.scores', 6, timeout=15)]
        self.assertEqual([(r['lead_id'], r['tier'], r['previous_tier'])
                          for r in got if r['lead_id'] == 'lead-1'],
                         [('lead-1', 'all', None), ('lead-1', 'hot', 'cold'),
                          ('lead-1', 'hot', 'hot'), ('lead-1', 'all', None)])
        # strictly increasing, from the first replay epoch's 2^32 (a
        # fresh deployment); one epoch here, so one apart
        self.assertEqual([r['version'] for r in got if r['lead_id'] == 'lead-1'],
                         [(1 << 32) + i for i in range(4)])
        self.assertEqual(len(got), 5)  # and lead-2's first score
        self.assertTrue(all(r['model'] == 'conversion' for r in got), got)
        self.assertTrue(all(r['score'] == 0.5 for r in got if r['lead_id'] == 'lead-1'), got)

    def backlog_too_late(self, align_stall):
        """Start on a backlog where each lead's outcome is stamped two days
        after its 60 web events, fetched in small pieces while the outcomes
        come in one: the events the daemon applies after the outcome are
        more than the 1 h grace behind the lead's watermark and dropped.
        Returns (consumed, too_late)."""
        t0 = 1700000000000
        web = Producer({'bootstrap.servers': self.broker.bootstrap,
                        'linger.ms': 0, 'batch.num.messages': 10})
        for j in range(60):
            for i in range(50):
                lead = 'al-%d' % i
                web.produce('leads.web', key=lead.encode(), value=avro_events.encode('web', {
                    'event_id': 'w-%d-%d' % (i, j), 'lead_id': lead, 'ts': t0 + j * 60000,
                    'type': 'PAGE_VIEW', 'url': 'https://x.test/pricing',
                    'page_category': 'pricing', 'duration_ms': 1000, 'session_id': 's'}))
                web.poll(0)
        self.assertEqual(web.flush(30), 0)
        testenv.produce(self.broker.bootstrap, 'leads.outcome', [
            (('al-%d' % i).encode(), avro_events.encode('outcome', {
                'event_id': 'o-%d' % i, 'lead_id': 'al-%d' % i,
                'ts': t0 + 2 * 86400000, 'outcome': 'CONVERTED'})) for i in range(50)])
        self.write_config('info', 'pipeline:\n  grace: 1h\n  batch_size: 100\n'
                          '  align_stall: %s\n' % align_stall)
        with open(self.config) as f:
            text = f.read().replace('    heartbeat.interval.ms: "500"\n',
                                    '    heartbeat.interval.ms: "500"\n'
                                    '    max.partition.fetch.bytes: "2048"\n')
        with open(self.config, 'w') as f:
            f.write(text)
        d = self.start_daemon()
        d.wait_for_log(r'msg="ready"', timeout=30)
        c = self.redis.client()
        deadline = time.monotonic() + 60
        while sum(int(v) for v in c.hgetall('ls:offsets:lifecycle').values()) < 3050:
            self.assertLess(time.monotonic(), deadline, d.tail())
            time.sleep(0.2)
        d.send_signal(signal.SIGTERM)
        self.assertEqual(d.wait(timeout=10), 0, d.tail())
        m = d.wait_for_log(r'msg="stopped" consumed=(\d+) applied=\d+ duplicates=\d+ '
                           r'too_late=(\d+)', timeout=1)
        return int(m.group(1)), int(m.group(2))

    def test_backlog_read_in_step(self):
        # read in step by timestamp: every web event before its outcome
        self.assertEqual(self.backlog_too_late('5s'), (3050, 0))

    def test_backlog_unaligned_control(self):
        # the same backlog with the alignment off: the outcomes arrive in
        # the first fetch and push the leads' watermarks past the events
        consumed, late = self.backlog_too_late('0s')
        sys.stderr.write("unaligned: %d of 3000 web events too late\n" % late)
        self.assertEqual(consumed, 3050)
        self.assertGreater(late, 0)


if __name__ == '__main__':
    unittest.main()
