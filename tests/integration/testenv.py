"""Real Redis, the dev broker and daemon processes for integration tests.

Project rule: real parts, not mocks. These fixtures start real processes:

- RedisServer: a private redis-server in a fresh temp dir, on a unix socket
  or a free 127.0.0.1 TCP port, without persistence unless asked for
  (persistent=True: append-only file fsynced on every write, so a restart
  keeps the data; extra_args: more redis-server arguments, which override
  earlier ones); stop() and restart() on the same address, suspend() and
  resume() (SIGSTOP/SIGCONT: alive but not answering), url, cleanup.
- DevBroker: the leadscore-devbroker binary (librdkafka's mock cluster, a
  real Kafka-protocol broker on 127.0.0.1); parses its one stdout line
  `bootstrap.servers=...`. With control=True it takes faults on its stdin
  (down/up a broker, move a partition leader, inject request errors, set
  a round-trip time): the methods of the same names wait for each `ok`.
- Daemon: any binary with args and env; its stderr (and stdout) lines are
  collected by reader threads; wait_for_log(pattern, timeout), terminate()
  (SIGTERM, then SIGKILL) returning the exit code, kill() for kill -9 tests.

Every process started here is killed when the test process ends, however it
ends: context managers and atexit on a normal exit, a SIGTERM handler (meson
sends SIGTERM on timeout) that cleans up and then dies of SIGTERM, and
PR_SET_PDEATHSIG(SIGKILL) in each child for when Python itself is killed -9.
PR_SET_PDEATHSIG fires when the *thread* that started the child exits, so
start processes from the test's main thread (unittest does).

Standard library only, except the optional helpers that say so
(RedisServer.client() needs `redis`; produce()/consume() need
`confluent_kafka`); both come with Debian's /usr/bin/python3.

Valgrind (see docs/operations.md "Development and testing"): with LS_TEST_VALGRIND=1 the
project's own binaries (those under $LS_BUILD_ROOT: leadscored,
leadscorectl, leadscore-sim; the dev broker too with LS_TEST_VALGRIND=all)
started through Daemon or wrap_argv() run under valgrind memcheck, each
writing its report to $LS_TEST_VALGRIND_DIR (default
$LS_BUILD_ROOT/meson-logs/valgrind). A process that ends with errors fails
the test that stopped it (terminate()/wait() raise ValgrindError). Valgrind
makes them 20-50x slower, so the waits in here (and the few tests that need
it, via scaled()) multiply their timeouts by LS_TEST_TIMEOUT_SCALE (default
10 under valgrind, else 1); nothing asserted is loosened, only waited for
longer.

Beware the mock broker's retention: each partition keeps only about its
newest 5 MiB (at most 100,000 message sets). It also auto-creates, with 4
partitions, any unknown topic a client names (even by subscribing).
"""
import atexit
import ctypes
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid

__all__ = [
    'RedisServer', 'DevBroker', 'Daemon', 'find_devbroker',
    'produce', 'consume', 'wrap_argv', 'scaled', 'ValgrindError', 'run',
]

# ---------------------------------------------------------------- valgrind

VALGRIND = os.environ.get('LS_TEST_VALGRIND', '') in ('1', 'all')
VALGRIND_BROKER = os.environ.get('LS_TEST_VALGRIND', '') == 'all'
TIMEOUT_SCALE = float(os.environ.get('LS_TEST_TIMEOUT_SCALE')
                      or (10 if VALGRIND else 1))
_VALGRIND_ERRORS = re.compile(r'ERROR SUMMARY: ([1-9][0-9]*) errors')


class ValgrindError(AssertionError):
    """A process run under valgrind reported memory errors or leaks."""


def scaled(seconds):
    """seconds times LS_TEST_TIMEOUT_SCALE: for waits on a process that
    may run under valgrind."""
    return seconds * TIMEOUT_SCALE


def _valgrind_dir():
    d = os.environ.get('LS_TEST_VALGRIND_DIR')
    if not d:
        d = os.path.join(os.environ.get('LS_BUILD_ROOT', '.'), 'meson-logs',
                         'valgrind')
    os.makedirs(d, exist_ok=True)
    return d


def _is_ours(path):
    root = os.environ.get('LS_BUILD_ROOT')
    if not root:
        return False
    root = os.path.realpath(root) + os.sep
    return os.path.realpath(path).startswith(root)


def wrap_argv(argv, name=None, leak_check=True):
    """argv, run under valgrind memcheck when LS_TEST_VALGRIND asks for it
    and argv[0] is one of this build's binaries; else argv unchanged.

    The report goes to a log file (not stderr, which tests read); its path
    is the `--log-file=` argument; valgrind_report() checks it.
    leak_check=False: for a process a test makes exit without cleaning up
    on purpose (_exit from a timeout): memory errors still count, what it
    holds at exit does not."""
    argv = [str(a) for a in argv]
    if not VALGRIND or not argv or not _is_ours(argv[0]):
        return argv
    base = os.path.basename(argv[0])
    if base == 'leadscore-devbroker' and not VALGRIND_BROKER:
        return argv
    supp = os.path.join(os.environ.get('LS_SOURCE_ROOT', '.'), 'tests',
                        'valgrind.supp')
    log = os.path.join(_valgrind_dir(), '%s.%%p.log' % (name or base))
    return ['valgrind', '--tool=memcheck', '--error-exitcode=99',
            '--leak-check=full' if leak_check else '--leak-check=no',
            '--errors-for-leak-kinds=definite',
            '--track-origins=no', '--num-callers=30',
            '--suppressions=' + supp, '--log-file=' + log] + argv


def valgrind_report(argv, pid):
    """The error summary line of a wrapped process's valgrind log when it
    reports errors, else None (not wrapped, no errors, or no summary
    because it was killed -9)."""
    log = next((a[len('--log-file='):] for a in argv
                if a.startswith('--log-file=')), None)
    if argv[:1] != ['valgrind'] or log is None or pid is None:
        return None
    path = log.replace('%p', str(pid))
    try:
        with open(path, encoding='utf-8', errors='replace') as f:
            m = _VALGRIND_ERRORS.search(f.read())
    except OSError:
        return None
    return '%s: %s' % (path, m.group(0)) if m else None

# ---------------------------------------------------------------- cleanup

_registry_lock = threading.RLock()
_registry = set()   # objects with an _emergency_cleanup() method


def _register(obj):
    with _registry_lock:
        _registry.add(obj)


def _unregister(obj):
    with _registry_lock:
        _registry.discard(obj)


def _cleanup_all():
    with _registry_lock:
        objs = list(_registry)
        _registry.clear()
    for obj in objs:
        try:
            obj._emergency_cleanup()
        except Exception as e:  # keep going: clean up the others too
            sys.stderr.write('testenv: cleanup of %r failed: %s\n' % (obj, e))


atexit.register(_cleanup_all)


def _on_sigterm(signum, frame):
    # Clean up, then die of SIGTERM as the sender expects.
    _cleanup_all()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


if (threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL):
    signal.signal(signal.SIGTERM, _on_sigterm)

_PR_SET_PDEATHSIG = 1
try:
    _libc = ctypes.CDLL(None, use_errno=True)
    _prctl = _libc.prctl
except (OSError, AttributeError):
    _prctl = None


def _child_setup_factory():
    """preexec_fn: die with the parent (see module doc)."""
    parent = os.getpid()

    def setup():
        if _prctl is not None:
            _prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:   # parent died before prctl took effect
            os._exit(126)
    return setup


def _popen(argv, env, cwd, stdout, stderr, stdin=subprocess.DEVNULL):
    return subprocess.Popen(
        argv, env=env, cwd=cwd, stdin=stdin,
        stdout=stdout, stderr=stderr, close_fds=True,
        preexec_fn=_child_setup_factory())


def _reap(proc, timeout):
    """SIGTERM, wait up to timeout, then SIGKILL; returns the exit code."""
    if proc.poll() is not None:
        return proc.returncode
    try:
        proc.send_signal(signal.SIGTERM)
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()


def run(argv, timeout=None, input=None, **kw):
    """subprocess.run for a one-shot command (leadscorectl, leadscore-sim)
    that may run under valgrind: wrapped by wrap_argv(), timeout scaled;
    raises ValgrindError when valgrind reports errors. kw as for
    subprocess.run (capture_output, text, env, cwd, ...)."""
    argv = wrap_argv(argv)
    check = kw.pop('check', False)
    if kw.pop('capture_output', False):
        kw['stdout'] = kw['stderr'] = subprocess.PIPE
    if input is not None:
        kw['stdin'] = subprocess.PIPE
    with subprocess.Popen(argv, **kw) as p:
        try:
            out, err = p.communicate(
                input, timeout=None if timeout is None else scaled(timeout))
        except BaseException:
            p.kill()
            p.wait()
            raise
        rc = p.poll()
    bad = valgrind_report(argv, p.pid)
    if bad:
        raise ValgrindError('%s under valgrind: %s' % (argv, bad))
    done = subprocess.CompletedProcess(argv, rc, out, err)
    if check:
        done.check_returncode()
    return done


# ------------------------------------------------------------------ Redis

def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]
    finally:
        s.close()


def _find_redis_server():
    env = os.environ.get('LS_REDIS_SERVER')
    if env:
        return env
    return shutil.which('redis-server') or '/usr/bin/redis-server'


class RedisServer:
    """A private redis-server. mode is 'unix' or 'tcp'.

    Usage: `with RedisServer('unix') as r: redis.Redis(unix_socket_path=
    r.socket_path)`, or start()/cleanup() by hand. `url` is
    unix:///path/redis.sock or redis://127.0.0.1:PORT/0.
    """

    START_TIMEOUT = 10.0
    PORT_ATTEMPTS = 5

    def __init__(self, mode='unix', binary=None, persistent=False,
                 extra_args=()):
        if mode not in ('unix', 'tcp'):
            raise ValueError('mode must be unix or tcp, not %r' % (mode,))
        self.mode = mode
        self.binary = binary or _find_redis_server()
        self.persistent = persistent
        self.extra_args = [str(a) for a in extra_args]
        self.suspended = False
        self.dir = None
        self.socket_path = None
        self.port = None
        self.proc = None

    # -- properties
    @property
    def url(self):
        if self.mode == 'unix':
            return 'unix://' + self.socket_path
        return 'redis://127.0.0.1:%d/0' % self.port

    @property
    def pid(self):
        return self.proc.pid if self.running else None

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    @property
    def log_path(self):
        return os.path.join(self.dir, 'redis.log')

    def __repr__(self):
        return '<RedisServer %s pid=%s>' % (
            self.url if self.dir else '(not started)', self.pid)

    # -- lifecycle
    def start(self):
        if self.dir is not None:
            raise RuntimeError('already started; use restart()')
        tmp = tempfile.gettempdir()
        # A unix socket path has at most 107 bytes.
        if len(tmp) + len('/ls-redis-XXXXXXXX/redis.sock') > 107:
            tmp = '/tmp'
        self.dir = tempfile.mkdtemp(prefix='ls-redis-', dir=tmp)
        _register(self)
        if self.mode == 'unix':
            self.socket_path = os.path.join(self.dir, 'redis.sock')
        try:
            self._launch(fresh_port=True)
        except BaseException:
            self.cleanup()
            raise
        return self

    def stop(self, timeout=5.0):
        """Stop the server (the dir stays for restart); returns exit code.
        Without persistence the data is gone afterwards."""
        if self.proc is None:
            return None
        self.resume()   # a stopped process would not act on SIGTERM
        rc = _reap(self.proc, timeout)
        self.proc = None
        return rc

    def suspend(self):
        """SIGSTOP the server: connections stay open, nothing answers."""
        if self.running and not self.suspended:
            self.proc.send_signal(signal.SIGSTOP)
            self.suspended = True

    def resume(self):
        """SIGCONT after suspend(); a no-op otherwise."""
        if self.suspended:
            self.suspended = False
            if self.proc is not None and self.proc.poll() is None:
                self.proc.send_signal(signal.SIGCONT)

    def restart(self):
        """Stop if running and start again on the same socket or port."""
        if self.dir is None:
            raise RuntimeError('not started')
        self.stop()
        self._launch(fresh_port=False)
        return self

    def cleanup(self):
        """Stop and remove the temp dir. Safe to call twice."""
        self.stop()
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
        _unregister(self)

    def _emergency_cleanup(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        if self.dir is None:
            self.start()
        return self

    def __exit__(self, *exc):
        self.cleanup()
        return False

    # -- clients
    def ping(self, timeout=0.5):
        """True when a raw RESP PING on a new connection answers +PONG."""
        try:
            if self.mode == 'unix':
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                addr = self.socket_path
            else:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                addr = ('127.0.0.1', self.port)
        except OSError:
            return False
        try:
            s.settimeout(timeout)
            s.connect(addr)
            s.sendall(b'*1\r\n$4\r\nPING\r\n')
            buf = b''
            while not buf.endswith(b'\r\n'):
                chunk = s.recv(64)
                if not chunk:
                    return False
                buf += chunk
            return buf == b'+PONG\r\n'
        except OSError:
            return False
        finally:
            s.close()

    def client(self, **kwargs):
        """A redis.Redis connected to this server (needs the redis module)."""
        import redis
        if self.mode == 'unix':
            return redis.Redis(unix_socket_path=self.socket_path, **kwargs)
        return redis.Redis(host='127.0.0.1', port=self.port, **kwargs)

    def log_tail(self, nbytes=1500):
        try:
            with open(self.log_path, 'rb') as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - nbytes))
                return f.read().decode('utf-8', 'replace')
        except OSError as e:
            return '(no redis.log: %s)' % e

    # -- internals
    def _argv(self):
        argv = [self.binary]
        if self.mode == 'unix':
            argv += ['--port', '0', '--unixsocket', self.socket_path,
                     '--unixsocketperm', '700']
        else:
            argv += ['--port', str(self.port), '--bind', '127.0.0.1']
        argv += ['--save', '', '--appendonly', 'no', '--daemonize', 'no',
                 '--dir', self.dir, '--logfile', self.log_path]
        if self.persistent:
            argv += ['--appendonly', 'yes', '--appendfsync', 'always']
        return argv + self.extra_args

    def _launch(self, fresh_port):
        last = None
        for _ in range(self.PORT_ATTEMPTS):
            if self.mode == 'tcp' and fresh_port:
                self.port = free_port()
            if self.mode == 'unix':
                try:   # a stale socket must not fool ping()
                    os.unlink(self.socket_path)
                except FileNotFoundError:
                    pass
            log = open(self.log_path, 'ab')
            try:   # early errors go to stderr, before the logfile is open
                self.proc = _popen(self._argv(), None, self.dir, log, log)
            finally:
                log.close()
            deadline = time.monotonic() + self.START_TIMEOUT
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    break
                if self.ping():
                    return
                time.sleep(0.02)
            if self.proc.poll() is None:
                tail = self.log_tail()
                self.stop()
                raise TimeoutError(
                    'redis-server did not answer PING within %.0f s; '
                    'redis.log: %s' % (self.START_TIMEOUT, tail))
            rc = self.proc.returncode
            self.proc = None
            tail = self.log_tail()
            last = RuntimeError('redis-server (%s) exited with %s; '
                                'redis.log: %s' % (self.binary, rc, tail))
            if 'in use' not in tail:
                raise last
            time.sleep(0.0 if fresh_port else 0.2)
        raise last


# ----------------------------------------------------------------- Daemon

class Daemon:
    """A child process whose stderr and stdout lines are collected.

    argv: the binary and its arguments. env: variables added to (or, with
    inherit_env=False, replacing) os.environ. leak_check: see wrap_argv().
    Lines are kept without their
    newline in `lines` (stderr) and `stdout_lines`; set echo=True to copy
    stderr lines to our stderr prefixed with the name as they arrive.
    stdin_pipe=True gives the child a pipe on stdin (write_line() writes
    to it); otherwise its stdin is /dev/null.
    """

    def __init__(self, argv, env=None, cwd=None, name=None,
                 inherit_env=True, echo=False, leak_check=True, stdin_pipe=False):
        self.name = name or os.path.basename(str(argv[0]))
        self.argv = wrap_argv(argv, self.name, leak_check)
        self._valgrind_checked = False
        self.env = dict(os.environ) if inherit_env else {}
        if env:
            self.env.update({k: str(v) for k, v in env.items()})
        self.cwd = cwd
        self.echo = echo
        self.stdin_pipe = stdin_pipe
        self.proc = None
        self.lines = []
        self.stdout_lines = []
        self._cond = threading.Condition()
        self._readers = []

    def __repr__(self):
        return '<Daemon %s pid=%s rc=%s>' % (self.name, self.pid,
                                              self.returncode)

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    @property
    def returncode(self):
        return self.proc.poll() if self.proc else None

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self):
        if self.proc is not None:
            raise RuntimeError('%s already started' % self.name)
        self.proc = _popen(self.argv, self.env, self.cwd,
                           subprocess.PIPE, subprocess.PIPE,
                           subprocess.PIPE if self.stdin_pipe
                           else subprocess.DEVNULL)
        _register(self)
        for stream, sink in ((self.proc.stderr, self.lines),
                             (self.proc.stdout, self.stdout_lines)):
            t = threading.Thread(target=self._read, args=(stream, sink),
                                 name='%s-reader' % self.name, daemon=True)
            t.start()
            self._readers.append(t)
        return self

    def _read(self, stream, sink):
        try:
            for raw in iter(stream.readline, b''):
                line = raw.decode('utf-8', 'replace').rstrip('\r\n')
                if self.echo and sink is self.lines:
                    sys.stderr.write('[%s] %s\n' % (self.name, line))
                with self._cond:
                    sink.append(line)
                    self._cond.notify_all()
        finally:
            stream.close()
            with self._cond:
                self._cond.notify_all()

    def _wait_for(self, sink, what, pattern, timeout, since):
        rx = re.compile(pattern)
        timeout = scaled(timeout)
        deadline = time.monotonic() + timeout
        i = since
        with self._cond:
            while True:
                while i < len(sink):
                    m = rx.search(sink[i])
                    if m:
                        return m
                    i += 1
                readers_done = not any(t.is_alive() for t in self._readers)
                left = deadline - time.monotonic()
                if left <= 0 or (readers_done and self.proc.poll() is not None):
                    break
                self._cond.wait(min(left, 0.2))
        rc = self.returncode
        state = 'still running' if rc is None else 'exited with %s' % rc
        raise TimeoutError(
            '%s: no %s line matching %r within %.1f s (%s); last lines:\n%s'
            % (self.name, what, pattern, timeout, state, self.tail()))

    def wait_for_log(self, pattern, timeout=10.0, since=0):
        """First stderr line at index >= since matching the regex pattern.

        Returns the re.Match. Raises TimeoutError (with the last lines) on
        timeout or when the process exits without printing it.
        """
        return self._wait_for(self.lines, 'stderr', pattern, timeout, since)

    def wait_for_stdout(self, pattern, timeout=10.0, since=0):
        """Like wait_for_log, for stdout lines."""
        return self._wait_for(self.stdout_lines, 'stdout', pattern, timeout,
                              since)

    def write_line(self, line):
        """Write line and a newline to the child's stdin (stdin_pipe)."""
        self.proc.stdin.write(line.encode('utf-8') + b'\n')
        self.proc.stdin.flush()

    def tail(self, n=30):
        with self._cond:
            return '\n'.join(self.lines[-n:])

    def send_signal(self, sig):
        if self.running:
            self.proc.send_signal(sig)

    def wait(self, timeout=None):
        """Wait for exit; returns the exit code (negative: killed by)."""
        rc = self.proc.wait(timeout=None if timeout is None
                            else scaled(timeout))
        self._finish()
        self._check_valgrind()
        return rc

    def terminate(self, timeout=10.0):
        """SIGTERM, wait up to timeout, then SIGKILL. Returns the exit code
        (-9 means it had to be killed)."""
        if self.proc is None:
            return None
        rc = _reap(self.proc, scaled(timeout))
        self._finish()
        self._check_valgrind()
        return rc

    def kill(self):
        """kill -9 now (crash tests); returns the exit code, i.e. -9."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.kill()
        rc = self.proc.wait()
        self._finish()
        return rc

    def _finish(self):
        for t in self._readers:
            t.join(timeout=5.0)
        if self.proc.stdin is not None:
            try:
                self.proc.stdin.close()
            except OSError:   # the child is gone: nothing to flush to
                pass
        _unregister(self)

    def _check_valgrind(self):
        if self._valgrind_checked:   # once: wait() then terminate()
            return
        self._valgrind_checked = True
        bad = valgrind_report(self.argv, self.pid)
        if bad:
            raise ValgrindError('%s under valgrind: %s' % (self.name, bad))

    def _emergency_cleanup(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self):
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc):
        if self.proc is not None:
            self.terminate()
        return False


# -------------------------------------------------------------- DevBroker

def find_devbroker():
    """Path of leadscore-devbroker: $LS_DEVBROKER, else
    $LS_BUILD_ROOT/tools/leadscore-devbroker."""
    path = os.environ.get('LS_DEVBROKER')
    if not path:
        root = os.environ.get('LS_BUILD_ROOT')
        if not root:
            raise RuntimeError('set LS_BUILD_ROOT (the meson build dir) or '
                               'LS_DEVBROKER to find leadscore-devbroker')
        path = os.path.join(root, 'tools', 'leadscore-devbroker')
    if not os.access(path, os.X_OK):
        raise RuntimeError('%s is not an executable' % path)
    return path


class DevBroker:
    """leadscore-devbroker as a child process.

    `with DevBroker(topics=['t'], partitions=2) as b: b.bootstrap`. With no
    topics the binary creates its defaults (leads.email ... leads.decisions).

    control=True starts it with --control: command() sends one fault
    command and returns once the broker has answered `ok` (raising
    RuntimeError with its reason on `error ...`); down(), up(), leader(),
    errors(), clear(), rtt() and coordinator() are the commands by name.
    Brokers are numbered 1..brokers. Only one thread may send commands.
    """

    START_TIMEOUT = 20.0
    COMMAND_TIMEOUT = 30.0

    def __init__(self, binary=None, brokers=1, partitions=4, topics=None,
                 env=None, echo=False, control=False):
        self.binary = binary or find_devbroker()
        argv = [self.binary, '--brokers', str(brokers),
                '--partitions', str(partitions)]
        for t in topics or ():
            argv += ['--topic', t]
        if control:
            argv.append('--control')
        self.brokers = brokers
        self.control = control
        self.daemon = Daemon(argv, env=env, name='devbroker', echo=echo,
                             stdin_pipe=control)
        self.bootstrap = None

    def start(self):
        self.daemon.start()
        try:
            m = self.daemon.wait_for_stdout(r'^bootstrap\.servers=(\S+)$',
                                            timeout=self.START_TIMEOUT)
        except BaseException:
            self.daemon.kill()
            raise
        self.bootstrap = m.group(1)
        return self

    def stop(self, timeout=10.0):
        """SIGTERM and wait; returns the exit code (0 on a clean stop)."""
        return self.daemon.terminate(timeout)

    @property
    def lines(self):
        return self.daemon.lines

    # -- fault control (control=True)
    def command(self, line):
        """Send one control command; returns when it took effect."""
        if not self.control:
            raise RuntimeError('DevBroker started without control=True')
        since = len(self.daemon.stdout_lines)
        self.daemon.write_line(line)
        m = self.daemon.wait_for_stdout(r'^(ok|error .*)$',
                                        timeout=self.COMMAND_TIMEOUT,
                                        since=since)
        if m.group(1) != 'ok':
            raise RuntimeError('devbroker: %r: %s' % (line, m.group(1)))

    def down(self, broker):
        """Disconnect broker and refuse connections (leaders stay)."""
        self.command('down %d' % broker)

    def up(self, broker):
        self.command('up %d' % broker)

    def leader(self, topic, partition, broker):
        """Make broker (1..N, or -1 for none) the partition's leader."""
        self.command('leader %s %d %d' % (topic, partition, broker))

    def errors(self, apikey, err, count):
        """Fail the next count requests of apikey (a number or a name such
        as 'Produce') with err (a number or a name such as
        'NOT_LEADER_FOR_PARTITION'), on any broker."""
        self.command('errors %s %s %d' % (apikey, err, count))

    def clear(self, apikey):
        self.command('clear %s' % apikey)

    def rtt(self, broker, ms):
        self.command('rtt %d %d' % (broker, ms))

    def coordinator(self, key, broker, kind='group'):
        self.command('coordinator %s %s %d' % (kind, key, broker))

    def __enter__(self):
        if self.daemon.proc is None:
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False


# ----------------------------------------------- produce / consume helpers

def produce(bootstrap, topic, records, partition=None, timeout=10.0):
    """Produce (key, value) pairs and flush; raise on any delivery error.

    Needs confluent_kafka. Returns [(partition, offset), ...] in order.
    """
    from confluent_kafka import Producer
    p = Producer({'bootstrap.servers': bootstrap, 'acks': 'all',
                  'linger.ms': 1,
                  'message.timeout.ms': int(timeout * 1000)})
    results = [None] * len(records)
    errors = []

    def report(i):
        def cb(err, msg):
            if err is not None:
                errors.append('record %d: %s' % (i, err))
            else:
                results[i] = (msg.partition(), msg.offset())
        return cb

    for i, (key, value) in enumerate(records):
        kw = {'key': key, 'value': value, 'on_delivery': report(i)}
        if partition is not None:
            kw['partition'] = partition
        while True:
            try:
                p.produce(topic, **kw)
                break
            except BufferError:
                p.poll(0.05)
    left = p.flush(timeout)
    if errors:
        raise RuntimeError('delivery to %s failed: %s' % (topic, errors[0]))
    if left:
        raise TimeoutError('%d records to %s not delivered within %.1f s'
                           % (left, topic, timeout))
    return results


def consume(bootstrap, topic, n, timeout=30.0):
    """Up to n messages from topic with a fresh group (earliest, no
    commits); returns what arrived within timeout (maybe fewer: check).

    Needs confluent_kafka. Each message is the confluent_kafka Message.
    Expect about 3 s before the first one: the mock cluster delays a new
    group's first join by that much.
    """
    from confluent_kafka import Consumer
    c = Consumer({'bootstrap.servers': bootstrap,
                  'group.id': 'ls-test-py-%s' % uuid.uuid4().hex,
                  'auto.offset.reset': 'earliest',
                  'enable.auto.commit': False})
    out = []
    try:
        c.subscribe([topic])
        deadline = time.monotonic() + timeout
        while len(out) < n and time.monotonic() < deadline:
            m = c.poll(min(0.2, max(0.0, deadline - time.monotonic())))
            if m is None or m.error():
                continue
            out.append(m)
    finally:
        c.close()
    return out
