"""leadscore-sim, the ground-truth event simulator.

  * Reproducible: --dry-run twice with one seed gives the same hash and
    counts; another seed gives a different stream.
  * Broker: a run against the dev broker produces records that the Apache
    Avro library (avro_events) decodes, keyed by lead_id, with ts in order
    per lead and topic, and outcomes that agree with the truth file.
  * Truth: one row per decided lead, probabilities in (0, 1), a label rate
    between 5 % and 40 %, and hidden probabilities that separate the labels
    (AUC > 0.7).

Run with Debian's /usr/bin/python3 and LS_BUILD_ROOT set to the meson build
dir (meson test does both).
"""
import collections
import os
import re
import subprocess
import sys
import tempfile
import time
import unittest

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
    p = subprocess.run([SIM] + [str(a) for a in args], capture_output=True,
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


if __name__ == '__main__':
    unittest.main()
