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
import json
import os
import random
import shutil
import statistics
import struct
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import avro_events  # noqa: E402
import features_ref  # noqa: E402
import testenv  # noqa: E402
from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402

BUILD = os.environ.get('LS_BUILD_ROOT', 'build')
SOURCE = avro_events.SOURCE_ROOT
LEADSCORED = os.path.join(BUILD, 'daemon', 'leadscored')
LEADSCORECTL = os.path.join(BUILD, 'tools', 'leadscorectl')

TOPICS = {s: 'leads.' + s for s in features_ref.SOURCES}
DEAD_LETTER = 'leads.dead_letter'
PARTITIONS = 3

DAY = features_ref.MS_DAY
HOUR = features_ref.MS_HOUR
# A Friday in the past, so no event is ahead of the wall clock.
T0 = 1709251200000 + 12_345_678

# Mock-cluster group settings: a killed member is evicted after the
# session timeout, so a restarted daemon rejoins in ~3-4 s instead of
# ~45 s. (Below ~2.5 s the mock broker's 3 s initial join delay expires
# members before they ever join.)
FAST_GROUP = {'session.timeout.ms': '3000', 'heartbeat.interval.ms': '300'}

# grace 30d (the maximum) and streams spanning less than 29.5 days: no
# event is ever too late, however the five topics interleave; a dedupe
# horizon of 30d and dedupe_ids 1024 > events per lead: every redelivery
# is caught, whatever the order. So the state is a function of the set of
# events and the per-partition order of the profile topic only (ls_lead.h
# "Order"), and the reference needs no model of the interleaving.
EXACT_PIPELINE = {'grace': '30d', 'dedupe_horizon': '30d', 'dedupe_ids': 1024}
STREAM_SPAN = int(29.5 * DAY)


# ------------------------------------------------------------ helpers

def log(msg):
    sys.stderr.write('test_pipeline: %s\n' % msg)
    sys.stderr.flush()


def write_config(path, brokers, redis_url, group, prefix='ls:',
                 pipeline=None, redis_extra=None, writers=None,
                 properties=None, level='info', auth_token=None, extra=None):
    lines = ['kafka:', '  brokers: "%s"' % brokers, '  group_id: %s' % group]
    props = dict(FAST_GROUP)
    props.update(properties or {})
    lines.append('  properties:')
    for k, v in props.items():
        lines.append('    %s: "%s"' % (k, v))
    lines += ['redis:', '  url: "%s"' % redis_url, '  key_prefix: "%s"' % prefix]
    for k, v in (redis_extra or {}).items():
        lines.append('  %s: %s' % (k, v))
    lines += ['http:', '  listen: 127.0.0.1:0']
    if auth_token is not None:
        lines.append('  auth_token: "%s"' % auth_token)
    lines += ['log:', '  level: %s' % level]
    if pipeline:
        lines.append('pipeline:')
        for k, v in pipeline.items():
            lines.append('  %s: %s' % (k, v))
    if writers:
        lines += ['schemas:', '  writers:']
        for w in writers:
            lines += ['    - id: %d' % w['id'], '      record: %s' % w['record'],
                      '      file: %s' % w['file']]
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n' + (extra or ''))
    return path


def start_daemon(testcase, config, name='leadscored'):
    d = testenv.Daemon([LEADSCORED, '--config', config], name=name)
    d.start()
    testcase.addCleanup(d.terminate)
    return d


def ctl_lead(config, lead_id):
    """leadscorectl's JSON for a lead, or None when it is not stored."""
    r = testenv.run([LEADSCORECTL, '--config', config, 'lead', lead_id],
                    capture_output=True, text=True, timeout=60)
    if r.returncode == 3:
        return None
    if r.returncode != 0:
        raise AssertionError('leadscorectl lead %s: rc=%d\n%s'
                             % (lead_id, r.returncode, r.stderr))
    return json.loads(r.stdout)


def ctl_model(config, name):
    """leadscorectl's JSON for a model's shared state in Redis."""
    r = testenv.run([LEADSCORECTL, '--config', config, 'model', name],
                    capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError('leadscorectl model %s: rc=%d\n%s'
                             % (name, r.returncode, r.stderr))
    return json.loads(r.stdout)


def encode_event(ev):
    rec = {k: v for k, v in ev.items() if k != 'source'}
    return avro_events.encode(ev['source'], rec)


class Sender:
    """One idempotent producer; remembers where every record went."""

    def __init__(self, bootstrap, timeout_ms=30000):
        self.p = Producer({'bootstrap.servers': bootstrap,
                           'enable.idempotence': True, 'linger.ms': 5,
                           'message.timeout.ms': timeout_ms})
        self.ends = {}        # (topic, partition) -> next offset
        self.errors = []

    def send(self, topic, key, value, on_delivered=None):
        def cb(err, msg):
            if err is not None:
                self.errors.append(str(err))
                return
            tp = (msg.topic(), msg.partition())
            self.ends[tp] = max(self.ends.get(tp, 0), msg.offset() + 1)
            if on_delivered:
                on_delivered(msg)
        while True:
            try:
                self.p.produce(topic, key=key, value=value, on_delivery=cb)
                return
            except BufferError:
                self.p.poll(0.05)

    def send_events(self, events):
        for ev in events:
            self.send(TOPICS[ev['source']], ev['lead_id'].encode('utf-8'),
                      encode_event(ev))
        self.flush()

    def flush(self, timeout=60):
        left = self.p.flush(timeout)
        if self.errors:
            raise RuntimeError('delivery failed: %s' % self.errors[0])
        if left:
            raise TimeoutError('%d records not delivered' % left)


def stored_offsets(client, prefix, group):
    raw = client.hgetall('%soffsets:%s' % (prefix, group))
    out = {}
    for k, v in raw.items():
        topic, part = k.decode().rsplit(':', 1)
        out[(topic, int(part))] = int(v)
    return out


def wait_offsets(client, prefix, group, ends, timeout, daemon=None):
    """Wait until the offsets hash holds ends (every partition read)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            got = stored_offsets(client, prefix, group)
        except Exception as e:   # Redis down or busy: keep waiting
            got = {'error': str(e)}
        if all(got.get(tp, -1) >= off for tp, off in ends.items()):
            return got
        if daemon is not None and not daemon.running:
            raise AssertionError('daemon exited (%s) before reaching the end '
                                 'offsets; stored %s, want %s\n%s'
                                 % (daemon.returncode, got, ends,
                                    daemon.tail()))
        if time.monotonic() > deadline:
            tail = daemon.tail() if daemon is not None else ''
            raise AssertionError('offsets did not reach the end within %.0f s:'
                                 ' stored %s, want %s\n%s'
                                 % (timeout, got, ends, tail))
        time.sleep(0.05)


# ------------------------------------------------------------ stream

CATEGORIES = ['pricing', 'product', 'docs', 'blog', 'careers', 'about',
              None, '', 'Pricing']
CAMPAIGNS = ['spring-promo', 'webinar-q2', 'nurture-1', 'nurture-2',
             'launch', 'renewal', 'abm-tier1', None, '']
INDUSTRIES = ['software', 'retail', 'finance', 'health', 'education',
              'manufacturing', 'logistics']
COUNTRIES = ['DE', 'US', 'FR', 'GB', 'NL', 'JP', 'BR']
TITLES = ['CTO', 'VP Sales', 'Engineer', 'Head of Marketing', 'Analyst',
          'Directrice financière']
# Sentiments on exact half units of 0.001, both signs (llround rounds half
# away from zero), the clamp edges, and zero.
SPECIAL_SENTIMENTS = [0.0625, -0.0625, 0.3125, -0.8125, 1.0, -1.0, 0.0,
                      0.0005, -0.0015]


def _email(rng, lead, ts, eid):
    t = rng.choices(
        ['SENT', 'DELIVERED', 'OPENED', 'CLICKED', 'REPLIED', 'BOUNCED',
         'UNSUBSCRIBED', 'SPAM_REPORTED'],
        [30, 22, 25, 10, 4, 3, 1.5, 0.5])[0]
    camp = rng.choice(CAMPAIGNS)
    ev = {'source': 'email', 'event_id': eid, 'lead_id': lead, 'ts': ts,
          'type': t, 'campaign_id': camp}
    if camp and rng.random() < 0.5:
        ev['variant_id'] = rng.choice(['A', 'B', 'C'])
    if t == 'CLICKED':
        ev['url'] = 'https://example.com/%s/%d' % (camp or 'x', rng.randrange(9))
    if rng.random() < 0.05:
        ev['decision_id'] = 'd-%08x' % rng.getrandbits(32)
    return ev


def _web(rng, lead, ts, eid, session):
    t = rng.choices(['PAGE_VIEW', 'FORM_SUBMIT', 'DOWNLOAD', 'DEMO_REQUEST'],
                    [85, 6, 6, 3])[0]
    cat = rng.choice(CATEGORIES)
    ev = {'source': 'web', 'event_id': eid, 'lead_id': lead, 'ts': ts,
          'type': t, 'url': 'https://example.com/%s/%d' % (cat or 'home',
                                                             rng.randrange(50))}
    if cat is not None:
        ev['page_category'] = cat
    r = rng.random()
    if r < 0.75:
        ev['duration_ms'] = int(rng.expovariate(1 / 45000.0))
    elif r < 0.8:
        ev['duration_ms'] = 0
    r = rng.random()
    if r < 0.85:
        ev['session_id'] = session
    elif r < 0.9:
        ev['session_id'] = ''
    return ev


def _call(rng, lead, ts, eid):
    outcome = rng.choices(['CONNECTED', 'NO_ANSWER', 'VOICEMAIL', 'BUSY',
                           'MEETING_BOOKED'], [40, 25, 20, 7, 8])[0]
    dur = 0 if outcome in ('NO_ANSWER', 'BUSY') else int(rng.expovariate(1 / 240.0))
    ev = {'source': 'call', 'event_id': eid, 'lead_id': lead, 'ts': ts,
          'direction': rng.choice(['INBOUND', 'OUTBOUND']),
          'outcome': outcome, 'duration_s': dur}
    if outcome in ('CONNECTED', 'MEETING_BOOKED', 'VOICEMAIL'):
        r = rng.random()
        if r < 0.2:
            ev['sentiment'] = rng.choice(SPECIAL_SENTIMENTS)
        elif r < 0.85:
            ev['sentiment'] = rng.uniform(-1.0, 1.0)
    return ev


def _outcome(rng, lead, ts, eid):
    o = rng.choice(['CONVERTED', 'OPPORTUNITY_CREATED', 'WON', 'LOST',
                    'DISQUALIFIED'])
    ev = {'source': 'outcome', 'event_id': eid, 'lead_id': lead, 'ts': ts,
          'outcome': o}
    if rng.random() < 0.6:
        ev['value'] = round(rng.uniform(100, 90000), 2)
    return ev


def _profile(rng, lead, ts, eid, first):
    attrs, metrics = {}, {}
    if first or rng.random() < 0.5:
        attrs['industry'] = rng.choice(INDUSTRIES)
        attrs['country'] = rng.choice(COUNTRIES)
    if rng.random() < 0.6:
        attrs['job_title'] = rng.choice(TITLES)
    if rng.random() < 0.15:
        attrs['source'] = ''                       # removes the key
    elif rng.random() < 0.4:
        attrs['source'] = rng.choice(['webinar', 'ads', 'referral', 'event'])
    if rng.random() < 0.1:
        attrs['k' * 65] = 'too long a key'         # ignored (> 64 bytes)
    if rng.random() < 0.1:
        attrs['notes'] = 'x' * 257                 # ignored (> 256 bytes)
    if rng.random() < 0.3:
        attrs['tag_%d' % rng.randrange(40)] = 'on'  # grows towards the limit
    if rng.random() < 0.1:
        metrics['m_%d' % rng.randrange(10)] = rng.uniform(0, 1)
    metrics['employees'] = float(rng.choice([5, 12, 50, 250, 1200, 9000]))
    if rng.random() < 0.7:
        metrics['annual_revenue'] = rng.uniform(1e5, 5e8)
    if rng.random() < 0.3:
        metrics['engagement_score'] = rng.uniform(-3, 3)
    if rng.random() < 0.05:
        metrics['big'] = 2.0 ** 60                 # integral, > 2^53
    return {'source': 'profile', 'event_id': eid, 'lead_id': lead, 'ts': ts,
            'attributes': attrs, 'metrics': metrics}


def generate_stream(seed, n_leads, n_events, tag, t0=T0, span=STREAM_SPAN):
    """A realistic, seeded stream in produce order.

    Leads have sessions (bursts of web, email, call activity a few minutes
    apart) spread over the span, profile updates and a few outcomes. Some
    events arrive up to 6 h late; ~2 % are redelivered later (same id and
    ts); a few reuse an id with another ts (another event); a few sit
    exactly on slice and window edges of their lead's final watermark.
    """
    rng = random.Random(seed)
    leads = ['%s-lead-%03d' % (tag, i) for i in range(n_leads)]
    leads[-1] = '%s-lead-ü-%03d' % (tag, n_leads - 1)   # non-ASCII id
    weights = [rng.lognormvariate(0, 0.8) for _ in leads]
    total_w = sum(weights)
    events = []
    counter = [0]

    def eid(lead):
        counter[0] += 1
        return '%s-%s-%06d' % (tag, lead[-3:], counter[0])

    for lead, w in zip(leads, weights):
        quota = max(8, int(n_events * w / total_w))
        lev = [_profile(rng, lead, t0 + rng.randrange(HOUR), eid(lead), True)]
        while len(lev) < quota:
            start = t0 + rng.randrange(span)
            session = 's-%08x' % rng.getrandbits(32)
            ts = start
            for _ in range(rng.randint(1, 14)):
                ts += int(rng.expovariate(1 / 180000.0))
                if ts >= t0 + span:
                    break
                if rng.random() < 0.05:          # on a 5 min/1 h/6 h edge
                    edge = rng.choice([5 * 60000, HOUR, 6 * HOUR])
                    ts = max(t0, ts // edge * edge)
                src = rng.choices(['web', 'email', 'call', 'outcome', 'profile'],
                                  [45, 35, 12, 2, 6])[0]
                if src == 'web':
                    ev = _web(rng, lead, ts, eid(lead), session)
                elif src == 'email':
                    ev = _email(rng, lead, ts, eid(lead))
                elif src == 'call':
                    ev = _call(rng, lead, ts, eid(lead))
                elif src == 'outcome':
                    ev = _outcome(rng, lead, ts, eid(lead))
                else:
                    ev = _profile(rng, lead, ts, eid(lead), False)
                lev.append(ev)
        # edges relative to the lead's final watermark
        wm = max(e['ts'] for e in lev)
        if rng.random() < 0.6:
            for back in (7 * DAY, 7 * DAY - 1, DAY, DAY - 1, HOUR, HOUR - 1,
                         30 * DAY, 30 * DAY - 1, 0):
                if wm - back >= 0:
                    mk = rng.choice([_email, _call])
                    lev.append(mk(rng, lead, wm - back, eid(lead)))
            lev.append(_web(rng, lead, wm - 6 * HOUR, eid(lead), 's-edge'))
        # same ts, other id; same id, other ts
        some = rng.choice(lev)
        twin = dict(some, event_id=eid(lead))
        other_ts = dict(rng.choice(lev))
        other_ts['ts'] = max(other_ts['ts'] - rng.randrange(1, HOUR),
                             wm - 29 * DAY)
        lev += [twin, other_ts]
        events += lev

    # produce order: by ts, some late by up to 6 h
    keyed = []
    for i, ev in enumerate(events):
        late = rng.uniform(0, 6 * HOUR) if rng.random() < 0.05 else 0
        keyed.append((ev['ts'] + late, i, ev))
    keyed.sort(key=lambda x: (x[0], x[1]))
    order = [ev for _, _, ev in keyed]
    # redeliveries: a copy of ~2 % of the events, somewhere after the original
    for _ in range(len(order) // 50):
        i = rng.randrange(len(order))
        j = rng.randrange(i + 1, len(order) + 1)
        order.insert(j, dict(order[i]))
    return order


def reference(events, **conf):
    """The expected state of every lead under EXACT_PIPELINE."""
    refs = features_ref.reference(events, grace_ms=30 * DAY, dedupe_k=1024,
                                  dedupe_horizon_ms=30 * DAY, **conf)
    # What makes the result independent of how topics interleave: no event
    # older than its lead's final watermark minus the grace (an event at
    # exactly that age is on time), and every lead within the dedupe memory.
    for ev in events:
        ref = refs[ev['lead_id']]
        assert ev['ts'] >= ref.watermark - 30 * DAY, ev
    for ref in refs.values():
        assert len(ref.applied) <= 1024
        assert ref.n_too_late == 0
    return refs


# ------------------------------------------------------------ base

class PipelineTest(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix='ls-pipeline-')
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.broker = testenv.DevBroker(partitions=PARTITIONS).start()
        self.addCleanup(self.broker.stop)

    def redis(self, **kw):
        r = testenv.RedisServer('unix', **kw).start()
        self.addCleanup(r.cleanup)
        return r

    def config(self, name, redis, group, **kw):
        return write_config(os.path.join(self.dir, name), self.broker.bootstrap,
                            redis.url, group, **kw)

    def assert_lead(self, got, ref, lead_id, fset_names):
        self.assertIsNotNone(got, 'lead %s is not stored' % lead_id)
        self.assertEqual(got['watermark'], ref.watermark, lead_id)
        self.assertEqual(got['events'], ref.events, lead_id)
        self.assertEqual(got['attributes'], ref.attributes, lead_id)
        self.assertEqual(got['metrics'], ref.metrics, lead_id)
        feats = got['features']
        self.assertEqual(sorted(feats), sorted(fset_names), lead_id)
        want = ref.features()
        bad = []
        for name in fset_names:
            g, w = feats[name], want[name]
            if abs(g - w) > 1e-9 + 1e-12 * abs(w):
                bad.append('%s: daemon %r, reference %r' % (name, g, w))
        self.assertEqual(bad, [], 'lead %s features differ:\n  %s'
                         % (lead_id, '\n  '.join(bad)))

    def check_all_leads(self, config, refs):
        names = features_ref.FeatureSet().value_names()
        out = {}
        for lead_id, ref in sorted(refs.items()):
            got = ctl_lead(config, lead_id)
            self.assert_lead(got, ref, lead_id, names)
            out[lead_id] = got
        return out


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
                                    'run B stuck below %d' % target)
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
