"""leadscore-sim, the ground-truth event simulator.

  * Reproducible: --dry-run twice with one seed gives the same hash and
    counts; another seed gives a different stream; --nonlinear gives
    another stream and leaves the default one alone.
  * Broker: a run against the dev broker produces records that the Apache
    Avro library (avro_events) decodes, keyed by lead_id, with ts in order
    per lead and topic, and outcomes that agree with the truth file.
  * Truth: one row per decided lead, probabilities in (0, 1), a label rate
    between 5 % and 40 %, and hidden probabilities that separate the labels
    (AUC > 0.7).
  * Bandit feedback (--feedback): options that do not fit are usage errors;
    a bad input line stops the run before anything is sent, naming the line;
    the same seed and decisions give the same stream whatever the input
    order, and a decision's outcome does not depend on the other decisions;
    truth rewards follow --reward-weights. Against the dev broker: the
    events carry the decision's ids, are keyed by lead_id and in ts order
    per lead, go SENT < OPENED < CLICKED < REPLIED within the documented
    delays, the per-variant rates are within binomial bounds of
    --variant-rates over 20,000 decisions and the truth file's rewards match
    the events; runs with the same seed (one with shuffled input on stdin,
    one with a subset) give byte-identical events per decision;
    --feedback-no-sent leaves out exactly the SENT events.

Run with Debian's /usr/bin/python3 and LS_BUILD_ROOT set to the meson build
dir (meson test does both).
"""
import collections
import math
import os
import random
import re
import sys
import tempfile
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import avro_events  # noqa: E402
import testenv  # noqa: E402

BUILD = os.environ.get('LS_BUILD_ROOT', 'build')
SIM = os.path.join(BUILD, 'tools', 'leadscore-sim')
KINDS = ['email', 'web', 'call', 'outcome', 'profile']
START = '2024-03-01T00:00:00Z'   # fixed, so runs are comparable
SUMMARY = re.compile(r'^events=(\d+) bytes=(\d+) decided=(\d+) positives=(\d+) '
                     r'hash=([0-9a-f]{16})$')
TOTALS = re.compile(r'msg="topic totals" topic=(\S+) events=(\d+) bytes=(\d+)')


def run_sim(*args, timeout=300):
    p = testenv.run([SIM] + [str(a) for a in args], capture_output=True,
                    text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def summary(stdout):
    lines = stdout.strip().splitlines()
    m = SUMMARY.match(lines[-1]) if lines else None
    if m is None:
        raise AssertionError('no summary line in %r' % stdout)
    return {'events': int(m.group(1)), 'bytes': int(m.group(2)),
            'decided': int(m.group(3)), 'positives': int(m.group(4)),
            'hash': m.group(5)}


def topic_totals(stderr):
    return {m.group(1): (int(m.group(2)), int(m.group(3)))
            for m in TOTALS.finditer(stderr)}


def read_truth(path):
    with open(path, encoding='utf-8') as f:
        header = f.readline().rstrip('\n').split('\t')
        rows = [dict(zip(header, line.rstrip('\n').split('\t'))) for line in f]
    return header, rows


def auc(scores, labels):
    """Mann-Whitney AUC with average ranks for ties."""
    pairs = sorted(zip(scores, labels))
    n = len(pairs)
    ranks = [0.0] * n
    i = 0
    while i < n:
        j = i
        while j < n and pairs[j][0] == pairs[i][0]:
            j += 1
        for k in range(i, j):
            ranks[k] = (i + 1 + j) / 2.0
        i = j
    pos = sum(1 for _, y in pairs if y)
    neg = n - pos
    rank_sum = sum(r for r, (_, y) in zip(ranks, pairs) if y)
    return (rank_sum - pos * (pos + 1) / 2.0) / (pos * neg)


class Options(unittest.TestCase):
    def test_usage_errors_exit_2(self):
        for args in (['--leads', '0'], ['--bogus'], ['--days', 'x'], [],
                     ['--dry-run', '--negatives', 'maybe'],
                     ['--dry-run', '--start', 'yesterday']):
            rc, _, err = run_sim(*args)
            self.assertEqual(rc, 2, (args, err))
            self.assertIn('leadscore-sim', err)

    def test_help_and_model(self):
        rc, out, _ = run_sim('--help')
        self.assertEqual(rc, 0)
        self.assertIn('--truth', out)
        rc, out, _ = run_sim('--print-model')
        self.assertEqual(rc, 0)
        self.assertRegex(out, r'(?m)^intercept\t[-+]\d')
        self.assertRegex(out, r'(?m)^demo_requests_30d\t\+')
        self.assertRegex(out, r'(?m)^hot:industry=saas&size_band=201-1000\t\+')

    def test_unwritable_truth_exits_1(self):
        rc, _, err = run_sim('--dry-run', '--leads', '5', '--truth',
                             '/nonexistent-dir/truth.tsv')
        self.assertEqual(rc, 1, err)


class Reproducible(unittest.TestCase):
    def test_same_seed_same_bytes(self):
        args = ['--dry-run', '--leads', 500, '--days', 20, '--start', START]
        rc1, out1, err1 = run_sim(*args, '--seed', 7)
        rc2, out2, err2 = run_sim(*args, '--seed', 7)
        rc3, out3, err3 = run_sim(*args, '--seed', 8)
        self.assertEqual((rc1, rc2, rc3), (0, 0, 0), err1 + err2 + err3)
        a, b, c = summary(out1), summary(out2), summary(out3)
        self.assertGreater(a['events'], 1000)
        self.assertEqual(a, b)
        self.assertEqual(topic_totals(err1), topic_totals(err2))
        self.assertNotEqual(a['hash'], c['hash'])

    def test_nonlinear_changes_the_stream_not_the_default(self):
        # --nonlinear adds heavy browsers and terms to the hidden model; the
        # same seed without it must stay the stream it always was
        args = ['--dry-run', '--leads', 300, '--days', 20, '--start', START,
                '--seed', 7]
        rc1, out1, err1 = run_sim(*args)
        rc2, out2, err2 = run_sim(*args, '--nonlinear')
        rc3, out3, err3 = run_sim(*args, '--nonlinear')
        self.assertEqual((rc1, rc2, rc3), (0, 0, 0), err1 + err2 + err3)
        plain, nl, nl2 = summary(out1), summary(out2), summary(out3)
        self.assertEqual(nl, nl2)
        self.assertNotEqual(plain['hash'], nl['hash'])
        # heavy browsers: more page views than the plain stream
        self.assertGreater(topic_totals(err2)['leads.web'][0],
                           topic_totals(err1)['leads.web'][0])
        rc, out, err = run_sim('--print-model')
        self.assertEqual(rc, 0, err)
        self.assertNotIn('nl:', out)
        rc, out_nl, err = run_sim('--print-model', '--nonlinear')
        self.assertEqual(rc, 0, err)
        self.assertTrue(out_nl.startswith(out), 'the linear terms stay first')
        self.assertRegex(out_nl, r'(?m)^nl:page_views_30d_peak\t\+')
        self.assertRegex(out_nl, r'(?m)^nl:pricing_views_7d>=\d+\t\+')
        # an inverted U: the peak is above both ends of the table
        views = {int(m.group(1)): float(m.group(2)) for m in re.finditer(
            r'(?m)^nl:page_views_30d=(\d+)\t([-+]\d+\.\d+)', out_nl)}
        peak = max(views, key=views.get)
        self.assertGreater(views[peak], views[min(views)])
        self.assertGreater(views[peak], views[max(views)])
        rc, _, err = run_sim('--nonlinear', '--feedback', '/dev/null',
                             '--dry-run')
        self.assertEqual(rc, 2, err)

    def test_negatives_none_emits_only_positives(self):
        args = ['--dry-run', '--leads', 500, '--days', 20, '--start', START,
                '--seed', 3]
        rc, out, err = run_sim(*args, '--negatives', 'none')
        self.assertEqual(rc, 0, err)
        s = summary(out)
        self.assertEqual(topic_totals(err)['leads.outcome'][0], s['positives'])
        rc, out, err = run_sim(*args)
        self.assertEqual(rc, 0, err)
        self.assertEqual(topic_totals(err)['leads.outcome'][0],
                         summary(out)['decided'])


class Truth(unittest.TestCase):
    def test_truth_file(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, 'truth.tsv')
            rc, out, err = run_sim('--dry-run', '--seed', 11, '--start', START,
                                   '--truth', path)
            self.assertEqual(rc, 0, err)
            s = summary(out)
            header, rows = read_truth(path)
        self.assertEqual(header[:4], ['lead_id', 'label', 'p_hidden', 'label_ts'])
        self.assertEqual(len(rows), s['decided'])
        self.assertEqual(len({r['lead_id'] for r in rows}), len(rows))
        labels = [int(r['label']) for r in rows]
        probs = [float(r['p_hidden']) for r in rows]
        self.assertEqual(sum(labels), s['positives'])
        self.assertTrue(all(0.0 < p < 1.0 for p in probs))
        rate = sum(labels) / len(labels)
        self.assertTrue(0.05 <= rate <= 0.40, rate)
        hidden_auc = auc(probs, labels)
        sys.stderr.write('\nsimulator: %d labelled leads, label rate %.3f, '
                         'hidden AUC %.3f\n' % (len(rows), rate, hidden_auc))
        self.assertGreater(hidden_auc, 0.7)


class Broker(unittest.TestCase):
    def test_events_decode_in_order(self):
        from confluent_kafka import Consumer
        with testenv.DevBroker() as broker, \
                tempfile.TemporaryDirectory() as d:
            truth = os.path.join(d, 'truth.tsv')
            rc, out, err = run_sim('--brokers', broker.bootstrap, '--leads', 150,
                                   '--days', 20, '--seed', 5, '--start', START,
                                   '--truth', truth)
            self.assertEqual(rc, 0, err)
            s = summary(out)
            totals = topic_totals(err)
            self.assertEqual(sum(n for n, _ in totals.values()), s['events'])
            _, rows = read_truth(truth)
            labels = {r['lead_id']: (int(r['label']), int(r['label_ts']))
                      for r in rows}

            c = Consumer({'bootstrap.servers': broker.bootstrap,
                          'group.id': 'test-simulator',
                          'auto.offset.reset': 'earliest',
                          'enable.auto.commit': False})
            got = collections.defaultdict(list)   # (topic, partition) -> msgs
            n = 0
            try:
                c.subscribe(['leads.' + k for k in KINDS])
                end = time.monotonic() + 60
                while n < s['events'] and time.monotonic() < end:
                    m = c.poll(0.2)
                    if m is None or m.error():
                        continue
                    got[(m.topic(), m.partition())].append(m)
                    n += 1
            finally:
                c.close()
        self.assertEqual(n, s['events'])

        per_topic = collections.Counter()
        last_ts = {}             # (topic, lead) -> ts
        newest = {}              # lead -> newest ts over all topics
        outcomes = {}
        for (topic, _), msgs in got.items():
            kind = topic[len('leads.'):]
            for m in sorted(msgs, key=lambda m: m.offset()):
                rec = avro_events.decode(kind, m.value())
                per_topic[topic] += 1
                lead = rec['lead_id']
                self.assertEqual(m.key().decode(), lead)
                self.assertTrue(rec['event_id'])
                prev = last_ts.get((topic, lead))
                self.assertTrue(prev is None or prev <= rec['ts'],
                                '%s %s: ts %s after %s' % (topic, lead, rec['ts'], prev))
                last_ts[(topic, lead)] = rec['ts']
                newest[lead] = max(newest.get(lead, 0), rec['ts'])
                if kind == 'outcome':
                    self.assertNotIn(lead, outcomes)
                    outcomes[lead] = rec
                elif kind == 'profile':
                    self.assertIn(rec['attributes']['industry'],
                                  ('saas', 'retail', 'finance', 'manufacturing',
                                   'healthcare', 'education'))
                    self.assertGreater(rec['metrics']['employees'], 0)
        self.assertEqual({t: n for t, (n, _) in totals.items() if n},
                         dict(per_topic))
        # every decided lead has its outcome, which is its last event and
        # agrees with the truth file
        self.assertEqual(set(outcomes), set(labels))
        for lead, rec in outcomes.items():
            label, ts = labels[lead]
            self.assertEqual(rec['ts'], ts)
            self.assertEqual(newest[lead], ts)
            positive = rec['outcome'] in ('CONVERTED', 'WON')
            self.assertEqual(int(positive), label)


# ------------------------------------------------------ bandit feedback

FB_SUMMARY = re.compile(r'^decisions=(\d+) events=(\d+) bytes=(\d+) '
                        r'hash=([0-9a-f]{16})$')
FB_TOTALS = re.compile(r'msg="feedback totals" decisions=(\d+) sent=(\d+) '
                       r'opened=(\d+) clicked=(\d+) replied=(\d+)')
FB_T0 = 1709251200000                  # 2024-03-01T00:00:00Z
MINUTE, HOUR = 60000, 3600000
# absolute P(open)/P(click)/P(reply); promo:A overrides A in campaign promo
FB_RATES = {'A': (0.30, 0.10, 0.02), 'B': (0.25, 0.15, 0.06),
            'C': (0.20, 0.05, 0.01), 'promo:A': (0.60, 0.40, 0.20)}
FB_DEFAULT = (0.10, 0.04, 0.01)        # for variant Z, named nowhere
FB_ARGS = ['--variant-rates', ','.join('%s=%g/%g/%g' % ((k,) + v)
                                       for k, v in FB_RATES.items()),
           '--variant-default', '%g/%g/%g' % FB_DEFAULT]
FB_TYPES = ['SENT', 'OPENED', 'CLICKED', 'REPLIED']


def fb_decisions(n, leads, seed=0):
    """n decision rows (decision_id, lead_id, campaign, variant, ts) in a
    random order, spread over 10 days, as a benchmark would log them;
    the groups welcome:A/B/C/Z and promo:A are equally likely. Sends are
    on whole minutes, so some share a ts and the order of ties counts."""
    rnd = random.Random(seed)
    groups = [('welcome', 'A'), ('welcome', 'B'), ('welcome', 'C'),
              ('welcome', 'Z'), ('promo', 'A')]
    rows = []
    for i in range(n):
        campaign, variant = groups[i % len(groups)]
        rows.append(('dec-%06d' % i, 'lead-%04d' % rnd.randrange(leads),
                     campaign, variant, FB_T0 + rnd.randrange(10 * 24 * 60) * MINUTE))
    rnd.shuffle(rows)
    return rows


def fb_text(rows):
    return ''.join('\t'.join(str(f) for f in r) + '\n' for r in rows)


def fb_rates(campaign, variant):
    key = '%s:%s' % (campaign, variant)
    return FB_RATES.get(key) or FB_RATES.get(variant) or FB_DEFAULT


def run_feedback(rows, *args, stdin=False, timeout=300):
    """leadscore-sim --feedback on rows (a file, or stdin); returns
    (rc, stdout, stderr)."""
    with tempfile.TemporaryDirectory() as d:
        if stdin:
            p = testenv.run([SIM, '--feedback', '-'] + [str(a) for a in args],
                            input=fb_text(rows), capture_output=True,
                            text=True, timeout=timeout)
        else:
            path = os.path.join(d, 'decisions.tsv')
            with open(path, 'w', encoding='utf-8') as f:
                f.write(fb_text(rows))
            p = testenv.run([SIM, '--feedback', path] + [str(a) for a in args],
                            capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def fb_summary(stdout):
    m = FB_SUMMARY.match(stdout.strip())
    if m is None:
        raise AssertionError('no feedback summary line in %r' % stdout)
    return {'decisions': int(m.group(1)), 'events': int(m.group(2)),
            'bytes': int(m.group(3)), 'hash': m.group(4)}


def fb_totals(stderr):
    m = FB_TOTALS.search(stderr)
    if m is None:
        raise AssertionError('no feedback totals in %r' % stderr[-2000:])
    return dict(zip(['decisions'] + FB_TYPES, map(int, m.groups())))


def within_binomial(k, n, p, z=5.0):
    """k successes of n is within z standard deviations of n*p."""
    return abs(k - n * p) <= z * math.sqrt(n * p * (1 - p)) + 1


def consume_topics(bootstrap, topics, n, timeout=90):
    """Up to n messages from topics with one fresh consumer (one group
    join), grouped by (topic, partition) in offset order."""
    from confluent_kafka import Consumer
    c = Consumer({'bootstrap.servers': bootstrap,
                  'group.id': 'test-simulator-fb-%s' % uuid.uuid4().hex,
                  'auto.offset.reset': 'earliest',
                  'enable.auto.commit': False})
    got = collections.defaultdict(list)
    k = 0
    try:
        c.subscribe(list(topics))
        end = time.monotonic() + timeout
        while k < n and time.monotonic() < end:
            m = c.poll(0.2)
            if m is None or m.error():
                continue
            got[(m.topic(), m.partition())].append(m)
            k += 1
    finally:
        c.close()
    for msgs in got.values():
        msgs.sort(key=lambda m: m.offset())
    return got, k


def raw_by_partition(got, topic):
    """{partition: [(key, value), ...]} of one topic, in offset order."""
    return {p: [(m.key(), m.value()) for m in msgs]
            for (t, p), msgs in got.items() if t == topic}


def raw_by_decision(got, topic):
    """{decision_id: [(key, value), ...]} of one topic, in offset order."""
    out = collections.defaultdict(list)
    for (t, _), msgs in got.items():
        if t != topic:
            continue
        for m in msgs:
            rec = avro_events.decode('email', m.value())
            out[rec['decision_id']].append((m.key(), m.value()))
    return dict(out)


class FeedbackOptions(unittest.TestCase):
    def test_usage_errors_exit_2(self):
        rows = fb_decisions(5, 3)
        for args in (['--leads', 10], ['--days', 3], ['--start', START],
                     ['--negatives', 'none'],
                     ['--variant-rates', 'A=0.1/0.2/0.0'],      # click > open
                     ['--variant-rates', 'A=1.5/0.2/0.1'],
                     ['--variant-rates', 'A=0.5/0.2'],
                     ['--variant-rates', 'A=0.5/0.2/0.1,A=0.4/0.2/0.1'],
                     ['--variant-default', '0.5/0.2/0.3'],      # reply > click
                     ['--reward-weights', 'SENT=1'],
                     ['--reward-weights', 'CLICKED=-1'],
                     ['--feedback-max-delay', '10s'],
                     ['--feedback-max-delay', '48']):
            rc, out, err = run_feedback(rows, '--dry-run', *args)
            self.assertEqual(rc, 2, (args, err))
            self.assertIn('leadscore-sim', err)
            self.assertEqual(out, '', args)
        for args in (['--feedback-no-sent'], ['--variant-rates', 'A=0.1/0/0'],
                     ['--reward-weights', 'OPENED=1'],
                     ['--feedback-max-delay', '1h']):
            rc, _, err = run_sim('--dry-run', *args)
            self.assertEqual(rc, 2, (args, err))
            self.assertIn('needs --feedback', err)
        rc, out, _ = run_sim('--help')
        for opt in ('--feedback', '--variant-rates', '--variant-default',
                    '--feedback-no-sent', '--feedback-max-delay',
                    '--reward-weights'):
            self.assertIn(opt, out)

    def test_bad_lines_are_named(self):
        good = ['d1\tlead-1\twelcome\tA\t%d' % FB_T0, '# a comment', '',
                'd2\tlead-2\twelcome\tB']
        cases = [
            ('d3\tlead-3\twelcome', 'expected 4 or 5 tab-separated fields'),
            ('d3\tlead-3\twelcome\tA\t%d\textra' % FB_T0,
             'expected 4 or 5 tab-separated fields'),
            ('d3\t\twelcome\tA', 'field 2 (lead_id) is empty'),
            ('d3\tlead-3\twelcome\tA\t12x', 'field 5 (ts_ms)'),
            ('d3\tlead-3\twelcome\tA\t-5', 'field 5 (ts_ms)'),
            ('d3\tlead-3\twelcome\tA\t', 'field 5 (ts_ms) is empty'),
            ('d3\tlead-3\twel\x01come\tA', 'field 3 (campaign_id) contains a '
             'control character'),
            ('d3\tlead-3\twelcome\t' + 'v' * 201, 'field 4 (variant_id) is '
             'longer than 200 bytes'),
            ('d1\tlead-3\twelcome\tA', "decision_id 'd1' was already given on "
             'line 1'),
            ('d3\tlead-3\twelcome\tQ', "variant 'Q' (campaign 'welcome') has "
             'no --variant-rates entry'),
        ]
        rates = ['--variant-rates', 'A=0.3/0.1/0.01,B=0.2/0.1/0.05']
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, 'decisions.tsv')
            for bad, why in cases:
                with open(path, 'w', encoding='utf-8') as f:
                    f.write('\n'.join(good + [bad, 'd9\tlead-9\twelcome\tA']) + '\n')
                rc, out, err = run_sim('--feedback', path, '--dry-run', *rates)
                self.assertEqual(rc, 2, (bad, err))
                self.assertEqual(out, '', bad)   # nothing was sent
                self.assertIn('%s:5: %s' % (path, why), err)
            # not UTF-8: the bytes go through stdin
            p = testenv.run([SIM, '--feedback', '-', '--dry-run'] + rates,
                            input=b'd1\tlead-1\twelcome\tA\nd2\tl\xff\tw\tA\n',
                            capture_output=True, timeout=60)
            self.assertEqual(p.returncode, 2)
            self.assertIn(b'<stdin>:2: field 2 (lead_id) is not valid UTF-8',
                          p.stderr)
            # the good lines alone are fine (comments and blank lines
            # skipped, ts_ms optional)
            with open(path, 'w', encoding='utf-8') as f:
                f.write('\r\n'.join(good) + '\r\n')
            rc, out, err = run_sim('--feedback', path, '--dry-run', *rates)
            self.assertEqual(rc, 0, err)
            self.assertEqual(fb_summary(out)['decisions'], 2)
            rc, _, err = run_sim('--feedback', os.path.join(d, 'missing.tsv'),
                                 '--dry-run', *rates)
            self.assertEqual(rc, 1, err)

    def test_deterministic_and_independent(self):
        rows = fb_decisions(3000, 200, seed=1)
        with tempfile.TemporaryDirectory() as d:
            def run(rows, *extra, name, stdin=False):
                truth = os.path.join(d, name)
                rc, out, err = run_feedback(rows, '--dry-run', '--truth', truth,
                                            *FB_ARGS, *extra, stdin=stdin)
                self.assertEqual(rc, 0, err)
                with open(truth, encoding='utf-8') as f:
                    return fb_summary(out), f.read()
            a, truth_a = run(rows, '--seed', 5, name='a')
            b, truth_b = run(rows, '--seed', 5, name='b')
            shuffled = list(rows)
            random.Random(9).shuffle(shuffled)
            c, truth_c = run(shuffled, '--seed', 5, name='c', stdin=True)
            other, truth_other = run(rows, '--seed', 6, name='o')
            part, truth_part = run(rows[::7], '--seed', 5, name='p')
        self.assertEqual(a['decisions'], 3000)
        self.assertEqual(a, b)
        self.assertEqual(truth_a, truth_b)
        self.assertEqual(a, c)                  # input order does not matter
        self.assertEqual(truth_a, truth_c)
        self.assertNotEqual(a['hash'], other['hash'])
        self.assertNotEqual(truth_a, truth_other)
        # each decision's outcome is its own: a subset draws the same
        full = {line.split('\t')[0]: line for line in truth_a.splitlines()[1:]}
        rows_part = truth_part.splitlines()[1:]
        self.assertEqual(len(rows_part), len(rows[::7]))
        for line in rows_part:
            self.assertEqual(line, full[line.split('\t')[0]])

    def test_truth_rewards(self):
        weights = {'OPENED': 0.25, 'CLICKED': 1.0, 'REPLIED': 3.0}
        rows = fb_decisions(2000, 100, seed=2)
        by_id = {r[0]: r for r in rows}
        with tempfile.TemporaryDirectory() as d:
            truth = os.path.join(d, 'truth.tsv')
            rc, out, err = run_feedback(
                rows, '--dry-run', '--seed', 3, '--truth', truth, *FB_ARGS,
                '--reward-weights', ','.join('%s=%g' % kv for kv in weights.items()))
            self.assertEqual(rc, 0, err)
            header, trows = read_truth(truth)
        self.assertEqual(header, ['decision_id', 'variant_id', 'expected_reward',
                                  'reward', 'campaign_id', 'lead_id', 'sent',
                                  'outcome'])
        self.assertEqual([r['decision_id'] for r in trows], sorted(by_id))
        level = {'none': 0.0, 'OPENED': 0.25, 'CLICKED': 1.0, 'REPLIED': 3.0}
        for r in trows:
            _, lead, campaign, variant, _ = by_id[r['decision_id']]
            self.assertEqual((r['lead_id'], r['campaign_id'], r['variant_id'],
                              r['sent']), (lead, campaign, variant, '1'))
            po, pc, pr = fb_rates(campaign, variant)
            expected = (po - pc) * 0.25 + (pc - pr) * 1.0 + pr * 3.0
            self.assertAlmostEqual(float(r['expected_reward']), expected, places=7)
            self.assertEqual(float(r['reward']), level[r['outcome']])
        t = fb_totals(err)
        outcomes = collections.Counter(r['outcome'] for r in trows)
        self.assertEqual(t['REPLIED'], outcomes['REPLIED'])
        self.assertEqual(t['CLICKED'], outcomes['REPLIED'] + outcomes['CLICKED'])


class FeedbackBroker(unittest.TestCase):
    def check_decision(self, events, row, max_delay, sent=True):
        """The events of one decision (offset order): ids, order, delays."""
        dec, lead, campaign, variant, ts = row
        types = [e['type'] for e in events]
        want = FB_TYPES[:len(types)] if sent else FB_TYPES[1:len(types) + 1]
        self.assertEqual(types, want, dec)
        for e in events:
            self.assertEqual((e['lead_id'], e['campaign_id'], e['variant_id'],
                              e['decision_id']), (lead, campaign, variant, dec))
            self.assertEqual(e['event_id'], 'fb-%s-%s-%s' % (self.seed, dec,
                                                           e['type']))
            self.assertEqual(e['url'] is not None, e['type'] == 'CLICKED')
            self.assertLess(e['ts'] - ts, max_delay, dec)
        at = {e['type']: e['ts'] for e in events}
        if sent:
            self.assertEqual(at['SENT'], ts)
        # the documented delays (for 48 h: opened 1 min..24 h after the
        # send, clicked 5 s..10 min after the open, replied 6 min..18 h
        # after the click)
        m = max_delay
        if 'OPENED' in at:
            self.assertTrue(min(MINUTE, m / 20) <= at['OPENED'] - ts < m / 2, dec)
        if 'CLICKED' in at:
            self.assertTrue(min(5000, m / 80) <= at['CLICKED'] - at['OPENED']
                            < min(10 * MINUTE, m / 8), dec)
        if 'REPLIED' in at:
            self.assertTrue(min(6 * MINUTE, m / 40) <= at['REPLIED'] - at['CLICKED']
                            < min(24 * HOUR, 3 * m / 8), dec)

    def test_events_rates_and_truth(self):
        self.seed = 11
        n = 20000
        rows = fb_decisions(n, 500, seed=3)
        by_id = {r[0]: r for r in rows}
        with testenv.DevBroker() as broker, \
                tempfile.TemporaryDirectory() as d:
            truth = os.path.join(d, 'truth.tsv')
            rc, out, err = run_feedback(rows, '--brokers', broker.bootstrap,
                                        '--topic-prefix', 'fb.', '--seed', self.seed,
                                        '--truth', truth, *FB_ARGS)
            self.assertEqual(rc, 0, err)
            s = fb_summary(out)
            totals = fb_totals(err)
            _, trows = read_truth(truth)
            got, k = consume_topics(broker.bootstrap, ['fb.email'], s['events'])
        self.assertEqual(k, s['events'])
        self.assertEqual(s['decisions'], n)
        self.assertEqual(totals['decisions'], n)
        self.assertEqual(sum(totals[t] for t in FB_TYPES), s['events'])
        self.assertEqual(topic_totals(err)['fb.email'][0], s['events'])

        per_decision = collections.defaultdict(list)
        counts = collections.Counter()
        event_ids = set()
        for (_, _), msgs in got.items():
            last = {}                         # lead -> ts, in offset order
            for m in msgs:
                e = avro_events.decode('email', m.value())
                self.assertEqual(m.key().decode(), e['lead_id'])
                self.assertGreaterEqual(e['ts'], last.get(e['lead_id'], 0))
                last[e['lead_id']] = e['ts']
                self.assertNotIn(e['event_id'], event_ids)
                event_ids.add(e['event_id'])
                per_decision[e['decision_id']].append(e)
                counts[e['type']] += 1
        self.assertEqual(dict(counts), {t: totals[t] for t in FB_TYPES})
        self.assertEqual(set(per_decision), set(by_id))

        groups = collections.defaultdict(collections.Counter)
        rewards = {}
        for dec, events in per_decision.items():
            row = by_id[dec]
            self.check_decision(events, row, 48 * HOUR)
            g = groups[(row[2], row[3])]
            g['n'] += 1
            for e in events:
                g[e['type']] += 1
            # default weights: CLICKED and REPLIED 1, OPENED 0
            rewards[dec] = 1.0 if {'CLICKED', 'REPLIED'} & {e['type'] for e in events} \
                else 0.0
        report = []
        for (campaign, variant), g in sorted(groups.items()):
            rates = fb_rates(campaign, variant)
            for t, p in zip(('OPENED', 'CLICKED', 'REPLIED'), rates):
                report.append('%s:%s %s %.4f (true %.2f, n %d)'
                              % (campaign, variant, t, g[t] / g['n'], p, g['n']))
                self.assertTrue(within_binomial(g[t], g['n'], p), report[-1])
        sys.stderr.write('\nfeedback rates:\n  %s\n' % '\n  '.join(report))

        self.assertEqual(len(trows), n)
        expected_sum = collections.defaultdict(float)
        for r in trows:
            self.assertEqual(float(r['reward']), rewards[r['decision_id']])
            self.assertEqual(r['variant_id'], by_id[r['decision_id']][3])
            row = by_id[r['decision_id']]
            expected_sum[(row[2], row[3])] += float(r['expected_reward'])
            # default weights: the expected reward is P(click)
            self.assertAlmostEqual(float(r['expected_reward']),
                                   fb_rates(row[2], row[3])[1], places=7)
        # realised mean reward within binomial bounds of the expected one
        for key, g in groups.items():
            realised = sum(rewards[r[0]] for r in rows if (r[2], r[3]) == key)
            self.assertTrue(within_binomial(realised, g['n'],
                                            expected_sum[key] / g['n']), key)

    def test_runs_repeat_byte_for_byte(self):
        self.seed = 4
        rows = fb_decisions(2000, 100, seed=4)
        shuffled = list(rows)
        random.Random(1).shuffle(shuffled)
        subset = rows[::5]
        random.Random(2).shuffle(subset)
        with testenv.DevBroker() as broker:
            runs = {'a.': (rows, False), 'b.': (rows, False),
                    'c.': (shuffled, True), 'd.': (subset, True)}
            total = 0
            for prefix, (r, stdin) in runs.items():
                rc, out, err = run_feedback(r, '--brokers', broker.bootstrap,
                                            '--topic-prefix', prefix,
                                            '--seed', self.seed, *FB_ARGS, stdin=stdin)
                self.assertEqual(rc, 0, err)
                total += fb_summary(out)['events']
            got, k = consume_topics(broker.bootstrap,
                                    [p + 'email' for p in runs], total)
        self.assertEqual(k, total)
        a = raw_by_partition(got, 'a.email')
        self.assertGreater(sum(len(v) for v in a.values()), 2000)
        self.assertEqual(a, raw_by_partition(got, 'b.email'))
        self.assertEqual(a, raw_by_partition(got, 'c.email'))
        # a decision's events are the same bytes without the other decisions
        full = raw_by_decision(got, 'a.email')
        part = raw_by_decision(got, 'd.email')
        self.assertEqual(set(part), {r[0] for r in subset})
        for dec, events in part.items():
            self.assertEqual(events, full[dec], dec)

    def test_no_sent(self):
        self.seed = 8
        rows = fb_decisions(2000, 100, seed=5)
        by_id = {r[0]: r for r in rows}
        with testenv.DevBroker() as broker, \
                tempfile.TemporaryDirectory() as d:
            truth = os.path.join(d, 'truth.tsv')
            total = 0
            for prefix, extra in (('sent.', []),
                                  ('nosent.', ['--feedback-no-sent', '--truth', truth])):
                rc, out, err = run_feedback(rows, '--brokers', broker.bootstrap,
                                            '--topic-prefix', prefix, '--seed', self.seed,
                                            '--feedback-max-delay', '2h', *FB_ARGS,
                                            *extra)
                self.assertEqual(rc, 0, err)
                total += fb_summary(out)['events']
            self.assertEqual(fb_totals(err)['SENT'], 0)
            _, trows = read_truth(truth)
            got, k = consume_topics(broker.bootstrap, ['sent.email', 'nosent.email'],
                                    total)
        self.assertEqual(k, total)
        self.assertEqual({r['sent'] for r in trows}, {'0'})
        with_sent = raw_by_decision(got, 'sent.email')
        without = raw_by_decision(got, 'nosent.email')
        self.assertEqual(len(with_sent), len(rows))
        n_out = 0
        for dec, events in with_sent.items():
            # the same events, SENT left out
            self.assertEqual(without.get(dec, []), events[1:], dec)
            decoded = [avro_events.decode('email', v) for _, v in events[1:]]
            self.check_decision(decoded, by_id[dec], 2 * HOUR, sent=False)
            n_out += len(events) - 1
        self.assertGreater(n_out, 100)
        self.assertEqual(set(without), {d for d, e in with_sent.items() if len(e) > 1})


if __name__ == '__main__':
    unittest.main()
