"""`leadscorectl replay FILE...` against a running leadscored (real Redis,
the dev broker):

  * a JSON lines file with all five kinds (given by "source" or inferred)
    and bad lines: the good records reach their topics keyed by lead_id
    with the Kafka timestamp = ts and values that Apache Avro decodes to
    the line's fields (read back with confluent_kafka); the bad lines are
    reported with their line numbers and reasons and never sent (exit 3);
    the daemon applies the events (leadscorectl lead);
  * an Avro container file written by python3-avro (deflate) feeds the
    daemon the same way (exit 0), also from stdin;
  * hostile input (dry run): a 10 MB line, binary garbage, truncated and
    corrupt .avro files, an empty file, unknown fields, ts out of range;
  * delivery failures exit 1; SIGINT stops, flushes, reports (exit 4);
    usage errors exit 2; --help exits 0 and documents the exit codes.

Run with Debian's /usr/bin/python3 and LS_BUILD_ROOT set to the meson build
dir (meson test does both).
"""
import json
import os
import random
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import avro.datafile  # noqa: E402
import avro.io  # noqa: E402

import avro_events  # noqa: E402
import lstest as tp  # noqa: E402
import testenv  # noqa: E402

T0 = tp.T0


def ctl(*args, timeout=120, input=None):
    return testenv.run([tp.LEADSCORECTL] + list(args), capture_output=True,
                       text=True, timeout=timeout, input=input)


def wait_lead(cfg, lead_id, want_events, timeout=60):
    """leadscorectl lead's JSON once its event counts are want_events."""
    deadline = time.monotonic() + timeout
    got = None
    while time.monotonic() < deadline:
        got = tp.ctl_lead(cfg, lead_id)
        if got is not None and all(got['events'][k] == v for k, v in want_events.items()):
            return got
        time.sleep(0.3)
    raise AssertionError('lead %s never reached %r: %r' % (lead_id, want_events, got))


def topic_records(bootstrap, topic, keys, n, timeout=60):
    """The messages of topic whose key is in keys, once there are n."""
    deadline = time.monotonic() + timeout
    got = []
    while time.monotonic() < deadline:
        msgs = testenv.consume(bootstrap, topic, 100000, timeout=6)
        got = [m for m in msgs if m.key().decode() in keys]
        if len(got) >= n:
            return got
    raise AssertionError('%s: %d of %d records' % (topic, len(got), n))


GOOD = [
    {'source': 'email', 'event_id': 'rj-e1', 'lead_id': 'rj-1', 'ts': T0, 'type': 'SENT',
     'campaign_id': 'spring'},
    {'event_id': 'rj-e2', 'lead_id': 'rj-1', 'ts': T0 + 1000, 'type': 'OPENED'},
    {'event_id': 'rj-w1', 'lead_id': 'rj-1', 'ts': T0 + 2000, 'type': 'PAGE_VIEW',
     'url': 'https://x.example/pricing', 'page_category': 'pricing', 'duration_ms': 1234},
    {'source': 'call', 'event_id': 'rj-c1', 'lead_id': 'rj-2', 'ts': T0 + 3000,
     'direction': 'INBOUND', 'outcome': 'CONNECTED', 'duration_s': 300, 'sentiment': 0.5},
    {'event_id': 'rj-p1', 'lead_id': 'rj-2', 'ts': T0 + 4000,
     'attributes': {'industry': 'retail'}, 'metrics': {'employees': 120}},
    {'event_id': 'rj-o1', 'lead_id': 'rj-2', 'ts': T0 + 5000, 'outcome': 'WON',
     'value': 1500.0},
]

# (line text, reason in the report)
BAD = [
    ('this is not json', 'not_json'),
    ('[1, 2, 3]', 'not_object'),
    (json.dumps({'event_id': 'rj-bad1', 'lead_id': 'rj-1', 'ts': T0, 'type': 'OPENED',
                 'extra': 1}), "unknown_field: unknown field 'extra'"),
    (json.dumps({'event_id': 'rj-bad2', 'lead_id': 'rj-1', 'type': 'OPENED'}),
     "missing_field: missing field 'ts'"),
    (json.dumps({'event_id': 'rj-bad3', 'lead_id': 'rj-1', 'ts': str(T0), 'type': 'OPENED'}),
     "wrong_type: field 'ts' must be an integer"),
    (json.dumps({'event_id': 'rj-bad4', 'lead_id': 'rj-1', 'ts': -1, 'type': 'OPENED'}),
     'bad_value'),
    (json.dumps({'event_id': 'rj-bad5', 'lead_id': 'rj-1', 'ts': 2 ** 62, 'type': 'OPENED'}),
     'future_ts'),
    (json.dumps({'event_id': 'rj-bad6', 'lead_id': 'rj-1', 'ts': T0, 'type': 'WAVED'}),
     'unknown_kind'),
    (json.dumps({'source': 'fax', 'event_id': 'rj-bad7', 'lead_id': 'rj-1', 'ts': T0}),
     'unknown_kind'),
    (json.dumps({'event_id': '', 'lead_id': 'rj-1', 'ts': T0, 'type': 'OPENED'}),
     'missing_event_id'),
    (json.dumps({'event_id': 'rj-bad8', 'lead_id': 'rj-1', 'ts': T0, 'direction': 'INBOUND',
                 'outcome': 'CONNECTED', 'duration_s': 1, 'sentiment': 7}), 'sentiment'),
    (json.dumps({'event_id': 'rj-bad9', 'lead_id': 'rj-1', 'ts': T0, 'type': 'SENT',
                 'campaign_id': 'c' * 300}), 'id_too_long: campaign_id is 300 bytes'),
    ('{"event_id": "rj-bad10", "lead_id": "rj-1", "ts": 1, "ts": 2, "type": "SENT"}',
     'not_json'),
]


def zigzag(n):
    """An Avro long: zigzag, then base-128 varint."""
    z = (n << 1) ^ (n >> 63)
    out = bytearray()
    while True:
        b = z & 0x7f
        z >>= 7
        if z:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def write_avro(path, kind, records, codec='deflate'):
    with open(path, 'wb') as f:
        w = avro.datafile.DataFileWriter(f, avro.io.DatumWriter(), avro_events.schema(kind),
                                         codec=codec)
        for rec in records:
            rec = dict(rec)
            rec['ts'] = avro_events._to_datetime(rec['ts'])
            for fld in avro_events.schema(kind).fields:
                rec.setdefault(fld.name, None)
            w.append(rec)
        w.close()


class CtlReplay(tp.DaemonSuite):
    @classmethod
    def setUpClass(cls):
        cls.start_env('ctlreplay', prefix='cr:', pipeline=tp.EXACT_PIPELINE)

    def path(self, name):
        return os.path.join(self.tmp.name, name)

    def test_jsonl_feeds_the_daemon_and_rejects_bad_lines(self):
        # good and bad lines interleaved, then blank ones
        lines, bad_at = [], {}
        for i in range(max(len(GOOD), len(BAD))):
            if i < len(GOOD):
                lines.append(json.dumps(GOOD[i]))
            if i < len(BAD):
                lines.append(BAD[i][0])
                bad_at[len(lines)] = BAD[i][1]
        lines += ['', '   ']
        with open(self.path('events.jsonl'), 'w') as f:
            f.write('\n'.join(lines) + '\n')
        r = ctl('--config', self.cfg, 'replay', self.path('events.jsonl'), '--json')
        self.assertEqual(r.returncode, 3, r.stderr)
        summary = json.loads(r.stdout)
        self.assertEqual((summary['sent'], summary['delivered'], summary['rejected'],
                          summary['failed']), (len(GOOD), len(GOOD), len(BAD), 0), summary)
        self.assertEqual(summary['topics'], {'leads.email': 2, 'leads.web': 1,
                                             'leads.call': 1, 'leads.profile': 1,
                                             'leads.outcome': 1})
        for no, reason in bad_at.items():
            self.assertRegex(r.stderr, r'events\.jsonl:%d: [^\n]*%s' % (no, reason))
        # on the topics: keys, timestamps and values as the lines said
        by_kind = {}
        for g in GOOD:
            kind = g.get('source') or {'rj-e2': 'email', 'rj-w1': 'web', 'rj-p1': 'profile',
                                       'rj-o1': 'outcome'}[g['event_id']]
            by_kind.setdefault(kind, []).append(g)
        for kind, want in by_kind.items():
            msgs = topic_records(self.broker.bootstrap, tp.TOPICS[kind], {'rj-1', 'rj-2'},
                                 len(want))
            self.assertEqual(len(msgs), len(want), kind)
            got = {}
            for m in msgs:
                rec = avro_events.decode(kind, m.value())
                self.assertEqual(m.key().decode(), rec['lead_id'])
                self.assertEqual(m.timestamp()[1], rec['ts'])
                self.assertEqual(m.value()[:1] != b'\x00', True)  # plain Avro
                got[rec['event_id']] = rec
            for w in want:
                rec = got[w['event_id']]
                for k, v in w.items():
                    if k != 'source':
                        self.assertEqual(rec[k], v, (kind, k))
        # nothing of a bad line went anywhere
        for kind in ('email', 'call'):
            msgs = testenv.consume(self.broker.bootstrap, tp.TOPICS[kind], 100000, timeout=6)
            ids = {avro_events.decode(kind, m.value())['event_id'] for m in msgs}
            self.assertFalse({i for i in ids if i.startswith('rj-bad')}, ids)
        # and the daemon applied them
        lead = wait_lead(self.cfg, 'rj-1', {'email': 2, 'web': 1})
        self.assertEqual(lead['watermark'], T0 + 2000)
        lead = wait_lead(self.cfg, 'rj-2', {'call': 1, 'outcome': 1, 'profile': 1})
        self.assertEqual(lead['attributes'].get('industry'), 'retail')

    def test_avro_file_feeds_the_daemon(self):
        recs = [{'event_id': 'ra-%d' % i, 'lead_id': 'ra-%d' % (i % 3), 'ts': T0 + i * 1000,
                 'type': 'OPENED' if i % 2 else 'SENT', 'campaign_id': 'c%d' % i}
                for i in range(30)]
        write_avro(self.path('email.avro'), 'email', recs)
        r = ctl('--config', self.cfg, 'replay', self.path('email.avro'), '--json')
        self.assertEqual(r.returncode, 0, r.stderr)
        s = json.loads(r.stdout)
        self.assertEqual((s['delivered'], s['rejected'], s['topics']),
                         (30, 0, {'leads.email': 30}), s)
        self.assertIn('done: 30 records read, 30 delivered', r.stderr)
        msgs = topic_records(self.broker.bootstrap, 'leads.email', {'ra-0', 'ra-1', 'ra-2'}, 30)
        seen = {}
        for m in msgs:
            rec = avro_events.decode('email', m.value())
            self.assertEqual(m.key().decode(), rec['lead_id'])
            self.assertEqual(m.timestamp()[1], rec['ts'])
            seen[rec['event_id']] = rec
        for w in recs:
            self.assertEqual(seen[w['event_id']]['campaign_id'], w['campaign_id'])
            self.assertEqual(seen[w['event_id']]['ts'], w['ts'])
        for lead in range(3):
            wait_lead(self.cfg, 'ra-%d' % lead, {'email': 10})
        # from stdin, a web file without compression
        web = [{'event_id': 'rw-%d' % i, 'lead_id': 'rw-1', 'ts': T0 + i, 'type': 'PAGE_VIEW',
                'url': '/u%d' % i} for i in range(5)]
        write_avro(self.path('web.avro'), 'web', web, codec='null')
        with open(self.path('web.avro'), 'rb') as f:
            r = testenv.run([tp.LEADSCORECTL, '--config', self.cfg, 'replay', '-', '--json'],
                            stdin=f, capture_output=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)['topics'], {'leads.web': 5})
        wait_lead(self.cfg, 'rw-1', {'web': 5})

    def test_hostile_files(self):
        p = self.path
        with open(p('big.jsonl'), 'w') as f:
            f.write(json.dumps(GOOD[0]) + '\n')
            f.write('{"event_id": "x", "lead_id": "y", "ts": 1, "type": "SENT", "url": "'
                    + 'a' * (10 << 20) + '"}\n')
            f.write(json.dumps(GOOD[1]) + '\n')
        r = ctl('--config', self.cfg, 'replay', '--dry-run', '--json', p('big.jsonl'))
        self.assertEqual(r.returncode, 3, r.stderr)
        s = json.loads(r.stdout)
        self.assertEqual((s['sent'], s['rejected'], s['rejected_by_reason']),
                         (2, 1, {'line_too_long': 1}), s)
        self.assertIn('big.jsonl:2: line_too_long', r.stderr)
        # a line under the cap whose record is over pipeline.max_record_size
        with open(p('fat.jsonl'), 'w') as f:
            f.write(json.dumps({'event_id': 'x', 'lead_id': 'y', 'ts': 1, 'type': 'SENT',
                                'url': 'b' * (2 << 20)}) + '\n')
        r = ctl('--config', self.cfg, 'replay', '--dry-run', p('fat.jsonl'))
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn('fat.jsonl:1: oversized', r.stderr)

        with open(p('garbage.bin'), 'wb') as f:
            f.write(bytes((i * 7919 + 13) % 256 for i in range(200000)))
        r = ctl('--config', self.cfg, 'replay', '--dry-run', '--json', '--show-rejected', '5',
                p('garbage.bin'))
        self.assertEqual(r.returncode, 3, r.stderr)
        s = json.loads(r.stdout)
        self.assertEqual(s['sent'], 0)
        self.assertGreater(s['rejected'], 0)
        self.assertIn('further rejected lines are counted', r.stderr)

        open(p('empty'), 'w').close()
        r = ctl('--config', self.cfg, 'replay', '--dry-run', '--json', p('empty'))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)['read'], 0)

        recs = [{'event_id': 'h-%d' % i, 'lead_id': 'h', 'ts': T0 + i, 'type': 'PAGE_VIEW',
                 'url': '/x%d' % i} for i in range(200)]
        write_avro(p('web.avro'), 'web', recs, codec='null')
        with open(p('web.avro'), 'rb') as f:
            data = f.read()
        for cut in (2, 4, 40, len(data) // 2, len(data) - 20):
            with open(p('cut.avro'), 'wb') as f:
                f.write(data[:cut])
            r = ctl('--config', self.cfg, 'replay', '--dry-run', '--json', p('cut.avro'))
            self.assertIn(r.returncode, (3,), (cut, r.stderr))
            s = json.loads(r.stdout)
            self.assertEqual(s['sent'] + s['rejected'], max(s['read'], 1), (cut, s))
            self.assertRegex(r.stderr, r'cut\.avro(:\d+)?: (avro_file|not_json)', cut)
        # the middle cut keeps what comes before it
        with open(p('cut.avro'), 'wb') as f:
            f.write(data[:len(data) // 2])
        s = json.loads(ctl('--config', self.cfg, 'replay', '--dry-run', '--json',
                           p('cut.avro')).stdout)
        self.assertGreater(s['sent'], 50)
        self.assertEqual(s['sent'] + s['rejected'], 200)
        # a corrupt byte inside a record: that record or its block, not the file
        bad = bytearray(data)
        bad[len(bad) // 2] = 0xff
        bad[len(bad) // 2 + 1] = 0xff
        with open(p('bad.avro'), 'wb') as f:
            f.write(bad)
        r = ctl('--config', self.cfg, 'replay', '--dry-run', '--json', p('bad.avro'))
        self.assertEqual(r.returncode, 3, r.stderr)
        s = json.loads(r.stdout)
        self.assertEqual(s['sent'] + s['rejected'], 200, s)
        self.assertGreater(s['sent'], 0, s)
        # seeded cuts and byte flips anywhere, deflated too: a clear
        # verdict (0 or 3), never a crash or a sanitizer report (exit 1)
        write_avro(p('web-d.avro'), 'web', recs, codec='deflate')
        with open(p('web-d.avro'), 'rb') as f:
            ddata = f.read()
        rng = random.Random(16)
        for i in range(40):
            src = data if i % 2 else ddata
            b = bytearray(src[:rng.randrange(1, len(src))] if i % 4 < 2 else src)
            for _ in range(rng.randrange(1, 4)):
                b[rng.randrange(len(b))] = rng.randrange(256)
            with open(p('fuzz.avro'), 'wb') as f:
                f.write(b)
            r = ctl('--config', self.cfg, 'replay', '--dry-run', '--json', '--quiet',
                    p('fuzz.avro'))
            self.assertIn(r.returncode, (0, 3), (i, r.stderr[-2000:]))
            s = json.loads(r.stdout)
            self.assertEqual(s['read'], s['sent'] + s['rejected'], (i, s))
        # a forged block header: 2^40 records in a few bytes, a size past
        # the end of the file: counted within the bytes, never allocated
        sync = data[-16:]  # a file ends with its last block's sync marker
        header = data[:data.index(sync) + 16]
        body = data[len(header):data.index(sync, len(header))]
        for count, size in ((1 << 40, None), (3, 1 << 40)):
            with open(p('forged.avro'), 'wb') as f:
                f.write(header + zigzag(count) + zigzag(size or len(body)) + body + sync)
            r = ctl('--config', self.cfg, 'replay', '--dry-run', '--json', '--quiet',
                    p('forged.avro'))
            self.assertEqual(r.returncode, 3, r.stderr)
            s = json.loads(r.stdout)
            self.assertLessEqual(s['read'], len(body), s)
            self.assertEqual(s['read'], s['sent'] + s['rejected'], s)
        # an Avro file of records that are not events
        write_avro(p('score.avro'), 'score_change',
                   [{'lead_id': 'x', 'model': 'm', 'score': 0.5, 'tier': 'hot', 'version': 1,
                     'ts': T0, 'factors': []}])
        r = ctl('--config', self.cfg, 'replay', '--dry-run', p('score.avro'))
        self.assertEqual(r.returncode, 3, r.stderr)
        self.assertIn('ScoreChange, not one of', r.stderr)
        # a file that does not exist: exit 1, the others still read
        r = ctl('--config', self.cfg, 'replay', '--dry-run', '--json', p('nope.jsonl'),
                p('web.avro'))
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(json.loads(r.stdout)['sent'], 200)
        self.assertIn('nope.jsonl: No such file', r.stderr)

    def test_delivery_failure_exits_1(self):
        dead = os.path.join(self.tmp.name, 'dead.yaml')
        tp.write_config(dead, '127.0.0.1:%d' % testenv.free_port(), self.redis.url, 'x',
                        properties={'message.timeout.ms': '1500'})
        with open(self.path('one.jsonl'), 'w') as f:
            f.write(json.dumps(GOOD[0]) + '\n')
        r = ctl('--config', dead, 'replay', self.path('one.jsonl'), '--json')
        self.assertEqual(r.returncode, 1, r.stderr)
        s = json.loads(r.stdout)
        self.assertEqual((s['sent'], s['delivered'], s['failed']), (1, 0, 1), s)
        self.assertIn('first delivery failure', r.stderr)

    def test_second_signal_stops_waiting_for_delivery(self):
        dead = os.path.join(self.tmp.name, 'dead2.yaml')
        tp.write_config(dead, '127.0.0.1:%d' % testenv.free_port(), self.redis.url, 'x',
                        properties={'message.timeout.ms': '300000'})
        p = subprocess.Popen(testenv.wrap_argv([tp.LEADSCORECTL, '--config', dead,
                                                'replay', '-', '--json']),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        try:
            p.stdin.write((json.dumps(GOOD[0]) + '\n').encode())
            p.stdin.close()  # EOF: now it waits for a delivery that cannot come
            p.stdin = None   # (communicate() would flush it)
            # the wait's progress lines say it is waiting
            deadline = time.monotonic() + 30
            err = b''
            while b'1 sent, 0 delivered' not in err and time.monotonic() < deadline:
                err += os.read(p.stderr.fileno(), 4096)
            p.send_signal(signal.SIGINT)
            time.sleep(0.5)
            p.send_signal(signal.SIGINT)
            out, rest = p.communicate(timeout=60)
            err += rest
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(p.returncode, 1, err)
        s = json.loads(out)
        self.assertEqual((s['sent'], s['delivered'], s['failed']), (1, 0, 1), s)
        self.assertIn(b'a second signal stopped the wait', err)

    def test_sigint_flushes_and_reports(self):
        p = subprocess.Popen(testenv.wrap_argv([tp.LEADSCORECTL, '--config', self.cfg,
                                                'replay', '-', '--json']),
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        try:
            def line(i):
                ev = {'event_id': 'rs-%d' % i, 'lead_id': 'rs-1', 'ts': T0 + i,
                      'type': 'SENT'}
                p.stdin.write((json.dumps(ev) + '\n').encode())
                p.stdin.flush()
            for i in range(20):
                line(i)
            # progress comes at most every second, when a line arrives
            time.sleep(1.2)
            line(20)
            deadline = time.monotonic() + 30
            err = b''
            while b'20 records read' not in err and time.monotonic() < deadline:
                err += os.read(p.stderr.fileno(), 4096)
            p.send_signal(signal.SIGINT)
            out, rest = p.communicate(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        self.assertEqual(p.returncode, 4, err + rest)
        s = json.loads(out)
        self.assertTrue(s['interrupted'])
        self.assertEqual((s['sent'], s['delivered']), (21, 21), s)
        self.assertIn(b'(interrupted)', rest)

    def test_usage_and_help(self):
        for args in ([], ['--format', 'xml', 'f'], ['--show-rejected', '-1', 'f'],
                     ['--nope', 'f']):
            r = ctl('--config', self.cfg, 'replay', *args)
            self.assertEqual(r.returncode, 2, (args, r.stderr))
        r = ctl('replay', '--help')
        self.assertEqual(r.returncode, 0, r.stderr)
        for word in ('Exit status', '--dry-run', 'Obj', 'lead_id', 'source', '3 some lines',
                     'max_record_size', 'dedupe_horizon'):
            self.assertIn(word, r.stdout)
        # the help's example line is a valid line
        example = [l.strip() for l in r.stdout.splitlines() if l.strip().startswith('{')]
        self.assertEqual(len(example), 1, r.stdout)
        r = ctl('--config', self.cfg, 'replay', '--dry-run', '--json', '-',
                input=example[0] + '\n')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)['topics'], {'leads.email': 1})


if __name__ == '__main__':
    unittest.main()
