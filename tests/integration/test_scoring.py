"""Online scoring end to end: leadscore-sim -> dev broker -> leadscored ->
Redis -> leads.scores, read back with an independent client
(confluent_kafka + the Apache Avro library).

  * Quality: for decided leads labelled in the second half of the stream
    (the model has learned from the first half by then, and had not seen
    these leads' labels when it scored them), the last ScoreChange before
    each label is the prediction, compared with the hidden model's own
    AUC on exactly the same leads (the simulator knows the true conversion
    probability of each lead, --truth). The gap must be at most
    TARGET_GAP (0.03, issue 4). An offline batch logistic regression on
    the same features, at label time, is 0.024 behind on this stream: the
    rest of the hidden model is the latent intent no feature shows
    (BENCHMARKS.md). Measured here: 0.022-0.024 non-sanitized, 0.023-0.025
    under ASan. That needs the input topics read in step by timestamp (else
    outcomes are learned before the events that preceded them whenever
    the daemon lags the simulator, as under ASan), a score published
    before a label the same batch brings, and idle rescoring (RESCORE). A
    constant or untrained scorer is ~0.45 behind, a model trained on
    leaked or shuffled labels far more than 0.05. The reader must have
    every ScoreChange before the check.
  * Contract: versions strictly increase per lead and model, from 2^32
    (the first replay epoch) in a fresh deployment,
    previous_score/previous_tier repeat the record before, tiers are the
    configured ones, at most 3 positive and 3 negative factors with
    readable names ordered by |contribution|.
  * A replay after kill -9 before the commit publishes other content
    under new versions, never a version already published.
  * Restart keeps the model: a probe lead scored before SIGTERM and an
    identical probe (other ids) scored after the restart get the same
    score, and the stored model's label counts survive.

Run with Debian's /usr/bin/python3 and LS_BUILD_ROOT set to the meson build
dir (meson test does both).
"""
import collections
import os
import re
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import avro_events  # noqa: E402
import lstest as tp  # noqa: E402
import test_simulator as ts  # noqa: E402
import testenv  # noqa: E402
from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402

SCORES = 'leads.scores'
# A fresh deployment's first version: the first replay epoch (1) << 32.
FIRST_VERSION = 1 << 32
TARGET_GAP = 0.03  # issue 4's target
# The pace at which the quality test's stream is "live": the daemon keeps
# up and reads the topics in step. Under valgrind (LS_TEST_TIMEOUT_SCALE
# 10) it is 20-50x slower, and at the full rate it would be reading a
# backlog instead, the case this test is not about.
LIVE_RATE = int(10000 / testenv.TIMEOUT_SCALE)
# Idle rescoring in the quality test. Live the default is 1h; this stream
# runs ~27 h of event time per second, so a batch spans hours of event
# time and an idle lead is rescored up to a batch after it is due. Leads
# whose outcome was learned are no longer rescored. 12h measured: 134-152k
# ScoreChange records, median age of the last score before a label
# 6.5-8.4 h; an offline regression scored at those same moments loses
# under 0.001 AUC against scoring at the label, so a shorter interval
# would only add records the reader must decode before the dev broker's
# ~5 MiB per partition drops them.
RESCORE = '12h'
INPUTS = ['leads.' + k for k in ('email', 'web', 'call', 'outcome', 'profile')]
MODELS = ('models:\n'
          '  - name: conversion\n'
          '    min_delta: 0\n')   # publish every change: judge the model,
#                                   not the publishing threshold


def log(msg):
    sys.stderr.write('test_scoring: %s\n' % msg)
    sys.stderr.flush()


class ScoreReader(threading.Thread):
    """Consumes leads.scores while the daemon produces it: the dev broker
    keeps only ~5 MiB per partition, so reading afterwards could miss the
    oldest records."""

    def __init__(self, bootstrap):
        super().__init__(daemon=True)
        self.c = Consumer({'bootstrap.servers': bootstrap,
                           'group.id': 'test-scoring-reader',
                           'auto.offset.reset': 'earliest',
                           'enable.auto.commit': False})
        self.c.subscribe([SCORES])
        self.records = []        # (partition, offset, key, decoded)
        self.undecodable = 0
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def run(self):
        try:
            while not self.stop.is_set():
                m = self.c.poll(0.2)
                if m is None or m.error():
                    continue
                try:
                    rec = avro_events.decode('score_change', m.value())
                except Exception:
                    with self.lock:
                        self.undecodable += 1
                    continue
                with self.lock:
                    self.records.append((m.partition(), m.offset(),
                                         m.key().decode(), rec))
        finally:
            self.c.close()

    def snapshot(self):
        with self.lock:
            return list(self.records)

    def wait_for(self, pred, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            hits = [r for r in self.snapshot() if pred(r[3])]
            if hits:
                return hits
            time.sleep(0.1)
        return []


def sweep_reads(redis_srv, prefix, seconds):
    """The sweeps' reads (ZRANGEBYSCORE on a due or rescore set under
    prefix) that Redis MONITOR sees in the next `seconds`."""
    c = redis_srv.client()
    poke = redis_srv.client()
    hits = []
    with c.monitor() as m:
        end = time.monotonic() + seconds
        # wakes the loop below once the window is over
        waker = threading.Timer(seconds, poke.ping)
        waker.start()
        try:
            while time.monotonic() < end:
                words = m.next_command()['command'].split()
                if (len(words) > 1 and words[0].upper() == 'ZRANGEBYSCORE'
                        and words[1].startswith((prefix + 'due:',
                                                 prefix + 'rescore:'))):
                    hits.append(' '.join(words))
        finally:
            waker.join()
    return hits


def end_offsets(bootstrap, topics):
    c = Consumer({'bootstrap.servers': bootstrap, 'group.id': 'test-scoring-hw'})
    try:
        md = c.list_topics(timeout=20)
        out = {}
        for t in topics:
            for p in md.topics[t].partitions:
                hw = c.get_watermark_offsets(TopicPartition(t, p), timeout=20)[1]
                if hw:
                    out[(t, p)] = hw
        return out
    finally:
        c.close()


class Scoring(unittest.TestCase):
    LEADS = 8000
    DAYS = 30
    SEED = 3     # not one of the seeds the FTRL defaults were chosen on

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)

    def probe_events(self, lead, tag, ts):
        """A lead that looks like a buyer: profile, pricing pages, a demo
        request. Identical for every tag but for the ids."""
        return [
            ('leads.profile', lead, avro_events.encode('profile', {
                'event_id': '%s-p' % tag, 'lead_id': lead, 'ts': ts,
                'attributes': {'industry': 'saas', 'size_band': '201-1000',
                               'role': 'vp', 'country': 'US'},
                'metrics': {'employees': 400.0}})),
            ('leads.web', lead, avro_events.encode('web', {
                'event_id': '%s-w1' % tag, 'lead_id': lead, 'ts': ts + 1000,
                'type': 'PAGE_VIEW', 'url': 'https://x.test/pricing',
                'page_category': 'pricing', 'duration_ms': 90000,
                'session_id': tag})),
            ('leads.web', lead, avro_events.encode('web', {
                'event_id': '%s-w2' % tag, 'lead_id': lead, 'ts': ts + 2000,
                'type': 'DEMO_REQUEST', 'url': 'https://x.test/demo',
                'page_category': 'pricing', 'duration_ms': 30000,
                'session_id': tag})),
        ]

    def test_learns_publishes_and_survives_restart(self):
        d = self.tmp.name
        truth_path = os.path.join(d, 'truth.tsv')
        with testenv.RedisServer() as redis_srv, \
                testenv.DevBroker() \
                as broker:
            cfg = tp.write_config(os.path.join(d, 'leadscore.yaml'),
                                  broker.bootstrap, redis_srv.url, 'scoring',
                                  prefix='sc:')
            with open(cfg, 'a') as f:
                f.write('scoring:\n  rescore_interval: %s\n' % RESCORE + MODELS)
            reader = ScoreReader(broker.bootstrap)
            reader.start()
            self.addCleanup(reader.stop.set)
            daemon = tp.start_daemon(self, cfg)
            daemon.wait_for_log('msg="ready"', timeout=30)

            # the stream, paced so the five topics are read roughly in
            # event-time order as they would be live
            rc, out, err = ts.run_sim('--brokers', broker.bootstrap,
                                      '--leads', self.LEADS, '--days', self.DAYS,
                                      '--seed', self.SEED, '--rate', LIVE_RATE,
                                      '--truth', truth_path, timeout=600)
            self.assertEqual(rc, 0, err[-2000:])
            summary = ts.summary(out)
            ends = end_offsets(broker.bootstrap, INPUTS)
            self.assertEqual(sum(ends.values()), summary['events'],
                             'the dev broker dropped input events')
            tp.wait_offsets(redis_srv.client(), 'sc:', 'scoring', ends, 300,
                            daemon)
            self.wait_drained(reader, broker.bootstrap, 300)
            self.check_quality(reader, truth_path)
            self.check_contract(reader)
            try:
                self.check_restart(reader, broker, redis_srv, cfg, daemon, ends)
            finally:
                reader.stop.set()
                reader.join(10)
            self.assertEqual(reader.undecodable, 0)

    def test_label_timeout_labels_silent_leads(self):
        """With only positive outcomes (--negatives none) label_timeout is
        the only source of negatives; most leads go silent after their
        decision, so the sweep must label them without another event."""
        d = self.tmp.name
        truth_path = os.path.join(d, 'truth.tsv')
        with testenv.RedisServer() as redis_srv, testenv.DevBroker() as broker:
            cfg = tp.write_config(os.path.join(d, 'leadscore.yaml'),
                                  broker.bootstrap, redis_srv.url, 'timeouts',
                                  prefix='to:')
            with open(cfg, 'a') as f:
                f.write('models:\n'
                        '  - name: conversion\n'
                        '    negative: []\n'
                        '    label_timeout: 10d\n')
            daemon = tp.start_daemon(self, cfg)
            daemon.wait_for_log('msg="ready"', timeout=30)
            days = 30
            rc, out, err = ts.run_sim('--brokers', broker.bootstrap,
                                      '--leads', 1500, '--days', days,
                                      '--seed', 5, '--rate', 10000,
                                      '--negatives', 'none',
                                      '--truth', truth_path, timeout=600)
            self.assertEqual(rc, 0, err[-2000:])
            ends = end_offsets(broker.bootstrap, INPUTS)
            r = redis_srv.client()
            tp.wait_offsets(r, 'to:', 'timeouts', ends, 300, daemon)
            time.sleep(2.5)   # the sweeps after the last batch, a commit
            self.assertEqual(daemon.terminate(), 0, daemon.tail())
            m = tp.ctl_model(cfg, 'conversion')
            _, rows = ts.read_truth(truth_path)
            pos = sum(int(x['label']) for x in rows)
            log('timeouts: %d positives in the stream; model learned %d+/%d-'
                % (pos, m['positives'], m['negatives']))
            # every positive is learned once (a late one after a timeout
            # negative as well); negatives come from timeouts only
            self.assertEqual(m['positives'], pos)
            self.assertGreater(m['negatives'], pos)
            # what is left in the due sets is not due yet: deadlines after
            # the newest event time of the stream, less an hour of slack
            newest = max(int(x['label_ts']) for x in rows)
            left = []
            for key in r.scan_iter(match='to:due:conversion:*'):
                left += [s for _, s in r.zrange(key, 0, -1, withscores=True)]
            log('timeouts: %d leads still open' % len(left))
            self.assertTrue(left, 'no lead left open: the stream should end '
                                  'with leads younger than 10 days')
            self.assertGreater(min(left), newest - 3600 * 1000)

    def test_two_instances_share_one_model(self):
        """Two daemons in one group split the partitions; each learns its
        own partitions' labels and folds both into the shared model, which
        ends up with every label exactly once."""
        d = self.tmp.name
        truth_path = os.path.join(d, 'truth.tsv')
        with testenv.RedisServer() as redis_srv, testenv.DevBroker() as broker:
            cfg = tp.write_config(os.path.join(d, 'leadscore.yaml'),
                                  broker.bootstrap, redis_srv.url, 'pair',
                                  prefix='pr:')
            with open(cfg, 'a') as f:
                f.write('scoring:\n  checkpoint_interval: 1s\n')
            a = tp.start_daemon(self, cfg, name='leadscored-a')
            b = tp.start_daemon(self, cfg, name='leadscored-b')
            for x in (a, b):
                x.wait_for_log(r'msg="partitions assigned" count=10 ', timeout=60)
            rc, out, err = ts.run_sim('--brokers', broker.bootstrap,
                                      '--leads', 1500, '--days', 30,
                                      '--seed', 9, '--rate', 10000,
                                      '--truth', truth_path, timeout=600)
            self.assertEqual(rc, 0, err[-2000:])
            ends = end_offsets(broker.bootstrap, INPUTS)
            tp.wait_offsets(redis_srv.client(), 'pr:', 'pair', ends, 300, a)
            _, rows = ts.read_truth(truth_path)
            pos = sum(int(x['label']) for x in rows)
            # issue 15: once the stream is quiet, each instance's model
            # endpoint catches up with every label (its own and the other
            # instance's) within checkpoint_interval (1 s) of the last
            # commit; 4 s more for the last commit of the other instance,
            # a batch wait and the snapshot hand-over
            for x in (a, b):
                self.wait_model_labels(x, (pos, len(rows) - pos), 1 + 4)
            # then three labels on one partition only: one instance
            # learns them, the other is idle and sees them only through
            # the shared model its checkpoint timer folds; after more than
            # a checkpoint interval of quiet, so that no commit of the
            # stream is left for the idle one to checkpoint after
            time.sleep(2.5)
            late = max(int(x['label_ts']) for x in rows) + 3600 * 1000
            testenv.produce(broker.bootstrap, 'leads.outcome', [
                ('late-%d' % i, avro_events.encode('outcome', {
                    'event_id': 'late-%d' % i, 'lead_id': 'late-%d' % i,
                    'ts': late + i, 'outcome': 'CONVERTED', 'value': None}))
                for i in range(3)], partition=0)
            ends = end_offsets(broker.bootstrap, INPUTS)
            tp.wait_offsets(redis_srv.client(), 'pr:', 'pair', ends, 60, a)
            for x in (a, b):
                self.wait_model_labels(x, (pos + 3, len(rows) - pos), 1 + 4)
            pos += 3
            rows += [{'label': '1'}] * 3
            time.sleep(1.5)  # a quiet timer tick changes nothing more
            m_live = tp.ctl_model(cfg, 'conversion')
            self.assertEqual(a.terminate(), 0, a.tail())
            self.assertEqual(b.terminate(), 0, b.tail())
            m = tp.ctl_model(cfg, 'conversion')
            log('two instances: %d labels in the stream (%d+); shared model '
                '%d+/%d- (version %d), %d log entries left'
                % (len(rows), pos, m['positives'], m['negatives'],
                   m['version'], m['log_entries']))
            self.assertEqual((m['positives'], m['negatives']),
                             (pos, len(rows) - pos))
            self.assertEqual(m['labels_in_window'], len(rows))
            self.assertEqual(m['log_entries'], 0)
            self.assertEqual((m_live['positives'], m_live['negatives']),
                             (m['positives'], m['negatives']))
            # each instance adopted the other's learning: its last model
            # line counts every label, not only its own partitions'
            for x in (a, b):
                line = [l for l in x.tail(60).splitlines()
                        if 'component=scorer msg="model"' in l][-1]
                self.assertIn('positives=%d negatives=%d'
                              % (pos, len(rows) - pos), line)

    def http_model(self, daemon):
        """GET /v1/models/conversion on daemon: the 200 response's body."""
        port = int(daemon.wait_for_log(r'msg="listening" .*port=(\d+)',
                                       timeout=5).group(1))
        status, body = tp.http_get_json(port, '/v1/models/conversion')
        self.assertEqual(status, 200, body)
        return body

    def wait_model_labels(self, daemon, want, within):
        """GET /v1/models/conversion on daemon until its (positives,
        negatives) are want; fail after within seconds."""
        t0 = time.monotonic()
        seen = None
        while True:
            body = self.http_model(daemon)
            seen = (body['positives'], body['negatives'])
            waited = time.monotonic() - t0
            if seen == want:
                log('model endpoint of %s caught up %.2f s after the last '
                    'commit' % (daemon.name, waited))
                return
            self.assertLess(waited, testenv.scaled(within),
                            '%s still serves %s labels, not %s'
                            % (daemon.name, seen, want))
            time.sleep(0.05)

    def test_replay_never_reuses_a_version(self):
        """A ScoreChange is produced before its batch commits. Killed
        (kill -9) before the commit, the daemon replays the batch from the
        offsets in Redis with other batch boundaries (here both events of a
        lead in one batch where the first run had one each), so the replay
        publishes other content (ts, cause_event_id). It must do so under
        a version never published before: a consumer that keeps the
        highest version must end on the score the daemon holds, and a
        version seen twice must be a byte-for-byte repeat."""
        d = self.tmp.name
        leads = ['rp-%d' % i for i in range(3)]
        with testenv.RedisServer() as redis_srv, testenv.DevBroker() as broker:
            path = os.path.join(d, 'leadscore.yaml')
            # nothing is committed in the first run, which applies one
            # record a batch
            cfg = tp.write_config(path, broker.bootstrap, redis_srv.url, 'replay',
                                  prefix='rp:', pipeline={'commit_interval': '1m',
                                                          'batch_size': 1}, level='debug')
            reader = ScoreReader(broker.bootstrap)
            reader.start()
            self.addCleanup(reader.stop.set)
            daemon = tp.start_daemon(self, cfg)
            daemon.wait_for_log('msg="ready"', timeout=30)
            ts0 = int(time.time() * 1000) - 3600 * 1000

            def web(lead, n):
                return (lead, avro_events.encode('web', {
                    'event_id': '%s-w%d' % (lead, n), 'lead_id': lead,
                    'ts': ts0 + n * 1000, 'type': 'PAGE_VIEW',
                    'url': 'https://x.test/pricing', 'page_category': 'pricing',
                    'duration_ms': 1000, 'session_id': lead}))
            # both events of a lead in one message set (one linger): the
            # replay reads them in one fetch, so in one batch
            prod = Producer({'bootstrap.servers': broker.bootstrap, 'linger.ms': 200})
            for key, value in [web(x, 1) for x in leads] + [web(x, 2) for x in leads]:
                prod.produce('leads.web', key=key.encode(), value=value)
            self.assertEqual(prod.flush(30), 0)
            for x in leads:
                self.assertTrue(reader.wait_for(lambda r, x=x: r['lead_id'] == x, 30),
                                '%s not scored\n%s' % (x, daemon.tail()))
            deadline = time.monotonic() + 30
            while sum(int(m) for m in re.findall(r'msg="batch applied" messages=(\d+) ',
                                                  '\n'.join(daemon.lines))) < 6:
                self.assertLess(time.monotonic(), deadline, daemon.tail())
                time.sleep(0.1)
            daemon.kill()
            for x in leads:
                self.assertIsNone(tp.ctl_lead(cfg, x), 'committed before the kill')

            tp.write_config(path, broker.bootstrap, redis_srv.url, 'replay',
                            prefix='rp:', pipeline={'commit_interval': '5ms'}, level='debug')
            daemon2 = tp.start_daemon(self, cfg, name='leadscored-2')
            held = {}
            deadline = time.monotonic() + 60
            for x in leads:
                while True:
                    st = tp.ctl_lead(cfg, x)
                    if st is not None and sum(st['events'].values()) == 2:
                        held[x] = st['scores']['conversion']
                        break
                    self.assertLess(time.monotonic(), deadline,
                                    '%s not replayed\n%s' % (x, daemon2.tail()))
                    time.sleep(0.2)
            for x in leads:
                self.assertTrue(reader.wait_for(
                    lambda r, x=x: r['lead_id'] == x and r['version'] == held[x]['version'],
                    30), 'no ScoreChange v%d for %s' % (held[x]['version'], x))
            self.assertEqual(daemon2.terminate(), 0, daemon2.tail())
            time.sleep(1)  # anything the shutdown flushed reaches the reader
            reader.stop.set()
            reader.join(10)

        per = collections.defaultdict(list)
        for part, off, key, rec in sorted(reader.snapshot(), key=lambda r: (r[0], r[1])):
            per[(rec['lead_id'], rec['model'])].append(rec)
        replayed = 0
        for x in leads:
            recs = per[(x, 'conversion')]
            kept = {}
            for rec in recs:
                top = max(kept) if kept else 0
                if rec['version'] in kept:
                    self.assertEqual(rec, kept[rec['version']], 'v%d reused' % rec['version'])
                else:
                    self.assertGreater(rec['version'], top, (x, recs))
                    kept[rec['version']] = rec
            # the first run's record and the replay's, which differ
            self.assertGreaterEqual(len(kept), 2, (x, recs))
            replayed += recs[-1]['cause_event_id'] != recs[0]['cause_event_id']
            last = kept[max(kept)]
            self.assertEqual((last['version'], last['score']),
                             (held[x]['version'], held[x]['score']), (x, recs))
            # a fresh deployment's first epoch: versions start at 2^32
            self.assertEqual(recs[0]['version'], FIRST_VERSION, recs)
        log('replay: %d of %d leads republished with other content'
            % (replayed, len(leads)))
        self.assertGreater(replayed, 0)

    def test_idle_lead_is_rescored_as_event_time_moves(self):
        """A lead with no new events is rescored once its partition's event
        time has moved rescore_interval past its last score: a ScoreChange
        with no cause, at the partition's newest event time."""
        d = self.tmp.name
        with testenv.RedisServer() as redis_srv, testenv.DevBroker() as broker:
            cfg = tp.write_config(os.path.join(d, 'leadscore.yaml'),
                                  broker.bootstrap, redis_srv.url, 'idle',
                                  prefix='id:')
            with open(cfg, 'a') as f:
                f.write('scoring:\n  rescore_interval: 1h\n' + MODELS)
            reader = ScoreReader(broker.bootstrap)
            reader.start()
            daemon = tp.start_daemon(self, cfg)
            try:
                daemon.wait_for_log('msg="ready"', timeout=30)
                ts0 = int(time.time() * 1000) - 48 * 3600 * 1000
                for topic, key, value in self.probe_events('idle-x', 'idle-x', ts0):
                    testenv.produce(broker.bootstrap, topic, [(key, value)],
                                    partition=0)
                first = reader.wait_for(lambda r: r['lead_id'] == 'idle-x', 30)
                self.assertTrue(first, daemon.tail())
                time.sleep(2)
                v_before = max(r[3]['version'] for r in reader.snapshot()
                               if r[3]['lead_id'] == 'idle-x')
                # another lead moves partition 0's event time 3 h on
                later = ts0 + 3 * 3600 * 1000
                testenv.produce(broker.bootstrap, 'leads.web', [(
                    'idle-y', avro_events.encode('web', {
                        'event_id': 'idle-y-1', 'lead_id': 'idle-y',
                        'ts': later, 'type': 'PAGE_VIEW',
                        'url': 'https://x.test/blog', 'page_category': 'blog',
                        'duration_ms': 1000, 'session_id': 'y'}))],
                    partition=0)
                idle = reader.wait_for(lambda r: r['lead_id'] == 'idle-x' and
                                       r['cause_event_id'] is None, 30)
                self.assertTrue(idle, 'idle-x not rescored\n' + daemon.tail())
                rec = idle[0][3]
                self.assertEqual(rec['ts'], later)
                self.assertGreater(rec['version'], v_before)
                # rescored once for the 3 h step, not again and again
                time.sleep(3)
                again = [r for r in reader.snapshot()
                         if r[3]['lead_id'] == 'idle-x'
                         and r[3]['cause_event_id'] is None]
                self.assertEqual(len(again), 1, again)
                # the next rescore is due an interval after this one
                due = redis_srv.client().zscore('id:rescore:0', 'idle-x')
                self.assertEqual(due, later + 3600 * 1000)
                # nothing is due now (partition 0's event time is an hour
                # short of the next rescore, the label_timeout months
                # away): the sweeps know it without asking Redis
                reads = sweep_reads(redis_srv, 'id:', 3)
                self.assertEqual(reads, [], 'sweeps read Redis with '
                                            'nothing due')
            finally:
                reader.stop.set()
                reader.join(10)

    def wait_drained(self, reader, bootstrap, timeout):
        """Wait until the reader has every ScoreChange published so far:
        judging a snapshot the reader is still behind on would take an
        older score for the last one before a label."""
        ends = {p: hw for (_, p), hw in end_offsets(bootstrap, [SCORES]).items()}
        deadline = time.monotonic() + timeout
        while True:
            last = collections.defaultdict(lambda: -1)
            for part, off, _, _ in reader.snapshot():
                last[part] = max(last[part], off)
            if all(last[p] >= hw - 1 for p, hw in ends.items()):
                break
            self.assertLess(time.monotonic(), deadline,
                            'reader still behind: %s of %s' % (dict(last), ends))
            time.sleep(0.2)
        # every offset from 0 read: none lost to the dev broker's retention
        # (about 5 MiB per partition) before the reader got to it
        got = collections.defaultdict(set)
        for part, off, _, _ in reader.snapshot():
            if off < ends[part]:
                got[part].add(off)
        self.assertEqual({p: len(o) for p, o in got.items()},
                         {p: hw for p, hw in ends.items() if hw},
                         'ScoreChange records lost before they were read')

    # ------------------------------------------------------------ quality

    def check_quality(self, reader, truth_path):
        _, rows = ts.read_truth(truth_path)
        rows.sort(key=lambda r: (int(r['label_ts']), r['lead_id']))
        second = rows[len(rows) // 2:]
        last = {}   # lead -> (version, score) of the last record before label
        label_ts = {r['lead_id']: int(r['label_ts']) for r in second}
        for _, _, _, rec in reader.snapshot():
            lt = label_ts.get(rec['lead_id'])
            if rec['model'] != 'conversion' or lt is None or rec['ts'] >= lt:
                continue
            cur = last.get(rec['lead_id'])
            if cur is None or rec['version'] > cur[0]:
                last[rec['lead_id']] = (rec['version'], rec['score'], rec['ts'])
        recs = reader.snapshot()
        log('rescore_interval %s: %d ScoreChange records, %d of them idle '
            'rescores' % (RESCORE, len(recs),
                          sum(1 for x in recs if x[3]['cause_event_id'] is None)))
        stale = sorted(label_ts[k] - v[2] for k, v in last.items())
        if stale:
            log('age of the last score before the label: median %.1f h, '
                '90th percentile %.1f h' % (stale[len(stale) // 2] / 3.6e6,
                                            stale[len(stale) * 9 // 10] / 3.6e6))
        covered = [r for r in second if r['lead_id'] in last]
        log('%d decided leads, %d in the second half, %d of them scored '
            'before their label' % (len(rows), len(second), len(covered)))
        self.assertGreaterEqual(len(covered), 0.95 * len(second))
        y = [int(r['label']) for r in covered]
        online = ts.auc([last[r['lead_id']][1] for r in covered], y)
        hidden = ts.auc([float(r['p_hidden']) for r in covered], y)
        log('AUC on leads whose labels the model had not seen: online %.4f, '
            'hidden model %.4f, gap %.4f' % (online, hidden, hidden - online))
        self.assertGreater(sum(y), 50)
        self.assertLessEqual(hidden - online, TARGET_GAP)

    # ----------------------------------------------------------- contract

    def check_contract(self, reader):
        per = collections.defaultdict(list)    # (lead, model) -> records
        for part, off, key, rec in sorted(reader.snapshot(),
                                          key=lambda r: (r[0], r[1])):
            self.assertEqual(key, rec['lead_id'])
            per[(rec['lead_id'], rec['model'])].append(rec)
        self.assertGreater(len(per), 1000)
        for (lead, model), recs in per.items():
            for i, rec in enumerate(recs):
                if i == 0:
                    self.assertGreaterEqual(rec['version'], FIRST_VERSION, (lead, rec))
                else:
                    self.assertGreater(rec['version'], recs[i - 1]['version'], (lead, rec))
                self.assertTrue(0.0 <= rec['score'] <= 1.0)
                self.assertIn(rec['tier'], ('cold', 'warm', 'hot'))
                prev = recs[i - 1] if i else None
                self.assertEqual(rec['previous_score'],
                                 prev['score'] if prev else None)
                self.assertEqual(rec['previous_tier'],
                                 prev['tier'] if prev else None)
                f = rec['factors']
                self.assertLessEqual(sum(1 for x in f if x['contribution'] > 0), 3)
                self.assertLessEqual(sum(1 for x in f if x['contribution'] < 0), 3)
                mags = [abs(x['contribution']) for x in f]
                self.assertEqual(mags, sorted(mags, reverse=True))
        # readable names: window features and attribute values, not hashes
        names = collections.Counter(x['name'] for recs in per.values()
                                    for rec in recs for x in rec['factors'])
        log('most common factors: %s' % names.most_common(8))
        self.assertTrue(any(n.startswith('industry=') or '×' in n
                            for n in names), names.most_common(20))
        self.assertTrue(any('_7d' in n or '_30d' in n or '_24h' in n
                            for n in names), names.most_common(20))

    # ------------------------------------------------------------ restart

    def probe_score(self, reader, cfg, lead, daemon):
        """The probe's score once all three of its events are applied:
        its events may be read in more than one batch, each scored, so the
        first ScoreChange is not enough, nor one a second later. The
        committed lead knows its events and the version it published (the
        ScoreChange was flushed before that commit)."""
        deadline = time.monotonic() + 30
        while True:
            st = tp.ctl_lead(cfg, lead)
            if st is not None and sum(st['events'].values()) == 3:
                break
            self.assertLess(time.monotonic(), deadline,
                            '%s not applied\n%s' % (lead, daemon.tail()))
            time.sleep(0.1)
        v = st['scores']['conversion']['version']
        recs = reader.wait_for(lambda rec: rec['lead_id'] == lead and
                               rec['version'] == v, 30)
        self.assertTrue(recs, 'no ScoreChange %d for %s' % (v, lead))
        self.assertEqual(recs[0][3]['score'], st['scores']['conversion']['score'])
        return recs[0][3]['score']

    def check_restart(self, reader, broker, redis_srv, cfg, daemon, ends):
        r = redis_srv.client()
        ts0 = int(time.time() * 1000) - 3600 * 1000
        for topic, key, value in self.probe_events('probe-a', 'probe-a', ts0):
            testenv.produce(broker.bootstrap, topic, [(key, value)])
        score_a = self.probe_score(reader, cfg, 'probe-a', daemon)
        self.assertEqual(daemon.terminate(), 0, daemon.tail())
        stored = r.get('sc:model:conversion')
        self.assertIsNotNone(stored, 'no model checkpoint in Redis')
        self.assertEqual(r.llen('sc:model:conversion:log'), 0,
                         'shutdown left learning unfolded')

        daemon2 = tp.start_daemon(self, cfg, name='leadscored-2')
        daemon2.wait_for_log(r'msg="model restored" model=conversion', timeout=30)
        line = [x for x in daemon2.tail(50).splitlines()
                if 'msg="model restored"' in x][-1]
        log(line)
        self.assertRegex(line, r'positives=[1-9]\d* negatives=[1-9]\d*')
        for topic, key, value in self.probe_events('probe-b', 'probe-b', ts0):
            testenv.produce(broker.bootstrap, topic, [(key, value)])
        score_b = self.probe_score(reader, cfg, 'probe-b', daemon2)
        log('probe before restart %.12f, after %.12f' % (score_a, score_b))
        # a fresh model (all weights 0) scores exactly 0.5, the learned one
        # does not (how far from 0.5 varies from run to run: 0.19-0.55
        # seen), and the restored one must score like the one that was
        # stopped
        self.assertNotAlmostEqual(score_a, 0.5, delta=1e-6)
        self.assertAlmostEqual(score_a, score_b, delta=1e-9)
        # the HTTP API serves the restored model: mature, same label counts
        body = self.http_model(daemon2)
        self.assertIs(body['mature'], True)
        self.assertIn('positives=%d negatives=%d'
                      % (body['positives'], body['negatives']), line)
        self.assertGreater(body['auc'], 0.85)
        ctl = testenv.run([tp.LEADSCORECTL, '--config', cfg, 'lead', 'probe-b'],
                          capture_output=True, text=True, timeout=60)
        self.assertEqual(ctl.returncode, 0, ctl.stderr)


if __name__ == '__main__':
    unittest.main()
