"""What docs/metrics.md and docs/integrations/ tell users to copy, run
against leadscored on a real Redis and the dev broker, fed with events.

  * docs/metrics.md lists exactly the metric families /metrics exposes
    (a family exposed but not documented, or documented but not exposed,
    fails), with the type of its TYPE line and the label names its
    samples carry.
  * The kcat command lines of docs/integrations/README.md (read from the
    page: the blocks after `<!-- snippet: NAME -->`, broker replaced) print
    the ScoreChange records on the scores topic (keys, partitions, offsets
    as a plain consumer sees them), follow new ones, and show a dead
    letter's reason headers.
  * docs/integrations/score_consumer.py, as the page runs it, prints every
    published ScoreChange (compared with the records decoded independently
    by tests/integration/avro_events.py).
  * The campaign example of docs/bandit.md passes leadscored --check-config.
  * The Prometheus files pass `promtool check config`, `promtool check
    rules` and `promtool test rules` (the page's commands), and every
    metric the alert rules use is one the daemon exposes.

Run with Debian's /usr/bin/python3 and LS_BUILD_ROOT set to the meson build
dir (meson test does both).
"""
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
import unittest
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import avro_events  # noqa: E402
import lstest as tp  # noqa: E402
import testenv  # noqa: E402
from test_ops import get, samples  # noqa: E402

SOURCE = tp.SOURCE
PAGE = os.path.join(SOURCE, 'docs', 'integrations', 'README.md')
METRICS_PAGE = os.path.join(SOURCE, 'docs', 'metrics.md')
ALERTS = os.path.join(SOURCE, 'docs', 'integrations', 'prometheus', 'leadscore-alerts.yml')
SCORES = 'leads.scores'
NOW = int(time.time() * 1000) - 60000

# Families the registry adds only once they have something to say; each
# must still be documented and defined in the named source file.
CONDITIONAL = {'leadscore_metrics_series_dropped_total': 'daemon/ls_metrics_registry.c'}

CAMPAIGN = '''campaigns:
  - id: docs
    arms: [a, b]
'''


def snippet(name, bootstrap):
    """The commands of the ```sh block after <!-- snippet: name --> in the
    integrations page, continuation lines joined, the broker replaced."""
    with open(PAGE, encoding='utf-8') as f:
        text = f.read()
    m = re.search(r'<!-- snippet: %s -->\n```sh\n(.*?)\n```' % re.escape(name), text, re.S)
    assert m is not None, 'no snippet %s in %s' % (name, PAGE)
    body = m.group(1).replace('\\\n', ' ')
    return [shlex.split(line.replace('localhost:9092', bootstrap))
            for line in body.split('\n') if line.strip()]


def documented_metrics():
    """{family: (type, [label names])} from the table of docs/metrics.md."""
    out = {}
    with open(METRICS_PAGE, encoding='utf-8') as f:
        for line in f:
            if not line.startswith('| `'):
                continue
            cells = [c.strip() for c in line.strip().strip('|').split('|')]
            names = re.findall(r'`([a-z_]+)`', cells[0])
            types = [t.strip() for t in cells[1].split('/')]
            labels = re.findall(r'`([a-z_]+)`', cells[2])
            for name in names:
                # the process_* row: counter for the *_total one
                typ = types[0] if len(types) == 1 else \
                    ('counter' if name.endswith('_total') else 'gauge')
                out[name] = (typ, labels)
    return out


def exposed_metrics(text):
    """{family: (type, set of label-name tuples seen)} from an exposition."""
    types = dict(re.findall(r'^# TYPE (\S+) (\S+)$', text, re.M))
    seen = {name: set() for name in types}
    for line in text.splitlines():
        if line.startswith('#') or not line.strip():
            continue
        m = re.match(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? \S+$', line)
        assert m is not None, line
        name = m.group(1)
        if name not in types:
            name = re.sub(r'_(bucket|sum|count)$', '', name)
        labels = tuple(sorted(k for k in re.findall(r'(\w+)="(?:[^"\\]|\\.)*"', m.group(3) or '')
                              if k != 'le'))
        seen[name].add(labels)
    return {n: (types[n], seen[n]) for n in types}


class Snippets(tp.DaemonSuite):
    @classmethod
    def setUpClass(cls):
        cls.start_env('docs', prefix='d:', extra=CAMPAIGN)
        cls.bootstrap = cls.broker.bootstrap
        events = []
        for k in range(12):
            lead = 'docs-%d' % (k % 6)
            events.append(('leads.web', lead, avro_events.encode('web', {
                'event_id': 'w%d' % k, 'lead_id': lead, 'ts': NOW + k,
                'type': 'PAGE_VIEW', 'url': 'https://x.test/pricing'})))
            events.append(('leads.email', lead, avro_events.encode('email', {
                'event_id': 'm%d' % k, 'lead_id': lead, 'ts': NOW + k, 'type': 'OPENED'})))
        for topic in ('leads.web', 'leads.email'):
            testenv.produce(cls.bootstrap, topic, [(l, v) for t, l, v in events if t == topic])
        testenv.produce(cls.bootstrap, 'leads.web', [('docs-bad', b'\x02garbage')])
        cls.wait_metric(lambda t: sum(samples(t, 'leadscore_events_consumed_total').values())
                        >= len(events)
                        and sum(samples(t, 'leadscore_events_dead_lettered_total').values()) >= 1
                        and sum(samples(t, 'leadscore_score_changes_published_total').values())
                        >= 6, 'events consumed and scores published')

    @classmethod
    def metrics(cls):
        st, _, body = get(cls.port, '/metrics')
        assert st == 200, (st, body)
        return body.decode()

    @classmethod
    def wait_metric(cls, cond, what, timeout=60):
        deadline = time.monotonic() + testenv.scaled(timeout)
        while True:
            text = cls.metrics()
            if cond(text):
                return text
            if time.monotonic() > deadline:
                raise AssertionError('never: %s\n%s' % (what, text[-3000:]))
            time.sleep(0.2)

    def published(self):
        """Every ScoreChange on the topic: [(partition, offset, key, record)]."""
        n = int(sum(samples(self.metrics(), 'leadscore_score_changes_published_total').values()))
        msgs = testenv.consume(self.bootstrap, SCORES, n, timeout=testenv.scaled(30))
        self.assertEqual(len(msgs), n, 'ScoreChanges on the topic vs the counter')
        return [(m.partition(), m.offset(), m.key().decode(),
                 avro_events.decode('score_change', m.value())) for m in msgs]

    def run_cmd(self, argv, timeout=60):
        r = subprocess.run(argv, cwd=SOURCE, capture_output=True, text=True,
                           timeout=testenv.scaled(timeout))
        self.assertEqual(r.returncode, 0, '%s\n%s%s' % (argv, r.stdout, r.stderr))
        return r.stdout

    # ------------------------------------------------------------ metrics

    def test_metrics_page_lists_exactly_the_exposed_families(self):
        doc = documented_metrics()
        live = exposed_metrics(self.metrics())
        self.assertGreater(len(live), 20)
        undocumented = sorted(set(live) - set(doc))
        self.assertEqual(undocumented, [], 'exposed by /metrics, missing from docs/metrics.md')
        not_exposed = sorted(set(doc) - set(live) - set(CONDITIONAL))
        self.assertEqual(not_exposed, [], 'in docs/metrics.md, not exposed by /metrics')
        for name, path in CONDITIONAL.items():
            self.assertIn(name, doc)
            with open(os.path.join(SOURCE, path), encoding='utf-8') as f:
                self.assertIn('"%s"' % name, f.read(), path)
        for name, (typ, label_sets) in live.items():
            self.assertEqual(doc[name][0], typ, '%s: documented type' % name)
            for labels in label_sets:
                self.assertEqual(sorted(labels), sorted(doc[name][1]),
                                 '%s: labels exposed vs documented' % name)

    def test_metrics_checker_sees_a_difference(self):
        text = ('# HELP a_total x\n# TYPE a_total counter\na_total{topic="t"} 1\n'
                '# HELP h_seconds x\n# TYPE h_seconds histogram\n'
                'h_seconds_bucket{le="+Inf"} 1\nh_seconds_sum 1\nh_seconds_count 1\n')
        self.assertEqual(exposed_metrics(text),
                         {'a_total': ('counter', {('topic',)}), 'h_seconds': ('histogram', {()})})
        doc = documented_metrics()
        self.assertEqual(doc['leadscore_consumer_lag_messages'],
                         ('gauge', ['topic', 'partition']))
        self.assertEqual(doc['process_cpu_seconds_total'], ('counter', []))
        self.assertEqual(doc['process_open_fds'], ('gauge', []))

    # ------------------------------------------------------------ kcat

    def test_kcat_dump_prints_every_score_change(self):
        want = self.published()
        [argv] = snippet('kcat-dump', self.bootstrap)
        out = self.run_cmd(argv)
        got = set()
        for line in out.splitlines():
            m = re.match(r'^(\d+) %s\[(\d+)\]@(\d+) lead=(\S+) bytes=(\d+)$' % SCORES, line)
            self.assertIsNotNone(m, line)
            got.add((int(m.group(2)), int(m.group(3)), m.group(4)))
        self.assertTrue(want)
        self.assertLessEqual({(p, o, k) for p, o, k, _ in want}, got)

    def test_kcat_follow_prints_new_score_changes(self):
        [argv] = snippet('kcat-follow', self.bootstrap)
        self.assertIn('end', argv)
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                text=True)
        lines = []
        reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
        reader.start()
        try:
            # kcat starts at the end once it has the partitions: feed a new
            # lead every few seconds until one shows up
            deadline = time.monotonic() + testenv.scaled(60)
            k = 0
            while time.monotonic() < deadline:
                k += 1
                lead = 'docs-follow-%d' % k
                testenv.produce(self.bootstrap, 'leads.web', [(lead, avro_events.encode('web', {
                    'event_id': 'f%d' % k, 'lead_id': lead, 'ts': NOW + 100 + k,
                    'type': 'DEMO_REQUEST', 'url': 'https://x.test/demo'}))])
                t = time.monotonic()
                while time.monotonic() - t < 3:
                    if any(re.search(r' lead=docs-follow-\d+ bytes=\d+$', x) for x in list(lines)):
                        return
                    time.sleep(0.1)
            self.fail('kcat printed no new ScoreChange: %r' % lines)
        finally:
            proc.terminate()
            proc.wait(10)
            reader.join(10)
            proc.stdout.close()

    def test_kcat_shows_dead_letter_reasons(self):
        [argv] = snippet('kcat-dead-letters', self.bootstrap)
        out = self.run_cmd(argv)
        lines = [x for x in out.splitlines() if ' key=docs-bad ' in x]
        self.assertEqual(len(lines), 1, out)
        self.assertRegex(lines[0], r'^\d+ key=docs-bad bytes=8 ')
        for header in ('ls.reason=malformed', 'ls.source.topic=leads.web',
                       'ls.source.partition=', 'ls.source.offset='):
            self.assertIn(header, lines[0])

    # ------------------------------------------------------------ Python

    def test_python_consumer_prints_the_published_score_changes(self):
        [argv] = snippet('python-consumer', self.bootstrap)
        self.assertEqual(argv[1], 'docs/integrations/score_consumer.py')
        argv += ['--group', 'docs-%s' % uuid.uuid4().hex, '--exit-when-idle', '10']
        out = self.run_cmd(argv, timeout=120)
        got = [json.loads(x) for x in out.splitlines()]
        want = self.published()
        # no replay here, so every version is new: all of them are printed
        key = lambda r: (r['lead_id'], r['model'], r['version'])  # noqa: E731
        self.assertEqual(sorted(key(r) for r in got), sorted(key(r) for _, _, _, r in want))
        by_key = {key(r): (p, o, r) for p, o, _, r in want}
        for r in got:
            p, o, ref = by_key[key(r)]
            self.assertEqual((r.pop('partition'), r.pop('offset')), (p, o))
            self.assertEqual(r, ref)
            self.assertIn(r['tier'], ('cold', 'warm', 'hot'))
        # --tier keeps the changes into that tier only
        tier = got[0]['tier']
        argv[-4:] = ['--group', 'docs-%s' % uuid.uuid4().hex, '--tier', tier,
                     '--exit-when-idle', '10']
        only = [json.loads(x) for x in self.run_cmd(argv, timeout=120).splitlines()]
        self.assertEqual(sorted(key(r) for r in only),
                         sorted(key(r) for r in got if r['tier'] == tier))

    # ------------------------------------------------------------ config

    def test_campaign_example_is_a_valid_config(self):
        with open(os.path.join(SOURCE, 'docs', 'bandit.md'), encoding='utf-8') as f:
            m = re.search(r'<!-- snippet: campaign-config -->\n```yaml\n(.*?)```', f.read(), re.S)
        self.assertIsNotNone(m)
        path = os.path.join(self.tmp.name, 'campaign.yaml')
        with open(path, 'w', encoding='utf-8') as f:
            f.write('kafka:\n  brokers: "%s"\n' % self.bootstrap + m.group(1))
        self.assertIn('configuration OK', self.run_cmd([tp.LEADSCORED, '--check-config', path]))

    # ------------------------------------------------------------ Prometheus

    def test_prometheus_files_pass_promtool(self):
        cmds = snippet('promtool', self.bootstrap)
        self.assertEqual([c[:3] for c in cmds], [['promtool', 'check', 'config'],
                                                ['promtool', 'check', 'rules'],
                                                ['promtool', 'test', 'rules']])
        for argv in cmds:
            self.run_cmd(argv)

    def test_alert_rules_use_exposed_metrics(self):
        live = exposed_metrics(self.metrics())
        with open(ALERTS, encoding='utf-8') as f:
            exprs = re.findall(r'^\s+expr: (\|\n(?:\s{10}.*\n)+|.*)$', f.read(), re.M)
        self.assertGreaterEqual(len(exprs), 10)
        used = set()
        for e in exprs:
            used |= set(re.findall(r'\b((?:leadscore|process)_[a-z_]+)', e))
        self.assertGreaterEqual(len(used), 10)
        for name in used:
            family = name if name in live else re.sub(r'_(bucket|sum|count)$', '', name)
            self.assertIn(family, live, 'alert rules use %s' % name)

    # ------------------------------------------------------------ last: Redis goes away

    def test_zz_redis_memory_is_absent_while_redis_is_gone(self):
        # LeadscoreRedisUnavailable alerts on this series' absence (and
        # docs/metrics.md says so); the campaign configured here keeps the
        # writer's Redis connection busy, as in production
        def has_memory(text):
            return bool(samples(text, 'leadscore_redis_memory_bytes'))
        self.wait_metric(has_memory, 'leadscore_redis_memory_bytes present')
        self.redis.stop()
        try:
            self.wait_metric(lambda t: not has_memory(t),
                             'leadscore_redis_memory_bytes gone with Redis', timeout=30)
        finally:
            self.redis.restart()
        self.wait_metric(has_memory, 'leadscore_redis_memory_bytes back with Redis', timeout=60)


if __name__ == '__main__':
    unittest.main()
