"""Shared helpers of the Python integration suites: the daemon's config,
its processes and leadscorectl, the seeded event stream and its reference,
and base classes for the two shapes of suite.

  * PipelineTest: a fresh dev broker per test (setUp) and Redis on demand.
  * DaemonSuite: one redis-server, one dev broker and (start_env) one
    leadscored shared by every test of a class (setUpClass/tearDownClass).

testenv.py has the processes themselves (RedisServer, DevBroker, Daemon,
produce, consume); this module is what leadscore's suites build on them.
It holds no tests. Run with Debian's /usr/bin/python3 and LS_BUILD_ROOT set
to the meson build dir (meson test does both).
"""
import http.client
import json
import os
import random
import shutil
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import avro_events  # noqa: E402
import features_ref  # noqa: E402
import testenv  # noqa: E402
from confluent_kafka import Consumer, Producer  # noqa: E402

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
    sys.stderr.write('lstest: %s\n' % msg)
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


def http_get_json(port, path):
    """GET path from the daemon's HTTP API on loopback: (status, body)."""
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
    conn.request('GET', path)
    resp = conn.getresponse()
    body = json.loads(resp.read())
    conn.close()
    return resp.status, body


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


def decisions_on_topic(bootstrap, ids, group, timeout=30):
    """The bandit's decision records on leads.decisions whose decision_id
    is in ids, read from the start by a fresh consumer of group until all
    are found or timeout s pass: {decision_id: (record, key)}."""
    c = Consumer({'bootstrap.servers': bootstrap, 'group.id': group,
                  'auto.offset.reset': 'earliest', 'enable.auto.commit': False})
    c.subscribe(['leads.decisions'])
    found = {}
    deadline = time.monotonic() + timeout
    while len(found) < len(ids) and time.monotonic() < deadline:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        rec = avro_events.decode('bandit_decision', m.value())
        if rec['decision_id'] in ids:
            found[rec['decision_id']] = (rec, m.key())
    c.close()
    return found


# ------------------------------------------------------------ class fixture

# the line that says leadscored's HTTP port (group 1)
LISTENING = r'msg="listening" .*port=(\d+)'


class DaemonSuite(unittest.TestCase):
    """Redis, the dev broker and leadscored shared by every test of a class.

    A suite's setUpClass calls start_env (or start_services and starts its
    own daemons); tearDownClass stops the daemon (which must exit 0 unless
    check_rc is False), then the broker, Redis and the temp dir, whatever
    failed before."""

    daemon = None
    daemons = ()  # or several, when a suite starts its own
    check_rc = True

    @classmethod
    def start_services(cls, group, **config):
        """A temp dir, redis-server, the dev broker and cls.cfg for them
        (write_config's keywords: prefix, auth_token, extra, ...)."""
        cls.tmp = tempfile.TemporaryDirectory()
        cls.redis = testenv.RedisServer()
        cls.redis.start()
        cls.broker = testenv.DevBroker()
        cls.broker.start()
        cls.cfg = write_config(os.path.join(cls.tmp.name, 'leadscore.yaml'),
                               cls.broker.bootstrap, cls.redis.url, group, **config)

    @classmethod
    def start_env(cls, group, name=None, env=None, listening=LISTENING,
                  ready_timeout=60, **config):
        """start_services, then one leadscored on cls.cfg: cls.daemon,
        cls.port and cls.listening (the match of the listening line)."""
        cls.start_services(group, **config)
        cls.daemon = testenv.Daemon([LEADSCORED, '--config', cls.cfg], env=env,
                                    name=name or 'leadscored-' + group)
        cls.daemon.start()
        cls.listening = cls.daemon.wait_for_log(listening, timeout=30)
        cls.port = int(cls.listening.group(1))
        cls.daemon.wait_for_log('msg="ready"', timeout=ready_timeout)

    @classmethod
    def stop_env(cls):
        try:
            for d in cls.daemons or ([cls.daemon] if cls.daemon else []):
                rc = d.terminate()
                if cls.check_rc:
                    assert rc == 0, (rc, d.tail())
        finally:
            cls.broker.stop()
            cls.redis.cleanup()
            cls.tmp.cleanup()

    @classmethod
    def tearDownClass(cls):
        cls.stop_env()
