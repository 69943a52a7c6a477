"""Chaos: a seeded stream through a 3-broker cluster while things break.

One seeded stream (lstest's realistic generator, plus bandit email
events that activate and reward decisions, plus poison records of every
kind the daemon dead-letters) goes through the dev broker's mock cluster
with 3 brokers to 2-4 leadscored instances in one consumer group (run B).
A seeded schedule of faults hits them, each a moment after a chunk of
the stream was sent, while it is being read and applied:

  kill9         an instance is kill -9ed (and replaced after a moment)
  sigterm       an instance gets SIGTERM while the stream flows (mid-batch
                as often as not) and must drain; then it is replaced
  join / leave  an instance joins (up to 4) or leaves with SIGTERM (down to 2)
  redis         redis-server (append-only file, fsync always) restarts,
                after SIGTERM or kill -9, down for up to 2.5 s
  broker_down   a broker refuses connections for up to 3 s (its partitions
                keep it as leader: clients wait), then comes back
  errors        the next 1-20 requests of one type (Produce, Fetch,
                Heartbeat, JoinGroup, SyncGroup, OffsetCommit,
                FindCoordinator, ListOffsets) fail with a retriable error
  leader        leadership of up to 6 partitions moves to other brokers
  rtt           a broker answers 0.2-3 s late for up to 4 s

Afterwards one instance (run A) reads the very same records (same topics,
same offsets) without faults into its own Redis, and the two must agree:
every lead's window state (counts, windows, profile, dedupe memory) byte
for byte and every lead against the independent reference of
features_ref; the models' label counts; the bandit counters and every
decision's record. Dead letters: the same set of (source topic,
partition, offset, reason) as run A (repeats allowed). Run B's
ScoreChange records: per (lead, model) a version should never go
backwards except as an exact duplicate of a record already published (a
replay), and a consumer that drops versions it has seen should end on
the score the daemon holds.

AssignmentLost is the regression test for the bug the long form found
(an instance whose session timed out committed its lost partitions' work
on top of the new owner's replay: labels learned twice).

Environment: LS_CHAOS_SEED (default 20261206) seeds the stream and the
schedule; LS_CHAOS_FAULTS (default 24) is the number of faults (the
stream grows with it). Every fault is logged with its parameters, so a
failure can be replayed with the same seed; timing still varies.
The long form: LS_CHAOS_FAULTS=200 meson test -C build --suite chaos -t 10
(see BENCHMARKS.md).

Run with Debian's /usr/bin/python3 and LS_BUILD_ROOT set to the meson
build dir (meson test does both).
"""
import collections
import os
import random
import shutil
import signal
import struct
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import avro_events  # noqa: E402
import features_ref  # noqa: E402
import test_bandit  # noqa: E402
import lstest as tp  # noqa: E402
import testenv  # noqa: E402
from confluent_kafka import Consumer, TopicPartition  # noqa: E402

SEED = int(os.environ.get('LS_CHAOS_SEED', '20261206'))
FAULTS = int(os.environ.get('LS_CHAOS_FAULTS', '24'))

BROKERS = 3
PARTITIONS = 4
INPUTS = [tp.TOPICS[s] for s in features_ref.SOURCES]
# run A (the reference) writes its outputs to its own topics
OUT_B = {'scores': 'leads.scores', 'dead_letter': 'leads.dead_letter'}
OUT_A = {'scores': 'leads.scores.ref', 'dead_letter': 'leads.dead_letter.ref'}
TOPICS = INPUTS + list(OUT_B.values()) + list(OUT_A.values()) + ['leads.decisions']

MIN_INSTANCES, MAX_INSTANCES = 2, 4
FAULT_KINDS = ['kill9', 'sigterm', 'join', 'leave', 'redis', 'broker_down',
               'errors', 'leader', 'rtt']
FAULT_WEIGHTS = [3, 2, 1, 1, 2, 2, 3, 2, 1]

# (request type, retriable error it may fail with)
REQUEST_ERRORS = [
    ('Produce', 'NOT_LEADER_FOR_PARTITION'), ('Produce', 'REQUEST_TIMED_OUT'),
    ('Produce', 'NOT_ENOUGH_REPLICAS'),
    ('Fetch', 'NOT_LEADER_FOR_PARTITION'), ('Fetch', 'UNKNOWN_TOPIC_OR_PART'),
    ('Heartbeat', 'REBALANCE_IN_PROGRESS'), ('Heartbeat', 'NOT_COORDINATOR'),
    ('JoinGroup', 'COORDINATOR_LOAD_IN_PROGRESS'),
    ('SyncGroup', 'NOT_COORDINATOR'),
    ('OffsetCommit', 'NOT_COORDINATOR'), ('OffsetCommit', 'REQUEST_TIMED_OUT'),
    ('FindCoordinator', 'COORDINATOR_NOT_AVAILABLE'),
    ('ListOffsets', 'NOT_LEADER_FOR_PARTITION'),
]

CAMPAIGN = 'chaos'
CAMPAIGNS = '''campaigns:
  - id: %s
    arms: [a, b, c]
    rewards: {OPENED: 0.25, CLICKED: 1}
    reward_window: 30d
    activation_timeout: 30d
''' % CAMPAIGN
WEB_WRITER_ID = 7



def log(msg):
    sys.stderr.write('test_chaos: %s\n' % msg)
    sys.stderr.flush()


# ------------------------------------------------------------ stream

def poison_records(rng, leads, n, now_ms):
    """n records of the kinds the daemon dead-letters, as (topic, key,
    value, reason), every kind at least once when n >= 6."""
    def email(lead, ts):
        return {'event_id': 'p-%08x' % rng.getrandbits(32), 'lead_id': lead,
                'ts': ts, 'type': 'OPENED'}

    out = []
    kinds = ['malformed', 'unknown_schema_id', 'bad_framing',
             'wrong_record_type', 'future_timestamp', 'key_mismatch']
    for i in range(n):
        kind = kinds[i % len(kinds)]
        lead = rng.choice(leads)
        key = lead.encode('utf-8')
        topic = rng.choice(INPUTS)
        if kind == 'malformed':
            value = bytes([rng.randrange(2, 256)]) + rng.randbytes(rng.randrange(0, 40))
            reason = 'malformed'
        elif kind == 'unknown_schema_id':
            topic = tp.TOPICS['email']
            value = (b'\x00' + struct.pack('>i', 4242)
                     + avro_events.encode('email', email(lead, now_ms - tp.DAY)))
            reason = 'unknown_schema_id'
        elif kind == 'bad_framing':   # magic byte, then no whole schema id
            value = b'\x00' + rng.randbytes(rng.randrange(0, 4))
            reason = 'malformed'
        elif kind == 'wrong_record_type':   # a web writer on another topic
            topic = rng.choice([t for t in INPUTS if t != tp.TOPICS['web']])
            value = avro_events.encode('web', {
                'event_id': 'p-w', 'lead_id': lead, 'ts': now_ms - tp.DAY,
                'type': 'PAGE_VIEW', 'url': 'https://x.test/'},
                schema_id=WEB_WRITER_ID)
            reason = 'wrong_record_type'
        elif kind == 'future_timestamp':
            topic = tp.TOPICS['email']
            value = avro_events.encode('email', email(lead, now_ms + 2 * tp.DAY))
            reason = 'future_timestamp'
        else:
            topic = tp.TOPICS['email']
            value = avro_events.encode('email', email(lead, now_ms - tp.DAY))
            key = (lead + '-other').encode('utf-8')
            reason = 'key_mismatch'
        out.append((topic, key, value, reason))
    return out


def bandit_events(rng, decisions, t0):
    """Per decision: never sent, sent only, opened, opened then clicked,
    clicked then opened (and a repeated click); returns (events in
    per-decision order, expected reward in millionths per decision)."""
    plans = [None, [], ['OPENED'], ['OPENED', 'CLICKED'], ['CLICKED', 'OPENED']]
    seqs = []
    for i, d in enumerate(decisions):
        plan = plans[i % len(plans)]
        if plan is None:
            continue
        types = ['SENT'] + plan + (['CLICKED'] if 'CLICKED' in plan else [])
        ts = t0 + rng.randrange(tp.DAY)
        seq = []
        for k, t in enumerate(types):
            seq.append({'source': 'email', 'event_id': '%s-%d' % (d['decision_id'], k),
                        'lead_id': d['lead_id'], 'ts': ts + k * 60000, 'type': t,
                        'campaign_id': CAMPAIGN, 'variant_id': d['variant'],
                        'decision_id': d['decision_id']})
        seqs.append(seq)
    return seqs


def interleave(rng, stream, extra_seqs):
    """stream with each sequence of extra_seqs spread into it at random
    places, each sequence keeping its order."""
    slots = collections.defaultdict(list)
    for seq in extra_seqs:
        at = sorted(rng.randrange(len(stream) + 1) for _ in seq)
        for pos, item in zip(at, seq):
            slots[pos].append(item)
    out = []
    for i in range(len(stream) + 1):
        out.extend(slots.get(i, ()))
        if i < len(stream):
            out.append(stream[i])
    return out


def fault_schedule(rng, n):
    """n faults as (kind, params) dicts; params are drawn here, from the
    seed, except the choice of instance (which instances are alive
    depends on the run) which uses the drawn 'pick' number."""
    kinds = [rng.choices(FAULT_KINDS, FAULT_WEIGHTS)[0] for _ in range(n)]
    if n >= len(FAULT_KINDS):   # every kind at least once
        kinds[:len(FAULT_KINDS)] = FAULT_KINDS
        rng.shuffle(kinds)
    out = []
    for kind in kinds:
        f = {'kind': kind, 'pick': rng.randrange(1 << 30),
             'strike': round(rng.uniform(0.0, 0.3), 3),
             'pause': round(rng.uniform(0.3, 2.5), 2)}
        if kind in ('kill9', 'sigterm'):
            f['respawn_after'] = round(rng.uniform(0.0, 2.0), 2)
        elif kind == 'redis':
            f['how'] = rng.choice(['SIGTERM', 'SIGKILL'])
            f['down_for'] = round(rng.uniform(0.2, 2.5), 2)
        elif kind == 'broker_down':
            f['broker'] = rng.randint(1, BROKERS)
            f['down_for'] = round(rng.uniform(0.5, 3.0), 2)
        elif kind == 'errors':
            f['api'], f['err'] = rng.choice(REQUEST_ERRORS)
            f['count'] = rng.randint(1, 20)
        elif kind == 'rtt':
            f['broker'] = rng.randint(1, BROKERS)
            f['ms'] = rng.randint(200, 3000)
            f['for'] = round(rng.uniform(1.0, 4.0), 2)
        elif kind == 'leader':
            f['moves'] = [(rng.choice(TOPICS), rng.randrange(PARTITIONS),
                           rng.randint(1, BROKERS))
                          for _ in range(rng.randint(1, 6))]
        out.append(f)
    return out


# ------------------------------------------------------------ Kafka reads

class Collector(threading.Thread):
    """Reads every partition of a topic from offset 0 while the test runs
    (the mock broker keeps only ~5 MiB per partition, so records are
    taken as they come); records[partition] = [(offset, key, value,
    headers)]."""

    def __init__(self, bootstrap, topic):
        super().__init__(name='collect-' + topic, daemon=True)
        self.bootstrap = bootstrap
        self.topic = topic
        self.c = Consumer({'bootstrap.servers': bootstrap,
                           'group.id': 'chaos-collect-%s' % topic,
                           'enable.auto.commit': False})
        self.c.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
        self.records = collections.defaultdict(list)
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def run(self):
        try:
            while not self.stopping.is_set():
                m = self.c.poll(0.2)
                if m is None or m.error():
                    continue
                with self.lock:
                    self.records[m.partition()].append(
                        (m.offset(), m.key(), m.value(), dict(
                            (k, v.decode()) for k, v in (m.headers() or []))))
        finally:
            self.c.close()

    def finish(self, timeout):
        """Read up to the high watermarks taken now, stop; the records,
        after checking every partition was read from offset 0 without a
        gap (the broker dropped nothing before it was read)."""
        probe = Consumer({'bootstrap.servers': self.bootstrap,
                          'group.id': 'chaos-probe'})
        try:
            his = {p: probe.get_watermark_offsets(TopicPartition(self.topic, p),
                                                  timeout=30)[1]
                   for p in range(PARTITIONS)}
        finally:
            probe.close()
        deadline = time.monotonic() + timeout
        while True:
            with self.lock:
                got = {p: (self.records[p][-1][0] + 1 if self.records[p] else 0)
                       for p in range(PARTITIONS)}
            if all(got[p] >= his[p] for p in his):
                break
            if time.monotonic() > deadline:
                raise AssertionError('%s: read up to %s of %s within %.0f s'
                                     % (self.topic, got, his, timeout))
            time.sleep(0.1)
        self.stopping.set()
        self.join(30)
        for p, recs in self.records.items():
            offs = [r[0] for r in recs]
            if offs != list(range(len(offs))):
                raise AssertionError('%s[%d]: offsets read are not 0..n-1 (dropped '
                                     'by retention?): first %s' % (self.topic, p, offs[:5]))
        return self.records


def read_topic(bootstrap, topic, timeout=60):
    """Every record of every partition of topic up to its high watermark."""
    col = Collector(bootstrap, topic)
    col.start()
    return col.finish(timeout)


# ------------------------------------------------------------ the test

class Chaos(unittest.TestCase):
    """One chaos run (setUpClass), then one test per comparison."""

    @classmethod
    def setUpClass(cls):
        # The run is a TestCase instance of its own so that it can use the
        # assert methods and addCleanup; its cleanups run at tearDownClass.
        cls.run_ = run = cls('run_chaos')
        try:
            run.prepare()
            run.run_chaos()
        except BaseException:
            run.doCleanups()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.run_.doCleanups()

    def prepare(self):
        self.dir = tempfile.mkdtemp(prefix='ls-chaos-')
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.broker = testenv.DevBroker(brokers=BROKERS, partitions=PARTITIONS,
                                        topics=TOPICS, control=True).start()
        self.addCleanup(self.broker.stop)
        shutil.copy(os.path.join(tp.SOURCE, 'schemas', 'web_event.avsc'),
                    os.path.join(self.dir, 'web_v1.avsc'))
        self.instances = []      # live run-B daemons
        self.n_started = 0
        self.counts = collections.Counter()

    def redis(self, **kw):
        r = testenv.RedisServer('unix', **kw).start()
        self.addCleanup(r.cleanup)
        return r

    def config(self, name, redis, group, out, pipeline):
        path = tp.write_config(
            os.path.join(self.dir, name), self.broker.bootstrap, redis.url, group,
            pipeline=pipeline, properties={'max.poll.interval.ms': '60000'},
            redis_extra={'command_timeout': '2s', 'connect_timeout': '1s'},
            writers=[{'id': WEB_WRITER_ID, 'record': 'WebEvent', 'file': 'web_v1.avsc'}],
            extra=CAMPAIGNS)
        return self.topics_config(path, out)

    @staticmethod
    def topics_config(path, out):
        """Point the config's output topics at out (write_config has no
        topics argument): a kafka.topics block after group_id."""
        with open(path) as f:
            text = f.read()
        block = '  topics:\n    scores: %s\n    dead_letter: %s\n' % (
            out['scores'], out['dead_letter'])
        i = text.index('  group_id:')
        j = text.index('\n', i) + 1
        with open(path, 'w') as f:
            f.write(text[:j] + block + text[j:])
        return path

    # -- run B's instances
    def start_instance(self):
        self.n_started += 1
        d = testenv.Daemon([tp.LEADSCORED, '--config', self.cfg_b],
                           name='b%d' % self.n_started)
        d.start()
        self.addCleanup(d.terminate)
        self.instances.append(d)
        return d

    def pick(self, f):
        return self.instances[f['pick'] % len(self.instances)]

    def stop_instance(self, d, how):
        self.instances.remove(d)
        if how == 'kill9':
            d.kill()
            return
        n = len(d.lines)
        d.send_signal(signal.SIGTERM)
        try:
            rc = d.wait(timeout=60)
        except Exception:
            raise AssertionError('%s did not stop within 60 s of SIGTERM\n%s'
                                 % (d.name, d.tail()))
        timed_out = any('msg="shutdown timed out' in l for l in d.lines[n:])
        # exit 1 only for the documented drain bound (a commit that cannot
        # finish within pipeline.shutdown_timeout: replayed later)
        self.assertIn(rc, (0, 1) if timed_out else (0,), d.tail())
        self.counts['sigterm_rc_%d' % rc] += 1

    def apply(self, f):
        kind = f['kind']
        if kind == 'join' and len(self.instances) >= MAX_INSTANCES:
            kind = 'leave'
        elif kind == 'leave' and len(self.instances) <= MIN_INSTANCES:
            kind = 'join'
        self.counts[kind] += 1
        if kind in ('kill9', 'sigterm'):
            d = self.pick(f)
            self.stop_instance(d, kind)
            time.sleep(f['respawn_after'])
            self.start_instance()
            return '%s %s, respawned after %.2f s' % (kind, d.name, f['respawn_after'])
        if kind == 'join':
            return 'join %s' % self.start_instance().name
        if kind == 'leave':
            d = self.pick(f)
            self.stop_instance(d, 'sigterm')
            return 'leave %s' % d.name
        if kind == 'redis':
            if f['how'] == 'SIGKILL':
                self.redis_b.proc.kill()
                self.redis_b.proc.wait()
                self.redis_b.proc = None
            else:
                self.redis_b.stop()
            time.sleep(f['down_for'])
            self.redis_b.restart()
            return 'redis %s, down %.2f s' % (f['how'], f['down_for'])
        if kind == 'broker_down':
            self.broker.down(f['broker'])
            time.sleep(f['down_for'])
            self.broker.up(f['broker'])
            return 'broker %d down %.2f s' % (f['broker'], f['down_for'])
        if kind == 'rtt':
            self.broker.rtt(f['broker'], f['ms'])
            time.sleep(f['for'])
            self.broker.rtt(f['broker'], 0)
            return 'broker %d rtt %d ms for %.2f s' % (f['broker'], f['ms'], f['for'])
        if kind == 'errors':
            self.broker.errors(f['api'], f['err'], f['count'])
            return 'errors %s %s x%d' % (f['api'], f['err'], f['count'])
        for topic, part, broker in f['moves']:
            self.broker.leader(topic, part, broker)
        return 'leader ' + ', '.join('%s[%d]->%d' % m for m in f['moves'])

    def run_chaos(self):
        rng = random.Random(SEED)
        n_events = max(6000, 320 * FAULTS)
        n_leads = max(40, n_events // 150)
        now_ms = int(time.time() * 1000)
        t0 = now_ms - 30 * tp.DAY
        log('seed=%d faults=%d events=%d leads=%d (replay: LS_CHAOS_SEED=%d '
            'LS_CHAOS_FAULTS=%d)' % (SEED, FAULTS, n_events, n_leads, SEED, FAULTS))
        stream = tp.generate_stream(seed=rng.randrange(1 << 30), n_leads=n_leads,
                                    n_events=n_events, tag='k', t0=t0)
        leads = sorted({ev['lead_id'] for ev in stream})
        poison = poison_records(rng, leads, max(24, len(stream) // 100), now_ms)
        schedule = fault_schedule(rng, FAULTS)

        self.redis_a = self.redis()
        self.redis_b = self.redis(persistent=True)
        pipe_b = dict(tp.EXACT_PIPELINE, batch_size=200, commit_interval='50ms',
                      shutdown_timeout='5s')
        self.cfg_b = self.config('b.yaml', self.redis_b, 'chaos', OUT_B,
                                 pipeline=pipe_b)
        cfg_a = self.config('a.yaml', self.redis_a, 'reference', OUT_A,
                            pipeline=dict(tp.EXACT_PIPELINE))

        # bandit decisions, made by run B's first instance before any event
        first = self.start_instance()
        port = int(first.wait_for_log(r'msg="listening" .*port=(\d+)', timeout=60).group(1))
        deadline = time.monotonic() + 30
        while test_bandit.call(port, 'GET', '/v1/campaigns/' + CAMPAIGN)[0] != 200:
            self.assertLess(time.monotonic(), deadline, first.tail())
            time.sleep(0.1)
        decisions = []
        for i in range(40):
            lead = 'k-bandit-%02d' % i
            st, o = test_bandit.call(port, 'POST', '/v1/campaigns/%s/decisions' % CAMPAIGN,
                                     {'lead_id': lead, 'activate': False})
            self.assertEqual(st, 200, o)
            decisions.append(dict(o, lead_id=lead))
        cb, ca = self.redis_b.client(), self.redis_a.client()
        pattern = 'ls:{bandit:%s}:*' % CAMPAIGN
        deadline = time.monotonic() + 30
        while len(list(cb.scan_iter(match=pattern + 'd:*'))) < len(decisions):
            self.assertLess(time.monotonic(), deadline, first.tail())
            time.sleep(0.05)
        # run A starts from the same decisions
        for k in cb.scan_iter(match=pattern):
            ca.restore(k, 0, cb.dump(k))
        self.start_instance()

        seqs = bandit_events(rng, decisions, now_ms - 2 * tp.DAY)
        events = interleave(rng, stream, seqs)
        refs = tp.reference(events)
        records = [(tp.TOPICS[ev['source']], ev['lead_id'].encode('utf-8'),
                    tp.encode_event(ev), None) for ev in events]
        records = interleave(rng, records, [[p] for p in poison])
        log('%d records (%d events, %d bandit events, %d poison)'
            % (len(records), len(events), sum(map(len, seqs)), len(poison)))

        scores = Collector(self.broker.bootstrap, OUT_B['scores'])
        scores.start()
        # brokers go down for seconds: deliveries may wait that long
        s = tp.Sender(self.broker.bootstrap, timeout_ms=300000)
        chunk = len(records) // (FAULTS + 1) + 1
        where = {}   # poison index -> (topic, partition, offset)

        def send(lo, hi):
            for i in range(lo, min(hi, len(records))):
                topic, key, value, reason = records[i]

                def cb(msg, i=i):
                    where[i] = (msg.topic(), msg.partition(), msg.offset())
                s.send(topic, key, value, cb if reason else None)

        # Each fault strikes a moment (0-0.3 s) after its chunk is sent, so
        # it lands while records are in flight and being applied; then the
        # chunk is flushed and the pause lets things settle a little.
        t_start = time.monotonic()
        for n, f in enumerate(schedule):
            send(n * chunk, (n + 1) * chunk)
            s.p.poll(0)
            time.sleep(f['strike'])
            what = self.apply(f)
            log('fault %d/%d at %.1f s: %s' % (n + 1, FAULTS,
                                               time.monotonic() - t_start, what))
            s.flush(300)
            time.sleep(f['pause'])
        send(FAULTS * chunk, len(records))
        s.flush(300)
        t_faults = time.monotonic() - t_start
        log('%d faults in %.1f s: %s' % (FAULTS, t_faults, dict(sorted(self.counts.items()))))
        self.assertEqual(sum(s.ends.values()), len(records))

        # run B finishes the stream (with whichever instances are left)
        cb = self.redis_b.client()
        deadline = time.monotonic() + 180
        while True:
            got = tp.stored_offsets(cb, 'ls:', 'chaos') if self.redis_b.running else {}
            if all(got.get(tp_, -1) >= off for tp_, off in s.ends.items()):
                break
            dead = [d for d in self.instances if not d.running]
            self.assertEqual(dead, [], 'instance exited: %s' % (
                dead and dead[0].tail()))
            if time.monotonic() > deadline:
                behind = sorted('%s[%d] %d/%d' % (t, p_, got.get((t, p_), -1), off)
                                for (t, p_), off in s.ends.items()
                                if got.get((t, p_), -1) < off)
                self.fail('run B stuck (seed %d): behind: %s\n%s' % (
                    SEED, ', '.join(behind), '\n'.join(
                        '--- %s:\n%s' % (d.name, '\n'.join(
                            l for l in d.lines if 'level=debug' not in l)[-6000:])
                        for d in self.instances)))
            time.sleep(0.1)
        self.assertEqual(tp.stored_offsets(cb, 'ls:', 'chaos'), s.ends)
        t_b = time.monotonic() - t_start
        for d in list(self.instances):
            self.stop_instance(d, 'sigterm')

        # run A: the same records, no faults
        t = time.monotonic()
        da = testenv.Daemon([tp.LEADSCORED, '--config', cfg_a], name='a')
        da.start()
        self.addCleanup(da.terminate)
        got_a = tp.wait_offsets(ca, 'ls:', 'reference', s.ends, 300, da)
        self.assertEqual(got_a, s.ends)
        self.assertEqual(da.terminate(), 0, da.tail())
        log('run B done after %.1f s, run A took %.1f s' % (t_b, time.monotonic() - t))
        self.score_records = scores.finish(120)
        self.cfg_a, self.refs, self.ca, self.cb = cfg_a, refs, ca, cb
        self.pattern, self.poison, self.records, self.where = pattern, poison, records, where
        self.ctl_a = {lead: tp.ctl_lead(cfg_a, lead) for lead in sorted(refs)}
        self.ctl_b = {lead: tp.ctl_lead(self.cfg_b, lead) for lead in sorted(refs)}

    # -- the comparisons, each its own test
    def test_faults_were_applied(self):
        r = self.run_
        log('seed=%d: faults %s, %d records' % (SEED, dict(sorted(r.counts.items())),
                                                 len(r.records)))
        self.assertEqual(sum(r.counts[k] for k in FAULT_KINDS), FAULTS)
        if FAULTS >= len(FAULT_KINDS):
            # join and leave may turn into each other at the bounds
            self.assertEqual([k for k in FAULT_KINDS if r.counts[k] == 0
                              and k not in ('join', 'leave')], [])

    def test_lead_state_equals_the_fault_free_run(self):
        r = self.run_
        r.compare_leads(r.cfg_a, r.refs, r.ca, r.cb)

    def test_model_labels_equal(self):
        self.run_.compare_models(self.run_.cfg_a)

    def test_bandit_counters_and_decisions_equal(self):
        r = self.run_
        r.compare_bandit(r.ca, r.cb, r.pattern)

    def test_dead_letters_are_the_same_records(self):
        r = self.run_
        r.compare_dead_letters(r.poison, r.records, r.where)

    def test_score_versions_never_go_back_and_repeat_exactly(self):
        """Run A (no faults) publishes every version once and ends, per
        lead and model, on the score it holds. Run B publishes a version
        again only as a byte-for-byte duplicate, and a consumer that drops
        versions it has seen (as the schema says) ends on the score the
        daemon holds. A ScoreChange is produced before its batch commits,
        so the replay after a kill -9, a failed commit, a drain cut short
        or a hand-over publishes the same leads again for other batch
        boundaries; it did so with the same versions until versions took
        a replay epoch (docs/operations.md "Failure modes"), which this test found."""
        r = self.run_
        bad_a, stale_a = r.check_scores(read_topic(r.broker.bootstrap, OUT_A['scores']),
                                        OUT_A['scores'], r.ctl_a)
        self.assertEqual((bad_a, stale_a), ([], []))
        bad, stale = r.check_scores(r.score_records, OUT_B['scores'], r.ctl_b)
        for line in bad[:5] + stale[:5]:
            log(line)
        self.assertEqual((bad, stale), ([], []))

    # -- comparisons
    def compare_leads(self, cfg_a, refs, ca, cb):
        keys_a = sorted(ca.scan_iter(match='ls:{*}:s', count=1000))
        keys_b = sorted(cb.scan_iter(match='ls:{*}:s', count=1000))
        keys_a = [k for k in keys_a if not k.startswith(b'ls:{bandit:')]
        keys_b = [k for k in keys_b if not k.startswith(b'ls:{bandit:')]
        self.assertEqual(keys_a, keys_b)
        self.assertEqual(len(keys_a), len(refs))
        names = features_ref.FeatureSet().value_names()
        fields = ('watermark', 'events', 'attributes', 'metrics', 'features',
                  'window_state_xxh3')
        diff = []
        for lead in sorted(refs):
            a, b = self.ctl_a[lead], self.ctl_b[lead]
            for k in fields:
                if a[k] != b[k]:
                    diff.append('%s %s: run A %r, run B %r' % (lead, k, a[k], b[k]))
            # and right, not merely equal
            tp.PipelineTest.assert_lead(self, b, refs[lead], lead, names)
        self.assertEqual(diff, [], '%d differences:\n  %s' % (len(diff), '\n  '.join(diff[:20])))

    def compare_models(self, cfg_a):
        ma, mb = tp.ctl_model(cfg_a, 'conversion'), tp.ctl_model(self.cfg_b, 'conversion')
        log('model labels run A %d+/%d-, run B %d+/%d-'
            % (ma['positives'], ma['negatives'], mb['positives'], mb['negatives']))
        self.assertGreater(ma['positives'] + ma['negatives'], 10)
        self.assertEqual((ma['positives'], ma['negatives'], ma['labels_in_window']),
                         (mb['positives'], mb['negatives'], mb['labels_in_window']))

    def compare_bandit(self, ca, cb, pattern):
        def dump(c):
            return {k: c.hgetall(k) for k in c.scan_iter(match=pattern)
                    if c.type(k) == b'hash'}
        a, b = dump(ca), dump(cb)
        counts = 'ls:{bandit:%s}:counts' % CAMPAIGN
        self.assertIn(counts.encode(), a)
        log('bandit counts %s' % {k.decode(): int(v) for k, v in
                                         sorted(a[counts.encode()].items())})
        self.assertEqual(a, b)

    def check_scores(self, records, topic, ctl):
        """Run B's ScoreChange records, per (lead, model) in partition
        order. Returns (records, exact repeats, violations: a version not
        above every earlier one that is not a byte-for-byte repeat of the
        record published with it, stale: leads whose last record a
        version-deduping consumer keeps (the first with the highest
        version) is not the score the daemon holds at the end)."""
        seen = {}
        bad, dups, n = [], 0, 0
        for p in sorted(records):
            for off, key, value, _ in records[p]:
                n += 1
                r = avro_events.decode('score_change', value)
                lm = (r['lead_id'], r['model'])
                self.assertEqual(key, r['lead_id'].encode('utf-8'))
                versions = seen.setdefault(lm, {})
                top = max(versions) if versions else 0
                if r['version'] > top:
                    versions[r['version']] = value
                elif versions.get(r['version']) == value:
                    dups += 1
                else:
                    why = 'backwards'
                    if r['version'] in versions:
                        old = avro_events.decode('score_change', versions[r['version']])
                        why = 'other content: ' + ', '.join(
                            '%s %r -> %r' % (k, old[k], r[k]) for k in sorted(r)
                            if r[k] != old[k] and k != 'factors') + (
                            ' factors' if r['factors'] != old['factors'] else '')
                    bad.append('%s[%d]@%d %s v%d after v%d: %s' % (
                        topic, p, off, lm, r['version'], top, why))
        stale = []
        for (lead, model), versions in sorted(seen.items()):
            kept = avro_events.decode('score_change', versions[max(versions)])
            held = ctl[lead]['scores'][model]
            if (kept['version'], kept['score']) != (held['version'], held['score']):
                stale.append('%s %s: consumer keeps v%d %r, daemon holds v%d %r' % (
                    lead, model, kept['version'], kept['score'], held['version'],
                    held['score']))
        log('%s: %d score changes, %d exact repeats, %d other repeats or backwards, '
            '%d leads stale for a version-deduping consumer'
            % (topic, n, dups, len(bad), len(stale)))
        self.assertGreater(n, 0)
        return bad, stale

    def compare_dead_letters(self, poison, records, where):
        """Both runs dead-lettered exactly the poison records, each for its
        reason (run B maybe more than once)."""
        self.assertEqual(len(where), len(poison))
        want = {where[i] + (records[i][3],) for i in where}
        self.assertEqual(len(want), len(poison))
        for run, topic in (('A', OUT_A['dead_letter']), ('B', OUT_B['dead_letter'])):
            got = collections.Counter()
            for recs in read_topic(self.broker.bootstrap, topic).values():
                for _, _, _, h in recs:
                    got[(h['ls.source.topic'], int(h['ls.source.partition']),
                         int(h['ls.source.offset']), h['ls.reason'])] += 1
            log('run %s: %d dead letters, %d distinct'
                % (run, sum(got.values()), len(got)))
            self.assertEqual(set(got), want, 'run %s' % run)
            if run == 'A':
                self.assertEqual(sum(got.values()), len(want))


class AssignmentLost(unittest.TestCase):
    """Regression test for what the 200-fault chaos run found (seed
    20261206: run B learned 190+/159- labels against 188+/157-): an
    instance that stalls past the session timeout (here SIGSTOP, in the
    chaos run a broker or coordinator out of reach) loses its partitions
    to another member, which replays them from the offsets in Redis. When
    the stalled one comes back, librdkafka revokes its lost assignment,
    and it must not commit the work it did before the stall: the new owner
    has done it again, so its labels would be learned twice."""

    def test_lost_assignment_is_not_committed(self):
        tmp = tempfile.mkdtemp(prefix='ls-lost-')
        self.addCleanup(shutil.rmtree, tmp, True)
        broker = testenv.DevBroker(partitions=2).start()
        self.addCleanup(broker.stop)
        r = testenv.RedisServer('unix').start()
        self.addCleanup(r.cleanup)
        # X holds its work uncommitted (1 min) while Y commits at once
        cfg_x = tp.write_config(os.path.join(tmp, 'x.yaml'), broker.bootstrap, r.url,
                                'lost', level='debug',
                                pipeline={'commit_interval': '1m', 'grace': '30d'},
                                extra='scoring:\n  checkpoint_interval: 1h\n')
        cfg_y = tp.write_config(os.path.join(tmp, 'y.yaml'), broker.bootstrap, r.url,
                                'lost', pipeline={'commit_interval': '0s', 'grace': '30d'})
        x = testenv.Daemon([tp.LEADSCORED, '--config', cfg_x], name='x')
        x.start()
        self.addCleanup(x.terminate)
        x.wait_for_log(r'msg="ready"', timeout=60)
        ts = int(time.time() * 1000) - tp.DAY
        n = 20
        outcomes = [(('lost-%d' % i).encode(), avro_events.encode('outcome', {
            'event_id': 'o-%d' % i, 'lead_id': 'lost-%d' % i, 'ts': ts + i,
            'outcome': 'CONVERTED' if i % 2 else 'LOST'})) for i in range(n)]
        since = len(x.lines)
        testenv.produce(broker.bootstrap, 'leads.outcome', outcomes)
        applied = 0
        while applied < n:
            m = x.wait_for_log(r'msg="batch applied" messages=(\d+) ', timeout=30,
                               since=since)
            applied += int(m.group(1))
            since = x.lines.index(m.string, since) + 1
        # X learned all n labels and committed nothing; now it stalls
        self.assertEqual(tp.stored_offsets(r.client(), 'ls:', 'lost'), {})
        x.send_signal(signal.SIGSTOP)
        try:
            y = testenv.Daemon([tp.LEADSCORED, '--config', cfg_y], name='y')
            y.start()
            self.addCleanup(y.terminate)
            client = r.client()
            deadline = time.monotonic() + 60
            while sum(tp.stored_offsets(client, 'ls:', 'lost').values()) < n:
                self.assertLess(time.monotonic(), deadline, y.tail())
                time.sleep(0.1)
        finally:
            since = len(x.lines)
            x.send_signal(signal.SIGCONT)
        # X finds out that its partitions are gone
        x.wait_for_log(r'msg="partitions revoked"', timeout=60, since=since)
        x.wait_for_log(r'msg="assignment lost, uncommitted work discarded" messages=0 '
                       r'leads=%d' % n, timeout=10, since=since)
        y.wait_for_log(r'msg="partitions (assigned|revoked)"', timeout=60)
        self.assertEqual(x.terminate(), 0, x.tail())
        self.assertEqual(y.terminate(), 0, y.tail())
        m = tp.ctl_model(cfg_y, 'conversion')
        self.assertEqual((m['positives'], m['negatives']), (n // 2, n // 2),
                         'labels learned twice; x:\n%s' % x.tail(15))


if __name__ == '__main__':
    unittest.main()
