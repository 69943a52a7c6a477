"""An independent reference for leadscore's per-lead feature semantics.

Written from the header documentation only (models/ls_window.h and
models/ls_lead.h), not from ls_window.c / ls_lead.c, so that the
integration tests compare the daemon against a second reading of the
contract. It is deliberately naive: it keeps every applied event and
recomputes each window from scratch at the reference time, instead of
keeping rings of slices. The headers guarantee that this is equivalent:
an event is only skipped by a ring (or a slice evicted) when its slice is
at or below idx(watermark) - N, i.e. outside every window at any T >= the
watermark.

    fset = features_ref.FeatureSet()   # the default set (load_specs())
    ref = features_ref.LeadRef(fset, grace_ms=..., dedupe_k=...,
                               dedupe_horizon_ms=...)
    for ev in events_in_arrival_order: ref.apply(ev)  # dicts as avro_events
    ref.features()  -> {value_name: float}
    ref.events      -> {'email': n, 'web': n, ...}
    ref.attributes, ref.metrics

Events are dicts as avro_events encodes them plus a 'source' key
('email', 'web', 'call', 'outcome', 'profile'); 'ts' is in ms.

Ambiguities of the headers, and the reading taken here (each is also
marked "AMBIGUITY" where it is implemented):
  1. sum fixed point: "llround(x / unit)" is implemented literally as a
     double division x / unit (not x * (1/unit)); the two differ only for
     values within an ulp of a half unit.
  2. the reported sum "units * unit * spec.scale" is evaluated left to
     right, (units * unit) * scale; tests compare with a relative
     tolerance of 1e-12 so the association does not matter.
  3. mean divides the *reported* values of a (units * unit * scale) and b,
     not raw units (the header says "like ratio", and ratio is a / b of
     values).
  4. recency is a real division, max(0, T - last_seen) / unit_ms, not an
     integer one (the header does not say "whole days").
  5. the per-source event count of a *profile* event and the watermark
     include profile and outcome events ("any source, profile and outcome
     included"), also when no feature reads them.
  6. count with a field filter counts events "carrying that field": for
     string fields NULL and "" are both taken as absent (stated only for
     distinct); for numeric fields presence of the optional value.
"""
import ctypes
import ctypes.util
import math
import os

__all__ = ['load_specs', 'FeatureSet', 'LeadRef', 'window_label',
           'default_slices', 'xxh3_64']

MS_MIN = 60_000
MS_HOUR = 3_600_000
MS_DAY = 86_400_000
INT64_MAX = 2**63 - 1
INT64_MIN = -2**63
MAX_SLICES = 256
LEAD_KEY_MAX = 64
LEAD_VALUE_MAX = 256

SOURCES = ('email', 'web', 'call', 'outcome', 'profile')

# Bit t of a type mask accepts type t; these are the Avro enum symbol
# orders (ls_event.h mirrors them). Calls are typed by their outcome.
TYPE_SYMBOLS = {
    'email': ['SENT', 'DELIVERED', 'OPENED', 'CLICKED', 'REPLIED',
              'BOUNCED', 'UNSUBSCRIBED', 'SPAM_REPORTED'],
    'web': ['PAGE_VIEW', 'FORM_SUBMIT', 'DOWNLOAD', 'DEMO_REQUEST'],
    'call': ['CONNECTED', 'NO_ANSWER', 'VOICEMAIL', 'BUSY', 'MEETING_BOOKED'],
    'outcome': ['CONVERTED', 'OPPORTUNITY_CREATED', 'WON', 'LOST',
                'DISQUALIFIED'],
    'profile': [],
}

# field name (as in the YAML) -> (source, record field, kind, unit)
FIELDS = {
    'duration_ms': {'web': ('duration_ms', 'num', 1.0)},
    'duration_s': {'call': ('duration_s', 'num', 1.0)},
    'sentiment': {'call': ('sentiment', 'num', 0.001)},
    'value': {'outcome': ('value', 'num', 0.01)},
    'session_id': {'web': ('session_id', 'str', None)},
    'campaign_id': {'email': ('campaign_id', 'str', None)},
}


# ------------------------------------------------------------ XXH3 (libxxhash)

_xxh = None


def xxh3_64(data):
    """XXH3_64bits of bytes, from the system's libxxhash (not our code)."""
    global _xxh
    if _xxh is None:
        name = ctypes.util.find_library('xxhash') or 'libxxhash.so.0'
        lib = ctypes.CDLL(name)
        f = lib.XXH3_64bits
        f.restype = ctypes.c_uint64
        f.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
        _xxh = f
    return int(_xxh(data, len(data)))


# ------------------------------------------------------------ numerics

def llround(x):
    """C llround: round half away from zero."""
    t = math.trunc(x)
    frac = x - t          # exact for doubles
    if frac >= 0.5:
        t += 1
    elif frac <= -0.5:
        t -= 1
    return int(t)


def sat64(v):
    return max(INT64_MIN, min(INT64_MAX, v))


# ------------------------------------------------------------ windows

def window_label(ms):
    """Largest whole unit, except that one day is 24h (ls_window.h)."""
    if ms % MS_DAY == 0 and ms != MS_DAY:
        return '%dd' % (ms // MS_DAY)
    if ms % MS_HOUR == 0:
        return '%dh' % (ms // MS_HOUR)
    if ms % MS_MIN == 0:
        return '%dm' % (ms // MS_MIN)
    if ms % 1000 == 0:
        return '%ds' % (ms // 1000)
    return '%dms' % ms


def default_slices(w):
    """Default N for a window of w ms (ls_window.h table)."""
    if w <= MS_HOUR:
        n = 12
    elif w <= MS_DAY:
        n = 24
    elif w % (6 * MS_HOUR) == 0 and w // (6 * MS_HOUR) <= MAX_SLICES:
        n = w // (6 * MS_HOUR)
    else:
        n = 30
    # "or, when that count does not divide W, the largest count below it
    # that does (down to 1)"
    while n > 1 and w % n != 0:
        n -= 1
    return n


def parse_duration(s):
    if isinstance(s, int):
        return s
    units = (('ms', 1), ('s', 1000), ('m', MS_MIN), ('h', MS_HOUR),
             ('d', MS_DAY))
    for suf, mul in units:
        if s.endswith(suf) and s[:-len(suf)].isdigit():
            return int(s[:-len(suf)]) * mul
    raise ValueError('bad duration %r' % (s,))


# ------------------------------------------------------------ specs

def load_specs(path=None):
    """Feature specs (dicts as in the YAML `features:` list). Default: the
    documented default set, tests/data/config/features_default.yaml."""
    import yaml
    if path is None:
        root = os.environ.get('LS_TEST_DATA') or os.path.join(
            os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
            'data')
        path = os.path.join(root, 'config', 'features_default.yaml')
    with open(path, encoding='utf-8') as f:
        doc = yaml.safe_load(f)
    return doc['features']


class Feature:
    def __init__(self, d):
        self.name = d['name']
        self.kind = d.get('kind', 'windowed')
        self.source = d.get('source')
        types = d.get('types') or []
        self.types = set(types)          # empty: any type
        self.category = d.get('page_category') or ''
        self.agg = d.get('aggregation', 'count')
        self.field = d.get('field')
        self.scale = float(d.get('scale') or 0.0) or 1.0
        self.windows = []                # [(W, N)]
        for w in d.get('windows') or []:
            if isinstance(w, dict):
                length = parse_duration(w['length'])
                n = int(w.get('slices') or 0) or default_slices(length)
            else:
                length = parse_duration(w)
                n = default_slices(length)
            self.windows.append((length, n))
        self.a = d.get('a')
        self.b = d.get('b')
        self.param = float(d.get('param') or 0.0)
        unit = d.get('unit')
        self.unit_ms = parse_duration(unit) if unit else 0
        self.floor_zero = bool(d.get('floor_zero', False))

    # -- matching (ls_feature_match)
    def field_info(self):
        if self.field is None:
            return None
        return FIELDS[self.field][self.source]

    def contribution(self, ev):
        """What ev adds to its slice, or None when it does not match."""
        if ev['source'] != self.source:
            return None
        if self.types:
            # calls are typed by their outcome, outcomes by theirs
            if self.source in ('call', 'outcome'):
                t = ev['outcome']
            else:
                t = ev.get('type')
            if t not in self.types:
                return None
        if self.category:
            if self.source != 'web' or ev.get('page_category') != self.category:
                return None
        fi = self.field_info()
        val = None
        if fi is not None:
            rec_field, fkind, unit = fi
            val = ev.get(rec_field)
            # AMBIGUITY 6: "" is absent for string fields
            if val is None or (fkind == 'str' and val == ''):
                return None
        if self.agg == 'count':
            return 1
        if self.agg == 'last_seen':
            return ev['ts']
        if self.agg == 'distinct':
            return 1 << (xxh3_64(val.encode('utf-8')) & 63)
        # sum
        x = float(val)
        if self.field in ('duration_ms', 'duration_s') and x < 0:
            return None                  # negative: ignored
        if self.field == 'sentiment':
            x = max(-1.0, min(1.0, x))
        elif self.field == 'value':
            x = max(-1e15, min(1e15, x))
        units = llround(x / unit)        # AMBIGUITY 1
        if units == 0:
            return None
        return units


class FeatureSet:
    def __init__(self, specs=None):
        if specs is None:
            specs = load_specs()
        self.features = [Feature(d) for d in specs]
        self.by_name = {f.name: f for f in self.features}
        self.tracked = {f.a for f in self.features if f.kind == 'recency'}

    def value_names(self):
        out = []
        for f in self.features:
            if f.kind == 'velocity':
                out.append('%s_%s_%s' % (f.name, window_label(f.windows[0][0]),
                                         window_label(f.windows[1][0])))
            elif f.kind == 'recency':
                out.append(f.name)
            else:
                for length, _ in f.windows:
                    out.append('%s_%s' % (f.name, window_label(length)))
        return out


# ------------------------------------------------------------ one lead

class LeadRef:
    """Naive per-lead state: every applied event is kept."""

    def __init__(self, fset=None, grace_ms=30 * MS_DAY, dedupe_k=32,
                 max_attributes=32, max_metrics=32,
                 dedupe_horizon_ms=MS_HOUR):
        self.fset = fset or FeatureSet()
        self.grace_ms = grace_ms
        self.dedupe_horizon_ms = dedupe_horizon_ms
        self.dedupe_k = dedupe_k
        self.max_attributes = max_attributes
        self.max_metrics = max_metrics
        self.watermark = -1
        self.applied = []        # events, in arrival order
        self.keys = []           # (ts, hash) of applied events
        self.events = {s: 0 for s in SOURCES}
        self.attributes = {}
        self.metrics = {}
        self.n_duplicates = 0
        self.n_too_late = 0

    def apply(self, ev):
        """Returns 'applied', 'duplicate' or 'too_late' (ls_lead.h order)."""
        ts = ev['ts']
        if ts < 0:
            raise ValueError('ts < 0')
        if self.watermark >= 0 and ts < self.watermark - self.grace_ms:
            self.n_too_late += 1
            return 'too_late'
        key = (ts, xxh3_64(ev['event_id'].encode('utf-8')))
        if self.watermark >= 0:
            # remembered: of the applied events with ts >= watermark -
            # min(horizon, grace), the dedupe_k greatest by (ts, hash)
            floor = self.watermark - min(self.dedupe_horizon_ms, self.grace_ms)
            remembered = sorted(k for k in self.keys if k[0] >= floor)
            remembered = remembered[-self.dedupe_k:]
            if key in set(remembered):
                self.n_duplicates += 1
                return 'duplicate'
        self.watermark = max(self.watermark, ts)
        self.applied.append(ev)
        self.keys.append(key)
        self.events[ev['source']] += 1
        if ev['source'] == 'profile':
            self._merge_profile(ev)
        return 'applied'

    def _merge_profile(self, ev):
        for k, v in (ev.get('attributes') or {}).items():
            if len(k.encode()) > LEAD_KEY_MAX or len(v.encode()) > LEAD_VALUE_MAX:
                continue
            if v == '':
                self.attributes.pop(k, None)
            elif k in self.attributes or len(self.attributes) < self.max_attributes:
                self.attributes[k] = v
        for k, v in (ev.get('metrics') or {}).items():
            if len(k.encode()) > LEAD_KEY_MAX or not math.isfinite(v):
                continue
            if k in self.metrics or len(self.metrics) < self.max_metrics:
                self.metrics[k] = float(v)

    # -- values
    def _window_raw(self, f, length, n, T):
        """Aggregate of window (length, n) of windowed feature f at T."""
        w = length // n
        top = T // w
        lo = top - n           # slices k with lo < k <= top
        acc = 0
        for ev in self.applied:
            k = ev['ts'] // w
            if not (lo < k <= top):
                continue
            c = f.contribution(ev)
            if c is None:
                continue
            if f.agg == 'count':
                acc = min(acc + c, 2**64 - 1)
            elif f.agg == 'sum':
                acc = sat64(acc + c)
            elif f.agg == 'last_seen':
                acc = max(acc, c + 1)        # ts + 1, 0 = empty
            else:
                acc |= c
        return acc

    def _window_value(self, f, length, n, T):
        raw = self._window_raw(f, length, n, T)
        if f.agg == 'count':
            return float(raw)
        if f.agg == 'sum':
            unit = f.field_info()[2]
            return raw * unit * f.scale      # AMBIGUITY 2
        if f.agg == 'last_seen':
            if raw == 0:
                return length / 1000.0
            return max(0, T - (raw - 1)) / 1000.0
        z = 64 - bin(raw).count('1')
        if z == 64:
            return 0.0
        if z == 0:
            return 64.0 * math.log(64.0)
        return -64.0 * math.log(z / 64.0)

    def _window_index(self, f, length):
        for i, (l, _) in enumerate(f.windows):
            if l == length:
                return i
        raise KeyError('%s has no %d ms window' % (f.name, length))

    def _value_of(self, name, length, T):
        f = self.fset.by_name[name]
        n = f.windows[self._window_index(f, length)][1]
        return self._window_value(f, length, n, T)

    def features(self, T=None):
        if T is None:
            T = max(self.watermark, 0)
        out = {}
        for f in self.fset.features:
            if f.kind == 'windowed':
                for length, n in f.windows:
                    out['%s_%s' % (f.name, window_label(length))] = \
                        self._window_value(f, length, n, T)
            elif f.kind == 'velocity':
                (S, _), (L, _) = f.windows[0], f.windows[1]
                c_s = self._value_of(f.a, S, T)
                c_l = self._value_of(f.a, L, T)
                alpha = f.param or 1.0
                v = (c_s * L / S + alpha) / (c_l + alpha)
                out['%s_%s_%s' % (f.name, window_label(S), window_label(L))] = v
            elif f.kind == 'recency':
                a = self.fset.by_name[f.a]
                cap = f.param or 365.0
                unit = f.unit_ms or MS_DAY
                seen = [ev['ts'] for ev in self.applied
                        if a.contribution(ev) is not None]
                if not seen:
                    v = cap
                else:
                    v = min(cap, max(0, T - max(seen)) / unit)  # AMBIGUITY 4
                out[f.name] = v
            else:
                for length, _ in f.windows:
                    a = self._value_of(f.a, length, T)
                    b = self._value_of(f.b, length, T)
                    if f.kind == 'difference':
                        v = a - b
                        if f.floor_zero:
                            v = max(0.0, v)
                    else:   # ratio, mean (AMBIGUITY 3)
                        v = 0.0 if b == 0 else a / b
                    out['%s_%s' % (f.name, window_label(length))] = v
        return out


def reference(events, fset=None, **conf):
    """{lead_id: LeadRef} for events in arrival order."""
    fset = fset or FeatureSet()
    leads = {}
    for ev in events:
        lead = leads.get(ev['lead_id'])
        if lead is None:
            lead = leads[ev['lead_id']] = LeadRef(fset, **conf)
        lead.apply(ev)
    return leads
