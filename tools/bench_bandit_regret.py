#!/usr/bin/python3
"""Cumulative regret of leadscored's bandit against uniform allocation, in
closed loop through the real daemon and the simulator.

One leadscored (real redis-server, dev broker) runs two campaigns with
the same three arms: `ts` (Thompson sampling, min_share 0.01) and
`uniform` (min_share 1/3: every arm always a third). Each round asks both
for DECISIONS decisions over HTTP ("activate": false), hands them to
`leadscore-sim --feedback`, which sends SENT and, with each variant's true
rates, OPENED/CLICKED/REPLIED events through the broker; the daemon
activates and rewards the decisions from those events (reward: CLICKED or
REPLIED = 1) and the expiry sweep gives the rest reward 0. The next round
starts once every decision so far is resolved in GET /v1/campaigns, so
each round decides with everything learned before it.

Regret of a decision = best arm's expected reward - the chosen arm's
(expected rewards from the simulator's --truth file). Printed per round
and in total, for both campaigns, and their ratio.

    LS_BUILD_ROOT=build /usr/bin/python3 tools/bench_bandit_regret.py \
        [--rounds 20] [--decisions 250] [--seed 1]
"""
import argparse
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, '..', 'tests', 'integration'))

import testenv  # noqa: E402

RATES = {'a': (0.30, 0.04, 0.01), 'b': (0.30, 0.06, 0.01), 'c': (0.30, 0.09, 0.02)}


def call(port, method, path, body=None):
    c = http.client.HTTPConnection('127.0.0.1', port, timeout=30)
    c.request(method, path, body=json.dumps(body) if body is not None else None,
              headers={'Content-Type': 'application/json'} if body is not None else {})
    r = c.getresponse()
    out = json.loads(r.read())
    c.close()
    return r.status, out


def resolved(port, campaign):
    st, o = call(port, 'GET', '/v1/campaigns/' + campaign)
    assert st == 200, o
    return sum(a['trials'] for a in o['buckets'][0]['arms'])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--rounds', type=int, default=20)
    ap.add_argument('--decisions', type=int, default=250)
    ap.add_argument('--seed', type=int, default=1)
    a = ap.parse_args()
    root = os.environ.get('LS_BUILD_ROOT', os.path.join(HERE, '..', 'build'))
    os.environ['LS_BUILD_ROOT'] = root
    sim = os.path.join(root, 'tools', 'leadscore-sim')
    rates = ','.join('%s=%g/%g/%g' % (k, *v) for k, v in RATES.items())
    # reward = clicked or replied (reply implies click): the click rate
    best = max(v[1] for v in RATES.values())
    with tempfile.TemporaryDirectory() as tmp, testenv.RedisServer() as redis, \
            testenv.DevBroker() as broker:
        cfg = os.path.join(tmp, 'leadscore.yaml')
        with open(cfg, 'w') as f:
            f.write('kafka:\n  brokers: "%s"\nredis:\n  url: "%s"\n'
                    'http:\n  listen: 127.0.0.1:0\n'
                    'campaigns:\n'
                    '  - id: ts\n    arms: [a, b, c]\n    rewards: {CLICKED: 1, REPLIED: 1}\n'
                    '    reward_window: 2m\n'
                    '  - id: uniform\n    arms: [a, b, c]\n    rewards: {CLICKED: 1, REPLIED: 1}\n'
                    '    reward_window: 2m\n    min_share: 0.3333333333333333\n'
                    % (broker.bootstrap, redis.url))
        d = testenv.Daemon([os.path.join(root, 'daemon', 'leadscored'), '--config', cfg],
                           name='leadscored-regret')
        d.start()
        port = int(d.wait_for_log(r'msg="listening" .*port=(\d+)', timeout=30).group(1))
        d.wait_for_log('msg="ready"', timeout=60)
        time.sleep(1.5)
        regret = {'ts': 0.0, 'uniform': 0.0}
        picks = {'ts': {k: 0 for k in RATES}, 'uniform': {k: 0 for k in RATES}}
        made = 0
        try:
            for rnd in range(a.rounds):
                # sends 3 minutes ago: every event (within 1 m of its send)
                # is in the past, and every window (2 m) has ended, so the
                # expiry sweep resolves the unrewarded at once
                ts = int(time.time() * 1000) - 180000
                lines = []
                for camp in ('ts', 'uniform'):
                    for i in range(a.decisions):
                        lead = 'r%d-%s-%d' % (rnd, camp, i)
                        st, o = call(port, 'POST', '/v1/campaigns/%s/decisions' % camp,
                                     {'lead_id': lead, 'activate': False})
                        assert st == 200, o
                        lines.append('%s\t%s\t%s\t%s\t%d\n' % (o['decision_id'], lead, camp,
                                                              o['variant'], ts))
                        picks[camp][o['variant']] += 1
                made += a.decisions
                fb = os.path.join(tmp, 'round.tsv')
                truth = os.path.join(tmp, 'truth.tsv')
                with open(fb, 'w') as f:
                    f.writelines(lines)
                time.sleep(0.1)  # decisions written (1 ms batches)
                subprocess.run([sim, '--brokers', broker.bootstrap, '--feedback', fb,
                                '--variant-rates', rates, '--feedback-max-delay', '1m',
                                '--reward-weights', 'OPENED=0,CLICKED=1,REPLIED=1',
                                '--seed', str(a.seed * 1000 + rnd), '--truth', truth],
                               check=True, capture_output=True)
                with open(truth) as f:
                    for row in f:
                        if row.startswith('decision_id'):
                            continue
                        cols = row.rstrip('\n').split('\t')
                        regret[cols[4]] += best - float(cols[2])
                deadline = time.monotonic() + 120
                while (resolved(port, 'ts') < made or resolved(port, 'uniform') < made):
                    if time.monotonic() > deadline:
                        raise SystemExit('decisions not resolved\n' + d.tail())
                    time.sleep(0.2)
                print('round %2d: decisions %5d  regret ts %7.2f  uniform %7.2f  ts picks %s'
                      % (rnd + 1, made, regret['ts'], regret['uniform'],
                         dict(picks['ts'])), flush=True)
        finally:
            d.terminate()
    print('rates (open/click/reply): %s; reward = clicked; best arm c at %.2f' % (RATES, best))
    print('cumulative regret after %d decisions each: thompson %.2f, uniform %.2f, '
          'ratio %.3f' % (made, regret['ts'], regret['uniform'],
                          regret['ts'] / regret['uniform']))
    print('thompson allocation: %s; uniform allocation: %s' % (picks['ts'], picks['uniform']))


if __name__ == '__main__':
    main()
