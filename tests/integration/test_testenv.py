"""The Python fixtures in testenv.py work against the real processes.

Run with Debian's /usr/bin/python3 (it has confluent_kafka and redis) and
LS_BUILD_ROOT set to the meson build dir, e.g.
  LS_BUILD_ROOT=build /usr/bin/python3 -m unittest tests/integration/test_testenv.py
"""
import os
import shutil
import signal
import sys
import tempfile
import unittest
from unittest import mock

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import testenv  # noqa: E402


class RedisServerTest(unittest.TestCase):

    def check_server(self, mode):
        with testenv.RedisServer(mode) as r:
            self.assertTrue(r.running)
            if mode == 'unix':
                self.assertEqual(r.url, 'unix://' + r.socket_path)
                self.assertTrue(os.path.exists(r.socket_path))
                self.assertEqual(r.client().config_get('port')['port'], '0')
            else:
                self.assertEqual(r.url, 'redis://127.0.0.1:%d/0' % r.port)
            c = r.client()
            self.assertTrue(c.set('ls:{lead-1}:state', b'\x00\x01'))
            self.assertEqual(c.get('ls:{lead-1}:state'), b'\x00\x01')
            self.assertEqual(c.config_get('save')['save'], '')
            self.assertEqual(c.config_get('appendonly')['appendonly'], 'no')
            c.close()

            # stop: the address is dead; restart: same address, empty
            url, pid = r.url, r.pid
            self.assertEqual(r.stop(), 0)
            self.assertFalse(r.running)
            self.assertFalse(r.ping())
            r.restart()
            self.assertEqual(r.url, url)
            self.assertNotEqual(r.pid, pid)
            c = r.client()
            self.assertIsNone(c.get('ls:{lead-1}:state'))
            self.assertEqual(c.dbsize(), 0)
            c.close()
            tmpdir = r.dir
            pid = r.pid
        # context exit removed everything and reaped the server
        self.assertFalse(os.path.exists(tmpdir))
        with self.assertRaises(ProcessLookupError):
            os.kill(pid, 0)

    def test_unix(self):
        self.check_server('unix')

    def test_tcp(self):
        self.check_server('tcp')

    def test_bad_binary_reports(self):
        r = testenv.RedisServer('unix', binary='/nonexistent/redis-server')
        with self.assertRaises(OSError):
            r.start()
        self.assertFalse(os.path.exists(r.dir))


class DevBrokerTest(unittest.TestCase):

    def test_produce_consume(self):
        with testenv.DevBroker(topics=['t.one', 't.two'], partitions=3) as b:
            self.assertRegex(b.bootstrap, r'^127\.0\.0\.1:\d+$')
            from confluent_kafka import Producer
            md = Producer({'bootstrap.servers': b.bootstrap}).list_topics(
                timeout=10)
            self.assertEqual(sorted(md.topics), ['t.one', 't.two'])
            self.assertEqual(len(md.topics['t.one'].partitions), 3)

            res = testenv.produce(b.bootstrap, 't.one',
                                  [(b'lead-9', b'hello')], partition=2)
            self.assertEqual(res, [(2, 0)])
            msgs = testenv.consume(b.bootstrap, 't.one', 1, timeout=30)
            self.assertEqual(len(msgs), 1)
            self.assertEqual(msgs[0].key(), b'lead-9')
            self.assertEqual(msgs[0].value(), b'hello')
            self.assertEqual(msgs[0].partition(), 2)
            b.daemon.wait_for_log(r'msg="ready"', timeout=5)
        self.assertEqual(b.daemon.returncode, 0)
        self.assertTrue(any('msg="stopped"' in l for l in b.lines))

    def test_default_topics_and_multi_broker(self):
        with testenv.DevBroker(brokers=3) as b:
            self.assertEqual(len(b.bootstrap.split(',')), 3)
            from confluent_kafka import Producer
            md = Producer({'bootstrap.servers': b.bootstrap}).list_topics(
                timeout=10)
            self.assertEqual(len(md.brokers), 3)
            for t in ('leads.email', 'leads.web', 'leads.call',
                      'leads.outcome', 'leads.profile', 'leads.scores',
                      'leads.dead_letter', 'leads.decisions'):
                self.assertEqual(len(md.topics[t].partitions), 4, t)
            self.assertEqual(b.stop(), 0)

    def test_fault_control(self):
        from confluent_kafka import Producer
        with testenv.DevBroker(brokers=3, partitions=1, topics=['t'],
                               control=True) as b:
            b.command('ping')
            b.leader('t', 0, 2)
            md = Producer({'bootstrap.servers': b.bootstrap}).list_topics(
                timeout=10)
            self.assertEqual(md.topics['t'].partitions[0].leader, 2)
            # the leader down: a produce times out; up again: it goes
            b.down(2)
            with self.assertRaises((RuntimeError, TimeoutError)):
                testenv.produce(b.bootstrap, 't', [(b'k', b'lost')],
                                timeout=3)
            b.up(2)
            self.assertEqual(testenv.produce(b.bootstrap, 't',
                                             [(b'k', b'v1')]), [(0, 0)])
            # retriable errors are retried by the client: still delivered
            b.errors('Produce', 'NOT_LEADER_FOR_PARTITION', 2)
            self.assertEqual(testenv.produce(b.bootstrap, 't',
                                             [(b'k', b'v2')]), [(0, 1)])
            b.rtt(1, 5)
            b.coordinator('g', 3)
            b.clear('Produce')
            for bad in ('down 4', 'leader t x 1', 'errors Nope 1 1',
                        'errors Fetch NO_SUCH_ERROR 1', 'frobnicate'):
                with self.assertRaises(RuntimeError):
                    b.command(bad)
            b.command('ping')   # still answering, in order
        self.assertEqual(b.daemon.returncode, 0)
        # without --control, stdout is the bootstrap line only
        with testenv.DevBroker() as b:
            with self.assertRaises(RuntimeError):
                b.down(1)
        self.assertEqual(b.daemon.stdout_lines, ['bootstrap.servers=' + b.bootstrap])


class DaemonTest(unittest.TestCase):

    def test_logs_terminate_kill(self):
        script = ('import signal, sys, time\n'
                  'signal.signal(signal.SIGTERM, lambda *a: sys.exit(3))\n'
                  'print("ready", file=sys.stderr, flush=True)\n'
                  'print("out", flush=True)\n'
                  'time.sleep(60)\n')
        with testenv.Daemon([sys.executable, '-c', script],
                            env={'LS_X': '1'}) as d:
            m = d.wait_for_log(r'^(re)ady$', timeout=10)
            self.assertEqual(m.group(1), 're')
            d.wait_for_stdout('^out$', timeout=10)
            with self.assertRaises(TimeoutError):
                d.wait_for_log('never', timeout=0.3)
            self.assertEqual(d.terminate(timeout=10), 3)

        d = testenv.Daemon([sys.executable, '-c',
                            'import time\ntime.sleep(60)\n']).start()
        self.assertEqual(d.kill(), -signal.SIGKILL)

        # a daemon that ignores SIGTERM is killed after the timeout
        d = testenv.Daemon([sys.executable, '-c',
                            'import signal, sys, time\n'
                            'signal.signal(signal.SIGTERM, signal.SIG_IGN)\n'
                            'print("x", file=sys.stderr, flush=True)\n'
                            'time.sleep(60)\n']).start()
        d.wait_for_log('x', timeout=10)
        self.assertEqual(d.terminate(timeout=0.5), -signal.SIGKILL)

    def test_exit_before_log_is_reported(self):
        d = testenv.Daemon([sys.executable, '-c', 'raise SystemExit(5)'])
        d.start()
        with self.assertRaises(TimeoutError) as cm:
            d.wait_for_log('ready', timeout=10)
        self.assertIn('exited with 5', str(cm.exception))
        self.assertEqual(d.wait(), 5)


if __name__ == '__main__':
    unittest.main()


class ValgrindTest(unittest.TestCase):
    """LS_TEST_VALGRIND's plumbing: which argv get wrapped, and that a
    report with errors is found (whether or not this run uses valgrind)."""

    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.addCleanup(self.tmp.cleanup)
        env = mock.patch.dict(os.environ, {'LS_TEST_VALGRIND_DIR': self.tmp.name})
        env.start()
        self.addCleanup(env.stop)
        self.leadscored = os.path.join(os.environ['LS_BUILD_ROOT'], 'daemon', 'leadscored')

    def test_wraps_only_this_builds_binaries(self):
        with mock.patch.object(testenv, 'VALGRIND', False):
            self.assertEqual(testenv.wrap_argv([self.leadscored, '-h']),
                             [self.leadscored, '-h'])
        with mock.patch.object(testenv, 'VALGRIND', True):
            argv = testenv.wrap_argv([self.leadscored, '-h'])
            self.assertEqual(argv[0], 'valgrind')
            self.assertIn('--error-exitcode=99', argv)
            self.assertIn('--leak-check=full', argv)
            self.assertEqual(argv[-2:], [self.leadscored, '-h'])
            self.assertIn('--leak-check=no', testenv.wrap_argv(
                [self.leadscored], leak_check=False))
            self.assertEqual(testenv.wrap_argv([sys.executable, '-c', '0']),
                             [sys.executable, '-c', '0'])

    def test_report_names_errors(self):
        argv = ['valgrind', '--log-file=' + os.path.join(self.tmp.name, 'x.%p.log'), 'b']
        self.assertIsNone(testenv.valgrind_report(argv, 41))   # no log
        with open(os.path.join(self.tmp.name, 'x.41.log'), 'w') as f:
            f.write('==41== ERROR SUMMARY: 0 errors from 0 contexts\n')
        self.assertIsNone(testenv.valgrind_report(argv, 41))
        with open(os.path.join(self.tmp.name, 'x.42.log'), 'w') as f:
            f.write('==42== ERROR SUMMARY: 3 errors from 3 contexts\n')
        self.assertIn('ERROR SUMMARY: 3 errors', testenv.valgrind_report(argv, 42))
        self.assertIsNone(testenv.valgrind_report(argv[2:], 42))   # not wrapped

    @unittest.skipUnless(shutil.which('valgrind'), 'valgrind not installed')
    def test_real_run_writes_a_clean_report(self):
        with open(self.leadscored, 'rb') as f:
            if b'__asan_init' in f.read():
                self.skipTest('an ASan build does not run under valgrind')
        with mock.patch.object(testenv, 'VALGRIND', True):
            r = testenv.run([self.leadscored, '--version'], capture_output=True,
                            text=True, timeout=120)
        self.assertEqual(r.returncode, 0, r.stderr)
        logs = os.listdir(self.tmp.name)
        self.assertEqual(len(logs), 1, logs)
        with open(os.path.join(self.tmp.name, logs[0])) as f:
            self.assertIn('ERROR SUMMARY: 0 errors', f.read())

