#!/usr/bin/python3
"""Produce a small, seeded stream of sample lead events for the demo.

usage: demo_events.py BOOTSTRAP [--leads N] [--events N] [--seed S]

Events are Avro-encoded (plain binary) with the Apache Avro Python library
against schemas/*.avsc, keyed by lead_id, over the last 30 days of event
time, in event-time order. One deliberately malformed record goes to the web topic
so the demo shows a dead-letter decision in the log.
"""
import argparse
import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                '..', 'tests', 'integration'))
import avro_events  # noqa: E402
from confluent_kafka import Producer  # noqa: E402

CATEGORIES = ['pricing', 'product', 'docs', 'blog', 'careers']


def events(rng, leads, n, now_ms):
    for i in range(n):
        lead = 'lead-%04d' % rng.randrange(leads)
        ts = now_ms - rng.randrange(30 * 86400 * 1000)
        base = {'event_id': 'demo-%d-%d' % (now_ms, i), 'lead_id': lead, 'ts': ts}
        kind = rng.choices(['email', 'web', 'call', 'outcome', 'profile'],
                           weights=[40, 40, 10, 3, 7])[0]
        if kind == 'email':
            base['type'] = rng.choice(['SENT', 'DELIVERED', 'OPENED', 'CLICKED', 'REPLIED'])
            base['campaign_id'] = 'spring-launch'
        elif kind == 'web':
            base['type'] = rng.choices(['PAGE_VIEW', 'FORM_SUBMIT', 'DOWNLOAD', 'DEMO_REQUEST'],
                                       weights=[85, 6, 6, 3])[0]
            base['url'] = '/' + rng.choice(CATEGORIES)
            base['page_category'] = rng.choice(CATEGORIES)
            base['duration_ms'] = rng.randrange(200, 300000)
        elif kind == 'call':
            base['direction'] = rng.choice(['INBOUND', 'OUTBOUND'])
            base['outcome'] = rng.choice(['CONNECTED', 'NO_ANSWER', 'VOICEMAIL', 'MEETING_BOOKED'])
            base['duration_s'] = rng.randrange(0, 1800)
            base['sentiment'] = round(rng.uniform(-1, 1), 2)
        elif kind == 'outcome':
            base['outcome'] = rng.choice(['CONVERTED', 'LOST', 'OPPORTUNITY_CREATED'])
            base['value'] = float(rng.randrange(1000, 50000))
        else:
            base['attributes'] = {'industry': rng.choice(['saas', 'retail', 'finance']),
                                  'country': rng.choice(['DE', 'US', 'FR'])}
            base['metrics'] = {'employees': float(rng.randrange(5, 5000))}
        yield kind, lead, base


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('bootstrap')
    ap.add_argument('--leads', type=int, default=50)
    ap.add_argument('--events', type=int, default=2000)
    ap.add_argument('--seed', type=int, default=7)
    ap.add_argument('--malformed-only', action='store_true',
                    help='send only the malformed record (the demo takes its events from leadscore-sim)')
    args = ap.parse_args()
    if args.malformed_only:
        args.events = 0
    rng = random.Random(args.seed)
    producer = Producer({'bootstrap.servers': args.bootstrap})
    now_ms = int(time.time() * 1000)
    n = 0
    # producers emit in event-time order; leadscored drops events older
    # than a lead's newest minus pipeline.grace, so a shuffled month would
    # mostly be "too late"
    stream = sorted(events(rng, args.leads, args.events, now_ms), key=lambda e: e[2]['ts'])
    for kind, lead, rec in stream:
        producer.produce('leads.' + kind, key=lead.encode(), value=avro_events.encode(kind, rec))
        producer.poll(0)
        n += 1
    producer.produce('leads.web', key=b'lead-bad', value=b'\x01not avro')
    left = producer.flush(10)
    print('produced %d events and 1 malformed record (%d undelivered)' % (n, left))
    return 1 if left else 0


if __name__ == '__main__':
    sys.exit(main())
