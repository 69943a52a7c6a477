#!/usr/bin/python3
"""Soak leadscored at a fixed rate and watch its memory (BENCHMARKS.md "Soak").

Starts the dev broker, a private redis-server and leadscored from a build
directory (use a build without sanitizers: ASan's quarantine and shadow
memory would be what is measured), then for --minutes:
  - leadscore-sim sends events at --rate events/s, round after round: round
    k simulates --leads + k * --new-leads leads (lead-000000 ...: the same
    ids again plus new ones) over 30 days of event time starting 30 days
    after round k-1's, with seed k+1 (new event ids), so the lead set is
    bounded and still grows a little;
  - an HTTP client sends GET /v1/leads/{id} and POST decisions for the
    campaign `soak` at --http-rate requests/s in total (half each);
  - with --stall MIN:SEC the daemon is stopped (SIGSTOP) for SEC seconds
    at minute MIN while events keep coming, to see what a backlog does
    (HTTP requests time out meanwhile and count as errors);
  - every --every seconds a row goes to the CSV: the daemon's VmRSS and
    VmHWM (/proc/PID/status), Redis used_memory and key count, events
    consumed and the consumer lag (from /metrics), HTTP answers so far.
At the end it prints the mean RSS of the first and last 5 minutes, the
least-squares slope of RSS over the run after the first 5 minutes and over
its second half (the first minutes are the lead cache warming up), and
plots RSS and Redis memory against time with gnuplot (gnuplot-nox).

Example (30 minutes, as in BENCHMARKS.md):
  meson setup build-vg -Db_sanitize=none && meson compile -C build-vg
  tools/soak.py --build build-vg --minutes 30 --rate 3000 \
      --csv docs/soak-rss.csv --png docs/soak-rss.png
Debian's /usr/bin/python3 (it has the redis module); loopback only; stops by
itself after --minutes.
"""
import argparse
import csv
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

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..'))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'integration'))
import testenv  # noqa: E402

DAY_MS = 86400 * 1000
CONFIG = '''kafka:
  brokers: "{brokers}"
  group_id: soak
  properties:
    session.timeout.ms: "3000"
    heartbeat.interval.ms: "300"
redis:
  url: "{redis}"
  key_prefix: "soak:"
http:
  listen: 127.0.0.1:0
log:
  level: info
pipeline:
  cache_leads: {cache_leads}
campaigns:
  - id: soak
    arms: [a, b, c]
    rewards: {{CLICKED: 1}}
    reward_window: 2m
    activation_timeout: 1m
'''
METRIC = re.compile(r'^(leadscore_events_consumed_total|leadscore_consumer_lag_messages)'
                    r'(\{[^}]*\})? (\S+)$')


def vm_status(pid):
    out = {}
    with open('/proc/%d/status' % pid) as f:
        for line in f:
            if line.startswith(('VmRSS:', 'VmHWM:')):
                k, v = line.split(':', 1)
                out[k] = int(v.split()[0])
    return out['VmRSS'], out['VmHWM']


def scrape(port):
    """(events consumed, consumer lag summed over partitions; -1 unknown)."""
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
    try:
        c.request('GET', '/metrics')
        text = c.getresponse().read().decode()
    finally:
        c.close()
    consumed, lag = 0.0, 0.0
    for line in text.splitlines():
        m = METRIC.match(line)
        if not m:
            continue
        v = float(m.group(3))
        if m.group(1) == 'leadscore_events_consumed_total':
            consumed += v
        elif v >= 0:
            lag += v
    return int(consumed), int(lag)


class Producer(threading.Thread):
    """leadscore-sim rounds until stop is set."""

    def __init__(self, sim, brokers, args, stop):
        super().__init__(name='soak-producer', daemon=True)
        self.sim, self.brokers, self.args, self.stop = sim, brokers, args, stop
        self.rounds = 0
        self.proc = None
        self.max_lead = args.leads

    def run(self):
        start = int(time.time() * 1000) - 365 * DAY_MS
        while not self.stop.is_set():
            k = self.rounds
            leads = self.args.leads + k * self.args.new_leads
            self.max_lead = leads
            self.proc = subprocess.Popen(
                [self.sim, '--brokers', self.brokers, '--leads', str(leads),
                 '--days', '30', '--start', str(start + k * 30 * DAY_MS),
                 '--seed', str(k + 1), '--rate', str(self.args.rate)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                # dies with this thread, however the script ends
                preexec_fn=testenv._child_setup_factory())
            while self.proc.poll() is None and not self.stop.wait(0.5):
                pass
            if self.proc.poll() is None:
                self.proc.terminate()
                self.proc.wait()
            elif self.proc.returncode != 0:
                sys.stderr.write('soak: leadscore-sim round %d exited %d\n'
                                 % (k, self.proc.returncode))
                self.stop.set()
            self.rounds += 1


class HttpLoad(threading.Thread):
    """GET lead / POST decision alternately at a fixed rate."""

    def __init__(self, port, rate, producer, stop):
        super().__init__(name='soak-http', daemon=True)
        self.port, self.rate, self.producer, self.stop = port, rate, producer, stop
        self.ok = 0
        self.err = 0

    def run(self):
        rng = random.Random(7)
        c = http.client.HTTPConnection('127.0.0.1', self.port, timeout=10)
        period = 1.0 / self.rate
        t = time.monotonic()
        i = 0
        while not self.stop.is_set():
            lead = 'lead-%06d' % rng.randrange(self.producer.max_lead)
            try:
                if i % 2:
                    c.request('GET', '/v1/leads/' + lead)
                else:
                    c.request('POST', '/v1/campaigns/soak/decisions',
                              body=json.dumps({'lead_id': lead}),
                              headers={'Content-Type': 'application/json'})
                r = c.getresponse()
                r.read()
                # 404: a lead not seen yet; still a well-formed answer
                if r.status in (200, 404):
                    self.ok += 1
                else:
                    self.err += 1
            except (OSError, http.client.HTTPException):
                self.err += 1
                c.close()
                c = http.client.HTTPConnection('127.0.0.1', self.port, timeout=10)
            i += 1
            t += period
            delay = t - time.monotonic()
            if delay > 0:
                self.stop.wait(delay)
            else:
                t = time.monotonic()   # behind: do not burst to catch up


def mean(xs):
    return sum(xs) / len(xs) if xs else float('nan')


def slope(ts, ys):
    """Least-squares slope dy/dt."""
    n = len(ts)
    if n < 2:
        return float('nan')
    mt, my = mean(ts), mean(ys)
    den = sum((t - mt) ** 2 for t in ts)
    return sum((t - mt) * (y - my) for t, y in zip(ts, ys)) / den if den else 0.0


def summarize(rows, window_s):
    ts = [r['t_s'] for r in rows]
    rss = [r['rss_kib'] for r in rows]
    red = [r['redis_used_bytes'] for r in rows]
    end = ts[-1]
    first = [v for t, v in zip(ts, rss) if t <= window_s]
    last = [v for t, v in zip(ts, rss) if t >= end - window_s]
    after = [(t, v) for t, v in zip(ts, rss) if t > window_s]
    rfirst = [v for t, v in zip(ts, red) if t <= window_s]
    rlast = [v for t, v in zip(ts, red) if t >= end - window_s]
    s = slope([t / 60 for t, _ in after], [v for _, v in after])
    half = [(t, v) for t, v in zip(ts, rss) if t >= end / 2]
    s2 = slope([t / 60 for t, _ in half], [v for _, v in half])
    return {
        'duration_s': round(end, 1), 'samples': len(rows),
        'rss_first_kib': round(mean(first)), 'rss_last_kib': round(mean(last)),
        'rss_max_kib': max(rss),
        'rss_slope_kib_per_min_after_first': round(s, 1),
        'rss_slope_kib_per_min_last_half': round(s2, 1),
        'redis_first_bytes': round(mean(rfirst)), 'redis_last_bytes': round(mean(rlast)),
        'events': rows[-1]['events'], 'events_per_s': round(rows[-1]['events'] / end),
        'http_ok': rows[-1]['http_ok'], 'http_err': rows[-1]['http_err'],
        'final_lag': rows[-1]['lag'],
    }


def plot(csv_path, png, title):
    gp = shutil.which('gnuplot')
    if not gp:
        sys.stderr.write('soak: no gnuplot (apt-get install gnuplot-nox); no PNG\n')
        return
    script = '''set terminal pngcairo size 900,500 noenhanced
set output "{png}"
set datafile separator ","
set key top left
set title "{title}"
set xlabel "minutes"
set ylabel "daemon RSS (MiB)"
set y2label "Redis used_memory (MiB)"
set ytics nomirror
set y2tics
set yrange [0:*]
set y2range [0:*]
set grid
plot "{csv}" using ($1/60):($2/1024) every ::1 with lines lw 2 title "leadscored VmRSS", \\
     "{csv}" using ($1/60):($4/1048576) every ::1 axes x1y2 with lines lw 2 title "Redis used_memory"
'''.format(png=png, csv=csv_path, title=title)
    subprocess.run([gp], input=script, text=True, check=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--build', default='build-vg', help='meson build dir (no sanitizers)')
    ap.add_argument('--minutes', type=float, default=30)
    ap.add_argument('--rate', type=int, default=3000, help='events/s')
    ap.add_argument('--http-rate', type=float, default=50, help='requests/s')
    ap.add_argument('--leads', type=int, default=20000)
    ap.add_argument('--new-leads', type=int, default=1000, help='more leads each round')
    ap.add_argument('--cache-leads', type=int, default=20000, help='pipeline.cache_leads')
    ap.add_argument('--every', type=float, default=5.0, help='seconds between samples')
    ap.add_argument('--window', type=float, default=5.0, help='minutes compared at each end')
    ap.add_argument('--stall', action='append', default=[], metavar='MIN:SEC',
                    help='SIGSTOP the daemon at minute MIN for SEC seconds, so a '
                         'backlog builds up (repeatable)')
    ap.add_argument('--csv', default='soak-rss.csv')
    ap.add_argument('--png', default=None)
    args = ap.parse_args()

    build = os.path.abspath(args.build)
    os.environ['LS_BUILD_ROOT'] = build   # testenv finds the dev broker there
    leadscored = os.path.join(build, 'daemon', 'leadscored')
    sim = os.path.join(build, 'tools', 'leadscore-sim')
    tmp = tempfile.mkdtemp(prefix='ls-soak-')
    stop = threading.Event()
    rows = []
    with testenv.RedisServer('unix') as redis_srv, testenv.DevBroker() as broker:
        cfg = os.path.join(tmp, 'soak.yaml')
        with open(cfg, 'w') as f:
            f.write(CONFIG.format(brokers=broker.bootstrap, redis=redis_srv.url,
                                  cache_leads=args.cache_leads))
        with testenv.Daemon([leadscored, '--config', cfg], name='leadscored-soak') as d:
            port = int(d.wait_for_log(r'msg="listening" .*port=(\d+)', timeout=30).group(1))
            d.wait_for_log('msg="ready"', timeout=60)
            r = redis_srv.client()
            producer = Producer(sim, broker.bootstrap, args, stop)
            load = HttpLoad(port, args.http_rate, producer, stop)
            t0 = time.monotonic()
            producer.start()
            load.start()
            end = t0 + args.minutes * 60
            with open(args.csv, 'w', newline='') as f:
                w = csv.writer(f)
                cols = ['t_s', 'rss_kib', 'hwm_kib', 'redis_used_bytes', 'redis_keys',
                        'events', 'lag', 'http_ok', 'http_err', 'round']
                w.writerow(cols)
                next_t = t0
                stalls = sorted((float(a) * 60, float(b)) for a, b in
                                (x.split(':') for x in args.stall))
                while time.monotonic() < end and not stop.is_set():
                    if stalls and time.monotonic() - t0 >= stalls[0][0]:
                        d.send_signal(signal.SIGSTOP)
                        time.sleep(stalls.pop(0)[1])
                        d.send_signal(signal.SIGCONT)
                        next_t = time.monotonic()
                    if not d.running:
                        raise SystemExit('soak: leadscored exited\n' + d.tail())
                    rss, hwm = vm_status(d.pid)
                    info = r.info('memory')
                    consumed, lag = scrape(port)
                    row = {'t_s': round(time.monotonic() - t0, 1), 'rss_kib': rss,
                           'hwm_kib': hwm, 'redis_used_bytes': info['used_memory'],
                           'redis_keys': r.dbsize(), 'events': consumed, 'lag': lag,
                           'http_ok': load.ok, 'http_err': load.err,
                           'round': producer.rounds}
                    rows.append(row)
                    w.writerow([row[c] for c in cols])
                    f.flush()
                    next_t += args.every
                    time.sleep(max(0.0, next_t - time.monotonic()))
            stop.set()
            producer.join(30)
            load.join(30)
            rc = d.terminate(30)
    shutil.rmtree(tmp, ignore_errors=True)
    s = summarize(rows, args.window * 60)
    s['daemon_exit'] = rc
    s['sim_rounds'] = producer.rounds
    print(json.dumps(s, indent=1))
    if args.png:
        plot(args.csv, args.png, 'leadscored soak: %d events/s, %g HTTP req/s, %.1f min'
             % (args.rate, args.http_rate, s['duration_s'] / 60))
    return 0 if rc == 0 else 1


if __name__ == '__main__':
    sys.exit(main())
