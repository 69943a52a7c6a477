#!/usr/bin/python3
"""Bandit decision throughput and latency over HTTP on loopback, with wrk.

Starts a real redis-server, the dev broker and leadscored (from
LS_BUILD_ROOT, default ./build) with one 3-arm campaign, then runs wrk
against POST /v1/campaigns/bench/decisions (each request a different
lead, so every decision is logged: a Redis record and a BanditDecision on
the decisions topic), and, in the same run and for scale, against a route
that does no work (/v1/nothing, a JSON 404) twice: GET with wrk's static
request, and the same Lua-generated POSTs as the decisions (so wrk spends
the same on each request and only the server's work differs). Prints
requests/s and latency percentiles as wrk measured them, and the ratios.
wrk runs one thread (--threads): the machine this was written for has 2
cores shared by wrk, leadscored, redis-server and the dev broker.

    LS_BUILD_ROOT=build /usr/bin/python3 tools/bench_decisions.py \
        [--seconds 15] [--connections 32] [--threads 1] [--context]

--context buckets the campaign by industry and sends one of 8 industries
per request (the bucketed path). Needs the Debian packages wrk and
redis-server.
"""
import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'tests', 'integration'))

import testenv  # noqa: E402

LUA = r'''
local n = 0
local industries = {"saas", "finance", "retail", "health", "edu", "media", "gov", "mfg"}
local head = nil
request = function()
  n = n + 1
  local body
  if CONTEXT then
    body = string.format('{"lead_id":"bench-%d-%d","context":{"industry":"%s"}}',
                         THREAD, n, industries[(n %% 8) + 1])
  else
    body = string.format('{"lead_id":"bench-%d-%d"}', THREAD, n)
  end
  -- the request by hand: wrk.format() builds tables and runs four
  -- string.format per call, and wrk shares the 2 cores with the server
  if head == nil then
    head = "POST " .. PATH .. " HTTP/1.1\r\nHost: " .. wrk.headers["Host"] ..
           "\r\nContent-Type: application/json\r\nContent-Length: "
  end
  return head .. #body .. "\r\n\r\n" .. body
end
-- no response() callback: wrk would build a Lua table of every response's
-- headers for it; wrk itself counts non-2xx responses
'''


def cpu_seconds(pid):
    """utime + stime of process pid (all its threads), in seconds."""
    with open('/proc/%d/stat' % pid) as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')


def thread_cpu(pid):
    """CPU seconds of pid's threads summed by thread name."""
    out = {}
    for tid in os.listdir('/proc/%d/task' % pid):
        try:
            with open('/proc/%d/task/%s/comm' % (pid, tid)) as f:
                name = f.read().strip()
            with open('/proc/%d/task/%s/stat' % (pid, tid)) as f:
                fields = f.read().rsplit(')', 1)[1].split()
        except FileNotFoundError:
            continue   # a thread that ended
        t = (int(fields[11]) + int(fields[12])) / os.sysconf('SC_CLK_TCK')
        out[name] = out.get(name, 0.0) + t
    return out


def children_cpu():
    """CPU seconds of waited-for children (each wrk run, once it ends)."""
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_wrk(port, seconds, conns, threads, script, path='/'):
    cmd = ['wrk', '-t%d' % threads, '-c%d' % conns, '-d%ds' % seconds, '--latency']
    if script:
        cmd += ['-s', script]
    cmd.append('http://127.0.0.1:%d%s' % (port, path))
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r'Requests/sec:\s+([\d.]+)', out).group(1))
    pct = {}
    for p, v, unit in re.findall(r'^\s+(50|75|90|99)%\s+([\d.]+)(us|ms|s)\s*$', out, re.M):
        f = float(v) * {'us': 1e-3, 'ms': 1.0, 's': 1e3}[unit]
        pct[p] = f
    non2xx = re.search(r'Non-2xx or 3xx responses: (\d+)', out)
    total = int(re.search(r'(\d+) requests in', out).group(1))
    return rate, pct, int(non2xx.group(1)) if non2xx else 0, total, out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--seconds', type=int, default=15)
    ap.add_argument('--connections', type=int, default=32)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--context', action='store_true')
    a = ap.parse_args()
    os.environ.setdefault('LS_BUILD_ROOT', os.path.join(HERE, '..', 'build'))
    root = os.environ['LS_BUILD_ROOT']
    with tempfile.TemporaryDirectory() as tmp, testenv.RedisServer() as redis, \
            testenv.DevBroker() as broker:
        cfg = os.path.join(tmp, 'leadscore.yaml')
        with open(cfg, 'w') as f:
            f.write('kafka:\n  brokers: "%s"\nredis:\n  url: "%s"\n'
                    'http:\n  listen: 127.0.0.1:0\nlog:\n  level: warn\n'
                    'campaigns:\n  - id: bench\n    arms: [a, b, c]\n'
                    % (broker.bootstrap, redis.url))
            if a.context:
                f.write('    context: [industry]\n    min_bucket_trials: 0\n')
        d = testenv.Daemon([os.path.join(root, 'daemon', 'leadscored'), '--config', cfg],
                           name='leadscored-bench')
        d.start()
        try:
            # the port is logged at info; warn hides it, so ask the OS
            port = None
            deadline = time.monotonic() + 30
            while port is None and time.monotonic() < deadline:
                out = subprocess.run(['ss', '-ltnpH'], capture_output=True, text=True).stdout
                for line in out.splitlines():
                    if 'pid=%d,' % d.pid in line:
                        port = int(line.split()[3].rsplit(':', 1)[1])
                time.sleep(0.2)
            if port is None:
                raise SystemExit('leadscored did not listen\n' + d.tail())
            time.sleep(2)  # first snapshot
            script = os.path.join(tmp, 'decide.lua')
            with open(script, 'w') as f:
                f.write('CONTEXT = %s\nTHREAD = 0\nPATH = "/v1/campaigns/bench/decisions"\n'
                        % ('true' if a.context else 'false'))
                f.write(LUA.replace('%%', '%'))
            # the same generated requests (POST, same body) to a route that
            # does nothing: what the decision costs beyond wrk's Lua and HTTP
            script404 = os.path.join(tmp, 'nothing.lua')
            with open(script404, 'w') as f:
                f.write('CONTEXT = %s\nTHREAD = 0\nPATH = "/v1/nothing"\n'
                        % ('true' if a.context else 'false'))
                f.write(LUA.replace('%%', '%'))
            # warm-up, then the measured runs
            run_wrk(port, 3, a.connections, a.threads, script)
            procs = {'leadscored': d.pid, 'redis-server': redis.pid,
                     'dev broker': broker.daemon.pid}
            before = {k: cpu_seconds(v) for k, v in procs.items()}
            before['wrk'] = children_cpu()
            threads0 = thread_cpu(d.pid)
            dr, dp, dbad, dn, raw = run_wrk(port, a.seconds, a.connections, a.threads, script)
            cpu = {k: cpu_seconds(v) - before[k] for k, v in procs.items()}
            cpu['wrk'] = children_cpu() - before['wrk']
            threads1 = thread_cpu(d.pid)
            tcpu = {k: v - threads0.get(k, 0.0) for k, v in threads1.items()}
            nr, np_, _, nn, _ = run_wrk(port, a.seconds, a.connections, a.threads, None,
                                        '/v1/nothing')
            pr, pp, _, pn, _ = run_wrk(port, a.seconds, a.connections, a.threads, script404)
            time.sleep(1)
            r = redis.client()
            stored = sum(1 for _ in r.scan_iter(match='ls:{bandit:bench}:d:*', count=10000))
        finally:
            rc = d.terminate()
    print('wrk -t%d -c%d -d%ds, %s' % (a.threads, a.connections, a.seconds,
                                        'context industry (8 buckets)' if a.context
                                        else 'no context'))
    print('decisions:   %9.0f /s  p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  (%d requests, %d non-200)'
          % (dr, dp.get('50', float('nan')), dp.get('90', float('nan')),
             dp.get('99', float('nan')), dn, dbad))
    print('404 route:   %9.0f /s  p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  (%d requests)'
          % (nr, np_.get('50', float('nan')), np_.get('90', float('nan')),
             np_.get('99', float('nan')), nn))
    print('404 POSTs:   %9.0f /s  p50 %.3f ms  p90 %.3f ms  p99 %.3f ms  (%d requests)'
          % (pr, pp.get('50', float('nan')), pp.get('90', float('nan')),
             pp.get('99', float('nan')), pn))
    print('ratio decisions / empty route: %.2f' % (dr / nr))
    print('ratio decisions / 404 POSTs (same wrk script): %.2f' % (dr / pr))
    print('CPU per decision (the decisions run): ' +
          ', '.join('%s %.1f us' % (k, 1e6 * v / dn) for k, v in cpu.items()) +
          ', total %.1f us (of 2 cores x %d s = %.0f us per decision)'
          % (1e6 * sum(cpu.values()) / dn, a.seconds, 2e6 * a.seconds / dn))
    print('  leadscored by thread name: ' +
          ', '.join('%s %.1f us' % (k, 1e6 * v / dn)
                    for k, v in sorted(tcpu.items(), key=lambda kv: -kv[1]) if v > 0))
    print('decision records in Redis after the runs: %d (warm-up included)' % stored)
    print('daemon exit status: %d' % rc)
    if dbad:
        sys.exit(1)


if __name__ == '__main__':
    main()
