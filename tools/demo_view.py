"""The live demo's view: one snapshot of demo_live.State, drawn two ways.

snapshot() turns the state into plain numbers; View draws it either as a
terminal screen redrawn in place (ANSI: cursor home, clear to end of line,
no scrolling) or, with plain=True, as one block of lines per interval,
each line a kind word then `key=value` fields without spaces in values,
so a test (tests/integration/test_demo.py) or grep can read them:

  stream   t events events_per_s lag dead_letters stream_time generator
  scores   t published per_s leads_scored hot warm cold
  model    t name labels positives auc ece logloss version mature
  lead     t rank id score tier factors (name:contribution,...): the
           hottest leads among those rescored in the last 15 s
  campaign t id decisions decisions_per_s trials rewards feedback_runs
  variant  t id true_rate decisions share share_recent trials rewards
           posterior_mean ci95_low ci95_high p_best probability

A value not known yet is `-`; `t` is seconds since the demo started.
"""
import datetime
import shutil
import re
import sys

TOP_LEADS = 5
HOT_RECENT_S = 15.0  # the hottest leads are those rescored this recently
_ESC = re.compile('\x1b\\[[0-9;?]*[A-Za-z]')


def _fmt(v, spec='%.3f'):
    return '-' if v is None else spec % v


def _ts(ms):
    if not ms:
        return '-'
    d = datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc)
    return d.strftime('%Y-%m-%dT%H:%MZ')


def _rate(samples, idx, span=3.0):
    """Per second over the last ~span seconds of samples (t, a, b)."""
    if len(samples) < 2:
        return None
    last = samples[-1]
    first = samples[0]
    for s in samples:
        if last[0] - s[0] <= span + 0.5:
            first = s
            break
    if last[0] <= first[0]:
        return None
    return (last[idx] - first[idx]) / (last[0] - first[0])


def snapshot(st):
    """The state as plain values (a dict), taken under its lock."""
    with st.lock:
        m = st.metrics
        s = {'t': st.now(), 'generator': st.generator, 'daemon_ok': st.daemon_ok}
        samples = list(st.samples)
        s['events'] = samples[-1][1] if samples else None
        s['published'] = samples[-1][2] if samples else None
        s['events_per_s'] = _rate(samples, 1)
        s['per_s'] = _rate(samples, 2)
        lags = [v for _, v in m.get('leadscore_consumer_lag_messages', []) if v >= 0]
        s['lag'] = sum(lags) if lags else None
        s['dead_letters'] = (sum(v for _, v in m.get('leadscore_events_dead_lettered_total', []))
                             if m else None)
        s['stream_time'] = st.stream_ts
        s['leads_scored'] = len(st.leads)
        tiers = {}
        now = st.now()
        fresh = []
        for lead, v in st.leads.items():
            tiers[v[2]] = tiers.get(v[2], 0) + 1
            if now - v[5] <= HOT_RECENT_S:
                fresh.append((lead, v))
        s['tiers'] = tiers
        # the hottest of the leads rescored lately, so the list moves with
        # the stream instead of keeping the month's first 0.999s forever
        top = sorted(fresh, key=lambda kv: (-kv[1][1], kv[0]))[:TOP_LEADS]
        s['hot'] = [(lead, v[1], v[2], v[3]) for lead, v in top]
        s['model'] = dict(st.model) if st.model else None
        s['model_history'] = list(st.model_history)
        camp = st.campaign
        arms = {}
        if camp and camp.get('buckets'):
            for a in camp['buckets'][0]['arms']:
                arms[a['variant']] = a
        total = sum(st.decisions.values())
        recent = {}
        for _, v in st.recent:
            recent[v] = recent.get(v, 0) + 1
        n_recent = sum(recent.values())
        variants = []
        names = list(st.rates) + [v for v in arms if v not in st.rates]
        for v in names:
            a = arms.get(v, {})
            ci = a.get('ci95') or [None, None]
            variants.append({
                'id': v,
                'true_rate': st.rates[v][1] if v in st.rates else None,
                'decisions': st.decisions.get(v, 0),
                'share': st.decisions.get(v, 0) / total if total else None,
                'share_recent': recent.get(v, 0) / n_recent if n_recent else None,
                'trials': a.get('trials'), 'rewards': a.get('rewards'),
                'posterior_mean': a.get('posterior_mean'),
                'ci95_low': ci[0], 'ci95_high': ci[1],
                'p_best': a.get('p_best'), 'probability': a.get('probability'),
            })
        s['variants'] = variants
        s['decisions'] = total
        s['decisions_per_s'] = n_recent / min(10.0, max(st.now(), 1.0)) if n_recent else 0.0
        s['trials'] = sum(a.get('trials') or 0 for a in arms.values()) if arms else None
        s['rewards'] = sum(a.get('rewards') or 0 for a in arms.values()) if arms else None
        s['feedback_runs'] = st.feedback_runs
        s['feedback_failed'] = st.feedback_failed
        s['decision_errors'] = st.decision_errors
    return s


def _factors(factors, n=3, sep=','):
    return sep.join('%s:%+.2f' % (f['name'].replace(' ', ''), f['contribution'])
                    for f in (factors or [])[:n]) or '-'


def plain_lines(s):
    t = 't=%.1f' % s['t']
    out = ['stream %s events=%s events_per_s=%s lag=%s dead_letters=%s stream_time=%s '
           'generator=%s' % (t, _fmt(s['events'], '%d'), _fmt(s['events_per_s'], '%.1f'),
                             _fmt(s['lag'], '%d'), _fmt(s['dead_letters'], '%d'),
                             _ts(s['stream_time']), s['generator'].split()[0])]
    tiers = s['tiers']
    out.append('scores %s published=%s per_s=%s leads_scored=%d hot=%d warm=%d cold=%d' % (
        t, _fmt(s['published'], '%d'), _fmt(s['per_s'], '%.1f'), s['leads_scored'],
        tiers.get('hot', 0), tiers.get('warm', 0), tiers.get('cold', 0)))
    md = s['model'] or {}
    labels = None
    if md.get('positives') is not None and md.get('negatives') is not None:
        labels = md['positives'] + md['negatives']
    out.append('model %s name=conversion labels=%s positives=%s auc=%s ece=%s logloss=%s '
               'version=%s mature=%s' % (t, _fmt(labels, '%d'), _fmt(md.get('positives'), '%d'),
                                         _fmt(md.get('auc')), _fmt(md.get('ece')),
                                         _fmt(md.get('logloss')), _fmt(md.get('version'), '%d'),
                                         {True: 'yes', False: 'no'}.get(md.get('mature'), '-')))
    for i, (lead, score, tier, factors) in enumerate(s['hot']):
        out.append('lead %s rank=%d id=%s score=%.3f tier=%s factors=%s' % (
            t, i + 1, lead, score, tier, _factors(factors)))
    out.append('campaign %s id=welcome decisions=%d decisions_per_s=%.1f trials=%s rewards=%s '
               'feedback_runs=%d' % (t, s['decisions'], s['decisions_per_s'],
                                     _fmt(s['trials'], '%d'), _fmt(s['rewards'], '%g'),
                                     s['feedback_runs']))
    for v in s['variants']:
        out.append('variant %s id=%s true_rate=%s decisions=%d share=%s share_recent=%s '
                   'trials=%s rewards=%s posterior_mean=%s ci95_low=%s ci95_high=%s p_best=%s '
                   'probability=%s' % (
                       t, v['id'], _fmt(v['true_rate']), v['decisions'], _fmt(v['share']),
                       _fmt(v['share_recent']), _fmt(v['trials'], '%d'),
                       _fmt(v['rewards'], '%g'), _fmt(v['posterior_mean']),
                       _fmt(v['ci95_low']), _fmt(v['ci95_high']), _fmt(v['p_best']),
                       _fmt(v['probability'])))
    return out


BOLD, DIM, RESET = '\x1b[1m', '\x1b[2m', '\x1b[0m'
GREEN, YELLOW, CYAN, RED = '\x1b[32m', '\x1b[33m', '\x1b[36m', '\x1b[31m'
TIER_COLOUR = {'hot': RED, 'warm': YELLOW, 'cold': CYAN}


def _bar(frac, width):
    if frac is None:
        return ' ' * width
    full = int(round(max(0.0, min(1.0, frac)) * width))
    return '#' * full + '.' * (width - full)


def _num(v, spec='{:,.0f}'):
    return '-' if v is None else spec.format(v)


def screen_lines(s, head):
    L = []
    L.append('%sleadscore live demo%s   %.0f s   Ctrl-C stops everything' % (BOLD, RESET, s['t']))
    for h in head.split('\n'):
        L.append('%s%s%s' % (DIM, h, RESET))
    L.append('')
    lag = s['lag']
    L.append('%sstream%s  events/s %s   events read %s   consumer lag %s   dead letters %s' % (
        BOLD, RESET, _num(s['events_per_s']), _num(s['events']),
        _num(lag), _num(s['dead_letters'])))
    L.append('        simulated time %s   simulator %s' % (_ts(s['stream_time']), s['generator']))
    tiers = s['tiers']
    L.append('%sscores%s  changes/s %s   published %s   leads scored %s   '
             '%shot %d%s  %swarm %d%s  %scold %d%s' % (
                 BOLD, RESET, _num(s['per_s']), _num(s['published']),
                 _num(s['leads_scored']), RED, tiers.get('hot', 0), RESET,
                 YELLOW, tiers.get('warm', 0), RESET, CYAN, tiers.get('cold', 0), RESET))
    md = s['model'] or {}
    labels = None
    if md.get('positives') is not None:
        labels = md['positives'] + md['negatives']
    L.append('%smodel%s   labels %s (%s converted)   AUC %s   calibration error %s   '
             'log-loss %s' % (BOLD, RESET, _num(labels), _num(md.get('positives')),
                              _fmt(md.get('auc')), _fmt(md.get('ece')),
                              _fmt(md.get('logloss'))))
    hist = s['model_history']
    if hist:
        k = min(6, len(hist))
        picks = [hist[int(i * (len(hist) - 1) / max(1, k - 1))] for i in range(k)]
        L.append('        AUC so far  ' + '  '.join('%.3f%s (%.0f s)%s' % (h[1], DIM, h[0], RESET)
                                               for h in picks))
    else:
        L.append('        AUC so far  %s(defined once both outcomes have been seen)%s' % (
            DIM, RESET))
    L.append('')
    L.append('%shottest leads%s rescored in the last %.0f s (score, tier, what drives it)' % (
        BOLD, RESET, HOT_RECENT_S))
    for lead, score, tier, factors in s['hot']:
        L.append('  %-12s %.3f %s%-5s%s %s' % (lead, score, TIER_COLOUR.get(tier, ''), tier,
                                             RESET, _factors(factors, 3, '  ')))
    for _ in range(TOP_LEADS - len(s['hot'])):
        L.append('  %s(waiting for scores)%s' % (DIM, RESET))
    L.append('')
    L.append('%scampaign welcome%s  decisions %s (%.0f/s)   resolved %s   rewarded %s' % (
        BOLD, RESET, _num(s['decisions']), s['decisions_per_s'], _num(s['trials']),
        _num(s['rewards'], '{:,.0f}')))
    L.append('  %-9s %-9s %-26s %-8s %-22s %s' % ('variant', 'true rate', 'share of last 10 s',
                                                 'overall', 'posterior mean [95 %]', 'P(best)'))
    best = max((v['p_best'] or 0 for v in s['variants']), default=0)
    for v in s['variants']:
        colour = GREEN if best and v['p_best'] == best else ''
        ci = ('%.3f [%.3f, %.3f]' % (v['posterior_mean'], v['ci95_low'], v['ci95_high'])
              if v['posterior_mean'] is not None and v['ci95_low'] is not None else '-')
        L.append('  %s%-9s%s %-9s %s %5s   %-8s %-22s %s' % (
            colour, v['id'], RESET, _fmt(v['true_rate'], '%.2f'),
            _bar(v['share_recent'], 20), _fmt(v['share_recent'], '%.2f'),
            _fmt(v['share'], '%.2f'), ci, _fmt(v['p_best'], '%.2f')))
    if s['decision_errors'] or s['feedback_failed']:
        L.append('%sdecision errors %d, feedback runs failed %d (see the log)%s' % (
            RED, s['decision_errors'], s['feedback_failed'], RESET))
    if not s['daemon_ok']:
        L.append('%swaiting for leadscored%s' % (DIM, RESET))
    return L


class View:
    def __init__(self, st, args, log_path, tmp, plain):
        self.st = st
        self.plain = plain
        self.log_path = log_path
        self.head = 'logs: ' + log_path
        self.started = False
        self.tty = sys.stdout.isatty() and not plain

    def say(self, text, err=False):
        f = sys.stderr if err else sys.stdout
        try:
            f.write(('# %s\n' if self.plain else '%s\n') % text)
            f.flush()
        except OSError:  # the reader went away (a closed pipe): the demo stops anyway
            pass

    def draw(self):
        s = snapshot(self.st)
        if self.plain:
            sys.stdout.write('\n'.join(plain_lines(s)) + '\n\n')
            sys.stdout.flush()
            return
        lines = screen_lines(s, self.head)
        if not self.tty:  # piped: no escapes, just blocks
            sys.stdout.write('\n'.join(_ESC.sub('', x) for x in lines) + '\n\n')
            sys.stdout.flush()
            return
        width = shutil.get_terminal_size((120, 40)).columns
        out = []
        if not self.started:
            out.append('\x1b[?25l\x1b[2J')
            self.started = True
        out.append('\x1b[H')
        for line in lines:
            out.append(_clip(line, width) + '\x1b[K\n')
        out.append('\x1b[J')
        sys.stdout.write(''.join(out))
        sys.stdout.flush()

    def close(self):
        if self.started:
            self.started = False
            try:
                sys.stdout.write('\x1b[?25h\n')
                sys.stdout.flush()
            except OSError:
                pass


def _clip(line, width):
    """Cut a line to width visible columns, keeping escape codes whole."""
    out, vis, i = [], 0, 0
    while i < len(line):
        if line[i] == '\x1b':
            j = line.find('m', i)
            j = len(line) - 1 if j < 0 else j
            out.append(line[i:j + 1])
            i = j + 1
            continue
        if vis < width - 1:
            out.append(line[i])
        vis += 1
        i += 1
    return ''.join(out) + RESET

