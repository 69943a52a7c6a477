"""`leadscorectl simulate` against a running leadscored: the simulator
runs with the config's brokers and topic prefix and the daemon consumes
what it produces; topics that do not follow the simulator's naming, and
--brokers/--topic-prefix given by hand, exit 2; the simulator's own usage
errors come back as its exit status; --help explains and shows
leadscore-sim's help, exit 0.

Run with Debian's /usr/bin/python3 and LS_BUILD_ROOT set to the meson build
dir (meson test does both).
"""
import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import lstest as tp  # noqa: E402
import testenv  # noqa: E402


def ctl(*args, timeout=300):
    return testenv.run([tp.LEADSCORECTL] + list(args), capture_output=True,
                       text=True, timeout=timeout)


class CtlSimulate(tp.DaemonSuite):
    @classmethod
    def setUpClass(cls):
        cls.start_env('ctlsim', prefix='cs:')

    def test_events_reach_the_daemon(self):
        r = ctl('--config', self.cfg, 'simulate', '--leads', '20', '--days', '3',
                '--seed', '7')
        self.assertEqual(r.returncode, 0, r.stderr)
        m = re.search(r'events=(\d+)', r.stdout)
        self.assertIsNotNone(m, r.stdout)
        events = int(m.group(1))
        self.assertGreater(events, 20)
        # the daemon stores every simulated lead (lead-000000 ...)
        deadline = time.monotonic() + 90
        stored = 0
        while time.monotonic() < deadline:
            leads = [tp.ctl_lead(self.cfg, 'lead-%06d' % i) for i in range(20)]
            stored = sum(1 for x in leads if x is not None)
            total = sum(sum(x['events'].values()) for x in leads if x is not None)
            if stored == 20 and total == events:
                break
            time.sleep(0.5)
        self.assertEqual(stored, 20)
        self.assertEqual(total, events)

    def test_topics_off_the_simulators_naming_exit_2(self):
        cfg = os.path.join(self.tmp.name, 'odd.yaml')
        with open(self.cfg) as f:
            text = f.read()
        text = text.replace('kafka:\n', 'kafka:\n  topics:\n    web: clicks.web\n', 1)
        with open(cfg, 'w') as f:
            f.write(text)
        r = ctl('--config', cfg, 'simulate', '--leads', '1')
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("kafka.topics.web is 'clicks.web', not 'leads.web'", r.stderr)
        cfg2 = os.path.join(self.tmp.name, 'odd2.yaml')
        with open(cfg2, 'w') as f:
            f.write(text.replace('    web: clicks.web\n', '    email: mail\n'))
        r = ctl('--config', cfg2, 'simulate', '--leads', '1')
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn("kafka.topics.email is 'mail'", r.stderr)

    def test_usage(self):
        r = ctl('--config', self.cfg, 'simulate', '--brokers', 'x:1')
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn('comes from the config', r.stderr)
        r = ctl('--config', self.cfg, 'simulate', '--topic-prefix=x.')
        self.assertEqual(r.returncode, 2, r.stderr)
        # the simulator's own usage error, passed through
        r = ctl('--config', self.cfg, 'simulate', '--leads', 'many')
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertIn('leadscore-sim', r.stderr)

    def test_help(self):
        r = ctl('simulate', '--help')
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn('usage: leadscorectl [--config PATH] simulate', r.stdout)
        self.assertIn('Exit status', r.stdout)
        self.assertIn('usage: leadscore-sim', r.stdout)
        self.assertLess(r.stdout.index('simulate [leadscore-sim options]'),
                        r.stdout.index('usage: leadscore-sim'))


if __name__ == '__main__':
    unittest.main()
