"""Bounded per-lead state (docs/operations.md "Memory per lead"), end to end.

One lead is fed what a careless or hostile producer can send: profile
records with thousands of distinct attributes and metrics whose keys and
values are at and beyond the length limits, events of every kind every
hour for a month (every window slice), and more events within the last
hour than the dedupe memory holds. Afterwards:

  * its Redis value is at most LEAD_BLOB_BOUND bytes (ls_lead_blob_bound()
    for the default limits and features) and MEMORY USAGE of its key at
    most LEAD_MEMORY_BOUND + len(key): the figures docs/operations.md documents;
  * it holds exactly pipeline.max_profile_attributes / max_profile_metrics
    keys, and every entry not kept is counted in
    leadscore_profile_entries_dropped_total by reason; nothing of it is
    dead-lettered (the other entries of those records are applied).

Run with Debian's /usr/bin/python3 and LS_BUILD_ROOT set (meson test does).
"""
import http.client
import json
import os
import re
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import avro_events  # noqa: E402
import lstest as tp  # noqa: E402
import testenv  # noqa: E402

# docs/operations.md "Memory per lead": the blob bound for the default limits
# (dedupe_ids 32, 32 attributes, 32 metrics) and the default features, and
# what Redis takes for it at most besides the key (the allocator's size
# class of a 55,396-byte string is 56 KiB; object, dict and TTL entries).
LEAD_BLOB_BOUND = 55396
LEAD_MEMORY_BOUND = 57344 + 256
MAX_ATTRIBUTES = 32
MAX_METRICS = 32
KEY_MAX = 64
VALUE_MAX = 256

HOUR = 3600 * 1000
LEAD = 'adv-lead'
PROFILES = 20
KEYS_PER_PROFILE = 150


def metric(text, name, label):
    """{label value: value} of a counter family in a /metrics page."""
    out = {}
    rx = re.compile(r'^%s\{%s="([^"]*)"\} (\S+)$' % (name, label))
    for line in text.splitlines():
        m = rx.match(line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


class LeadStateBound(tp.DaemonSuite):
    check_rc = False  # this suite never asserted the exit code

    @classmethod
    def setUpClass(cls):
        cls.start_env('memory')

    def get(self, path):
        c = http.client.HTTPConnection('127.0.0.1', self.port, timeout=30)
        try:
            c.request('GET', path)
            r = c.getresponse()
            return r.status, r.read().decode()
        finally:
            c.close()

    def test_adversarial_lead_stays_bounded(self):
        now = int(time.time() * 1000)
        t0 = now - 31 * 24 * HOUR
        records = {'email': [], 'web': [], 'call': [], 'profile': []}
        n = 0
        # every hour for 31 days: every kind of event, distinct campaigns
        # and sessions (the distinct-count windows), large sums
        for h in range(31 * 24):
            ts = t0 + h * HOUR
            for t in ('SENT', 'OPENED', 'CLICKED', 'REPLIED', 'BOUNCED'):
                n += 1
                records['email'].append(avro_events.encode('email', {
                    'event_id': 'e%d' % n, 'lead_id': LEAD, 'ts': ts, 'type': t,
                    'campaign_id': 'c%d' % h}))
            for cat in ('pricing', 'product', 'docs', 'blog', 'careers'):
                n += 1
                records['web'].append(avro_events.encode('web', {
                    'event_id': 'w%d' % n, 'lead_id': LEAD, 'ts': ts,
                    'type': 'PAGE_VIEW', 'url': 'https://x.test/' + cat,
                    'page_category': cat, 'duration_ms': 86400000,
                    'session_id': 's%d' % h}))
            n += 1
            records['call'].append(avro_events.encode('call', {
                'event_id': 'c%d' % n, 'lead_id': LEAD, 'ts': ts,
                'direction': 'OUTBOUND', 'outcome': 'CONNECTED',
                'duration_s': 1000000000, 'sentiment': -1.0}))
        # 100 more events in the last hour than any dedupe memory keeps
        for i in range(100):
            records['web'].append(avro_events.encode('web', {
                'event_id': 'burst%d' % i, 'lead_id': LEAD, 'ts': now - HOUR + i,
                'type': 'PAGE_VIEW', 'url': 'https://x.test/', 'session_id': 'b'}))
        # profiles: 3,000 distinct keys at the maximum lengths, and per
        # record one key and one value a byte too long
        expect = {'attributes_full': 0, 'metrics_full': 0, 'bad_key': 0,
                  'bad_value': 0}
        for p in range(PROFILES):
            attrs, mets = {}, {}
            for i in range(KEYS_PER_PROFILE):
                key = ('%03d-%03d-' % (p, i)).ljust(KEY_MAX, 'k')
                attrs[key] = 'v' * VALUE_MAX
                mets[key] = p * 1000 + i + 0.5
            attrs['K' * (KEY_MAX + 1)] = 'x'
            attrs['long-value'] = 'V' * (VALUE_MAX + 1)
            mets['M' * (KEY_MAX + 1)] = 1.0
            expect['bad_key'] += 2
            expect['bad_value'] += 1
            records['profile'].append(avro_events.encode('profile', {
                'event_id': 'p%d' % p, 'lead_id': LEAD, 'ts': now - HOUR + 200 + p,
                'attributes': attrs, 'metrics': mets}))
        total_keys = PROFILES * KEYS_PER_PROFILE
        expect['attributes_full'] = total_keys - MAX_ATTRIBUTES
        expect['metrics_full'] = total_keys - MAX_METRICS
        total = 0
        for source, recs in records.items():
            testenv.produce(self.broker.bootstrap, 'leads.' + source,
                            [(LEAD.encode(), v) for v in recs], timeout=60)
            total += len(recs)

        deadline = time.monotonic() + testenv.scaled(120)
        while True:
            st, text = self.get('/metrics')
            self.assertEqual(st, 200)
            consumed = sum(float(v) for v in re.findall(
                r'^leadscore_events_consumed_total\{[^}]*\} (\S+)$', text, re.M))
            dropped = metric(text, 'leadscore_profile_entries_dropped_total', 'reason')
            if consumed >= total and dropped == {k: float(v) for k, v in expect.items()}:
                break
            if time.monotonic() > deadline:
                self.fail('consumed %d of %d; dropped %r, want %r\n%s'
                          % (consumed, total, dropped, expect, self.daemon.tail()))
            time.sleep(0.5)
        dead = metric(text, 'leadscore_events_dead_lettered_total', 'reason')
        self.assertEqual(sum(dead.values()), 0, dead)

        key = 'ls:{%s}:s' % LEAD
        r = self.redis.client()
        deadline = time.monotonic() + testenv.scaled(30)
        # the last profile is committed once the lead holds all 32 keys
        while True:
            st, body = self.get('/v1/leads/' + LEAD)
            if st == 200 and len(json.loads(body)['attributes']) == MAX_ATTRIBUTES:
                break
            if time.monotonic() > deadline:
                self.fail('lead never showed %d attributes: %s %s'
                          % (MAX_ATTRIBUTES, st, body[:500]))
            time.sleep(0.3)
        lead = json.loads(body)
        self.assertEqual(len(lead['metrics']), MAX_METRICS)
        blob = r.strlen(key)
        usage = r.memory_usage(key)
        sys.stderr.write('adversarial lead: blob %d bytes (bound %d), '
                         'MEMORY USAGE %d (bound %d)\n'
                         % (blob, LEAD_BLOB_BOUND, usage,
                            LEAD_MEMORY_BOUND + len(key)))
        # the producer-grown parts are at their caps: not a trivially
        # small lead
        self.assertGreater(blob, MAX_ATTRIBUTES * (KEY_MAX + VALUE_MAX))
        self.assertLessEqual(blob, LEAD_BLOB_BOUND)
        self.assertLessEqual(usage, LEAD_MEMORY_BOUND + len(key))


if __name__ == '__main__':
    unittest.main()
