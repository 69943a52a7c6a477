#!/usr/bin/python3
"""Model-quality benchmark: the online model against an offline baseline.

    /usr/bin/python3 tools/model_baseline.py --build build \
        [--leads N] [--days D] [--seed S] [--start MS] [--no-daemon] \
        [--nonlinear] [--quantiles N] [--bucket-features all|NAME,...]

A benchmark, not a test: it prints figures for BENCHMARKS.md and exits 0
(1 only when the setup itself fails: no binaries, the simulator fails,
events are lost to the dev broker's retention).

What it does:
  1. Starts a private redis-server and the dev broker (tests/integration/
     testenv.py), and unless --no-daemon, leadscored with the built-in
     `conversion` model on both. Then runs leadscore-sim into the broker
     with --truth (default topics leads.*).
  2. Reads the five input topics back from the beginning, decodes them with
     the Apache Avro library (avro_events) and replays each labelled lead's
     events in event-time order into features_ref.LeadRef, the independent
     Python reading of the feature contract. At the lead's first outcome
     that is a label (CONVERTED/WON positive, LOST/DISQUALIFIED negative,
     as the default model) it snapshots the features at the outcome's ts
     without applying it: the daemon's training example. Inputs as in
     models/ls_ftrl.h: every numeric t = sign(v) log1p(|v|); the 55 window
     values and the configured metrics (employees, annual_revenue) are
     standardised (StandardScaler fitted on the training part) and clipped
     to +-5; other metrics enter as clip(t); profile attributes one-hot
     (key=value); the default model's crosses industry x size_band and
     industry x role when both keys have a value (see the summary line
     "crosses in examples").
  3. Labelled leads sorted by label_ts; the first half trains, the second
     half evaluates. Offline baseline: scikit-learn LogisticRegression
     (lbfgs, L2), C from a small grid by 5-fold stratified cross-validation
     on the training half only (scaler refitted inside every fold), refitted
     on the whole training half. Also "offline LR, refit per fifth": the
     test half cut into five blocks in label order, each scored by a model
     fitted on every label before the block (an offline stand-in for
     progressive validation). The hidden model's p_hidden from the truth
     file is the ceiling. These are the "linear (today's map)" rows: one
     log1p term per number, as the daemon's zero-initialised maps.
     Bucketed rows (unless --quantiles < 2): the same examples with, for
     each numeric feature of --bucket-features ('all', or names as in the
     dense inputs, e.g. page_views_30d,pricing_views_7d), the one-hot
     column of its quantile bucket added beside its log1p term: edges = the
     distinct interior N-quantiles of the raw value over the training half
     (so a mostly-zero count gets few buckets; a value on an edge goes
     up; buckets named as explanations will, 'x in [3, 6)'), then the same
     C grid, CV and refits as the linear rows. The edges use no labels, so
     computing them once on the whole training half leaks nothing into the
     CV folds. --nonlinear is passed to leadscore-sim (its hidden model
     then has an inverted U in page views and a pricing threshold, which
     a log1p term cannot follow).
  4. Online model: from leads.scores (ScoreChange) the last record of model
     `conversion` with ts < the label's ts (highest version among those) is
     the online prediction - the score the daemon had published when the
     label arrived, as models/ls_eval.h judges it. Leads without one are
     counted (coverage) and left out; the hidden model and the offline LR
     are reported again on exactly the covered leads.
  5. Prints a Markdown table (AUC, log-loss, ECE as defined in
     models/ls_eval.h: Mann-Whitney AUC with ties one half; log-loss with p
     clamped to [1e-15, 1-1e-15]; ECE over 10 equal-width bins, the last
     closed) and the command line that reproduces it (with the resolved
     --start, so the stream is the same bytes).

The dev broker keeps only about 5 MiB per partition; the topics are created
with --partitions (default 8) partitions, so the default 2,000 leads x 30
days (about 0.8 MiB of web events per partition) fits with a wide margin,
and truncation is detected (a partition whose low watermark is not 0) and
reported as an error rather than silently skewing the figures.

Run with Debian's /usr/bin/python3 (confluent_kafka, avro, redis, yaml)
after `apt-get install python3-sklearn`.
"""
import argparse
import collections
import math
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'integration'))

import avro_events  # noqa: E402
import features_ref  # noqa: E402
import testenv  # noqa: E402

INPUTS = ('email', 'web', 'call', 'outcome', 'profile')
SCORES_TOPIC = 'leads.scores'
MODEL = 'conversion'
POSITIVE = ('CONVERTED', 'WON')
NEGATIVE = ('LOST', 'DISQUALIFIED')
METRICS = ('employees', 'annual_revenue')      # default model: dense metrics
CROSSES = (('industry', 'size_band'), ('industry', 'role'))  # default model
CLIP = 5.0
C_GRID = (0.001, 0.01, 0.1, 1.0, 10.0, 100.0)
GROUP = 'model-baseline'
PREFIX = 'ls:'
MS_HOUR = features_ref.MS_HOUR
MS_DAY = features_ref.MS_DAY
SIM_SUMMARY = re.compile(r'^events=(\d+) bytes=(\d+) decided=(\d+) '
                         r'positives=(\d+) hash=([0-9a-f]{16})$')
SIM_TOTALS = re.compile(r'msg="topic totals" topic=(\S+) events=(\d+) '
                        r'bytes=(\d+)')


def log(msg):
    sys.stderr.write('model_baseline: %s\n' % msg)
    sys.stderr.flush()


# ------------------------------------------------------------ metrics
# As models/ls_eval.h defines them.

def auc(p, y):
    """Mann-Whitney AUC, ties one half; NaN without both labels."""
    import numpy as np
    p = np.asarray(p, dtype=float)
    y = np.asarray(y, dtype=int)
    pos = int(y.sum())
    neg = len(y) - pos
    if pos == 0 or neg == 0:
        return float('nan')
    order = np.argsort(p, kind='mergesort')
    ps = p[order]
    ranks = np.empty(len(p))
    i = 0
    n = len(ps)
    while i < n:
        j = i
        while j < n and ps[j] == ps[i]:
            j += 1
        ranks[order[i:j]] = (i + 1 + j) / 2.0
        i = j
    return float((ranks[y == 1].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


def log_loss(p, y):
    import numpy as np
    p = np.asarray(p, dtype=float)
    y = np.asarray(y, dtype=int)
    if len(p) == 0:
        return float('nan')
    q = np.where(y == 1, p, 1.0 - p)
    q = np.clip(q, 1e-15, 1.0 - 1e-15)
    return float(-np.log(q).mean())


def ece(p, y):
    import numpy as np
    p = np.asarray(p, dtype=float)
    y = np.asarray(y, dtype=float)
    if len(p) == 0:
        return float('nan')
    edges = np.array([k / 10.0 for k in range(1, 10)])
    b = np.searchsorted(edges, p, side='right')   # p == edge: upper bin
    total = 0.0
    for k in range(10):
        m = b == k
        nk = int(m.sum())
        if nk:
            total += nk / len(p) * abs(p[m].mean() - y[m].mean())
    return float(total)


# ------------------------------------------------------------ simulator

def run_simulator(sim, brokers, args, truth_path):
    argv = [sim, '--leads', args.leads, '--days', args.days,
            '--seed', args.seed, '--start', args.start, '--truth', truth_path]
    if args.nonlinear:
        argv.append('--nonlinear')
    if brokers is None:
        argv.append('--dry-run')
    else:
        argv += ['--brokers', brokers]
        if args.rate:
            argv += ['--rate', args.rate]
    argv = [str(a) for a in argv]
    t0 = time.monotonic()
    r = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        raise RuntimeError('leadscore-sim exited %d:\n%s'
                           % (r.returncode, r.stderr[-3000:]))
    lines = r.stdout.strip().splitlines()
    m = SIM_SUMMARY.match(lines[-1]) if lines else None
    if m is None:
        raise RuntimeError('leadscore-sim printed no summary: %r' % r.stdout)
    summary = {'events': int(m.group(1)), 'bytes': int(m.group(2)),
               'decided': int(m.group(3)), 'positives': int(m.group(4)),
               'hash': m.group(5), 'seconds': time.monotonic() - t0}
    totals = {t: (int(n), int(b)) for t, n, b in SIM_TOTALS.findall(r.stderr)}
    return summary, totals


def read_truth(path):
    out = {}
    with open(path, encoding='utf-8') as f:
        header = f.readline().rstrip('\n').split('\t')
        for line in f:
            row = dict(zip(header, line.rstrip('\n').split('\t')))
            out[row['lead_id']] = {'label': int(row['label']),
                                   'p_hidden': float(row['p_hidden']),
                                   'label_ts': int(row['label_ts']),
                                   'outcome': row.get('outcome')}
    return out


# ------------------------------------------------------------ Kafka

def read_topics(bootstrap, topics, want=None, timeout=120.0):
    """Every message of topics from offset 0 to the current high watermark,
    as [(topic, partition, offset, key, value)] in per-partition order.
    want(key) -> bool keeps only some (the others are only counted).
    Returns (messages, counted_per_topic, truncated [(topic, part, low)])."""
    from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING
    c = Consumer({'bootstrap.servers': bootstrap,
                  'group.id': 'model-baseline-%s' % uuid.uuid4().hex,
                  'enable.auto.commit': False,
                  'auto.offset.reset': 'earliest',
                  'fetch.max.bytes': 52428800})
    out, counted, truncated = [], collections.Counter(), []
    try:
        md = c.list_topics(timeout=20)
        ends, assign = {}, []
        for t in topics:
            if t not in md.topics:
                continue
            for p in md.topics[t].partitions:
                tp = TopicPartition(t, p)
                low, high = c.get_watermark_offsets(tp, timeout=20)
                if low > 0:
                    truncated.append((t, p, low))
                if high > low:
                    ends[(t, p)] = high
                    assign.append(TopicPartition(t, p, OFFSET_BEGINNING))
        if not assign:
            return out, counted, truncated
        c.assign(assign)
        left = dict(ends)
        deadline = time.monotonic() + timeout
        while left and time.monotonic() < deadline:
            for m in c.consume(10000, 0.5):
                if m.error():
                    continue
                tp = (m.topic(), m.partition())
                if tp not in left:
                    continue
                counted[m.topic()] += 1
                key = m.key().decode('utf-8') if m.key() is not None else None
                if want is None or want(key):
                    out.append((m.topic(), m.partition(), m.offset(), key,
                                m.value()))
                if m.offset() + 1 >= left[tp]:
                    del left[tp]
        if left:
            raise TimeoutError('did not reach the end of %s within %.0f s'
                               % (sorted(left), timeout))
    finally:
        c.close()
    return out, counted, truncated


def high_watermarks(bootstrap, topics):
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({'bootstrap.servers': bootstrap,
                  'group.id': 'model-baseline-%s' % uuid.uuid4().hex})
    try:
        md = c.list_topics(timeout=20)
        out = {}
        for t in topics:
            for p in (md.topics[t].partitions if t in md.topics else ()):
                out[(t, p)] = c.get_watermark_offsets(TopicPartition(t, p),
                                                      timeout=20)[1]
        return out
    finally:
        c.close()


# ------------------------------------------------------------ daemon

def write_config(path, brokers, redis_url, extra=None):
    lines = [
        'kafka:',
        '  brokers: "%s"' % brokers,
        '  group_id: %s' % GROUP,
        '  properties:',
        '    session.timeout.ms: "3000"',
        '    heartbeat.interval.ms: "300"',
        'redis:',
        '  url: "%s"' % redis_url,
        '  key_prefix: "%s"' % PREFIX,
        'http:',
        '  listen: 127.0.0.1:0',
        'log:',
        '  level: info',
    ]
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
        if extra:
            with open(extra) as e:
                f.write(e.read())


def wait_daemon_caught_up(daemon, redis_client, ends, timeout):
    """Until the daemon's offsets hash in Redis reaches ends; returns
    (ok, reason)."""
    key = '%soffsets:%s' % (PREFIX, GROUP)
    deadline = time.monotonic() + timeout
    got = {}
    while True:
        if not daemon.running:
            return False, 'leadscored exited with %s' % daemon.returncode
        try:
            raw = redis_client.hgetall(key)
            got = {}
            for k, v in raw.items():
                t, p = k.decode().rsplit(':', 1)
                got[(t, int(p))] = int(v)
        except Exception as e:   # keep waiting
            got = {'error': str(e)}
        if all(got.get(tp, -1) >= off for tp, off in ends.items()):
            return True, ''
        if time.monotonic() > deadline:
            behind = sum(max(0, off - got.get(tp, 0))
                         for tp, off in ends.items()
                         if isinstance(got.get(tp, 0), int))
            return False, ('stored offsets did not reach the end within '
                           '%.0f s (%d events behind)' % (timeout, behind))
        time.sleep(0.1)


def read_scores(bootstrap, quiet=3.0, timeout=60.0):
    """ScoreChange records of leads.scores, read until its high watermarks
    stop moving for `quiet` seconds. Returns (records, undecodable,
    truncated)."""
    deadline = time.monotonic() + timeout
    prev = None
    stable_since = time.monotonic()
    while time.monotonic() < deadline:
        hw = high_watermarks(bootstrap, [SCORES_TOPIC])
        if hw != prev:
            prev, stable_since = hw, time.monotonic()
        elif time.monotonic() - stable_since >= quiet:
            break
        time.sleep(0.5)
    msgs, _, truncated = read_topics(bootstrap, [SCORES_TOPIC])
    recs, bad = [], 0
    for _, _, _, _, value in msgs:
        try:
            recs.append(avro_events.decode('score_change', value))
        except Exception:
            bad += 1
    return recs, bad, truncated


def http_get(port, path, timeout=5.0):
    import urllib.request
    with urllib.request.urlopen('http://127.0.0.1:%d%s' % (port, path),
                                timeout=timeout) as r:
        return r.read().decode('utf-8')


def daemon_eval(port, n_labels, timeout):
    """The daemon's own progressive validation of MODEL: GET
    /v1/models/MODEL once it counts n_labels labels (or at timeout: the
    model is checkpointed every checkpoint_interval, so it may lag), and
    leadscore_model_auc from /metrics. Returns a dict, or None with a log
    line when the endpoint cannot be read."""
    import json
    deadline = time.monotonic() + timeout
    m = None
    while True:
        try:
            m = json.loads(http_get(port, '/v1/models/' + MODEL))
        except Exception as e:   # keep polling until the deadline
            m = {'error': str(e)}
        if m.get('positives', 0) + m.get('negatives', 0) >= n_labels or \
                time.monotonic() > deadline:
            break
        time.sleep(0.5)
    if 'error' in m:
        log('GET /v1/models/%s failed: %s' % (MODEL, m['error']))
        return None
    try:
        text = http_get(port, '/metrics')
        g = re.search(r'(?m)^leadscore_model_auc\{model="%s"\} (\S+)$'
                      % re.escape(MODEL), text)
        m['metric_auc'] = float(g.group(1)) if g else None
    except Exception as e:
        log('GET /metrics failed: %s' % e)
        m['metric_auc'] = None
    return m


# ------------------------------------------------------------ examples

def tlog(v):
    v = float(v)
    if not math.isfinite(v):
        return 0.0
    return math.copysign(math.log1p(abs(v)), v) if v != 0 else 0.0


def build_examples(msgs, truth, fset):
    """One training example per labelled lead: (lead, label, label_ts,
    dense t values, other {name: value}) plus statistics."""
    by_lead = collections.defaultdict(list)
    bad = 0
    seq = 0
    for topic, _, _, key, value in msgs:
        kind = topic[len('leads.'):]
        try:
            rec = avro_events.decode(kind, value)
        except Exception:
            bad += 1
            continue
        rec['source'] = kind
        seq += 1
        # event time, then outcomes after other events at the same ms
        by_lead[rec['lead_id']].append(
            (rec['ts'], 1 if kind == 'outcome' else 0, seq, rec))
    stats = collections.Counter(undecodable=bad)
    dense_names = fset.value_names() + list(METRICS)
    examples = []
    for lead, evs in by_lead.items():
        evs.sort(key=lambda e: e[:3])
        ref = features_ref.LeadRef(fset)   # daemon defaults: grace 30d, ...
        label_ev = None
        for _, _, _, ev in evs:
            if ev['source'] == 'outcome' and ev['outcome'] in POSITIVE + NEGATIVE:
                label_ev = ev
                break
            ref.apply(ev)
        if label_ev is None:
            stats['no_label_event'] += 1
            continue
        t = truth.get(lead)
        y = 1 if label_ev['outcome'] in POSITIVE else 0
        if t is None:
            stats['label_not_in_truth'] += 1
            continue
        if t['label'] != y or t['label_ts'] != label_ev['ts']:
            stats['truth_mismatch'] += 1
        T = label_ev['ts']
        feats = ref.features(T)
        raw = [float(feats[n]) for n in fset.value_names()]
        raw += [float(ref.metrics.get(m, 0.0)) for m in METRICS]
        dense = [tlog(v) for v in raw]
        other = {}
        cats = dict(ref.attributes)
        # the triggering event's page_category (an outcome has none)
        if label_ev['source'] == 'web' and label_ev.get('page_category'):
            cats['page_category'] = label_ev['page_category']
        for k, v in cats.items():
            if v:
                other['%s=%s' % (k, v)] = 1.0
        for a, b in CROSSES:
            if cats.get(a) and cats.get(b):
                other['%s=%s\u00d7%s=%s' % (a, cats[a], b, cats[b])] = 1.0
                stats['crosses'] += 1
        for k, v in ref.metrics.items():
            if k not in METRICS:
                other[k] = max(-CLIP, min(CLIP, tlog(v)))
        stats['too_late'] += ref.n_too_late
        stats['duplicates'] += ref.n_duplicates
        examples.append({'lead': lead, 'y': y, 'ts': T, 'dense': dense,
                         'raw': raw, 'other': other,
                         'p_hidden': t['p_hidden']})
    stats['missing_leads'] = sum(1 for lead in truth if lead not in by_lead)
    return examples, dense_names, stats


# ------------------------------------------------------------ buckets

def quantile_edges(values, n):
    """The distinct interior n-quantiles of values (lower interpolation,
    so every edge is a value that occurs): at most n - 1 edges, fewer when
    values repeat (a count that is mostly 0 gets few buckets)."""
    import numpy as np
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if len(v) == 0 or n < 2:
        return []
    qs = np.quantile(v, [k / n for k in range(1, n)], method='lower')
    edges = sorted(set(float(q) for q in qs))
    # an edge at the minimum would leave its lower bucket empty
    return [e for e in edges if e > v.min()]


def fmt_edge(x):
    return ('%d' % x) if float(x).is_integer() else ('%.3g' % x)


def bucket_name(name, edges, i):
    """As the issue's explanations name them: 'pricing_views_7d in [3, 6)'."""
    lo = '-inf' if i == 0 else fmt_edge(edges[i - 1])
    hi = 'inf' if i == len(edges) else fmt_edge(edges[i])
    return '%s in [%s, %s)' % (name, lo, hi)


def bucket_edges(train, dense_names, n, which):
    """{column index: edges} from the raw values of the training examples,
    for the named dense features (which = None: all of them)."""
    out = {}
    for j, name in enumerate(dense_names):
        if which is not None and name not in which:
            continue
        edges = quantile_edges([e['raw'][j] for e in train], n)
        if edges:
            out[j] = edges
    return out


def with_buckets(examples, dense_names, edges):
    """Copies of examples with one one-hot bucket column per bucketed
    feature beside everything they had (the log1p linear term stays)."""
    import bisect
    out = []
    for e in examples:
        other = dict(e['other'])
        for j, ed in edges.items():
            i = bisect.bisect_right(ed, e['raw'][j])   # v == edge: upper
            other[bucket_name(dense_names[j], ed, i)] = 1.0
        out.append(dict(e, other=other))
    return out


# ------------------------------------------------------------ offline LR

def make_pipeline(n_dense, C):
    import numpy as np
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer, StandardScaler
    dense = Pipeline([
        ('scale', StandardScaler()),
        ('clip', FunctionTransformer(np.clip,
                                     kw_args={'a_min': -CLIP, 'a_max': CLIP})),
    ])
    cols = ColumnTransformer([('dense', dense, list(range(n_dense)))],
                             remainder='passthrough')
    return Pipeline([('cols', cols),
                     ('lr', LogisticRegression(C=C, solver='lbfgs',
                                               max_iter=5000))])


def matrix(examples, vocab):
    import numpy as np
    n_dense = len(examples[0]['dense']) if examples else 0
    X = np.zeros((len(examples), n_dense + len(vocab)))
    for i, ex in enumerate(examples):
        X[i, :n_dense] = ex['dense']
        for k, v in ex['other'].items():
            j = vocab.get(k)
            if j is not None:
                X[i, n_dense + j] = v
    y = np.array([ex['y'] for ex in examples], dtype=int)
    return X, y


def vocabulary(examples):
    names = sorted({k for ex in examples for k in ex['other']})
    return {k: i for i, k in enumerate(names)}


def fit_offline(train, n_dense):
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    vocab = vocabulary(train)
    X, y = matrix(train, vocab)
    folds = min(5, int(y.sum()), int(len(y) - y.sum()))
    if folds < 2:
        raise RuntimeError('too few labels of one class to cross-validate')
    gs = GridSearchCV(make_pipeline(n_dense, 1.0), {'lr__C': list(C_GRID)},
                      cv=StratifiedKFold(folds, shuffle=True, random_state=0),
                      scoring='neg_log_loss', n_jobs=1, refit=True)
    gs.fit(X, y)
    cv = {p['lr__C']: -s for p, s in zip(gs.cv_results_['params'],
                                         gs.cv_results_['mean_test_score'])}
    return gs.best_estimator_, vocab, gs.best_params_['lr__C'], cv


def predict(model, vocab, examples):
    X, _ = matrix(examples, vocab)
    return model.predict_proba(X)[:, 1]


def progressive_offline(examples, n_test_start, n_dense, C, blocks=5):
    """Test half in `blocks` blocks; each scored by a model refitted (same
    C) on every label before it."""
    import numpy as np
    n = len(examples)
    bounds = np.linspace(n_test_start, n, blocks + 1).astype(int)
    preds = []
    for a, b in zip(bounds[:-1], bounds[1:]):
        if b <= a:
            continue
        train = examples[:a]
        vocab = vocabulary(train)
        X, y = matrix(train, vocab)
        m = make_pipeline(n_dense, C).fit(X, y)
        preds.extend(predict(m, vocab, examples[a:b]))
    return np.array(preds)


# ------------------------------------------------------------ main

def fmt(x, digits=3):
    return 'n/a' if x is None or (isinstance(x, float) and math.isnan(x)) \
        else '%.*f' % (digits, x)


def row(name, p, y):
    pos = int(sum(y))
    return '| %s | %d | %d | %s | %s | %s |' % (
        name, len(y), pos, fmt(auc(p, y)), fmt(log_loss(p, y)),
        fmt(ece(p, y)))


def parse_args(argv):
    ap = argparse.ArgumentParser(
        description='Progressive AUC/log-loss/ECE of leadscored\'s online '
                    'model on the simulator beside an offline scikit-learn '
                    'logistic regression on the same features.')
    ap.add_argument('--build', default=os.environ.get('LS_BUILD_ROOT', 'build'),
                    help='meson build dir (default $LS_BUILD_ROOT or build)')
    ap.add_argument('--leads', type=int, default=2000)
    ap.add_argument('--days', type=int, default=30)
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--config-extra', default=None,
                    help='YAML appended to the daemon\'s config (e.g. a '
                         'models: section to compare settings)')
    ap.add_argument('--rate', type=int, default=0,
                    help='simulator events per second (0: as fast as the '
                         'broker takes them)')
    ap.add_argument('--start', type=int, default=None,
                    help='simulation start, ms since the epoch (default: '
                         'the current hour minus --days, as leadscore-sim)')
    ap.add_argument('--partitions', type=int, default=8,
                    help='partitions per topic on the dev broker (default 8)')
    ap.add_argument('--no-daemon', action='store_true',
                    help='offline part only: do not start leadscored')
    ap.add_argument('--daemon-timeout', type=float, default=120.0,
                    help='seconds to wait for leadscored to read everything')
    ap.add_argument('--nonlinear', action='store_true',
                    help='pass --nonlinear to leadscore-sim (non-linear '
                         'terms in the hidden model)')
    ap.add_argument('--quantiles', type=int, default=10,
                    help='buckets per numeric feature for the bucketed '
                         'offline LR: quantile edges of the training half '
                         '(default 10; 0 or 1: no bucketed rows)')
    ap.add_argument('--bucket-features', default='all',
                    help="comma-separated numeric features to bucket (names "
                         "as in the Inputs line, e.g. page_views_30d), or "
                         "'all' (default)")
    args = ap.parse_args(argv)
    if args.quantiles < 0:
        ap.error('--quantiles wants N >= 0')
    return args


def main(argv=None):
    args = parse_args(argv if argv is not None else sys.argv[1:])
    t_start = time.monotonic()
    build = os.path.abspath(args.build)
    sim = os.path.join(build, 'tools', 'leadscore-sim')
    devbroker = os.path.join(build, 'tools', 'leadscore-devbroker')
    leadscored = os.path.join(build, 'daemon', 'leadscored')
    need = [sim, devbroker] + ([] if args.no_daemon else [leadscored])
    for path in need:
        if not os.access(path, os.X_OK):
            log('%s is not an executable (build it, or pass --build DIR)'
                % path)
            return 1
    if args.start is None:
        now_ms = int(time.time() * 1000)
        args.start = now_ms - now_ms % MS_HOUR - args.days * MS_DAY

    import importlib
    import numpy as np
    importlib.import_module('sklearn')   # fail early when missing
    bucket_which = None    # all
    if args.bucket_features != 'all':
        bucket_which = {w.strip() for w in args.bucket_features.split(',')
                        if w.strip()}
        known = features_ref.FeatureSet().value_names() + list(METRICS)
        unknown = sorted(bucket_which - set(known))
        if unknown or not bucket_which:
            log('--bucket-features: no numeric feature %s (known: %s)'
                % (', '.join(unknown) or "''", ', '.join(known)))
            return 1

    timings = {}
    online = None          # {lead: score} when the daemon part ran
    online_note = ''
    with tempfile.TemporaryDirectory(prefix='ls-model-baseline-') as tmp, \
            testenv.RedisServer('unix') as redis_srv, \
            testenv.DevBroker(binary=devbroker,
                              partitions=args.partitions) as broker:
        daemon = None
        daemon_port = None
        evaluation = None     # the daemon's own progressive validation
        if not args.no_daemon:
            cfg = os.path.join(tmp, 'leadscore.yaml')
            write_config(cfg, broker.bootstrap, redis_srv.url, args.config_extra)
            daemon = testenv.Daemon([leadscored, '--config', cfg],
                                    name='leadscored')
            daemon.start()
            try:
                daemon_port = int(daemon.wait_for_log(
                    r'msg="listening" .*port=(\d+)', timeout=30).group(1))
            except Exception as e:   # reported below as the daemon's exit
                log('leadscored did not say it listens: %s' % e)
            if not daemon.running:
                online_note = ('leadscored exited at start (%s): %s'
                               % (daemon.returncode, daemon.tail(5)))
                log(online_note)

        # 1. the stream
        truth_path = os.path.join(tmp, 'truth.tsv')
        t0 = time.monotonic()
        summary, totals = run_simulator(sim, broker.bootstrap, args,
                                        truth_path)
        timings['simulator'] = time.monotonic() - t0
        truth = read_truth(truth_path)
        log('simulator: %(events)d events, %(decided)d decided, '
            '%(positives)d positive, hash %(hash)s' % summary)

        # 2. read back, replay, snapshot
        t0 = time.monotonic()
        topics = ['leads.' + k for k in INPUTS]
        msgs, counted, truncated = read_topics(
            broker.bootstrap, topics, want=lambda k: k in truth)
        timings['consume'] = time.monotonic() - t0
        if truncated:
            log('events lost to the dev broker\'s retention (topic, '
                'partition, low watermark): %s; use fewer --leads/--days or '
                'more --partitions' % truncated)
            return 1
        short = {t: (counted.get(t, 0), n) for t, (n, _) in totals.items()
                 if counted.get(t, 0) != n}
        if short:
            log('read back != produced (topic: read, produced): %s' % short)
            return 1
        t0 = time.monotonic()
        fset = features_ref.FeatureSet()
        examples, dense_names, stats = build_examples(msgs, truth, fset)
        timings['features'] = time.monotonic() - t0
        examples.sort(key=lambda e: (e['ts'], e['lead']))
        n = len(examples)
        half = n // 2
        train, test = examples[:half], examples[half:]
        y_test = np.array([e['y'] for e in test])
        p_hidden = np.array([e['p_hidden'] for e in test])

        # 3. offline: today's map (one log1p term per number), then the
        # same with quantile buckets beside it
        t0 = time.monotonic()
        model, vocab, best_c, cv = fit_offline(train, len(dense_names))
        p_off = predict(model, vocab, test)
        p_prog = progressive_offline(examples, half, len(dense_names), best_c)
        timings['offline fit'] = time.monotonic() - t0
        bucketed = None
        if args.quantiles >= 2:
            t0 = time.monotonic()
            edges = bucket_edges(train, dense_names, args.quantiles,
                                 bucket_which)
            b_examples = with_buckets(examples, dense_names, edges)
            b_train, b_test = b_examples[:half], b_examples[half:]
            b_model, b_vocab, b_c, b_cv = fit_offline(b_train,
                                                      len(dense_names))
            bucketed = {
                'edges': edges, 'C': b_c, 'cv': b_cv,
                'vocab': b_vocab,
                'p': predict(b_model, b_vocab, b_test),
                'prog': progressive_offline(b_examples, half,
                                            len(dense_names), b_c),
            }
            timings['bucketed fit'] = time.monotonic() - t0

        # 4. online
        if daemon is not None and daemon.running:
            t0 = time.monotonic()
            ends = {tp: hw for tp, hw in
                    high_watermarks(broker.bootstrap, topics).items() if hw}
            ok, why = wait_daemon_caught_up(daemon, redis_srv.client(), ends,
                                            args.daemon_timeout)
            if not ok:
                online_note = why
                log(why + '; reading what it published anyway; last lines:\n'
                    + daemon.tail(15))
            recs, bad, trunc = read_scores(broker.bootstrap)
            if daemon_port is not None and daemon.running:
                evaluation = daemon_eval(daemon_port, n, args.daemon_timeout)
            timings['daemon'] = time.monotonic() - t0
            if trunc:
                log('leads.scores truncated by retention: %s' % trunc)
            label_ts = {e['lead']: e['ts'] for e in test}
            best = {}
            n_model = 0
            for r in recs:
                if r['model'] != MODEL:
                    continue
                n_model += 1
                lt = label_ts.get(r['lead_id'])
                if lt is None or r['ts'] >= lt:
                    continue
                cur = best.get(r['lead_id'])
                if cur is None or r['version'] > cur['version']:
                    best[r['lead_id']] = r
            online = {k: v['score'] for k, v in best.items()}
            log('leads.scores: %d records (%d of model %s, %d undecodable)'
                % (len(recs), n_model, MODEL, bad))
            if not recs:
                online_note = (online_note + '; ' if online_note else '') + \
                    'no ScoreChange arrived on leads.scores'
            rc = daemon.terminate()
            for line in daemon.tail(40).splitlines():
                if 'component=scorer' in line:
                    log('leadscored: ' + line)
            if rc not in (0, None):
                log('leadscored exited with %s; last lines:\n%s'
                    % (rc, daemon.tail(10)))
        elif daemon is not None:
            online_note = online_note or ('leadscored exited (%s)'
                                          % daemon.returncode)

    # 5. report
    elapsed = time.monotonic() - t_start
    out = []
    out.append('## Model quality on leadscore-sim (%d leads, %d days, seed %d%s)'
               % (args.leads, args.days, args.seed,
                  ', --nonlinear' if args.nonlinear else ''))
    out.append('')
    out.append('Labelled leads %d (%d positive, rate %.3f), sorted by label '
               'time: train = first %d, test = last %d (%d positive). '
               'Stream hash %s.'
               % (n, sum(e['y'] for e in examples),
                  sum(e['y'] for e in examples) / max(n, 1), len(train),
                  len(test), int(y_test.sum()), summary['hash']))
    out.append('')
    out.append('| model | leads | positives | AUC | log-loss | ECE |')
    out.append('|---|---:|---:|---:|---:|---:|')
    out.append(row('hidden model (p_hidden, ceiling)', p_hidden, y_test))
    out.append(row('offline LR, linear (today\'s map), C=%g, fit on train '
                   'half' % best_c, p_off, y_test))
    out.append(row('offline LR, linear, refit per fifth of test half', p_prog,
                   y_test))
    if bucketed is not None:
        out.append(row('offline LR, bucketed (%d quantiles + linear), C=%g, '
                       'fit on train half' % (args.quantiles, bucketed['C']),
                       bucketed['p'], y_test))
        out.append(row('offline LR, bucketed, refit per fifth of test half',
                       bucketed['prog'], y_test))
    out.append(row('constant train rate %.3f' % np.mean(
        [e['y'] for e in train]), np.full(len(test), np.mean(
            [e['y'] for e in train])), y_test))
    if online is not None and online:
        idx = [i for i, e in enumerate(test) if e['lead'] in online]
        p_on = np.array([online[test[i]['lead']] for i in idx])
        yc = y_test[idx]
        out.append(row('**online FTRL (leadscored), covered**', p_on, yc))
        out.append(row('hidden model, same covered leads', p_hidden[idx], yc))
        out.append(row('offline LR linear, same covered leads', p_off[idx],
                       yc))
        out.append(row('offline LR linear refit per fifth, same covered leads',
                       p_prog[idx], yc))
        if bucketed is not None:
            out.append(row('offline LR bucketed, same covered leads',
                           bucketed['p'][idx], yc))
            out.append(row('offline LR bucketed refit per fifth, same covered '
                           'leads', bucketed['prog'][idx], yc))
    out.append('')
    if online is None:
        out.append('Online model: not run (%s).'
                   % (online_note or '--no-daemon'))
    elif not online:
        out.append('Online model: no usable ScoreChange (%s); coverage 0 of '
                   '%d test leads.' % (online_note or 'none of model %s '
                                       'before a label' % MODEL, len(test)))
    else:
        out.append('Online coverage: %d of %d test leads had a ScoreChange '
                   'of model %s before their label%s.'
                   % (len(online), len(test), MODEL,
                      ' (%s)' % online_note if online_note else ''))
    if evaluation is not None:
        out.append('')
        out.append('The daemon\'s own progressive validation (GET /v1/models/%s '
                   'after the stream; every label from the first, over the '
                   'last eval_window = %s labels, so not the test half above): '
                   'AUC %s, log-loss %s, ECE %s over %s labels in window '
                   '(%s positive + %s negative learned of %d); '
                   'leadscore_model_auc %s.'
                   % (MODEL, evaluation.get('eval_window'),
                      fmt(evaluation.get('auc')),
                      fmt(evaluation.get('logloss')),
                      fmt(evaluation.get('ece')),
                      evaluation.get('labels_in_window'),
                      evaluation.get('positives'),
                      evaluation.get('negatives'), n,
                      fmt(evaluation.get('metric_auc'))))
    out.append('')
    out.append('CV log-loss by C (5-fold on the train half), linear: %s.'
               % ', '.join('%g: %.4f' % (c, v) for c, v in sorted(cv.items())))
    if bucketed is not None:
        out.append('CV log-loss by C, bucketed: %s.'
                   % ', '.join('%g: %.4f' % (c, v)
                               for c, v in sorted(bucketed['cv'].items())))
        nb = sum(len(e) + 1 for e in bucketed['edges'].values())
        out.append('Buckets: %d numeric features bucketed (%s), %d buckets '
                   '(quantile edges of the train half, distinct values '
                   'only: a mostly-zero count gets few), one-hot beside the '
                   'log1p linear term; e.g. %s.'
                   % (len(bucketed['edges']), args.bucket_features, nb,
                      '; '.join(bucket_name(dense_names[j], e, i)
                                for j, e in list(bucketed['edges'].items())[:1]
                                for i in range(len(e) + 1))))
    out.append('Inputs: %d dense (55 window values + %s, log1p, standardised, '
               'clipped to +-%g), %d one-hot/hashed columns; crosses in '
               'examples: %d.'
               % (len(dense_names), '/'.join(METRICS), CLIP, len(vocab),
                  stats['crosses']))
    odd = {k: v for k, v in stats.items() if v and k != 'crosses'}
    out.append('Replay: %s.' % (', '.join('%s %d' % kv for kv in
                                          sorted(odd.items()))
                                or 'no duplicates, late events, undecodable '
                                   'records or truth mismatches'))
    out.append('Time: %s; total %.1f s.'
               % (', '.join('%s %.1f s' % kv for kv in timings.items()),
                  elapsed))
    out.append('')
    out.append('Command: `%s`' % ' '.join(
        ['/usr/bin/python3', 'tools/model_baseline.py'] +
        [shlex.quote(a) for a in (argv if argv is not None else sys.argv[1:])]))
    repro = ['/usr/bin/python3', 'tools/model_baseline.py',
             '--build', shlex.quote(args.build), '--leads', str(args.leads),
             '--days', str(args.days), '--seed', str(args.seed),
             '--start', str(args.start), '--partitions', str(args.partitions)]
    if args.no_daemon:
        repro.append('--no-daemon')
    if args.nonlinear:
        repro.append('--nonlinear')
    repro += ['--quantiles', str(args.quantiles), '--bucket-features',
              shlex.quote(args.bucket_features)]
    out.append('Same stream: `%s`' % ' '.join(repro))
    print('\n'.join(out))
    return 0


if __name__ == '__main__':
    sys.exit(main())
