"""leadscorectl tail and dead-letters (issue 16, item 2).

  * Live (one redis-server, dev broker and leadscored for the class):
    leads are fed to the daemon and every ScoreChange it publishes is read
    back with an independent client; `tail --from-beginning` shows exactly
    those records (partition, offset, lead, version, score), its --lead,
    --tier and --model filters keep exactly the matching ones, --table
    prints a row per record, --count N stops after N, --timeout-ms with a
    filter that matches nothing exits 3, and `tail` from the end shows only
    changes published after it started. Malformed input records produced
    to the input topics come back through `dead-letters` with the daemon's
    reason, their source topic/partition/offset, size, key and preview;
    --reason filters, --summary counts per reason.
  * Hostile (a dev broker, no daemon): non-Avro records (garbage, empty,
    2 MB) in the scores topic are reported with partition@offset and
    skipped; dead letters without headers, with non-UTF-8 and escape
    bytes in headers and keys, a non-numeric source partition and a 1.5 MB
    value are shown escaped and bounded; --since keeps the records stamped
    from then on.
  * Errors: an unreachable broker exits 1 within the timeout, a missing
    topic exits 1 (and is not created), kafka.properties reach the
    consumer (ssl against a plaintext broker fails), usage errors exit 2,
    --help exits 0 and documents the exit codes, SIGINT exits 0, a closed
    stdout pipe ends a follow with 0.

Run with Debian's /usr/bin/python3 and LS_BUILD_ROOT set to the meson build
dir (meson test does both).
"""
import collections
import json
import os
import pty
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import avro_events  # noqa: E402
import lstest as tp  # noqa: E402
import testenv  # noqa: E402
from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402

SCORES = 'leads.scores'
DEAD_LETTER = 'leads.dead_letter'
CTL = tp.LEADSCORECTL
MODELS = ('models:\n'
          '  - name: conversion\n'
          '    min_delta: 0\n')


def ctl(cfg, *args, timeout=90, env=None):
    """leadscorectl --config cfg ARGS: the CompletedProcess (text)."""
    return testenv.run([CTL, '--config', cfg] + list(args), capture_output=True,
                       text=True, timeout=timeout, env=env)


def json_lines(out):
    return [json.loads(line) for line in out.splitlines() if line.strip()]


def read_topic(bootstrap, topic):
    """Every record of topic up to the high watermarks, by an assigned
    consumer: [(partition, offset, key, value, headers)]."""
    c = Consumer({'bootstrap.servers': bootstrap, 'group.id': 'test-ctl-read',
                  'enable.auto.commit': False, 'enable.partition.eof': True})
    try:
        md = c.list_topics(topic, timeout=20)
        parts, ends = [], {}
        for p in md.topics[topic].partitions:
            lo, hi = c.get_watermark_offsets(TopicPartition(topic, p), timeout=20)
            if hi > lo:
                parts.append(TopicPartition(topic, p, lo))
                ends[p] = hi
        c.assign(parts)
        out = []
        deadline = time.monotonic() + testenv.scaled(30)
        while ends and time.monotonic() < deadline:
            m = c.poll(0.2)
            if m is None or m.error():
                continue
            out.append((m.partition(), m.offset(), m.key(), m.value(),
                        m.headers() or []))
            if m.offset() + 1 >= ends.get(m.partition(), 0):
                ends.pop(m.partition(), None)
        if ends:
            raise AssertionError('%s not read to its end: %r' % (topic, ends))
        return out
    finally:
        c.close()


def with_topics(cfg, **topics):
    """Rewrite config file cfg (lstest.write_config's) with kafka.topics."""
    with open(cfg) as f:
        lines = f.read().splitlines(True)
    at = next(i for i, line in enumerate(lines) if line.startswith('  group_id:')) + 1
    lines[at:at] = ['  topics:\n'] + ['    %s: %s\n' % kv for kv in topics.items()]
    with open(cfg, 'w') as f:
        f.writelines(lines)
    return cfg


def score_changes(bootstrap):
    """The ScoreChanges on the scores topic, decoded by the Avro library:
    {(partition, offset): record}."""
    out = {}
    for p, o, _k, v, _h in read_topic(bootstrap, SCORES):
        try:
            out[(p, o)] = avro_events.decode('score_change', v)
        except Exception:  # noqa: BLE001 - hostile records are skipped
            pass
    return out


def profile_event(lead, tag, ts):
    return ('leads.profile', lead, avro_events.encode('profile', {
        'event_id': '%s-p' % tag, 'lead_id': lead, 'ts': ts,
        'attributes': {'industry': 'saas', 'country': 'US'},
        'metrics': {'employees': 400.0}}))


def web_event(lead, tag, ts, category):
    return ('leads.web', lead, avro_events.encode('web', {
        'event_id': '%s-w' % tag, 'lead_id': lead, 'ts': ts,
        'type': 'DEMO_REQUEST' if category == 'pricing' else 'PAGE_VIEW',
        'url': 'https://x.test/' + category, 'page_category': category,
        'duration_ms': 30000, 'session_id': tag}))


def feed(bootstrap, leads, ts):
    s = tp.Sender(bootstrap)
    for i, lead in enumerate(leads):
        for topic, key, value in (profile_event(lead, lead, ts),
                                  web_event(lead, lead, ts + 1000,
                                            'pricing' if i % 2 else 'blog')):
            s.send(topic, key.encode(), value)
    s.flush()


def wait_for_leads(bootstrap, leads, timeout=60):
    """The scores topic once every lead in leads has a ScoreChange."""
    deadline = time.monotonic() + testenv.scaled(timeout)
    while True:
        got = score_changes(bootstrap)
        missing = set(leads) - {r['lead_id'] for r in got.values()}
        if not missing:
            return got
        if time.monotonic() > deadline:
            raise AssertionError('no ScoreChange for %d leads, e.g. %s'
                                 % (len(missing), sorted(missing)[:3]))
        time.sleep(0.5)


class Live(tp.DaemonSuite):
    """tail and dead-letters against a running daemon."""

    @classmethod
    def setUpClass(cls):
        cls.start_env('ctlk', extra=MODELS,
                      pipeline={'grace': '30d', 'max_record_size': 4096})
        cls.bootstrap = cls.broker.bootstrap
        cls.now = int(time.time() * 1000) - 3600 * 1000
        cls.leads = ['ctl-%02d' % i for i in range(20)]
        feed(cls.bootstrap, cls.leads, cls.now)
        cls.changes = wait_for_leads(cls.bootstrap, cls.leads)

    def tail_json(self, *args):
        r = ctl(self.cfg, 'tail', '--from-beginning', '--json', '--timeout-ms', '3000',
                *args)
        return r, json_lines(r.stdout)

    def test_tail_from_beginning_shows_what_the_topic_holds(self):
        r, got = self.tail_json()
        self.assertEqual(r.returncode, 0, r.stderr)
        want = score_changes(self.bootstrap)
        self.assertGreaterEqual(len(want), len(self.leads))
        self.assertEqual(len(got), len(want))
        for g in got:
            w = want[(g['partition'], g['offset'])]
            for k in ('lead_id', 'model', 'tier', 'previous_tier', 'version',
                      'ts', 'cause_event_id', 'score', 'previous_score'):
                self.assertEqual(g[k], w[k], (k, g, w))
            self.assertEqual([(f['name'], f['contribution']) for f in g['factors']],
                             [(f['name'], f['contribution']) for f in w['factors']])
        self.assertEqual({g['lead_id'] for g in got}, {w['lead_id'] for w in want.values()})
        self.assertLessEqual(set(self.leads), {g['lead_id'] for g in got})
        self.assertNotIn('skipped', r.stderr)

    def test_filters(self):
        want = list(score_changes(self.bootstrap).values())
        lead = self.leads[3]
        r, got = self.tail_json('--lead', lead)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(got), sum(1 for w in want if w['lead_id'] == lead))
        self.assertTrue(got and all(g['lead_id'] == lead for g in got), got)

        r, got = self.tail_json('--lead', self.leads[0], '--lead', self.leads[1])
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sorted({g['lead_id'] for g in got}), self.leads[:2])

        tiers = collections.Counter(w['tier'] for w in want)
        for tier, n in tiers.items():
            r, got = self.tail_json('--tier', tier)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(len(got), n, tier)
            self.assertTrue(all(g['tier'] == tier for g in got))

        r, got = self.tail_json('--model', 'conversion', '--tier', 'no-such-tier')
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertEqual(got, [])
        r, got = self.tail_json('--model', 'conversion')
        self.assertEqual(len(got), len(want))
        r, got = self.tail_json('--model', 'other')
        self.assertEqual((r.returncode, got), (3, []))

    def test_table(self):
        lead = self.leads[5]
        n = sum(1 for w in score_changes(self.bootstrap).values() if w['lead_id'] == lead)
        r = ctl(self.cfg, 'tail', '--from-beginning', '--table', '--lead', lead,
                '--timeout-ms', '3000')
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0].split()[:2], ['EVENT', 'TIME'])
        self.assertIn('SCORE', lines[0])
        self.assertEqual(len(lines), 1 + n, r.stdout)
        for line in lines[1:]:
            self.assertIn(' %s ' % lead, line)
            self.assertIn(' conversion ', line)

    def test_count_and_timeout(self):
        r, got = self.tail_json('--count', '3')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(got), 3)
        r, got = self.tail_json('--lead', 'nobody')
        self.assertEqual((r.returncode, got), (3, []))

    def test_tail_from_the_end_sees_new_changes_only(self):
        p = subprocess.Popen(testenv.wrap_argv(
            [CTL, '--config', self.cfg, 'tail', '--json', '--count', '4',
             '--timeout-ms', str(int(testenv.scaled(60) * 1000))]),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        new = []
        try:
            # the tail may not be reading yet: feed new leads until it has 4
            deadline = time.monotonic() + testenv.scaled(60)
            k = 0
            while p.poll() is None and time.monotonic() < deadline:
                batch = ['new-%03d-%d' % (k, i) for i in range(2)]
                k += 1
                new += batch
                feed(self.bootstrap, batch, self.now + 60000)
                time.sleep(1)
            out, err = p.communicate(timeout=testenv.scaled(30))
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(p.returncode, 0, err)
        got = json_lines(out)
        self.assertEqual(len(got), 4)
        for g in got:
            self.assertIn(g['lead_id'], new)   # nothing from before it started
        want = score_changes(self.bootstrap)
        for g in got:
            self.assertEqual(want[(g['partition'], g['offset'])]['lead_id'], g['lead_id'])

    def test_sigint_exits_0(self):
        p = subprocess.Popen(testenv.wrap_argv([CTL, '--config', self.cfg, 'tail', '--json']),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            time.sleep(testenv.scaled(2))
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=testenv.scaled(15))
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(p.returncode, 0, err)

    def test_dead_letters_show_reason_source_size_preview(self):
        now = self.now
        bad = {
            'malformed': ('leads.web', b'dl-mal', b'\x02garbage'),
            'missing_lead_id': ('leads.email', b'dl-nolead', avro_events.encode('email', {
                'event_id': 'dl-1', 'lead_id': '', 'ts': now, 'type': 'OPENED'})),
            'oversized': ('leads.call', b'dl-big', b'\x02' + bytes(range(256)) * 20),
        }
        where = {}
        for reason, (topic, key, value) in bad.items():
            (where[reason],) = testenv.produce(self.bootstrap, topic, [(key, value)])
        deadline = time.monotonic() + testenv.scaled(60)
        while len(read_topic(self.bootstrap, DEAD_LETTER)) < len(bad):
            self.assertLess(time.monotonic(), deadline, 'dead letters not written')
            time.sleep(0.5)

        r = ctl(self.cfg, 'dead-letters', '--json')
        self.assertEqual(r.returncode, 0, r.stderr)
        got = {g['reason']: g for g in json_lines(r.stdout)}
        self.assertEqual(sorted(got), sorted(bad))
        for reason, (topic, key, value) in bad.items():
            g = got[reason]
            part, off = where[reason]
            self.assertEqual(g['source'], {'topic': topic, 'partition': part, 'offset': off})
            self.assertEqual(g['size'], len(value))
            self.assertEqual(g['key'], key.decode())
            self.assertEqual(g['key_size'], len(key))
            self.assertEqual(g['preview_hex'], value[:64].hex())
            self.assertEqual(len(g['preview_text']), min(64, len(value)))
            self.assertTrue(g['detail'], g)
            self.assertIsNone(g['truncated'])
        self.assertIn('3 dead letter(s) matched of 3 read', r.stderr)

        r = ctl(self.cfg, 'dead-letters', '--json', '--preview', '4', '--reason', 'oversized')
        self.assertEqual(r.returncode, 0, r.stderr)
        (g,) = json_lines(r.stdout)
        self.assertEqual((g['reason'], g['preview_hex']), ('oversized', bad['oversized'][2][:4].hex()))

        r = ctl(self.cfg, 'dead-letters', '--reason', 'wrong_record_type')
        self.assertEqual((r.returncode, r.stdout), (3, ''))

        r = ctl(self.cfg, 'dead-letters', '--summary', '--json')
        self.assertEqual(r.returncode, 0, r.stderr)
        s = json.loads(r.stdout)
        self.assertEqual(s['by_reason'], {k: 1 for k in bad})
        self.assertEqual((s['records'], s['matched']), (3, 3))

        r = ctl(self.cfg, 'dead-letters')
        self.assertEqual(r.returncode, 0, r.stderr)
        part, off = where['malformed']
        self.assertIn('reason=malformed', r.stdout)
        self.assertIn('source:  leads.web:%d@%d' % (part, off), r.stdout)
        self.assertIn('"dl-mal" (6 bytes)', r.stdout)
        self.assertIn('|.garbage|', r.stdout)

        # --follow waits past the end; --timeout-ms ends it (0: records shown)
        t0 = time.monotonic()
        r = ctl(self.cfg, 'dead-letters', '--follow', '--timeout-ms', '2000', '--json')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(len(json_lines(r.stdout)), 3)
        self.assertGreaterEqual(time.monotonic() - t0, 2.0)


class Hostile(unittest.TestCase):
    """Records no daemon wrote, on a dev broker of their own."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.broker = testenv.DevBroker(partitions=2).start()
        cls.cfg = tp.write_config(os.path.join(cls.tmp.name, 'c.yaml'), cls.broker.bootstrap,
                                  'redis://127.0.0.1:1', 'hostile')

    @classmethod
    def tearDownClass(cls):
        cls.broker.stop()
        cls.tmp.cleanup()

    def producer(self):
        return Producer({'bootstrap.servers': self.broker.bootstrap,
                         'message.max.bytes': 4000000})

    def test_tail_skips_what_is_not_a_score_change(self):
        sc = {'lead_id': 'h-1', 'model': 'conversion', 'score': 0.75,
              'previous_score': None, 'tier': 'hot', 'previous_tier': None,
              'version': 7, 'ts': 1700000000000, 'cause_event_id': None,
              'factors': [{'name': 'web_pricing_7d', 'contribution': 0.25}]}
        p = self.producer()
        values = [b'not avro at all', b'', b'\x02' + b'\xff' * 2000000,
                  avro_events.encode('score_change', sc),
                  avro_events.encode('score_change', dict(sc, lead_id='h-\x1b[2J'),
                                     schema_id=5)]
        for v in values:
            p.produce(SCORES, key=b'k', value=v, partition=0)
        self.assertEqual(p.flush(30), 0)
        r = ctl(self.cfg, 'tail', '--from-beginning', '--timeout-ms', '3000')
        self.assertEqual(r.returncode, 0, r.stderr)
        got = [g for g in json_lines(r.stdout) if g['partition'] == 0]
        self.assertEqual([g['lead_id'] for g in got], ['h-1', 'h-\x1b[2J'])
        self.assertEqual([g['offset'] for g in got], [3, 4])
        self.assertEqual(got[0]['previous_score'], None)
        self.assertEqual(got[0]['factors'], [{'name': 'web_pricing_7d', 'contribution': 0.25}])
        for off in (0, 1, 2):
            self.assertIn('%s:0@%d: not a ScoreChange' % (SCORES, off), r.stderr)
        self.assertIn('oversized', r.stderr)
        # the table escapes what could drive a terminal
        r = ctl(self.cfg, 'tail', '--from-beginning', '--timeout-ms', '3000', '--table')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn('\x1b', r.stdout)
        self.assertIn('h-\\x1b[2J', r.stdout)

    def one_score_change(self, lead):
        """A ScoreChange for lead on partition 1 (test_tail_skips... reads 0)."""
        p = self.producer()
        p.produce(SCORES, key=lead.encode(), value=avro_events.encode('score_change', {
            'lead_id': lead, 'model': 'm', 'score': 0.5, 'previous_score': None,
            'tier': 'cold', 'previous_tier': None, 'version': 1, 'ts': 0,
            'cause_event_id': None, 'factors': []}), partition=1)
        self.assertEqual(p.flush(30), 0)

    def test_tail_stops_when_its_reader_goes(self):
        """`tail | head -n 1`: exit 0 once head has gone, though no record
        comes to write."""
        self.one_score_change('h-2')
        t = subprocess.Popen(testenv.wrap_argv([CTL, '--config', self.cfg, 'tail',
                                                '--from-beginning', '--json']),
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            self.assertTrue(t.stdout.readline().startswith(b'{'))
            t.stdout.close()
            self.assertEqual(t.wait(timeout=testenv.scaled(15)), 0)
        finally:
            if t.poll() is None:
                t.kill()
                t.wait()

    def test_tail_prints_a_table_on_a_terminal(self):
        self.one_score_change('h-tty')
        master, slave = pty.openpty()
        t = subprocess.Popen(testenv.wrap_argv([CTL, '--config', self.cfg, 'tail',
                                                '--from-beginning', '--timeout-ms', '2000']),
                             stdout=slave, stderr=subprocess.DEVNULL)
        os.close(slave)
        out = b''
        try:
            while True:
                try:
                    chunk = os.read(master, 4096)
                except OSError:   # EIO: the terminal's other side is closed
                    break
                if not chunk:
                    break
                out += chunk
            self.assertEqual(t.wait(timeout=testenv.scaled(15)), 0)
        finally:
            os.close(master)
            if t.poll() is None:
                t.kill()
                t.wait()
        text = out.decode('utf-8', 'replace')
        self.assertIn('EVENT TIME (UTC)', text)
        self.assertIn(' h-tty ', text)
        self.assertNotIn('{"', text)

    def test_dead_letters_of_any_shape(self):
        p = self.producer()
        big = bytes(range(256)) * 6000   # 1,536,000 bytes
        p.produce(DEAD_LETTER, value=b'no headers at all', partition=1)
        p.produce(DEAD_LETTER, key=b'\xff\x1b]0;x\x07', value=big, partition=1,
                  headers=[('ls.reason', b'\xfe\x1b[31m'), ('ls.source.partition', b'zz'),
                           ('ls.source.offset', b'12'), ('ls.detail', None),
                           ('x-extra', b'\x00\x01')])
        p.produce(DEAD_LETTER, value=None, partition=1,
                  headers=[('ls.reason', 'oversized'), ('ls.truncated', 'value'),
                           ('ls.original_size', '5000000')])
        self.assertEqual(p.flush(30), 0)
        r = ctl(self.cfg, 'dead-letters', '--json')
        self.assertEqual(r.returncode, 0, r.stderr)
        a, b, c = json_lines(r.stdout)
        self.assertEqual((a['reason'], a['source'], a['key'], a['size']),
                         (None, {'topic': None, 'partition': None, 'offset': None}, None, 17))
        self.assertEqual(a['preview_text'], 'no headers at all')
        self.assertEqual(b['reason'], '\\xfe\\x1b[31m')
        self.assertEqual(b['source'], {'topic': None, 'partition': 'zz', 'offset': 12})
        self.assertEqual(b['key'], '\\xff\\x1b]0;x\\x07')
        self.assertEqual((b['size'], b['key_size']), (len(big), 7))
        self.assertEqual(b['preview_hex'], big[:64].hex())
        self.assertEqual(b['headers'], {'x-extra': '\\x00\\x01'})
        self.assertEqual(b['detail'], '')
        self.assertEqual((c['truncated'], c['original_size'], c['size']), ('value', 5000000, 0))
        r = ctl(self.cfg, 'dead-letters')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn('\x1b', r.stdout)
        self.assertIn('... %d more bytes' % (len(big) - 64), r.stdout)
        self.assertIn('reason=none', r.stdout)
        self.assertIn('(cut to fit: value; original 5000000 bytes)', r.stdout)
        r = ctl(self.cfg, 'dead-letters', '--reason', 'none', '--json')
        self.assertEqual([g['offset'] for g in json_lines(r.stdout)], [0])
        self.assertIn('1 dead letter(s) matched of 3 read: none 1', r.stderr)


    def test_since(self):
        """--since by the records' timestamps; the dev broker cannot look
        offsets up by time, so this is the fallback: read from the start,
        skip what is older."""
        cfg = with_topics(tp.write_config(os.path.join(self.tmp.name, 'since.yaml'),
                                          self.broker.bootstrap, 'redis://127.0.0.1:1',
                                          'since'), dead_letter='since.dlq')
        p = self.producer()
        p.produce('since.dlq', value=b'old', partition=0, headers=[('ls.reason', 'a')])
        self.assertEqual(p.flush(30), 0)
        time.sleep(1.5)
        cut = int(time.time() * 1000)
        time.sleep(0.2)
        p.produce('since.dlq', value=b'new', partition=0, headers=[('ls.reason', 'b')])
        self.assertEqual(p.flush(30), 0)
        r = ctl(cfg, 'dead-letters', '--json', '--since', str(cut))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([g['preview_text'] for g in json_lines(r.stdout)], ['new'])
        r = ctl(cfg, 'dead-letters', '--json', '--since', '10m')
        self.assertEqual([g['preview_text'] for g in json_lines(r.stdout)], ['old', 'new'])
        r = ctl(cfg, 'dead-letters', '--json', '--since', str(cut + 3600 * 1000))
        self.assertEqual((r.returncode, r.stdout), (3, ''))


class Errors(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def config(self, name, brokers):
        return tp.write_config(os.path.join(self.tmp.name, name), brokers,
                               'redis://127.0.0.1:1', 'errors')

    def test_help_and_usage(self):
        cfg = self.config('u.yaml', '127.0.0.1:1')
        for cmd in ('tail', 'dead-letters'):
            r = ctl(cfg, cmd, '--help')
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertIn('Exit codes:', r.stdout)
            for code in ('0 ', '1 ', '2 ', '3 '):
                self.assertIn('\n  ' + code, r.stdout)
            self.assertIn('--timeout-ms', r.stdout)
            self.assertIn('--count', r.stdout)
            for bad in (['--count', '0'], ['--count', 'x'], ['--timeout-ms', '-5'],
                        ['--bogus'], ['stray'], ['--since', 'yesterday'],
                        ['--from-beginning', '--since', '1h']):
                r = ctl(cfg, cmd, *bad)
                self.assertEqual(r.returncode, 2, (cmd, bad, r.stderr))
                self.assertTrue(r.stderr.strip(), (cmd, bad))
        r = ctl(cfg, 'tail', '--json', '--table')
        self.assertEqual(r.returncode, 2, r.stderr)
        r = ctl(cfg, 'dead-letters', '--preview', '70000')
        self.assertEqual(r.returncode, 2, r.stderr)

    def test_unreachable_broker_exits_1_within_the_timeout(self):
        cfg = self.config('down.yaml', '127.0.0.1:%d' % testenv.free_port())
        for cmd in ('tail', 'dead-letters'):
            t0 = time.monotonic()
            r = ctl(cfg, cmd, '--timeout-ms', '2000', timeout=60)
            self.assertEqual(r.returncode, 1, r.stderr)
            self.assertIn('no answer from the brokers', r.stderr)
            self.assertLess(time.monotonic() - t0, testenv.scaled(30))

    def test_kafka_properties_reach_the_consumer(self):
        """security.protocol ssl against the plaintext dev broker: the
        handshake fails, so the property was applied."""
        with testenv.DevBroker(partitions=1) as b:
            cfg = tp.write_config(os.path.join(self.tmp.name, 'ssl.yaml'), b.bootstrap,
                                  'redis://127.0.0.1:1', 'errors',
                                  properties={'security.protocol': 'ssl'})
            for cmd in ('tail', 'dead-letters'):
                r = ctl(cfg, cmd, '--timeout-ms', '2000')
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertIn('ssl://', r.stderr)
                self.assertIn('no answer from the brokers', r.stderr)

    def test_missing_topic_exits_1_and_is_not_created(self):
        with testenv.DevBroker(partitions=1) as b:
            cfg = with_topics(self.config('nt.yaml', b.bootstrap),
                              scores='no.such.scores', dead_letter='no.such.dlq')
            for cmd, topic in (('tail', 'no.such.scores'), ('dead-letters', 'no.such.dlq')):
                r = ctl(cfg, cmd, '--timeout-ms', '5000')
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertIn('topic %s does not exist' % topic, r.stderr)
            c = Consumer({'bootstrap.servers': b.bootstrap, 'group.id': 'x'})
            topics = c.list_topics(timeout=10).topics
            c.close()
            self.assertNotIn('no.such.scores', topics)
            self.assertNotIn('no.such.dlq', topics)


if __name__ == '__main__':
    unittest.main()
