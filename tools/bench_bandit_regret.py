#!/usr/bin/python3
"""Cumulative regret of leadscored's bandit, in closed loop through the
real daemon and the simulator.

One leadscored (real redis-server, dev broker) runs several campaigns on
the same three arms, one per policy being compared. Each round asks each
for DECISIONS decisions over HTTP ("activate": false), hands them to
`leadscore-sim --feedback`, which sends SENT and, with each variant's true
rates, OPENED/CLICKED/REPLIED events through the broker; the daemon
activates and rewards the decisions from those events (reward: CLICKED or
REPLIED = 1) and the expiry sweep gives the rest reward 0. The next round
starts once every decision so far is resolved in GET /v1/campaigns, so
each round decides with everything learned before it.

Scenarios (--scenario):
  uniform   `ts` (the campaign defaults) against `uniform` (min_share
            1/3), the original benchmark
  default   `default` (no keys beyond arms and rewards: whatever the build's
            defaults are), `plain` (min_share 0: plain Thompson sampling),
            `floor` (min_share 0.01, the exploration floor of the defaults
            before issue 15)
  context   each lead has a segment s0 or s1 (half each, sent as context
            "seg"); `plain` (min_share 0, no context) against `ctx`
            (context: [seg], the build's defaults); --world differ gives
            the segments different best arms, --world alike the same rates
Only keys every build accepts are used, so the same command measures a
build from before issue 15 and one after.

Regret of a decision = the best arm's expected reward in its segment - the
chosen arm's (expected rewards from the simulator's --truth file). Printed
per round and in total per campaign.

    LS_BUILD_ROOT=build /usr/bin/python3 tools/bench_bandit_regret.py \
        [--scenario uniform|default|context] [--world differ|alike] \
        [--rounds 20] [--decisions 250] [--seed 1] [--prior-trials M]
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

# open / click / reply rates per arm; reward = clicked (a reply implies a click)
RATES = {'a': (0.30, 0.04, 0.01), 'b': (0.30, 0.06, 0.01), 'c': (0.30, 0.09, 0.02)}
# segment s1 when the segments differ: a best, c worst
RATES_S1 = {'a': (0.30, 0.10, 0.02), 'b': (0.30, 0.05, 0.01), 'c': (0.30, 0.03, 0.01)}

CAMPAIGN = ('  - id: %s\n    arms: [a, b, c]\n    rewards: {CLICKED: 1, REPLIED: 1}\n'
            '    reward_window: 2m\n')

SCENARIOS = {
    'uniform': {'ts': '', 'uniform': '    min_share: 0.3333333333333333\n'},
    'default': {'default': '', 'plain': '    min_share: 0\n', 'floor': '    min_share: 0.01\n'},
    'context': {'plain': '    min_share: 0\n', 'ctx': '    context: [seg]\n'},
}


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


def seg_rates(scenario, world):
    """Rates per segment; one segment '' without context."""
    if scenario != 'context':
        return {'': RATES}
    return {'s0': RATES, 's1': RATES_S1 if world == 'differ' else RATES}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--scenario', choices=sorted(SCENARIOS), default='uniform')
    ap.add_argument('--world', choices=['differ', 'alike'], default='differ')
    ap.add_argument('--rounds', type=int, default=20)
    ap.add_argument('--decisions', type=int, default=250)
    ap.add_argument('--seed', type=int, default=1)
    ap.add_argument('--prior-trials', type=int, default=None,
                    help='prior_trials of the ctx campaign (builds after issue 15 only)')
    a = ap.parse_args()
    root = os.environ.get('LS_BUILD_ROOT', os.path.join(HERE, '..', 'build'))
    os.environ['LS_BUILD_ROOT'] = root
    sim = os.path.join(root, 'tools', 'leadscore-sim')
    camps = dict(SCENARIOS[a.scenario])
    if a.prior_trials is not None and 'ctx' in camps:
        camps['ctx'] += '    prior_trials: %d\n' % a.prior_trials
    segs = seg_rates(a.scenario, a.world)
    # rates keyed "<campaign>-<segment>:<arm>": the feedback file names that
    # pseudo-campaign, the daemon goes by the decision id only
    rate_keys = []
    for camp in camps:
        for seg, rates in segs.items():
            for arm, v in rates.items():
                rate_keys.append('%s%s:%s=%g/%g/%g' % (camp, '-' + seg if seg else '', arm, *v))
    rates_arg = ','.join(rate_keys)
    best = {seg: max(v[1] for v in rates.values()) for seg, rates in segs.items()}
    with tempfile.TemporaryDirectory() as tmp, testenv.RedisServer() as redis, \
            testenv.DevBroker() as broker:
        cfg = os.path.join(tmp, 'leadscore.yaml')
        with open(cfg, 'w') as f:
            f.write('kafka:\n  brokers: "%s"\nredis:\n  url: "%s"\n'
                    'http:\n  listen: 127.0.0.1:0\ncampaigns:\n' % (broker.bootstrap, redis.url))
            for camp, extra in camps.items():
                f.write(CAMPAIGN % camp + extra)
        d = testenv.Daemon([os.path.join(root, 'daemon', 'leadscored'), '--config', cfg],
                           name='leadscored-regret')
        d.start()
        port = int(d.wait_for_log(r'msg="listening" .*port=(\d+)', timeout=30).group(1))
        d.wait_for_log('msg="ready"', timeout=60)
        time.sleep(1.5)
        regret = {c: 0.0 for c in camps}
        picks = {c: {seg: {k: 0 for k in RATES} for seg in segs} for c in camps}
        made = 0
        try:
            for rnd in range(a.rounds):
                # sends 3 minutes ago: every event (within 1 m of its send)
                # is in the past, and every window (2 m) has ended, so the
                # expiry sweep resolves the unrewarded at once
                ts = int(time.time() * 1000) - 180000
                lines = []
                for camp in camps:
                    for i in range(a.decisions):
                        lead = 'r%d-%s-%d' % (rnd, camp, i)
                        seg = list(segs)[i % len(segs)]
                        body = {'lead_id': lead, 'activate': False}
                        if seg:
                            body['context'] = {'seg': seg}
                        st, o = call(port, 'POST', '/v1/campaigns/%s/decisions' % camp, body)
                        assert st == 200, o
                        lines.append('%s\t%s\t%s\t%s\t%d\n' % (
                            o['decision_id'], lead, camp + ('-' + seg if seg else ''),
                            o['variant'], ts))
                        picks[camp][seg][o['variant']] += 1
                made += a.decisions
                fb = os.path.join(tmp, 'round.tsv')
                truth = os.path.join(tmp, 'truth.tsv')
                with open(fb, 'w') as f:
                    f.writelines(lines)
                time.sleep(0.1)  # decisions written (1 ms batches)
                subprocess.run([sim, '--brokers', broker.bootstrap, '--feedback', fb,
                                '--variant-rates', rates_arg, '--feedback-max-delay', '1m',
                                '--reward-weights', 'OPENED=0,CLICKED=1,REPLIED=1',
                                '--seed', str(a.seed * 1000 + rnd), '--truth', truth],
                               check=True, capture_output=True)
                with open(truth) as f:
                    for row in f:
                        if row.startswith('decision_id'):
                            continue
                        cols = row.rstrip('\n').split('\t')
                        camp, _, seg = cols[4].partition('-')
                        regret[camp] += best[seg] - float(cols[2])
                deadline = time.monotonic() + 120
                while any(resolved(port, c) < made for c in camps):
                    if time.monotonic() > deadline:
                        raise SystemExit('decisions not resolved\n' + d.tail())
                    time.sleep(0.2)
                print('round %2d: decisions %5d  regret %s' % (
                    rnd + 1, made, '  '.join('%s %7.2f' % (c, regret[c]) for c in camps)),
                    flush=True)
        finally:
            d.terminate()
    print('scenario %s%s, seed %d; rates (open/click/reply) %s; reward = clicked'
          % (a.scenario, ' (%s)' % a.world if a.scenario == 'context' else '', a.seed,
             {seg or 'all': r for seg, r in segs.items()}))
    print('cumulative regret after %d decisions each: %s' % (
        made, ', '.join('%s %.2f (%.5f a decision)' % (c, regret[c], regret[c] / made)
                        for c in camps)))
    for c in camps:
        print('allocation %s: %s' % (c, {seg or 'all': p for seg, p in picks[c].items()}))
    first = list(camps)[0]
    for c in list(camps)[1:]:
        print('regret difference %s - %s: %+.2f (%+.5f a decision)'
              % (first, c, regret[first] - regret[c], (regret[first] - regret[c]) / made))


if __name__ == '__main__':
    main()
