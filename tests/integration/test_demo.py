"""scripts/demo, headless: what a newcomer is promised to see, and a clean stop.

Runs `scripts/demo --plain --build $LS_BUILD_ROOT` (no install, no build)
in a session of its own and reads its key=value blocks until, within 60 s
of its start (scaled under valgrind):

  * events flow: events/s > 0 and the events total grows between blocks;
  * scores are published (> 0) and leads scored;
  * the model's progressive AUC is defined (not '-');
  * every variant of the campaign has been chosen at least once;
  * the bandit learned: the best variant (highest true rate) takes at least
    60 % of the decisions of the last 10 s, with P(best) >= 0.9 and the
    highest posterior mean, in two blocks in a row, up by at least 0.15
    from its share in the first block with 20 decisions or more.

Then it sends SIGINT (what Ctrl-C sends) and checks that the demo exits 0
and promptly, that the daemon it ran exited 0 (it drains on SIGTERM; under
ASan a leak would make it non-zero), that no process is left in the demo's
session nor any of the pids it named, and that its temp dir is gone. A
second run gets SIGTERM once its feedback runs have started, with the same
checks.

LS_TEST_DEMO_ARGS appends its words to the demo's argv, for control runs:
the learning check fails with '--no-feedback' (no reward ever reaches the
bandit), and follows the truth with the rates permuted ('--rates
short=0.55/0.25/0.06,personal=0.30/0.05/0.01,discount=0.40/0.10/0.02':
short is then the best and the one that must rise). With equal rates it
fails in most runs but not all: Thompson sampling with nothing to tell the
arms apart still settles on one by chance, a third of the time the one
the check calls best (tie: the first listed).
"""
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import testenv  # noqa: E402

BUILD = os.path.abspath(os.environ.get('LS_BUILD_ROOT', 'build'))
SOURCE = os.environ.get('LS_SOURCE_ROOT') or os.path.dirname(os.path.dirname(
    os.path.dirname(os.path.abspath(__file__))))
WITHIN = 60  # seconds, the promise


def parse_line(line):
    """'kind k=v k=v' -> (kind, {k: v}); None for other lines."""
    words = line.split()
    if not words or line.startswith('#'):
        return None
    fields = {}
    for w in words[1:]:
        k, sep, v = w.partition('=')
        if sep:
            fields[k] = v
    return words[0], fields


def num(v):
    return None if v in (None, '-') else float(v)


def session_pids(sid):
    """Processes whose session id is sid (zombies included)."""
    out = []
    for d in os.listdir('/proc'):
        if not d.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % d, encoding='utf-8', errors='replace') as f:
                st = f.read()
        except OSError:
            continue
        rest = st[st.rindex(')') + 2:].split()
        if int(rest[3]) == sid:
            out.append((int(d), st[:st.rindex(')') + 1], rest[0]))
    return out


class Blocks:
    """The demo's plain output, grouped into blocks by their t field."""

    def __init__(self):
        self.blocks = []  # [(t, {kind: [fields...]})]
        self.comments = []

    def add(self, line):
        if line.startswith('# '):
            self.comments.append(line[2:])
            return
        p = parse_line(line)
        if p is None or 't' not in p[1]:
            return
        kind, f = p
        t = float(f['t'])
        if not self.blocks or self.blocks[-1][0] != t:
            self.blocks.append((t, {}))
        self.blocks[-1][1].setdefault(kind, []).append(f)

    def comment(self, prefix):
        for c in self.comments:
            if c.startswith(prefix):
                return c
        return None


def criteria(blocks):
    """{criterion: t of the block where it was first met} so far."""
    met = {}
    events = []
    early = None
    streak = 0
    for t, b in blocks:
        s = (b.get('stream') or [{}])[0]
        ev, eps = num(s.get('events')), num(s.get('events_per_s'))
        if ev is not None:
            events.append(ev)
        if 'events' not in met and eps and eps > 0 and len(events) >= 2 and \
                events[-1] > events[0]:
            met['events'] = t
        sc = (b.get('scores') or [{}])[0]
        if 'scores' not in met and (num(sc.get('published')) or 0) > 0 and \
                (num(sc.get('leads_scored')) or 0) > 0:
            met['scores'] = t
        m = (b.get('model') or [{}])[0]
        if 'auc' not in met and num(m.get('auc')) is not None:
            met['auc'] = t
        vs = b.get('variant') or []
        if not vs:
            continue
        if 'every_variant' not in met and all(num(v['decisions']) >= 1 for v in vs):
            met['every_variant'] = t
        best = max(vs, key=lambda v: num(v['true_rate']) or 0)
        camp = (b.get('campaign') or [{}])[0]
        share = num(best['share_recent'])
        if early is None and (num(camp.get('decisions')) or 0) >= 20 and share is not None:
            early = share
            continue
        if early is None or 'best_rising' in met:
            continue
        p_best = num(best['p_best'])
        means = [num(v['posterior_mean']) or 0 for v in vs]
        if share is not None and share >= 0.6 and share >= early + 0.15 and \
                p_best is not None and p_best >= 0.9 and \
                num(best['posterior_mean']) == max(means):
            streak += 1
            if streak >= 2:
                met['best_rising'] = t
        else:
            streak = 0
    return met, early


ALL = ('events', 'scores', 'auc', 'every_variant', 'best_rising')


class Demo:
    """One scripts/demo --plain run in a session of its own, its temp dir
    (TMPDIR) inside a temp dir of the test's, its output read by a thread."""

    def __init__(self, test):
        self.test = test
        tmp = tempfile.TemporaryDirectory(prefix='test_demo.')
        test.addCleanup(tmp.cleanup)
        self.tmp = tmp.name
        self.log = os.path.join(self.tmp, 'demo.log')
        argv = [os.path.join(SOURCE, 'scripts', 'demo'), '--plain', '--build', BUILD,
                '--interval', '2', '--log', self.log]
        argv += os.environ.get('LS_TEST_DEMO_ARGS', '').split()
        env = dict(os.environ, TMPDIR=self.tmp)
        self.t0 = time.monotonic()
        self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, text=True, env=env,
                                  start_new_session=True)
        self.sid = self.p.pid
        test.addCleanup(self.kill_session)
        self.lines = queue.Queue()
        self.out = Blocks()
        self.text = []
        self.eof = False
        threading.Thread(target=self._reader, daemon=True).start()

    def _reader(self):
        for line in self.p.stdout:
            self.lines.put(line.rstrip('\n'))
        self.lines.put(None)

    def kill_session(self):
        for pid, _, _ in session_pids(self.sid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def read_until(self, done, deadline):
        """Read lines until done(self.out) or the deadline or the end."""
        while time.monotonic() < deadline and not self.eof:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                continue
            if line is None:
                self.eof = True
                break
            self.text.append(line)
            self.out.add(line)
            if done(self.out):
                return True
        return False

    def tail(self, n=40):
        return '\n'.join(self.text[-n:]) + '\n' + _tail(self.log)

    def stop_and_check(self, sig):
        """Send sig; the demo must exit 0, its daemon 0, and leave no
        process (in its session or among the pids it named) and no temp dir."""
        t = self.test
        pids_line = self.out.comment('pids ')
        temp_line = self.out.comment('logs: ')
        t_sig = time.monotonic()
        self.p.send_signal(sig)
        try:
            rc = self.p.wait(testenv.scaled(90))
        except subprocess.TimeoutExpired:
            rc = None
        stopped_after = time.monotonic() - t_sig
        self.read_until(lambda out: False, time.monotonic() + testenv.scaled(10))
        self.p.stdout.close()
        print('stopped %.1f s after %s' % (stopped_after, signal.Signals(sig).name),
              file=sys.stderr)
        t.assertEqual(rc, 0, 'the demo did not exit 0 after %s:\n%s' % (sig, self.tail()))
        codes = self.out.comment('stopped: exit codes ')
        t.assertIsNotNone(codes, self.tail())
        t.assertIn(' daemon=0 ', codes, self.tail())
        end = time.monotonic() + testenv.scaled(10)
        left = session_pids(self.sid)
        while left and time.monotonic() < end:
            time.sleep(0.2)
            left = session_pids(self.sid)
        t.assertEqual(left, [], 'processes left behind')
        t.assertIsNotNone(pids_line, self.tail())
        for word in pids_line.split()[1:]:
            name, _, pid = word.partition('=')
            t.assertFalse(os.path.exists('/proc/' + pid), '%s (%s) is alive' % (name, pid))
        t.assertIsNotNone(temp_line, self.tail())
        demo_tmp = temp_line.split('temp dir: ')[1].split()[0]
        t.assertTrue(demo_tmp.startswith(self.tmp), demo_tmp)
        t.assertFalse(os.path.exists(demo_tmp), 'temp dir %s left behind' % demo_tmp)
        t.assertEqual([d for d in os.listdir(self.tmp) if d != 'demo.log'], [])
        with open(self.log, encoding='utf-8', errors='replace') as f:
            t.assertIn('component=http msg="listening"', f.read())


class DemoTest(unittest.TestCase):
    def test_headless_demo_then_ctrl_c(self):
        d = Demo(self)
        met, early = {}, None

        def done(out):
            nonlocal met, early
            met, early = criteria(out.blocks)
            return all(k in met for k in ALL)
        d.read_until(done, d.t0 + testenv.scaled(WITHIN))
        self.assertFalse(d.eof, 'the demo ended by itself:\n' + d.tail())
        print('\ncriteria met at (demo t, s): %s; early best share %s; checked %.1f s '
              'after start' % (met, early, time.monotonic() - d.t0), file=sys.stderr)
        for t, b in d.out.blocks:
            best = max(b.get('variant') or [{}], key=lambda v: num(v.get('true_rate')) or 0)
            print('  t=%5.1f best=%s share_recent=%s share=%s p_best=%s auc=%s' % (
                t, best.get('id'), best.get('share_recent'), best.get('share'),
                best.get('p_best'), (b.get('model') or [{}])[0].get('auc')), file=sys.stderr)
        d.stop_and_check(signal.SIGINT)
        missing = [k for k in ALL if k not in met]
        self.assertEqual(missing, [], 'not seen within %d s: %s\n%s' % (
            WITHIN, missing, d.tail()))

    def test_sigterm_while_deciding(self):
        """SIGTERM (a service manager's stop) once decisions and their
        feedback runs are under way: the same clean stop."""
        d = Demo(self)

        def deciding(out):
            return any((num(c.get('feedback_runs')) or 0) >= 1
                       for _, b in out.blocks for c in b.get('campaign', []))
        ok = d.read_until(deciding, d.t0 + testenv.scaled(WITHIN))
        self.assertTrue(ok, 'no feedback run within %d s:\n%s' % (WITHIN, d.tail()))
        d.stop_and_check(signal.SIGTERM)


def _tail(path, n=30):
    try:
        with open(path, encoding='utf-8', errors='replace') as f:
            return '--- log tail:\n' + ''.join(f.readlines()[-n:])
    except OSError:
        return ''


if __name__ == '__main__':
    unittest.main()
