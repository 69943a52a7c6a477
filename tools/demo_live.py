#!/usr/bin/python3
"""leadscore's live demo: the whole system on one machine, watched as it learns.

scripts/demo builds leadscore and runs this (see --help there). It starts,
in a temp dir, a private redis-server, the dev Kafka broker
(leadscore-devbroker) and leadscored on the embedded defaults plus one
campaign (conf/demo.yaml, pointed at them through LEADSCORE_* variables),
then:

  * feeds it a simulated month of lead activity from leadscore-sim, paced
    (--rate events/s) so it plays out live for minutes;
  * plays the email system: for leads it sees scored, it asks the real
    decision API (POST /v1/campaigns/welcome/decisions, activated) which
    subject line to send, and once a second hands the decisions made to
    `leadscore-sim --feedback`, whose simulated recipients open, click and
    reply with a different true rate per variant; those email events go
    to Kafka with the decision ids, and the daemon's bandit learns from
    them;
  * shows what the daemon does, refreshed in place (or, with --plain, as
    one block of key=value lines per interval): events/s and consumer lag
    and totals from /metrics, score changes per second, leads scored and
    the hottest leads with their top factors (read back from the scores
    topic as Avro ScoreChange records), the model's progressive AUC,
    calibration error and log-loss (GET /v1/models/conversion), and each
    variant's share of decisions and posterior (GET /v1/campaigns/welcome).

Every process it starts (redis, broker, daemon, simulators) is in one
process group of its own; SIGINT (Ctrl-C), SIGTERM or the end of --seconds
stop the daemon (SIGTERM: it drains), then the rest, kill what is left of
the group, wait for all of it and remove the temp dir. Their logs go to one
file (--log, named at start) that is kept.
"""
import argparse
import collections
import ctypes
import http.client
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SOURCE, 'tests', 'integration'))
sys.path.insert(0, HERE)
import demo_view  # noqa: E402

CAMPAIGN = 'welcome'
MODEL = 'conversion'
SCORES_TOPIC = 'leads.scores'
# P(open)/P(click)/P(reply) per variant; the campaign rewards CLICKED and
# REPLIED (a reply comes only after a click), so a variant's true reward
# rate is its click rate.
DEFAULT_RATES = 'short=0.30/0.05/0.01,personal=0.55/0.25/0.06,discount=0.40/0.10/0.02'
RECENT_S = 10.0  # the window of "share now"

USAGE = """\
Runs leadscore live on this machine: a dev Kafka broker, a private
redis-server and leadscored on its embedded defaults plus one email
campaign (conf/demo.yaml), fed by the lead simulator (leadscore-sim) and
by a simulated email system that asks the bandit which subject line to
send and clicks with a different true rate per variant. A screen
refreshed in place shows events/s and consumer lag, score changes, the
hottest leads and why, the model's AUC and calibration as it learns, and
each variant's share of decisions converging on the best.

Everything it starts lives in a temp dir and one process group; Ctrl-C
(or SIGTERM, or the end of --seconds) stops all of it and removes the
temp dir. Logs go to one file, named at start and kept."""

EPILOG = """\
Without --build (or $LEADSCORE_BUILD) it first installs missing Debian
packages (scripts/deps) and builds a release build in build/.

--plain lines (one block per interval; '-' = not known yet):
  stream   t events events_per_s lag dead_letters stream_time generator
  scores   t published per_s leads_scored hot warm cold
  model    t name labels positives auc ece logloss version mature
  lead     t rank id score tier factors
  campaign t id decisions decisions_per_s trials rewards feedback_runs
  variant  t id true_rate decisions share share_recent trials rewards
           posterior_mean ci95_low ci95_high p_best probability
and '# ' lines: where the logs and temp dir are, the pids, exit codes.

Exit status: 0 stopped (Ctrl-C, SIGTERM, --seconds), 1 something failed
to start or died (the log says why), 2 usage error."""

_libc = ctypes.CDLL(None, use_errno=True)


def _child_setup():
    # die with the demo if it is killed -9 (PR_SET_PDEATHSIG = 1). SIGKILL,
    # not SIGTERM: with the broker gone too, a simulator would spend a
    # minute flushing to it, and there is nobody left to drain for
    _libc.prctl(1, signal.SIGKILL, 0, 0, 0)


def parse_rates(spec):
    """'a=O/C/R,b=...' -> ordered {variant: (open, click, reply)}."""
    rates = collections.OrderedDict()
    for item in spec.split(','):
        name, _, vals = item.partition('=')
        parts = vals.split('/')
        if not name or len(parts) != 3:
            raise ValueError('bad --rates entry %r (want VARIANT=OPEN/CLICK/REPLY)' % item)
        o, c, r = (float(x) for x in parts)
        if not 0 <= r <= c <= o <= 1:
            raise ValueError('rates of %s must satisfy 0 <= reply <= click <= open <= 1' % name)
        rates[name] = (o, c, r)
    return rates


class Group:
    """The demo's children, all in one process group led by the first."""

    def __init__(self, log):
        self.log = log
        self.pgid = None
        self.procs = []
        self.lock = threading.Lock()

    def start(self, argv, env=None, stdout=None):
        with self.lock:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                 stdout=stdout if stdout is not None else self.log,
                                 stderr=self.log, env=env,
                                 process_group=0 if self.pgid is None else self.pgid,
                                 preexec_fn=_child_setup)
            if self.pgid is None:
                self.pgid = p.pid
            self.procs.append(p)
            return p

    def reap(self):
        with self.lock:
            self.procs = [p for p in self.procs if p.poll() is None]

    def stop(self, p, sig=signal.SIGTERM, timeout=20):
        if p is None or p.poll() is not None:
            return
        try:
            p.send_signal(sig)
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()

    def kill_now(self):
        if self.pgid is not None:
            try:
                os.killpg(self.pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def kill_all(self):
        self.kill_now()
        with self.lock:
            procs = list(self.procs)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                pass


class Api:
    """One keep-alive HTTP connection to the daemon, JSON in and out."""

    def __init__(self, port):
        self.port = port
        self.conn = None

    def call(self, method, path, body=None):
        for attempt in (0, 1):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection('127.0.0.1', self.port, timeout=10)
                data = json.dumps(body).encode() if body is not None else None
                hdr = {'Content-Type': 'application/json'} if data else {}
                self.conn.request(method, path, body=data, headers=hdr)
                r = self.conn.getresponse()
                raw = r.read()
                return r.status, raw
            except (OSError, http.client.HTTPException):
                if self.conn is not None:
                    self.conn.close()
                self.conn = None
                if attempt:
                    return None, b''
        return None, b''

    def json(self, method, path, body=None):
        st, raw = self.call(method, path, body)
        try:
            return st, json.loads(raw) if raw else None
        except ValueError:
            return st, None


_METRIC = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)')
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text):
    """Prometheus text -> {name: [(labels dict, value)]}."""
    out = collections.defaultdict(list)
    for line in text.splitlines():
        if not line or line[0] == '#':
            continue
        m = _METRIC.match(line)
        if not m:
            continue
        try:
            v = float(m.group(3))
        except ValueError:
            continue
        out[m.group(1)].append((dict(_LABEL.findall(m.group(2) or '')), v))
    return out


class State:
    """Everything the view shows, written by the worker threads."""

    def __init__(self, rates):
        self.lock = threading.Lock()
        self.t0 = time.monotonic()
        self.rates = rates
        # from /metrics, /v1/models, /v1/campaigns (the poller)
        self.samples = collections.deque(maxlen=16)  # (t, events, published)
        self.metrics = {}
        self.model = None
        self.model_history = []  # (t, auc, ece)
        self.campaign = None
        self.daemon_ok = False
        # from the scores topic (the score reader)
        self.leads = {}  # lead -> (version, score, tier, factors, ts, when read: st.now())
        self.changes_read = 0
        self.stream_ts = 0
        self.recent_leads = collections.deque(maxlen=2000)
        # from the decision driver
        self.decisions = collections.Counter()
        self.recent = collections.deque()  # (t, variant)
        self.decision_errors = 0
        self.feedback_runs = 0
        self.feedback_decisions = 0
        self.feedback_failed = 0
        self.generator = 'starting'

    def now(self):
        return time.monotonic() - self.t0


def wait_for(cond, timeout, stop, what):
    end = time.monotonic() + timeout
    while not cond():
        if stop.is_set():
            raise KeyboardInterrupt
        if time.monotonic() > end:
            raise RuntimeError('%s did not happen within %d s' % (what, timeout))
        time.sleep(0.05)


def find_port(log_path, since):
    with open(log_path, 'rb') as f:
        f.seek(since)
        m = re.search(rb'component=http msg="listening" .*port=(\d+)', f.read())
    return int(m.group(1)) if m else None


def score_reader(st, bootstrap, stop):
    """Follow the scores topic from the start; keep each lead's newest."""
    import avro_events
    from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING
    c = Consumer({'bootstrap.servers': bootstrap, 'group.id': 'leadscore-demo-view',
                  'enable.auto.commit': False, 'enable.partition.eof': False})
    try:
        md = c.list_topics(SCORES_TOPIC, timeout=10)
        parts = sorted(md.topics[SCORES_TOPIC].partitions)
        c.assign([TopicPartition(SCORES_TOPIC, p, OFFSET_BEGINNING) for p in parts])
        while not stop.is_set():
            msgs = c.consume(num_messages=500, timeout=0.2)
            batch = []
            for m in msgs:
                if m.error() or m.value() is None:
                    continue
                try:
                    batch.append(avro_events.decode('score_change', m.value()))
                except Exception:  # noqa: BLE001 - one bad record is not the demo's end
                    continue
            if not batch:
                continue
            with st.lock:
                for r in batch:
                    if r['model'] != MODEL:
                        continue
                    st.changes_read += 1
                    old = st.leads.get(r['lead_id'])
                    if old is None or r['version'] > old[0]:
                        st.leads[r['lead_id']] = (r['version'], r['score'], r['tier'],
                                                  r['factors'], r['ts'], st.now())
                    st.recent_leads.append(r['lead_id'])
                    st.stream_ts = max(st.stream_ts, r['ts'])
    finally:
        c.close()


def poller(st, api, stop):
    """Once a second: /metrics, the model and the campaign."""
    while not stop.is_set():
        t = st.now()
        code, raw = api.call('GET', '/metrics')
        m = parse_metrics(raw.decode('utf-8', 'replace')) if code == 200 else None
        mc, model = api.json('GET', '/v1/models/' + MODEL)
        cc, camp = api.json('GET', '/v1/campaigns/' + CAMPAIGN)
        with st.lock:
            st.daemon_ok = code == 200
            if m is not None:
                st.metrics = m
                ev = sum(v for _, v in m.get('leadscore_events_consumed_total', []))
                pub = sum(v for _, v in m.get('leadscore_score_changes_published_total', []))
                st.samples.append((t, ev, pub))
            if mc == 200 and model:
                st.model = model
                if model.get('auc') is not None:
                    h = st.model_history
                    if not h or h[-1][1:] != (model['auc'], model.get('ece')):
                        h.append((t, model['auc'], model.get('ece')))
            if cc == 200 and camp:
                st.campaign = camp
        stop.wait(1.0)


def driver(st, api, group, args, bootstrap, tmp, stop):
    """The email system: decisions for scored leads, then their feedback."""
    rng = random.Random(args.seed)
    rates = ','.join('%s=%g/%g/%g' % ((k,) + v) for k, v in st.rates.items())
    pending = []
    sim = None
    carry = 0.0
    last_flush = time.monotonic()
    tick = 0.1
    while not stop.is_set():
        stop.wait(tick)
        with st.lock:
            pool = list(st.recent_leads)[-500:]
            stream_ts = st.stream_ts
        if pool and args.decisions > 0:
            # a slow daemon answers fewer: no burst to catch up afterwards
            carry = min(carry + args.decisions * tick, max(1.0, args.decisions * tick))
            while carry >= 1 and not stop.is_set():
                carry -= 1
                lead = rng.choice(pool)
                code, d = api.json('POST', '/v1/campaigns/%s/decisions' % CAMPAIGN,
                                   {'lead_id': lead, 'activate': True})
                if code != 200 or not d or 'decision_id' not in d:
                    with st.lock:
                        st.decision_errors += 1
                    continue
                with st.lock:
                    st.decisions[d['variant']] += 1
                    st.recent.append((st.now(), d['variant']))
                # the send is stamped with the stream's event time, so the
                # simulated email events sit among the other topics' records
                # (leadscored reads its topics in step by timestamp)
                ts = stream_ts or int(time.time() * 1000)
                pending.append('%s\t%s\t%s\t%s\t%d\n' % (d['decision_id'], lead, CAMPAIGN,
                                                         d['variant'], ts))
        if sim is not None and sim.poll() is not None:
            with st.lock:
                st.feedback_runs += 1
                st.feedback_failed += sim.returncode != 0
            sim = None
            group.reap()
        if (sim is None and pending and not args.no_feedback and
                time.monotonic() - last_flush >= 1.0):
            # one run at a time: it has read the file before the next is written
            path = os.path.join(tmp, 'decisions.tsv')
            with open(path, 'w', encoding='utf-8') as f:
                f.writelines(pending)
            with st.lock:
                st.feedback_decisions += len(pending)
            pending = []
            last_flush = time.monotonic()
            sim = group.start([os.path.join(args.build, 'tools', 'leadscore-sim'),
                               '--brokers', bootstrap, '--feedback', path,
                               '--variant-rates', rates, '--feedback-max-delay', '1m',
                               '--seed', str(args.seed)])
        elif args.no_feedback:
            pending = []
        with st.lock:
            cut = st.now() - RECENT_S
            while st.recent and st.recent[0][0] < cut:
                st.recent.popleft()
    if sim is not None:
        group.stop(sim, signal.SIGTERM, 10)


def run_thread(name, fn, errors, *a):
    def body():
        try:
            fn(*a)
        except Exception as e:  # noqa: BLE001 - reported by the view, then stop
            errors.append('%s: %s' % (name, e))
    t = threading.Thread(target=body, name=name, daemon=True)
    t.start()
    return t


def main():
    ap = argparse.ArgumentParser(
        prog='scripts/demo', usage='%(prog)s [options]', description=USAGE, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--plain', action='store_true',
                    help='print one block of key=value lines per interval instead of '
                         'redrawing the screen (for scripts and tests)')
    ap.add_argument('--seconds', type=float, metavar='N',
                    default=float(os.environ.get('DEMO_SECONDS') or 0),
                    help='stop by itself after N seconds (default: $DEMO_SECONDS, '
                         'else run until Ctrl-C)')
    ap.add_argument('--interval', type=float, metavar='S', default=None,
                    help='seconds between screens (default 1) or blocks (--plain, default 5)')
    ap.add_argument('--build', metavar='DIR', default=os.environ.get('LEADSCORE_BUILD', 'build'),
                    help='an already built build dir to run (default: $LEADSCORE_BUILD, '
                         'else build); with it, scripts/demo neither installs nor builds')
    ap.add_argument('--log', metavar='FILE', default=None,
                    help='where the daemon, broker, Redis and simulators log '
                         '(default: DIR/demo.log, overwritten, kept after the demo)')
    ap.add_argument('--rate', type=int, default=2000, metavar='R',
                    help='simulated lead events per second (default 2000)')
    ap.add_argument('--leads', type=int, default=20000, metavar='N',
                    help='simulated leads (default 20000)')
    ap.add_argument('--days', type=int, default=120, metavar='D',
                    help='simulated days they span (default 120: with the defaults '
                         'the stream lasts about 7.5 minutes)')
    ap.add_argument('--decisions', type=float, default=20.0, metavar='N',
                    help='campaign decisions asked per second (default 20)')
    ap.add_argument('--rates', default=DEFAULT_RATES, metavar='SPEC',
                    help="each variant's true rates, VARIANT=P(open)/P(click)/P(reply),... "
                         "(default: short, personal and discount click 5, 25 and 10 %%: "
                         "the campaign rewards clicks and replies)")
    ap.add_argument('--seed', type=int, default=7, help='simulator seed (default 7)')
    ap.add_argument('--no-feedback', action='store_true',
                    help='ask for decisions but send no email events: the bandit '
                         'then learns nothing (a control)')
    ap.add_argument('--check-args', action='store_true', help=argparse.SUPPRESS)
    args = ap.parse_args()
    try:
        rates = parse_rates(args.rates)
    except ValueError as e:
        ap.error(str(e))
    if args.check_args:  # scripts/demo: usage errors before installing or building
        return 0
    if args.interval is None:
        args.interval = 5.0 if args.plain else 1.0
    args.build = os.path.abspath(args.build)
    for exe in ('daemon/leadscored', 'tools/leadscore-devbroker', 'tools/leadscore-sim'):
        if not os.access(os.path.join(args.build, exe), os.X_OK):
            ap.error('%s/%s is not built' % (args.build, exe))
    log_path = os.path.abspath(args.log or os.path.join(args.build, 'demo.log'))

    stop = threading.Event()

    def on_signal(signum, _frame):
        if stop.is_set():  # a second Ctrl-C: no more waiting for a drain
            group.kill_now()
        stop.set()
    tmp = tempfile.mkdtemp(prefix='leadscore-demo.')
    log = open(log_path, 'wb', buffering=0)
    group = Group(log)
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    st = State(rates)
    view = demo_view.View(st, args, log_path, tmp, plain=args.plain)
    errors = []
    daemon = broker = redis = gen = None
    threads = []
    rc = 0
    try:
        view.say('logs: %s   temp dir: %s   pid: %d' % (log_path, tmp, os.getpid()))
        sock = os.path.join(tmp, 'redis.sock')
        redis = group.start(['redis-server', '--port', '0', '--unixsocket', sock,
                             '--save', '', '--appendonly', 'no', '--dir', tmp])
        wait_for(lambda: os.path.exists(sock), 30, stop, 'redis-server start')
        bfile = os.path.join(tmp, 'bootstrap')
        broker = group.start([os.path.join(args.build, 'tools', 'leadscore-devbroker'),
                              '--bootstrap-file', bfile])
        wait_for(lambda: os.path.exists(bfile), 30, stop, 'dev broker start')
        with open(bfile, encoding='utf-8') as f:
            bootstrap = f.read().strip()
        env = dict(os.environ, LEADSCORE_KAFKA_BROKERS=bootstrap,
                   LEADSCORE_REDIS_URL='unix://' + sock,
                   LEADSCORE_HTTP_LISTEN='127.0.0.1:0')
        since = os.path.getsize(log_path)
        daemon = group.start([os.path.join(args.build, 'daemon', 'leadscored'),
                              '--config', os.path.join(SOURCE, 'conf', 'demo.yaml')], env=env)
        port = None

        def listening():
            nonlocal port
            if daemon.poll() is not None:
                raise RuntimeError('leadscored exited with %s (see %s)' % (daemon.returncode,
                                                                          log_path))
            port = find_port(log_path, since)
            return port is not None
        wait_for(listening, 60, stop, 'leadscored listening')
        view.say('dev broker %s   redis unix://%s   leadscored http://127.0.0.1:%d' %
                 (bootstrap, sock, port))
        # leadscorectl in another terminal reaches this run's broker, Redis
        # and API through the same overrides, the HTTP port now bound
        env_file = os.path.join(tmp, 'demo.env')
        with open(env_file, 'w', encoding='utf-8') as f:
            f.write("export LEADSCORE_KAFKA_BROKERS='%s' LEADSCORE_REDIS_URL='unix://%s' "
                    "LEADSCORE_HTTP_LISTEN='127.0.0.1:%d'\n" % (bootstrap, sock, port))
        ctl = '. %s && %s --config %s' % (env_file,
                                          os.path.relpath(os.path.join(args.build, 'tools',
                                                                       'leadscorectl')),
                                          os.path.relpath(os.path.join(SOURCE, 'conf',
                                                                       'demo.yaml')))
        view.say('leadscorectl (another terminal): %s tail | campaign welcome | '
                 'dead-letters' % ctl)
        view.head = 'API http://127.0.0.1:%d   logs %s\nleadscorectl: %s tail' % (
            port, log_path, ctl)
        gen = group.start([os.path.join(args.build, 'tools', 'leadscore-sim'),
                           '--brokers', bootstrap, '--leads', str(args.leads),
                           '--days', str(args.days), '--seed', str(args.seed),
                           '--rate', str(args.rate)])
        st.generator = 'running'
        view.say('pids redis=%d broker=%d daemon=%d simulator=%d' % (
            redis.pid, broker.pid, daemon.pid, gen.pid))
        threads = [
            run_thread('scores', score_reader, errors, st, bootstrap, stop),
            run_thread('poller', poller, errors, st, Api(port), stop),
            run_thread('driver', driver, errors, st, Api(port), group, args, bootstrap, tmp,
                       stop)]
        end = time.monotonic() + args.seconds if args.seconds > 0 else None
        while not stop.is_set():
            view.draw()
            if errors:
                raise RuntimeError('; '.join(errors))
            for name, p in (('leadscored', daemon), ('the dev broker', broker),
                            ('redis-server', redis)):
                if p.poll() is not None:
                    raise RuntimeError('%s exited with %s (see %s)' % (name, p.returncode,
                                                                      log_path))
            if gen.poll() is not None and st.generator == 'running':
                st.generator = 'done' if gen.returncode == 0 else 'failed (%d)' % gen.returncode
            if end is not None and time.monotonic() >= end:
                break
            stop.wait(args.interval if end is None else
                      max(0.0, min(args.interval, end - time.monotonic())))
    except (KeyboardInterrupt, BrokenPipeError):
        pass
    except RuntimeError as e:
        view.say('demo: %s' % e, err=True)
        rc = 1
    finally:
        stop.set()
        view.close()
        # the driver starts simulators: it has to be done before the group goes
        for t in threads:
            t.join(15)
        for p in group.procs:
            if p is not daemon and p is not broker and p is not redis:
                group.stop(p, signal.SIGTERM, 10)
        group.stop(daemon, signal.SIGTERM, 30)
        group.stop(broker, signal.SIGTERM, 10)
        group.stop(redis, signal.SIGTERM, 10)
        group.kill_all()
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)
        codes = ' '.join('%s=%s' % (n, '-' if p is None else p.returncode)
                         for n, p in (('redis', redis), ('broker', broker), ('daemon', daemon),
                                      ('simulator', gen)))
        view.say('stopped: exit codes %s; logs: %s' % (codes, log_path))
    return rc


if __name__ == '__main__':
    sys.exit(main())
