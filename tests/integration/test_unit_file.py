"""leadscored's systemd unit and Grafana dashboard, checked offline.

Needs systemd-analyze (Debian package systemd) but no running systemd:
CI and the developers' machines are containers without systemd as PID 1.

Unit (systemd/leadscored.service as `meson install` writes it):
  * The project is installed into a temporary DESTDIR; the unit's
    ExecStart= binary, its --config file and its Documentation= file must
    be files that the install put there.
  * `systemd-analyze verify` must exit 0 and print nothing. verify with
    --root=DESTDIR cannot pass: it then looks for sysinit.target and
    /bin/kill inside DESTDIR too. So the unit is verified against the
    host's units from a copy in which only the ExecStart= binary path is
    prefixed with DESTDIR.
  * `systemd-analyze security --offline=true` on the installed unit file,
    unchanged: overall exposure at most MAX_EXPOSURE (printed), also
    enforced by --threshold. (Not with --root=DESTDIR: security then looks
    the unit up by name in DESTDIR's unit directories instead of reading
    the file it is given.)
  * Controls, so that neither check passes vacuously: verify reports an
    unknown key, and a unit without hardening fails the threshold.

Dashboard (conf/grafana-leadscore.json):
  * JSON, a Grafana dashboard (schemaVersion, unique panel ids, every
    query on the ${datasource} template variable, so it loads as is).
  * Every metric a query reads is in METRICS below (a histogram through
    its _bucket/_sum/_count series), every grouping or legend label is one
    of that metric's labels, and every metric in METRICS is on a panel.
  * promtool (package prometheus) parses every query, when it is installed.
"""

import glob
import json
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import unittest

# The metrics the dashboard shows: name -> (type, label names). This is
# the contract with what leadscored's GET /metrics exports; job and
# instance are added by Prometheus.
METRICS = {
    'leadscore_build_info': ('gauge', ('version',)),
    'leadscore_events_consumed_total': ('counter', ('topic', 'type')),
    'leadscore_events_dead_lettered_total': ('counter', ('reason',)),
    'leadscore_events_late_dropped_total': ('counter', ('topic',)),
    'leadscore_consumer_lag_messages': ('gauge', ('topic', 'partition')),
    'leadscore_batch_seconds': ('histogram', ()),
    'leadscore_event_to_score_seconds': ('histogram', ()),
    'leadscore_redis_roundtrip_seconds': ('histogram', ()),
    'leadscore_redis_memory_bytes': ('gauge', ()),
    'leadscore_score_changes_published_total': ('counter', ('model',)),
    'leadscore_model_labels_total': ('counter', ('model', 'label')),
    'leadscore_model_auc': ('gauge', ('model',)),
    'leadscore_model_logloss': ('gauge', ('model',)),
    'leadscore_model_calibration_error': ('gauge', ('model',)),
    'leadscore_bandit_decisions_total': ('counter', ('campaign', 'variant')),
    'leadscore_bandit_rewards_total': ('counter', ('campaign', 'variant')),
    'leadscore_http_request_seconds': ('histogram', ('route', 'code')),
    'process_resident_memory_bytes': ('gauge', ()),
    'process_cpu_seconds_total': ('counter', ()),
    'process_open_fds': ('gauge', ()),
}
TARGET_LABELS = ('job', 'instance')

MAX_EXPOSURE = 2.0

SOURCE = os.environ.get('LS_SOURCE_ROOT',
                        os.path.join(os.path.dirname(__file__), '..', '..'))
BUILD = os.environ.get('LS_BUILD_ROOT', os.path.join(SOURCE, 'build'))
MESON = os.environ.get('LS_MESON') or 'meson'
DASHBOARD = os.path.join(SOURCE, 'conf', 'grafana-leadscore.json')

# No colours, no pager, plain ASCII where systemd would draw arrows.
SD_ENV = dict(os.environ, SYSTEMD_COLORS='0', SYSTEMD_PAGER='cat',
              SYSTEMD_LESS='', LC_ALL='C.UTF-8')


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True,
                          errors='replace', env=SD_ENV, timeout=120, **kw)


def systemd_analyze():
    path = shutil.which('systemd-analyze')
    if path is None:
        raise AssertionError('systemd-analyze not found: install the Debian '
                             'package systemd (scripts/debian-packages.txt)')
    return path


def unit_key(text, key):
    """The value of the one `key=` line in a unit's text."""
    values = [line.split('=', 1)[1] for line in text.splitlines()
              if line.startswith(key + '=')]
    if len(values) != 1:
        raise AssertionError('%d %s= lines in the unit' % (len(values), key))
    return values[0]


def verify(unit_path):
    r = run([systemd_analyze(), 'verify', '--man=no', '--generators=no',
             unit_path])
    return r.returncode, (r.stdout + r.stderr).strip()


def security(unit_path, threshold):
    """(exit code, overall exposure, whole output); threshold is systemd's
    scale, ten times the printed exposure."""
    r = run([systemd_analyze(), 'security', '--offline=true',
             '--threshold=%d' % threshold, unit_path])
    out = r.stdout + r.stderr
    m = re.search(r'Overall exposure level for \S+: (\d+\.\d+)', out)
    if m is None:
        raise AssertionError('no overall exposure in:\n' + out)
    return r.returncode, float(m.group(1)), out


class UnitFile(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix='ls-unit-')
        cls.destdir = os.path.join(cls.tmp.name, 'root')
        r = subprocess.run([MESON, 'install', '-C', BUILD, '--destdir',
                            cls.destdir, '--no-rebuild', '--quiet'],
                           capture_output=True, text=True, timeout=300)
        if r.returncode != 0:
            cls.tmp.cleanup()
            raise AssertionError('meson install failed:\n' + r.stdout
                                 + r.stderr)
        found = glob.glob(os.path.join(cls.destdir, '**', 'systemd', 'system',
                                       'leadscored.service'), recursive=True)
        if len(found) != 1:
            cls.tmp.cleanup()
            raise AssertionError('installed units: %r' % found)
        cls.unit = found[0]
        with open(cls.unit) as f:
            cls.text = f.read()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def in_root(self, path):
        self.assertTrue(os.path.isabs(path), path)
        return os.path.join(self.destdir, path.lstrip('/'))

    def write_unit(self, name, text):
        d = tempfile.mkdtemp(dir=self.tmp.name)
        path = os.path.join(d, name)
        with open(path, 'w') as f:
            f.write(text)
        return path

    def verifiable(self, text):
        """The unit with only its ExecStart= binary moved into DESTDIR."""
        argv = shlex.split(unit_key(text, 'ExecStart'))
        return text.replace('ExecStart=' + argv[0],
                            'ExecStart=' + self.in_root(argv[0]), 1)

    def test_installed_paths_exist(self):
        self.assertIsNone(re.search(r'@[A-Z_]+@', self.text),
                          'an unsubstituted @VAR@')
        argv = shlex.split(unit_key(self.text, 'ExecStart'))
        self.assertTrue(os.access(self.in_root(argv[0]), os.X_OK), argv[0])
        self.assertEqual(argv[1], '--config')
        self.assertTrue(os.path.isfile(self.in_root(argv[2])), argv[2])
        doc = unit_key(self.text, 'Documentation')
        self.assertTrue(doc.startswith('file://'), doc)
        self.assertTrue(os.path.isfile(self.in_root(doc[len('file://'):])),
                        doc)

    def test_fd_limit_leaves_room_for_http(self):
        # leadscored sizes its HTTP connection limit from RLIMIT_NOFILE less
        # 256 (at most 4096); the soft default of 1,024 is what a flood of
        # slow clients exhausted (issue 12)
        self.assertGreaterEqual(int(unit_key(self.text, 'LimitNOFILE')), 4096 + 256)

    def test_verify_is_silent(self):
        path = self.write_unit('leadscored.service',
                               self.verifiable(self.text))
        code, out = verify(path)
        print('systemd-analyze verify: exit %d, output %r' % (code, out))
        self.assertEqual(out, '')
        self.assertEqual(code, 0)

    def test_verify_control_reports_a_bad_key(self):
        bad = self.verifiable(self.text).replace(
            '[Service]\n', '[Service]\nFrobnicate=yes\n', 1)
        code, out = verify(self.write_unit('leadscored.service', bad))
        self.assertIn('Frobnicate', out)

    def test_security_exposure(self):
        code, score, out = security(self.unit, int(MAX_EXPOSURE * 10))
        print('systemd-analyze security --offline=true: overall exposure '
              '%.1f (limit %.1f)' % (score, MAX_EXPOSURE))
        self.assertLessEqual(score, MAX_EXPOSURE, out)
        self.assertEqual(code, 0, out)

    def test_security_control_fails_threshold(self):
        argv = shlex.split(unit_key(self.text, 'ExecStart'))
        path = self.write_unit('leadscored.service',
                               '[Service]\nExecStart=%s\n' % argv[0])
        code, score, out = security(path, int(MAX_EXPOSURE * 10))
        self.assertGreater(score, MAX_EXPOSURE, out)
        self.assertNotEqual(code, 0, out)


# ------------------------------------------------------------- dashboard

PROMQL_WORDS = {'by', 'without', 'on', 'ignoring', 'group_left',
                'group_right', 'bool', 'and', 'or', 'unless', 'offset',
                'inf', 'nan'}


def strip_query(expr):
    """expr without Grafana variables, strings, ranges and clause lists."""
    s = re.sub(r'\$\{?\w+(?::\w+)?\}?', 'VAR', expr)
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'', '""', s)
    return s


def metric_names(expr):
    """Metric names an expression reads (not functions, keywords, labels)."""
    s = strip_query(expr)
    s = re.sub(r'\{[^}]*\}', ' ', s)
    s = re.sub(r'\[[^\]]*\]', ' ', s)
    s = re.sub(r'\b(?:by|without|on|ignoring|group_left|group_right)'
               r'\s*\([^)]*\)', ' ', s)
    s = re.sub(r'\boffset\s+\w+', ' ', s)
    names = set()
    for m in re.finditer(r'(?<![\w.:])([a-zA-Z_:][\w:]*)(\s*\()?', s):
        if m.group(2) is None and m.group(1).lower() not in PROMQL_WORDS:
            names.add(m.group(1))
    return names


def label_names(expr, legend=''):
    """Label names an expression groups or matches by, and its legend's."""
    s = strip_query(expr)
    labels = set()
    for m in re.finditer(r'\b(?:by|without|on|ignoring|group_left|'
                         r'group_right)\s*\(([^)]*)\)', s):
        labels |= {x.strip() for x in m.group(1).split(',') if x.strip()}
    for m in re.finditer(r'\{([^}]*)\}', s):
        labels |= set(re.findall(r'(\w+)\s*(?:=~|!~|!=|=)', m.group(1)))
    labels |= set(re.findall(r'\{\{\s*(\w+)\s*\}\}', legend))
    return labels


def resolve(name):
    """(METRICS key, whether it is a histogram's le-bearing series)."""
    if name in METRICS:
        return name, False
    for suffix in ('_bucket', '_sum', '_count'):
        base = name[:-len(suffix)]
        if name.endswith(suffix) and METRICS.get(base, ('',))[0] == \
                'histogram':
            return base, suffix == '_bucket'
    return None, False


def all_panels(dash):
    for p in dash['panels']:
        yield p
        yield from p.get('panels', ())


class Dashboard(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        with open(DASHBOARD, encoding='utf-8') as f:
            cls.dash = json.load(f)
        cls.queries = [(p['title'], t['expr'], t.get('legendFormat', ''))
                       for p in all_panels(cls.dash)
                       for t in p.get('targets', ())]

    def test_parsers_catch_mistakes(self):
        e = ('histogram_quantile(0.99, sum by (route, le) (rate('
             'leadscore_http_request_seconds_bucket{job=~"$job"}[5m]))) / '
             'on (job) group_left sum(leadscore_typo_total offset 1h)')
        self.assertEqual(metric_names(e),
                         {'leadscore_http_request_seconds_bucket',
                          'leadscore_typo_total'})
        self.assertEqual(resolve('leadscore_typo_total'), (None, False))
        self.assertEqual(label_names(e, '{{route}} p99'),
                         {'route', 'le', 'job'})

    def test_is_a_dashboard_on_the_datasource_variable(self):
        d = self.dash
        self.assertIsNone(d.get('id'))
        self.assertTrue(d['uid'] and d['title'])
        self.assertGreaterEqual(d['schemaVersion'], 36)
        variables = {v['name']: v for v in d['templating']['list']}
        ds = variables['datasource']
        self.assertEqual((ds['type'], ds['query']),
                         ('datasource', 'prometheus'))
        ids = [p['id'] for p in all_panels(d)]
        self.assertEqual(len(ids), len(set(ids)), 'duplicate panel ids')
        want = {'type': 'prometheus', 'uid': '${datasource}'}
        for p in all_panels(d):
            self.assertLessEqual(p['gridPos']['x'] + p['gridPos']['w'], 24)
            if p['type'] == 'row':
                continue
            self.assertEqual(p['datasource'], want, p['title'])
            refs = [t['refId'] for t in p['targets']]
            self.assertTrue(refs, p['title'])
            self.assertEqual(len(refs), len(set(refs)), p['title'])
            for t in p['targets']:
                self.assertEqual(t['datasource'], want, p['title'])
        for v in d['templating']['list']:
            if v['type'] == 'query':
                self.assertEqual(v['datasource'], want, v['name'])

    def test_metrics_and_labels_are_known(self):
        shown = set()
        for title, expr, legend in self.queries:
            allowed = set(TARGET_LABELS)
            for name in metric_names(expr):
                base, bucket = resolve(name)
                self.assertIsNotNone(base, '%s: unknown metric %s'
                                     % (title, name))
                shown.add(base)
                allowed |= set(METRICS[base][1])
                if bucket:
                    allowed.add('le')
            self.assertLessEqual(label_names(expr, legend), allowed, title)
        for v in self.dash['templating']['list']:
            if v['type'] == 'query':
                m = re.match(r'label_values\((\w+)', v['query'])
                self.assertIn(m.group(1), METRICS, v['name'])
        self.assertEqual(set(METRICS) - shown, set(), 'metrics on no panel')

    def test_promtool_parses_every_query(self):
        promtool = shutil.which('promtool')
        if promtool is None:
            self.skipTest('promtool not installed (Debian package prometheus)')
        lines = ['groups:', '  - name: dashboard', '    rules:']
        for i, (_, expr, _) in enumerate(self.queries):
            expr = re.sub(r'\$\{?\w+(?::\w+)?\}?', '.*', expr)
            lines += ['      - record: dashboard:query_%d' % i,
                      '        expr: %s' % json.dumps(expr)]
        with tempfile.NamedTemporaryFile('w', suffix='.yml') as f:
            f.write('\n'.join(lines) + '\n')
            f.flush()
            r = subprocess.run([promtool, 'check', 'rules', f.name],
                               capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn('%d rules found' % len(self.queries), r.stdout)


if __name__ == '__main__':
    unittest.main()
