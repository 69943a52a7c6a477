#!/usr/bin/python3
"""Process-level throughput of leadscored, as a user meets it (issue 14).

One run starts a private redis-server (unix socket, no persistence) and
the dev broker (librdkafka's mock cluster), produces N Avro events over L
leads with a producer that shares no code with the daemon (confluent-kafka
and a small Avro encoder for the fixed schemas in schemas/*.avsc, checked
against the Apache Avro library at start), and then measures, one after
the other, on the same data:

  raw         leadscore-bench-raw: a bare librdkafka consumer (new group,
              earliest, no commits); rate from its first message to its last.
  leadscored  the daemon as a process with a YAML config written here; its
              rate is taken from the offsets it commits in Redis (the hash
              <prefix>offsets:<group_id>, polled every 20 ms): events
              between the first and the last commit seen / time between
              them. Start to first commit (group join, first batch) is
              reported apart. Peak RSS is VmHWM before SIGTERM.
  python      tools/bench_baseline.py, timed the same way from the offsets
              it commits (py:offsets:<group>).

Modes (--mode): live (event times <= 20 ms apart, ending near now),
backlog (<= 60 s apart: ~70 days for 200k events; leadscored is run twice,
with the default alignment and with pipeline.align_stall: 0, so the
alignment cost comes from one run), backlog-noalign (only the latter),
sweep (live spacing, 20k / 200k / 1M leads, events = max(200k, leads)),
latency (paced live production at 10/50/90 % of the max live rate, p50 and
p99 from the daemon's histograms), all.

Results go to --out (default /tmp/lsbench): results.csv, results.json,
latency.csv, the daemon logs, and bench_process.png (gnuplot).

Run with Debian's /usr/bin/python3 (confluent_kafka, redis, avro), from the
source root, e.g.
  /usr/bin/python3 tools/bench_process.py --build build-rel --mode all
"""
import argparse
import csv
import json
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'integration'))

import testenv  # noqa: E402
import redis  # noqa: E402
from confluent_kafka import Consumer, Producer, TopicPartition  # noqa: E402

SOURCES = ('email', 'web', 'call', 'outcome', 'profile')
TOPIC = {s: 'leads.' + s for s in SOURCES}
RETENTION_BYTES = 5 * 1024 * 1024     # mock broker, per partition
LIVE_GAP_MS = 20
BACKLOG_GAP_MS = 60000
LATENCY_METRICS = ('leadscore_read_to_score_seconds',
                   'leadscore_record_to_score_seconds',
                   'leadscore_event_to_score_seconds')


def log(msg):
    sys.stderr.write('[%s] %s\n' % (time.strftime('%H:%M:%S'), msg))
    sys.stderr.flush()

# ------------------------------------------------------------------ Avro
# Plain Avro binary for the five input schemas, by hand: python3-avro
# writes ~20k records/s, too slow to feed a daemon at 100k/s.

_ZZ = {}


def zz(n):
    """Avro long: zigzag, then base-128 varint."""
    b = _ZZ.get(n)
    if b is not None:
        return b
    u = (n << 1) ^ (n >> 63)
    out = bytearray()
    while u > 0x7f:
        out.append((u & 0x7f) | 0x80)
        u >>= 7
    out.append(u)
    b = bytes(out)
    if -64 <= n < 1024:
        _ZZ[n] = b
    return b


def a_str(s):
    b = s.encode('utf-8')
    return zz(len(b)) + b


def a_opt_str(s):
    return b'\x00' if s is None else b'\x02' + a_str(s)


def a_opt_long(v):
    return b'\x00' if v is None else b'\x02' + zz(v)


def a_opt_double(v):
    return b'\x00' if v is None else b'\x02' + struct.pack('<d', v)


def a_map(d, enc):
    if not d:
        return b'\x00'
    return zz(len(d)) + b''.join(a_str(k) + enc(v) for k, v in d.items()) + b'\x00'


EMAIL_TYPES = ['SENT', 'DELIVERED', 'OPENED', 'CLICKED', 'REPLIED', 'BOUNCED',
               'UNSUBSCRIBED', 'SPAM_REPORTED']
WEB_TYPES = ['PAGE_VIEW', 'FORM_SUBMIT', 'DOWNLOAD', 'DEMO_REQUEST']
CALL_DIRECTIONS = ['INBOUND', 'OUTBOUND']
CALL_OUTCOMES = ['CONNECTED', 'NO_ANSWER', 'VOICEMAIL', 'BUSY', 'MEETING_BOOKED']
OUTCOMES = ['CONVERTED', 'OPPORTUNITY_CREATED', 'WON', 'LOST', 'DISQUALIFIED']
ENUM = {k: {s: i for i, s in enumerate(v)} for k, v in (
    ('email', EMAIL_TYPES), ('web', WEB_TYPES), ('dir', CALL_DIRECTIONS),
    ('call', CALL_OUTCOMES), ('outcome', OUTCOMES))}


def encode(source, r):
    head = a_str(r['event_id']) + a_str(r['lead_id']) + zz(r['ts'])
    if source == 'email':
        return (head + zz(ENUM['email'][r['type']]) + a_opt_str(r.get('campaign_id'))
                + a_opt_str(r.get('variant_id')) + a_opt_str(r.get('decision_id'))
                + a_opt_str(r.get('url')))
    if source == 'web':
        return (head + zz(ENUM['web'][r['type']]) + a_str(r['url'])
                + a_opt_str(r.get('page_category')) + a_opt_long(r.get('duration_ms'))
                + a_opt_str(r.get('session_id')))
    if source == 'call':
        return (head + zz(ENUM['dir'][r['direction']]) + zz(ENUM['call'][r['outcome']])
                + zz(r['duration_s']) + a_opt_double(r.get('sentiment')))
    if source == 'outcome':
        return head + zz(ENUM['outcome'][r['outcome']]) + a_opt_double(r.get('value'))
    if source == 'profile':
        return (head + a_map(r['attributes'], a_str)
                + a_map(r['metrics'], lambda v: struct.pack('<d', v)))
    raise ValueError(source)


CATEGORIES = ['pricing', 'product', 'docs', 'blog', 'careers', None]
CAMPAIGNS = ['spring', 'summer', 'webinar', None]
INDUSTRIES = ['saas', 'retail', 'finance', 'health', 'manufacturing']
COUNTRIES = ['US', 'DE', 'FR', 'GB', 'JP', 'BR']


def make_event(rng, i, lead, ts, tag):
    """(source, record): 42 % email, 42 % web, 12 % call, 2 % outcome
    (labels), 2 % profile, as tests/bench_pipeline.c and the simulator."""
    eid = '%s-%d' % (tag, i)
    r = rng.random()
    if r < 0.42:
        t = EMAIL_TYPES[rng.choice((0, 0, 0, 1, 1, 2, 2, 2, 3, 4, 5, 6))]
        rec = {'event_id': eid, 'lead_id': lead, 'ts': ts, 'type': t,
               'campaign_id': rng.choice(CAMPAIGNS)}
        if t == 'CLICKED':
            rec['url'] = 'https://example.com/offer/%d' % rng.randrange(9)
        return 'email', rec
    if r < 0.84:
        x = rng.random()
        t = 'PAGE_VIEW' if x < 0.88 else 'FORM_SUBMIT' if x < 0.94 else \
            'DOWNLOAD' if x < 0.98 else 'DEMO_REQUEST'
        cat = rng.choice(CATEGORIES)
        rec = {'event_id': eid, 'lead_id': lead, 'ts': ts, 'type': t,
               'url': '/%s/%d' % (cat or 'home', rng.randrange(50)),
               'page_category': cat, 'duration_ms': rng.randrange(120000),
               'session_id': 's-%d' % (i // 16)}
        return 'web', rec
    if r < 0.96:
        o = rng.choice(CALL_OUTCOMES)
        rec = {'event_id': eid, 'lead_id': lead, 'ts': ts,
               'direction': rng.choice(CALL_DIRECTIONS), 'outcome': o,
               'duration_s': 0 if o in ('NO_ANSWER', 'BUSY') else rng.randrange(900),
               'sentiment': round(rng.uniform(-1, 1), 3) if o == 'CONNECTED' else None}
        return 'call', rec
    if r < 0.98:
        rec = {'event_id': eid, 'lead_id': lead, 'ts': ts,
               'outcome': rng.choice(OUTCOMES),
               'value': float(rng.randrange(100, 90000)) if rng.random() < 0.5 else None}
        return 'outcome', rec
    rec = {'event_id': eid, 'lead_id': lead, 'ts': ts,
           'attributes': {'industry': rng.choice(INDUSTRIES),
                          'country': rng.choice(COUNTRIES)},
           'metrics': {'employees': float(rng.choice((5, 50, 250, 1200, 9000)))}}
    return 'profile', rec


def lead_name(i):
    return 'lead-%07d' % i


def check_encoder():
    """Our encoder against python3-avro on a sample of every kind."""
    import avro_events
    rng = random.Random(7)
    seen = set()
    for i in range(3000):
        src, rec = make_event(rng, i, lead_name(i), 1700000000000 + i * 7919, 'chk')
        if src in seen and i % 10:
            continue
        seen.add(src)
        want = avro_events.encode(src, rec)
        if encode(src, rec) != want:
            raise SystemExit('bench_process: our Avro encoder disagrees with '
                             'python3-avro on %s %r' % (src, rec))
    if seen != set(SOURCES):
        raise SystemExit('bench_process: encoder check saw only %s' % sorted(seen))

# -------------------------------------------------------------- producing


def gen_times(rng, n, gap_ms, end_ms):
    """n non-decreasing event times, consecutive ones 0..gap_ms apart,
    the last one at end_ms."""
    gaps = [rng.randint(0, gap_ms) for _ in range(n - 1)]
    t = end_ms - sum(gaps)
    out = [t]
    for g in gaps:
        t += g
        out.append(t)
    return out


def producer(bootstrap, compression, linger_ms=50):
    return Producer({'bootstrap.servers': bootstrap, 'linger.ms': linger_ms,
                     'batch.size': 1000000, 'batch.num.messages': 100000,
                     'queue.buffering.max.messages': 2000000,
                     'queue.buffering.max.kbytes': 2097151,
                     'compression.type': compression,
                     'message.timeout.ms': 300000})


class Delivery:
    def __init__(self):
        self.errors = 0
        self.first = None

    def __call__(self, err, msg):
        if err is not None:
            self.errors += 1
            if self.first is None:
                self.first = str(err)


def send(p, dr, topic, key, value, ts):
    while True:
        try:
            p.produce(topic, value, key, timestamp=ts, on_delivery=dr)
            return
        except BufferError:
            p.poll(0.05)


def produce_all(bootstrap, n, leads, gap_ms, seed, compression):
    """Produce the data set; returns its facts (span, bytes per topic)."""
    rng = random.Random(seed)
    end = int(time.time() * 1000) - 2000
    times = gen_times(rng, n, gap_ms, end)
    tag = 'e%x' % seed
    p = producer(bootstrap, compression)
    dr = Delivery()
    nbytes = dict.fromkeys(SOURCES, 0)
    count = dict.fromkeys(SOURCES, 0)
    t0 = time.monotonic()
    for i in range(n):
        lead = lead_name(i if i < leads else rng.randrange(leads))
        src, rec = make_event(rng, i, lead, times[i], tag)
        v = encode(src, rec)
        nbytes[src] += len(v) + len(lead) + 20
        count[src] += 1
        send(p, dr, TOPIC[src], lead.encode(), v, times[i])
        if i % 1000 == 0:
            p.poll(0)
    left = p.flush(300)
    if left or dr.errors:
        raise SystemExit('bench_process: %d records not delivered, %d errors (%s)'
                         % (left, dr.errors, dr.first))
    dt = time.monotonic() - t0
    log('produced %d events over %d leads in %.1f s (%.0f/s), %s, span %.1f h'
        % (n, leads, dt, n / dt, compression, (times[-1] - times[0]) / 3.6e6))
    return {'span_s': (times[-1] - times[0]) / 1000.0, 'bytes': nbytes,
            'count': count, 'produce_s': dt}


def check_retention(bootstrap, partitions, n):
    """Every partition still holds its first record and all N arrived."""
    c = Consumer({'bootstrap.servers': bootstrap, 'group.id': 'bench-wm-' + uuid.uuid4().hex})
    total = 0
    try:
        for t in TOPIC.values():
            for part in range(partitions):
                lo, hi = c.get_watermark_offsets(TopicPartition(t, part), timeout=30)
                if lo != 0:
                    raise SystemExit(
                        'bench_process: %s[%d] lost its oldest records to the mock '
                        "broker's retention (low watermark %d of %d): use fewer events, "
                        'more --partitions or --compression lz4' % (t, part, lo, hi))
                total += hi
    finally:
        c.close()
    if total != n:
        raise SystemExit('bench_process: %d records on the broker, expected %d' % (total, n))


def pick_compression(arg, facts_est, partitions):
    if arg != 'auto':
        return arg
    worst = max(facts_est.values()) / partitions * 1.15
    return 'lz4' if worst > 0.8 * RETENTION_BYTES else 'none'


def estimate_bytes(n, leads, seed):
    """Bytes per topic of the data set, from a sample of 2000 events."""
    rng = random.Random(seed ^ 0x5a5a)
    est = dict.fromkeys(SOURCES, 0)
    m = min(n, 2000)
    for i in range(m):
        lead = lead_name(rng.randrange(leads))
        src, rec = make_event(rng, n - 1 - i, lead, 1700000000000, 'e%x' % seed)
        est[src] += len(encode(src, rec)) + len(lead) + 20
    return {k: v * n / m for k, v in est.items()}

# ---------------------------------------------------------- measurements


def committed(r, key):
    try:
        vals = r.hvals(key)
    except redis.RedisError:
        return None
    return sum(int(v) for v in vals) if vals else 0


def watch_commits(r, key, n, proc_alive, timeout, started):
    """Poll the offsets hash every 20 ms until it sums to n; returns
    {rate, join_s, ...} or raises SystemExit."""
    first = last = None
    deadline = time.monotonic() + timeout
    samples = 0
    while time.monotonic() < deadline:
        s = committed(r, key)
        now = time.monotonic()
        samples += 1
        if s:
            if first is None:
                first = (now, s)
            if last is None or s != last[1]:
                last = (now, s)
            if s >= n:
                break
        if not proc_alive():
            break
        time.sleep(0.02)
    if last is None or last[1] < n:
        raise SystemExit('bench_process: %s reached %s of %d committed offsets'
                         % (key, last[1] if last else 0, n))
    out = {'join_s': first[0] - started, 'first_commit_events': first[1],
           'total_s': last[0] - started}
    if last[0] > first[0]:
        out['rate'] = (last[1] - first[1]) / (last[0] - first[0])
    else:   # everything in one commit: no interval to time
        out['rate'] = None
    return out


def vm_hwm_kib(pid):
    try:
        with open('/proc/%d/status' % pid) as f:
            for line in f:
                if line.startswith('VmHWM:'):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def memory_per_lead(r, key_fmt, leads, base_used, sample=2000, seed=1):
    rng = random.Random(seed)
    ids = rng.sample(range(leads), min(sample, leads))
    p = r.pipeline(transaction=False)
    for i in ids:
        p.memory_usage(key_fmt % lead_name(i), samples=0)
    sizes = sorted(v for v in p.execute() if v is not None)
    used = int(r.info('memory')['used_memory'])
    if not sizes:
        return {'mem_keys_found': 0}

    def pct(q):
        return sizes[min(len(sizes) - 1, int(q * len(sizes)))]
    return {'mem_keys_found': len(sizes), 'mem_keys_sampled': len(ids),
            'mem_median_b': pct(0.5), 'mem_p95_b': pct(0.95),
            'used_memory_b': used, 'used_per_lead_b': (used - base_used) / leads}


def run_raw(args, bootstrap, n):
    d = testenv.Daemon([args.raw, '--bootstrap', bootstrap, '--events', str(n),
                        '--timeout', str(int(args.timeout))], name='bench-raw')
    d.start()
    rc = d.wait(timeout=args.timeout + 60)
    out = dict(line.split('=', 1) for line in d.stdout_lines if '=' in line)
    if rc != 0 or 'messages_per_s' not in out:
        raise SystemExit('bench_process: leadscore-bench-raw failed (rc %s): %s'
                         % (rc, d.tail()))
    log('raw: %s msg/s (join %s s)' % (out['messages_per_s'], out.get('join_s')))
    return {'rate': float(out['messages_per_s']), 'join_s': float(out['join_s'])}


def write_config(path, bootstrap, redis_url, group, port, align_stall, fetch_wait_ms=None):
    lines = ['kafka:', '  brokers: "%s"' % bootstrap, '  group_id: %s' % group]
    if fetch_wait_ms:
        lines += ['  properties:', '    fetch.wait.max.ms: "%d"' % fetch_wait_ms]
    lines += ['redis:', '  url: "%s"' % redis_url, '  key_prefix: "ls:"',
             'http:', '  listen: 127.0.0.1:%d' % port,
             'log:', '  level: warn']
    if align_stall is not None:
        lines += ['pipeline:', '  align_stall: %s' % align_stall]
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')


def start_daemon(args, tmp, bootstrap, rs, group, align_stall, name, fetch_wait_ms=None):
    port = testenv.free_port()
    cfg = os.path.join(tmp, name + '.yaml')
    write_config(cfg, bootstrap, rs.url, group, port, align_stall, fetch_wait_ms)
    d = testenv.Daemon([args.daemon, '--config', cfg], name=name)
    started = time.monotonic()
    d.start()
    return d, started, port


def save_metrics(port, path):
    """The daemon's /metrics at the end of a run, for the curious (dead
    letters, ScoreChanges, batch and Redis histograms)."""
    try:
        text = scrape(port)
    except OSError as e:
        log('could not read /metrics: %s' % e)
        return
    with open(path, 'w') as f:
        f.write(text)


def stop_daemon(d, outdir, name):
    rc = d.terminate(timeout=30)
    with open(os.path.join(outdir, name + '.log'), 'w') as f:
        f.write('\n'.join(d.lines) + '\n')
    return rc


def run_daemon(args, tmp, bootstrap, rs, r, n, leads, align_stall, tag):
    r.flushall()
    base_used = int(r.info('memory')['used_memory'])
    group = 'bench-ls-%s' % tag
    name = 'leadscored-%s' % tag
    d, started, port = start_daemon(args, tmp, bootstrap, rs, group, align_stall, name)
    try:
        res = watch_commits(r, 'ls:offsets:' + group, n, lambda: d.running,
                            args.timeout, started)
        res['rss_kib'] = vm_hwm_kib(d.pid)
        save_metrics(port, os.path.join(args.out, name + '.metrics'))
    finally:
        rc = stop_daemon(d, args.out, name)
    if rc != 0:
        log('leadscored exited with %s (see %s/%s.log)' % (rc, args.out, name))
    res.update(memory_per_lead(r, 'ls:{%s}:s', leads, base_used))
    log('leadscored (align_stall %s): %s ev/s, first commit after %.1f s, '
        'peak RSS %s KiB, Redis per lead median %s B'
        % ('default' if align_stall is None else align_stall, fmt_rate(res['rate']), res['join_s'],
           res['rss_kib'], res.get('mem_median_b')))
    return res


def run_python(args, bootstrap, rs, r, n, leads, tag):
    r.flushall()
    base_used = int(r.info('memory')['used_memory'])
    group = 'bench-py-%s' % tag
    d = testenv.Daemon([sys.executable, os.path.join(ROOT, 'tools', 'bench_baseline.py')],
                       env={'LS_BENCH_BOOTSTRAP': bootstrap, 'LS_BENCH_REDIS_URL': rs.url,
                            'LS_BENCH_EVENTS': n, 'LS_BENCH_GROUP': group,
                            'LS_BENCH_TIMEOUT': int(args.timeout)},
                       name='bench-python')
    started = time.monotonic()
    d.start()
    try:
        res = watch_commits(r, 'py:offsets:' + group, n, lambda: d.running,
                            args.timeout, started)
        rc = d.wait(timeout=60)
    finally:
        if d.running:
            d.terminate()
    if rc != 0:
        raise SystemExit('bench_process: bench_baseline.py failed: %s'
                         % '\n'.join(d.stdout_lines + d.lines[-10:]))
    m = memory_per_lead(r, 'py:{%s}:s', leads, base_used)
    res['py_mem_median_b'] = m.get('mem_median_b')
    log('python: %s ev/s, first commit after %.1f s' % (fmt_rate(res['rate']), res['join_s']))
    return res


def fmt_rate(x):
    return '-' if x is None else '{:,.0f}'.format(x)


class Env:
    """A private redis-server and dev broker for one scenario."""

    def __init__(self, args):
        self.args = args
        self.rs = testenv.RedisServer('unix')
        self.broker = testenv.DevBroker(binary=args.devbroker, partitions=args.partitions)

    def __enter__(self):
        self.rs.start()
        try:
            self.broker.start()
        except BaseException:
            self.rs.cleanup()
            raise
        self.r = self.rs.client()
        return self

    def __exit__(self, *exc):
        try:
            self.r.close()
            self.broker.stop()
        finally:
            self.rs.cleanup()
        return False


def scenario(args, name, n, leads, gap_ms, variants):
    """Produce once, then raw, leadscored per variant, python. variants:
    [(row name, align_stall or None)]. Returns one row per variant."""
    log('=== %s: %d events, %d leads, gaps <= %d ms, %d partitions'
        % (name, n, leads, gap_ms, args.partitions))
    seed = args.seed + leads * 7 + gap_ms
    comp = pick_compression(args.compression, estimate_bytes(n, leads, seed), args.partitions)
    tmp = tempfile.mkdtemp(prefix='lsbench-')
    rows = []
    try:
        with Env(args) as env:
            facts = produce_all(env.broker.bootstrap, n, leads, gap_ms, seed, comp)
            check_retention(env.broker.bootstrap, args.partitions, n)
            raw = run_raw(args, env.broker.bootstrap, n)
            daemons = []
            for vname, align in variants:
                tag = '%s-%s' % (vname, uuid.uuid4().hex[:6])
                daemons.append((vname, align, run_daemon(args, tmp, env.broker.bootstrap,
                                                         env.rs, env.r, n, leads, align, tag)))
            py = run_python(args, env.broker.bootstrap, env.rs, env.r, n, leads,
                            uuid.uuid4().hex[:6])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for vname, align, ls in daemons:
        row = {'scenario': vname, 'events': n, 'leads': leads,
               'partitions': args.partitions, 'gap_ms': gap_ms,
               'align_stall': align if align is not None else 'default',
               'compression': comp, 'span_h': facts['span_s'] / 3600.0,
               'leadscored_ev_s': ls['rate'], 'python_ev_s': py['rate'],
               'raw_msg_s': raw['rate'],
               'ls_over_python': ratio(ls['rate'], py['rate']),
               'ls_over_raw': ratio(ls['rate'], raw['rate']),
               'ls_join_s': ls['join_s'], 'python_join_s': py['join_s'],
               'raw_join_s': raw['join_s'], 'rss_mib': (ls['rss_kib'] or 0) / 1024.0,
               'mem_median_b': ls.get('mem_median_b'), 'mem_p95_b': ls.get('mem_p95_b'),
               'used_per_lead_b': ls.get('used_per_lead_b'),
               'mem_keys_found': ls.get('mem_keys_found'),
               'python_mem_median_b': py.get('py_mem_median_b')}
        rows.append(row)
    return rows


def ratio(a, b):
    return a / b if a and b else None

# --------------------------------------------------------------- latency


def scrape(port):
    with urllib.request.urlopen('http://127.0.0.1:%d/metrics' % port, timeout=10) as f:
        return f.read().decode('utf-8', 'replace')


_BUCKET = re.compile(r'^([A-Za-z_:][A-Za-z0-9_:]*)_bucket\{(.*)\}\s+(\S+)')
_LE = re.compile(r'(?:^|,)\s*le="([^"]*)"')


def histogram(text, name):
    """{le (float): cumulative count} of the histogram `name`, summed over
    its other labels; None when the metric is absent."""
    out = {}
    for line in text.splitlines():
        m = _BUCKET.match(line)
        if not m or m.group(1) != name:
            continue
        le = _LE.search(m.group(2))
        if not le:
            continue
        b = float('inf') if le.group(1) in ('+Inf', 'Inf') else float(le.group(1))
        out[b] = out.get(b, 0.0) + float(m.group(3))
    return out or None


def quantile(before, after, q):
    """q-quantile of the observations between two snapshots of a histogram,
    linearly interpolated inside its bucket. Returns (value, open): open
    is True when it falls in the +Inf bucket (value = its lower bound)."""
    les = sorted(after)
    cum = [after[b] - (before or {}).get(b, 0.0) for b in les]
    total = cum[-1] if cum else 0
    if total <= 0:
        return None, False
    rank = q * total
    prev_b, prev_c = 0.0, 0.0
    for b, c in zip(les, cum):
        if c >= rank:
            if b == float('inf'):
                return prev_b, True
            if c == prev_c:
                return b, False
            return prev_b + (b - prev_b) * (rank - prev_c) / (c - prev_c), False
        prev_b, prev_c = b, c
    return prev_b, True


def fmt_q(v):
    val, open_ = v
    if val is None:
        return '-'
    return ('>%.3f s' if open_ else '%.4f s') % val


def paced_produce(p, dr, rng, rate, seconds, leads, counter, tag):
    """Produce at `rate` events/s for `seconds`, event time = now."""
    t0 = time.monotonic()
    sent = 0
    while True:
        el = time.monotonic() - t0
        if el >= seconds:
            break
        due = int(rate * el) - sent
        if due <= 0:
            time.sleep(0.002)
            continue
        now = int(time.time() * 1000)
        for _ in range(min(due, 5000)):
            i = counter[0]
            counter[0] += 1
            lead = lead_name(rng.randrange(leads))
            src, rec = make_event(rng, i, lead, now, tag)
            send(p, dr, TOPIC[src], lead.encode(), encode(src, rec), now)
            sent += 1
        p.poll(0)
    return sent / (time.monotonic() - t0)


def run_latency(args, max_rate):
    leads = args.leads
    fractions = [float(x) / 100 for x in args.loads.split(',')]
    log('=== latency: max live rate %.0f ev/s; paced at %s; producer linger.ms %d; '
        'daemon fetch.wait.max.ms %s' % (max_rate, ', '.join('%d %%' % (f * 100) for f in fractions),
                                         args.linger_ms, args.fetch_wait_ms or 'default'))
    rows = []
    tmp = tempfile.mkdtemp(prefix='lsbench-')
    try:
        with Env(args) as env:
            tag = uuid.uuid4().hex[:6]
            group = 'bench-lat-' + tag
            d, started, port = start_daemon(args, tmp, env.broker.bootstrap, env.rs,
                                            group, None, 'leadscored-latency',
                                            args.fetch_wait_ms)
            try:
                p = producer(env.broker.bootstrap, 'none', linger_ms=args.linger_ms)
                dr = Delivery()
                rng = random.Random(args.seed)
                counter = [0]
                key = 'ls:offsets:' + group
                # prime: the daemon joins and commits once before timing
                paced_produce(p, dr, rng, 1000, 1.0, leads, counter, 'lat' + tag)
                p.flush(30)
                watch_commits(env.r, key, counter[0], lambda: d.running, 120, started)
                for f in fractions:
                    rate = f * max_rate
                    paced_produce(p, dr, rng, rate, args.warmup, leads, counter, 'lat' + tag)
                    before = scrape(port)
                    got = paced_produce(p, dr, rng, rate, args.measure, leads, counter,
                                        'lat' + tag)
                    p.flush(60)
                    t_end = time.monotonic()
                    lag = counter[0] - (committed(env.r, key) or 0)
                    watch_commits(env.r, key, counter[0], lambda: d.running, 300, started)
                    catchup = time.monotonic() - t_end
                    after = scrape(port)
                    row = {'fraction': f, 'target_ev_s': rate, 'produced_ev_s': got,
                           'uncommitted_at_end': lag, 'catchup_s': catchup}
                    log('%d %%: %d events not yet committed when production stopped, '
                        'all committed %.1f s later' % (f * 100, lag, catchup))
                    for m in LATENCY_METRICS:
                        hb, ha = histogram(before, m), histogram(after, m)
                        if ha is None:
                            row[m] = 'metric not present'
                            log('%d %%: %s: metric not present' % (f * 100, m))
                            continue
                        p50, p99 = quantile(hb, ha, 0.5), quantile(hb, ha, 0.99)
                        row[m + '_p50'] = fmt_q(p50)
                        row[m + '_p99'] = fmt_q(p99)
                        row[m + '_n'] = (ha.get(float('inf'), 0)
                                         - (hb or {}).get(float('inf'), 0))
                        log('%d %% (%.0f ev/s, produced %.0f): %s p50 %s p99 %s (n=%d)'
                            % (f * 100, rate, got, m, fmt_q(p50), fmt_q(p99),
                               row[m + '_n']))
                    rows.append(row)
                if dr.errors:
                    log('latency: %d delivery errors (%s)' % (dr.errors, dr.first))
                p.flush(10)
                del p
            finally:
                stop_daemon(d, args.out, 'leadscored-latency')
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows

# ---------------------------------------------------------------- output


COLUMNS = ['scenario', 'events', 'leads', 'partitions', 'gap_ms', 'align_stall',
           'compression', 'span_h', 'leadscored_ev_s', 'python_ev_s', 'raw_msg_s',
           'ls_over_python', 'ls_over_raw', 'ls_join_s', 'python_join_s', 'raw_join_s',
           'rss_mib', 'mem_median_b', 'mem_p95_b', 'used_per_lead_b', 'mem_keys_found',
           'python_mem_median_b']


def print_table(rows):
    print('| run | events | leads | event-time span | leadscored ev/s | Python ev/s | '
          'raw msg/s | leadscored/Python | leadscored/raw | join s (ls/py/raw) |')
    print('|---|---|---|---|---|---|---|---|---|---|')
    for r in rows:
        span = ('%.1f h' % r['span_h']) if r['span_h'] < 48 else ('%.1f d' % (r['span_h'] / 24))
        print('| %s | %s | %s | %s | %s | %s | %s | %s | %s | %.1f / %.1f / %.1f |' % (
            r['scenario'], '{:,}'.format(r['events']), '{:,}'.format(r['leads']), span,
            fmt_rate(r['leadscored_ev_s']), fmt_rate(r['python_ev_s']),
            fmt_rate(r['raw_msg_s']), fmtx(r['ls_over_python']), fmtx(r['ls_over_raw']),
            r['ls_join_s'], r['python_join_s'], r['raw_join_s']))
    print()
    print('| run | leads | Redis MEMORY USAGE per lead median / p95 | used_memory / leads | '
          'leadscored peak RSS | Python state median |')
    print('|---|---|---|---|---|---|')
    for r in rows:
        print('| %s | %s | %s B / %s B | %.0f B | %.1f MiB | %s B |' % (
            r['scenario'], '{:,}'.format(r['leads']), r['mem_median_b'], r['mem_p95_b'],
            r['used_per_lead_b'] or 0, r['rss_mib'], r['python_mem_median_b']))


def fmtx(x):
    return '-' if x is None else '%.2f×' % x


def write_outputs(args, rows, lat):
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, 'results.json'), 'w') as f:
        json.dump({'rows': rows, 'latency': lat, 'argv': sys.argv,
                   'time': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}, f, indent=1)
    if rows:
        with open(os.path.join(args.out, 'results.csv'), 'w', newline='') as f:
            w = csv.DictWriter(f, COLUMNS)
            w.writeheader()
            for r in rows:
                w.writerow({k: r.get(k) for k in COLUMNS})
        plot(args, rows)
    if lat:
        keys = sorted({k for r in lat for k in r})
        with open(os.path.join(args.out, 'latency.csv'), 'w', newline='') as f:
            w = csv.DictWriter(f, keys)
            w.writeheader()
            for r in lat:
                w.writerow(r)


def plot(args, rows):
    """bench_process.png: events/s against leads (sweep) and against the
    event-time span (every run), for leadscored, Python and raw."""
    gp = shutil.which('gnuplot')
    if gp is None:
        log('gnuplot not found (apt-get install gnuplot-nox): no plot')
        return
    dat = os.path.join(args.out, 'plot.dat')
    with open(dat, 'w') as f:
        f.write('# leads span_h leadscored python raw sweep scenario\n')
        for r in rows:
            f.write('%d %.4f %s %s %s %d "%s"\n' % (
                r['leads'], r['span_h'], r['leadscored_ev_s'] or 'NaN',
                r['python_ev_s'] or 'NaN', r['raw_msg_s'] or 'NaN',
                1 if r['scenario'].startswith('sweep') else 0, r['scenario']))
    png = os.path.join(args.out, 'bench_process.png')
    sweep = int(any(r['scenario'].startswith('sweep') for r in rows))
    subprocess.run([gp, '-e', "datafile='%s'; outfile='%s'; hassweep=%d" % (dat, png, sweep),
                    os.path.join(ROOT, 'tools', 'bench_process.gp')], check=False)
    if os.path.exists(png):
        log('plot: %s' % png)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--mode', default='live',
                    choices=['live', 'backlog', 'backlog-noalign', 'sweep', 'latency', 'all'])
    ap.add_argument('--build', default='build', help='meson build dir (default build)')
    ap.add_argument('--daemon', help='leadscored binary (default BUILD/daemon/leadscored)')
    ap.add_argument('--devbroker', help='default BUILD/tools/leadscore-devbroker')
    ap.add_argument('--raw', help='default BUILD/tools/leadscore-bench-raw')
    ap.add_argument('--events', type=int, default=200000)
    ap.add_argument('--leads', type=int, default=20000)
    ap.add_argument('--partitions', type=int, default=8)
    ap.add_argument('--sweep-leads', default='20000,200000,1000000')
    ap.add_argument('--compression', default='auto', choices=['auto', 'none', 'lz4'],
                    help='producer compression; auto: lz4 only when a partition '
                         'would come near the mock broker\'s 5 MiB retention')
    ap.add_argument('--max-rate', type=float,
                    help='latency mode: the max live rate (default: measure it)')
    ap.add_argument('--loads', default='10,50,90',
                    help='latency mode: percentages of the max live rate')
    ap.add_argument('--linger-ms', type=int, default=20,
                    help='latency mode: producer linger.ms. The mock broker answers a '
                         'fetch with one message set per partition, so sets of one or '
                         'two records (linger.ms 1 at these rates) cap any consumer '
                         'near 6k msg/s; 20 ms keeps the sets big enough, and counts '
                         'in the record-timestamp latency only')
    ap.add_argument('--fetch-wait-ms', type=int, default=10,
                    help="latency mode: the daemon's kafka.properties fetch.wait.max.ms "
                         '(0: librdkafka\'s default, 500). The mock broker holds an '
                         'empty fetch for the whole wait instead of answering when data '
                         'arrives, as Kafka does: with 500 a caught-up plain consumer '
                         'saw produce-to-consume p50 285 ms, p99 1.05 s; with 10, '
                         '6.5 / 11.5 ms')
    ap.add_argument('--warmup', type=float, default=3.0, help='latency warm-up s per rate')
    ap.add_argument('--measure', type=float, default=15.0, help='latency measure s per rate')
    ap.add_argument('--timeout', type=float, default=900.0, help='per contestant, s')
    ap.add_argument('--seed', type=int, default=14)
    ap.add_argument('--out', default='/tmp/lsbench')
    args = ap.parse_args()
    args.daemon = args.daemon or os.path.join(args.build, 'daemon', 'leadscored')
    args.devbroker = args.devbroker or os.path.join(args.build, 'tools', 'leadscore-devbroker')
    args.raw = args.raw or os.path.join(args.build, 'tools', 'leadscore-bench-raw')
    for b in (args.daemon, args.devbroker, args.raw):
        if not os.access(b, os.X_OK):
            ap.error('%s is not an executable (build it, or see --build)' % b)
    os.makedirs(args.out, exist_ok=True)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    check_encoder()

    rows, lat = [], []
    mode = args.mode
    try:
        if mode in ('live', 'all') or (mode == 'latency' and args.max_rate is None):
            rows += scenario(args, 'live', args.events, args.leads, LIVE_GAP_MS,
                             [('live', None)])
        if mode in ('backlog', 'all'):
            rows += scenario(args, 'backlog', args.events, args.leads, BACKLOG_GAP_MS,
                             [('backlog', None), ('backlog-noalign', 0)])
        if mode == 'backlog-noalign':
            rows += scenario(args, 'backlog-noalign', args.events, args.leads,
                             BACKLOG_GAP_MS, [('backlog-noalign', 0)])
        if mode in ('sweep', 'all'):
            for leads in (int(x) for x in args.sweep_leads.split(',')):
                name = 'sweep-%dk' % (leads // 1000)
                rows += scenario(args, name, max(args.events, leads), leads,
                                 LIVE_GAP_MS, [(name, None)])
        if mode in ('latency', 'all'):
            max_rate = args.max_rate or next(r['leadscored_ev_s'] for r in rows
                                             if r['scenario'] == 'live')
            lat = run_latency(args, max_rate)
    finally:
        if rows or lat:
            write_outputs(args, rows, lat)
    if rows:
        print_table(rows)
    if lat:
        print()
        print('| load | target ev/s | produced ev/s | uncommitted at end / catch-up s | '
              'read→score p50 / p99 | record ts→score p50 / p99 | event ts→score p50 / p99 |')
        print('|---|---|---|---|---|---|---|')
        for r in lat:
            cells = []
            for m in LATENCY_METRICS:
                if m in r:
                    cells.append(r[m])
                else:
                    cells.append('%s / %s' % (r[m + '_p50'], r[m + '_p99']))
            print('| %d %% | %.0f | %.0f | %d / %.1f | %s |' % (
                r['fraction'] * 100, r['target_ev_s'], r['produced_ev_s'],
                r['uncommitted_at_end'], r['catchup_s'], ' | '.join(cells)))
    print('\nresults: %s' % args.out)
    return 0


if __name__ == '__main__':
    sys.exit(main())
