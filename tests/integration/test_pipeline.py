"""The ingest pipeline end to end: Kafka -> leadscored -> Redis.

Every test starts its own redis-server, dev broker (librdkafka's mock
cluster) and leadscored, produces Avro records with the Apache Avro Python
library (avro_events) and checks what lands in Redis:

  * ExactFeatures: a seeded, realistic 30-day stream; every feature of every
    lead (read back with leadscorectl) equals the independent reference in
    features_ref.py; event counts and profiles too. Prints Redis memory per
    lead for BENCHMARKS.md.
  * DeadLetters: one record per rejection reason; the dead-letter topic
    holds the original bytes with the right headers; the daemon goes on.
  * CrashExactlyOnce: kill -9 at random points, restart, repeat; the final
    Redis state is byte-identical to an uninterrupted run.
  * RedisOutage: redis-server stopped (and, separately, SIGSTOPped) in the
    middle of the stream; the daemon pauses, resumes, and loses or doubles
    nothing.

Run with Debian's /usr/bin/python3 and LS_BUILD_ROOT set to the meson
build dir (meson test does both). Waits are for conditions, with timeouts;
nothing asserts on elapsed time.
"""
import os
import random
import shutil
import statistics
import struct
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import avro_events  # noqa: E402
import features_ref  # noqa: E402
import testenv  # noqa: E402
from confluent_kafka import Consumer, TopicPartition  # noqa: E402
from lstest import (  # noqa: E402
    DAY, DEAD_LETTER, EXACT_PIPELINE, PARTITIONS, PipelineTest, SOURCE,
    Sender, TOPICS, ctl_lead, ctl_model, generate_stream, log, reference,
    start_daemon, stored_offsets, wait_offsets)


# ------------------------------------------------------------ 1

class ExactFeatures(PipelineTest):

    def test_every_feature_of_every_lead_matches_the_reference(self):
        events = generate_stream(seed=20240301, n_leads=20, n_events=3000,
                                 tag='x')
        # small profile limits: new keys beyond them are dropped, removed
        # keys make room again
        limits = {'max_attributes': 6, 'max_metrics': 4}
        refs = reference(events, **limits)
        n_dup = sum(r.n_duplicates for r in refs.values())
        self.assertGreater(n_dup, 20)            # the stream has repeats
        self.assertTrue(any(len(r.attributes) == 6 for r in refs.values()))
        self.assertTrue(any(len(r.metrics) == 4 for r in refs.values()))
        self.assertEqual(sum(r.n_too_late for r in refs.values()), 0)
        # the stream exercises every feature somewhere
        names = features_ref.FeatureSet().value_names()
        nonzero = {n for r in refs.values() for n, v in r.features().items()
                   if v != 0}
        self.assertEqual(set(names) - nonzero, set())

        r = self.redis()
        cfg = self.config('exact.yaml', r, 'exact', pipeline=dict(
            EXACT_PIPELINE, max_profile_attributes=6, max_profile_metrics=4))
        # Second daemon, same topics, default pipeline settings (grace,
        # dedupe horizon and ids), its own prefix: Redis memory per lead as
        # deployed by default.
        cfg_def = self.config('defaults.yaml', r, 'defaults', prefix='lsd:')
        d = start_daemon(self, cfg, 'exact')
        d2 = start_daemon(self, cfg_def, 'defaults')
        d.wait_for_log(r'msg="ready"', timeout=60)
        d2.wait_for_log(r'msg="ready"', timeout=60)

        s = Sender(self.broker.bootstrap)
        t = time.monotonic()
        s.send_events(events)
        client = r.client()
        got = wait_offsets(client, 'ls:', 'exact', s.ends, 120, d)
        log('exact: %d events (%d repeats) consumed in %.1f s'
            % (len(events), n_dup, time.monotonic() - t))
        self.assertEqual(got, s.ends)   # exactly the end, every partition
        wait_offsets(client, 'lsd:', 'defaults', s.ends, 120, d2)

        ctl = self.check_all_leads(cfg, refs)
        keys = sorted(k.decode() for k in client.keys('ls:{*}:s'))
        self.assertEqual(keys, sorted('ls:{%s}:s' % l for l in refs))

        def summary(label, rows):
            mem = sorted(x['redis_memory_bytes'] for x in rows)
            blob = sorted(x['blob_bytes'] for x in rows)
            ev = sorted(sum(x['events'].values()) for x in rows)
            self.assertTrue(all(m > 0 for m in mem))
            log('%s: redis_memory_bytes per lead min/median/max = %d/%d/%d; '
                'blob_bytes %d/%d/%d; events per lead %d/%d/%d (%d leads)'
                % (label, mem[0], statistics.median(mem), mem[-1], blob[0],
                   statistics.median(blob), blob[-1], ev[0],
                   statistics.median(ev), ev[-1], len(rows)))

        summary('memory (dedupe_horizon 30d, dedupe_ids 1024)', ctl.values())
        rows = [ctl_lead(cfg_def, l) for l in sorted(refs)]
        self.assertNotIn(None, rows)
        summary('memory (default pipeline settings)', rows)

        stopped = (r'msg="stopped" consumed=(\d+) applied=(\d+) duplicates=(\d+) '
                   r'too_late=(\d+) dead_lettered=(\d+)')
        self.assertEqual(d.terminate(), 0, d.tail())
        m = d.wait_for_log(stopped, timeout=5)
        self.assertEqual(m.groups(), (str(len(events)), str(len(events) - n_dup),
                                      str(n_dup), '0', '0'))
        self.assertEqual(d2.terminate(), 0, d2.tail())
        m = d2.wait_for_log(stopped, timeout=5)
        log('defaults run: consumed=%s applied=%s duplicates=%s too_late=%s'
            % m.groups()[:4])


# ------------------------------------------------------------ 2

class DeadLetters(PipelineTest):

    def test_each_reason_goes_to_the_dead_letter_topic_unchanged(self):
        r = self.redis()
        web_v1 = os.path.join(self.dir, 'web_v1.avsc')
        shutil.copy(os.path.join(SOURCE, 'schemas', 'web_event.avsc'), web_v1)
        cfg = self.config('dlq.yaml', r, 'dlq',
                          pipeline={'grace': '30d', 'max_record_size': 1024},
                          writers=[{'id': 7, 'record': 'WebEvent',
                                    'file': 'web_v1.avsc'}])
        d = start_daemon(self, cfg)
        d.wait_for_log(r'msg="ready"', timeout=60)

        now = int(time.time() * 1000)
        ts = now - 2 * DAY

        def email(lead, **kw):
            rec = {'event_id': 'bad-%s' % lead, 'lead_id': lead, 'ts': ts,
                   'type': 'OPENED'}
            rec.update(kw)
            return rec

        web = {'event_id': 'w-1', 'lead_id': 'dl-web', 'ts': ts,
               'type': 'PAGE_VIEW', 'url': 'https://example.com/'}
        bad = {
            'malformed': ('web', b'dl-mal', b'\x02garbage'),
            'unknown_schema_id': (
                'email', b'dl-unk',
                b'\x00' + struct.pack('>i', 4242)
                + avro_events.encode('email', email('dl-unk'))),
            'wrong_record_type': (
                'email', b'dl-web', avro_events.encode('web', web, schema_id=7)),
            'missing_lead_id': ('email', b'',
                                avro_events.encode('email', email(''))),
            'future_timestamp': (
                'email', b'dl-fut',
                avro_events.encode('email', email('dl-fut', ts=now + DAY))),
            'value_out_of_range': (
                'call', b'dl-oor', avro_events.encode('call', {
                    'event_id': 'c-1', 'lead_id': 'dl-oor', 'ts': ts,
                    'direction': 'INBOUND', 'outcome': 'CONNECTED',
                    'duration_s': 60, 'sentiment': 2.0})),
            'oversized': (
                'web', b'dl-big', avro_events.encode('web', dict(
                    web, lead_id='dl-big', url='https://example.com/' + 'a' * 1100))),
            'key_mismatch': ('email', b'dl-km-other',
                             avro_events.encode('email', email('dl-km'))),
        }
        # only the oversized one is over max_record_size
        for reason, (_, _, value) in bad.items():
            self.assertEqual(len(value) > 1024, reason == 'oversized', reason)

        s = Sender(self.broker.bootstrap)
        where = {}
        for reason, (src, key, value) in bad.items():
            def cb(msg, reason=reason):
                where[reason] = (msg.topic(), msg.partition(), msg.offset())
            s.send(TOPICS[src], key, value, cb)
        s.flush()
        # then valid events of one lead on every topic: still applied
        good = [dict(e, lead_id='dl-good', event_id='g-%d' % i, ts=ts + i * 60000)
                for i, e in enumerate(generate_stream(7, 1, 40, 'g'))]
        good.append({'source': 'web', 'event_id': 'g-framed', 'lead_id': 'dl-good',
                     'ts': ts, 'type': 'PAGE_VIEW', 'url': 'https://x/',
                     'page_category': 'pricing'})
        s.send_events(good[:-1])
        # a framed record under a registered writer id is decoded
        s.send(TOPICS['web'], b'dl-good', avro_events.encode(
            'web', {k: v for k, v in good[-1].items() if k != 'source'},
            schema_id=7))
        s.flush()

        client = r.client()
        wait_offsets(client, 'ls:', 'dlq', s.ends, 60, d)
        self.assertTrue(d.running)
        names = features_ref.FeatureSet().value_names()
        ref = reference(good)['dl-good']
        self.assert_lead(ctl_lead(cfg, 'dl-good'), ref, 'dl-good', names)
        for lead in ('dl-mal', 'dl-unk', 'dl-web', 'dl-fut', 'dl-oor',
                     'dl-big', 'dl-km', 'dl-km-other'):
            self.assertIsNone(ctl_lead(cfg, lead), lead)

        # the dead-letter topic, read by an independent consumer
        msgs = testenv.consume(self.broker.bootstrap, DEAD_LETTER, len(bad),
                               timeout=30)
        self.assertEqual(len(msgs), len(bad))
        c = Consumer({'bootstrap.servers': self.broker.bootstrap,
                      'group.id': 'wm-check'})
        total = 0
        for p in range(PARTITIONS):
            lo, hi = c.get_watermark_offsets(TopicPartition(DEAD_LETTER, p),
                                             timeout=10)
            total += hi - lo
        c.close()
        self.assertEqual(total, len(bad))     # no extra dead letter
        seen = {}
        for m in msgs:
            h = {k: v.decode() for k, v in (m.headers() or [])}
            reason = h.get('ls.reason')
            self.assertIn(reason, bad, h)
            self.assertNotIn(reason, seen)
            seen[reason] = True
            src, key, value = bad[reason]
            self.assertEqual(m.value(), value, reason)
            self.assertEqual(m.key() or b'', key, reason)
            topic, part, off = where[reason]
            self.assertEqual(h['ls.source.topic'], topic, reason)
            self.assertEqual(h['ls.source.partition'], str(part), reason)
            self.assertEqual(h['ls.source.offset'], str(off), reason)
            self.assertIn('ls.detail', h)
        self.assertEqual(set(seen), set(bad))
        self.assertEqual(d.terminate(), 0, d.tail())


# ------------------------------------------------------------ 3

class CrashExactlyOnce(PipelineTest):

    KILLS = 11

    def lead_state(self, client):
        out = {}
        for k in client.scan_iter(match='ls:{*}:s', count=1000):
            out[k] = client.get(k)
        return out

    def test_kill_9_at_random_points_gives_byte_identical_state(self):
        events = generate_stream(seed=77, n_leads=200, n_events=20000, tag='c')
        refs = reference(events)
        s = Sender(self.broker.bootstrap)
        s.send_events(events)
        total = sum(s.ends.values())
        log('crash: %d messages produced in %d partitions' % (total, len(s.ends)))

        ra, rb = self.redis(), self.redis()
        cfg_a = self.config('a.yaml', ra, 'run-a', pipeline=EXACT_PIPELINE)
        # small batches, committed every few batches: a kill lands before,
        # inside or after a commit, with work of several batches pending
        cfg_b = self.config('b.yaml', rb, 'run-b', pipeline=dict(
            EXACT_PIPELINE, batch_size=50, batch_max_wait='20ms',
            commit_interval='5ms'))
        ca, cb = ra.client(), rb.client()

        # run A, uninterrupted, alongside run B
        t = time.monotonic()
        da = start_daemon(self, cfg_a, 'run-a')

        rng = random.Random(4242)
        kills, mid = 0, 0
        # Most kills when run B's committed progress has moved a random
        # step past where this start found it (plus up to 5 ms); a few at
        # a random time after a start (mostly while it joins the group).
        # Steps are relative and small (a stream / (3 x kills)), so every
        # kill lands mid-stream however fast this machine processes.
        n_progress = self.KILLS - 3
        step = total // (3 * self.KILLS)
        plan = ['time'] * 3 + ['progress'] * n_progress
        rng.shuffle(plan)

        def progress():
            return sum(stored_offsets(cb, 'ls:', 'run-b').values())

        db = None
        for how in plan:
            db = start_daemon(self, cfg_b, 'run-b')
            if how == 'time':
                time.sleep(rng.uniform(0.0, 3.0))
            else:
                target = progress() + rng.randint(step // 2, step)
                deadline = time.monotonic() + 60
                while progress() < target:
                    self.assertTrue(db.running, db.tail())
                    self.assertLess(time.monotonic(), deadline,
                                    'run B stuck below %d: %s' % (target, db.tail()))
                    time.sleep(0.002)
                time.sleep(rng.uniform(0.0, 0.005))
            self.assertTrue(db.running, db.tail())
            db.kill()
            kills += 1
            at = progress()
            mid += at < total
            log('crash: kill %d (%s) at %d/%d, %.1f s'
                % (kills, how, at, total, time.monotonic() - t))
        db = start_daemon(self, cfg_b, 'run-b')
        got_b = wait_offsets(cb, 'ls:', 'run-b', s.ends, 120, db)
        got_a = wait_offsets(ca, 'ls:', 'run-a', s.ends, 120, da)
        log('crash: %d kills, %d of them mid-stream, %.1f s'
            % (kills, mid, time.monotonic() - t))
        self.assertGreaterEqual(kills, 10)
        self.assertGreaterEqual(mid, n_progress)
        self.assertEqual(got_a, s.ends)
        self.assertEqual(got_b, s.ends)

        state_a = self.lead_state(ca)
        state_b = self.lead_state(cb)
        self.assertEqual(len(state_a), len(refs))
        self.assertEqual(sorted(state_a), sorted(state_b))
        # The window state must be byte-identical. The scoring extension
        # is not compared: one score per lead per batch makes its versions
        # depend on where batches fell, which kills change by design.
        diff = []
        for k in state_a:
            lead = k.decode()[len('ls:{'):-len('}:s')]
            wa = ctl_lead(cfg_a, lead)['window_state_xxh3']
            wb = ctl_lead(cfg_b, lead)['window_state_xxh3']
            self.assertEqual(len(wa), 16)
            if wa != wb:
                diff.append(lead)
        self.assertEqual(diff, [], '%d of %d leads differ' % (len(diff),
                                                              len(state_a)))
        # every label learned exactly once: the committed model (checkpoint
        # plus learning log) counts the same labels as the uninterrupted run
        ma, mb = ctl_model(cfg_a, 'conversion'), ctl_model(cfg_b, 'conversion')
        log('crash: model labels run A %d+/%d-, run B %d+/%d-'
            % (ma['positives'], ma['negatives'], mb['positives'], mb['negatives']))
        self.assertGreater(ma['positives'] + ma['negatives'], 20)
        self.assertEqual((ma['positives'], ma['negatives'], ma['labels_in_window']),
                         (mb['positives'], mb['negatives'], mb['labels_in_window']))
        # and right, not merely equal
        self.check_all_leads(cfg_b, refs)
        self.assertEqual(da.terminate(), 0, da.tail())
        self.assertEqual(db.terminate(), 0, db.tail())


# ------------------------------------------------------------ 4

class RedisOutage(PipelineTest):

    def run_outage(self, how):
        events = generate_stream(seed=31337, n_leads=20, n_events=3000,
                                 tag='o' + how[0])
        refs = reference(events)
        r = self.redis(persistent=True)
        cfg = self.config('outage.yaml', r, 'outage', pipeline=dict(
            EXACT_PIPELINE, batch_size=200),
            redis_extra={'command_timeout': '1s', 'connect_timeout': '1s'})
        d = start_daemon(self, cfg)
        d.wait_for_log(r'msg="ready"', timeout=60)
        client = r.client()

        cut = len(events) * 2 // 5
        s = Sender(self.broker.bootstrap)
        s.send_events(events[:cut])
        wait_offsets(client, 'ls:', 'outage', dict(s.ends), 60, d)
        n = len(d.lines)
        if how == 'stop':
            r.stop()
        else:
            r.suspend()
        # more events while Redis is gone: the next commit fails
        s.send_events(events[cut:cut * 2 - cut // 2])
        m = d.wait_for_log(r'msg="batch not committed, pausing consumption" (.*)',
                           timeout=30, since=n)
        log('outage (%s): %s' % (how, m.group(1)))
        s.send_events(events[cut * 2 - cut // 2:])
        # stay down a few seconds: the daemon retries with backoff
        until = time.monotonic() + 4
        while time.monotonic() < until:
            self.assertTrue(d.running, d.tail())
            time.sleep(0.1)
        if how == 'stop':
            r.restart()
        else:
            r.resume()
        d.wait_for_log(r'msg="redis available, consumption resumed"',
                       timeout=30, since=n)
        client = r.client()
        wait_offsets(client, 'ls:', 'outage', s.ends, 90, d)
        self.assertEqual(stored_offsets(client, 'ls:', 'outage'), s.ends)
        self.check_all_leads(cfg, refs)
        self.assertEqual(d.terminate(), 0, d.tail())
        n_dup = sum(x.n_duplicates for x in refs.values())
        m = d.wait_for_log(r'msg="stopped" .*too_late=(\d+) .*redis_failures=(\d+)',
                           timeout=5)
        self.assertEqual(m.group(1), '0')
        self.assertGreaterEqual(int(m.group(2)), 1)
        log('outage (%s): %d events, %d repeats, redis_failures=%s'
            % (how, len(events), n_dup, m.group(2)))

    def test_redis_restart_mid_stream_loses_and_doubles_nothing(self):
        self.run_outage('stop')

    def test_redis_sigstop_mid_stream_loses_and_doubles_nothing(self):
        self.run_outage('sigstop')


if __name__ == '__main__':
    unittest.main()
