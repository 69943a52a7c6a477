#!/usr/bin/python3
"""The baseline leadscore-bench compares against: a straightforward Python
pipeline doing the same job with the usual libraries.

confluent-kafka consumes batches of up to 5,000 messages; each record is
decoded with the Apache Avro library (Debian's python3-avro); per batch the
leads are read from Redis in one redis-py pipeline, per-lead counters by
source and type are updated, and the leads are written back together with
the next offset of every partition in one MULTI/EXEC (transactional
pipeline) - the same exactly-once shape as leadscored, minus the windows.

Environment: LS_BENCH_BOOTSTRAP, LS_BENCH_REDIS_URL (redis:// or unix://),
LS_BENCH_EVENTS. Prints events_per_s=X (first message to last).
"""
import io
import json
import math
import os
import sys
import time

import avro.io
import avro.schema
import redis
from confluent_kafka import Consumer

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
TOPICS = {'leads.email': 'email_event', 'leads.web': 'web_event', 'leads.call': 'call_event',
          'leads.outcome': 'lead_outcome', 'leads.profile': 'lead_profile'}
# Log-odds weights of the counters ("<topic>:<type>") and a bias.
WEIGHTS = {'leads.email:OPENED': 0.15, 'leads.email:CLICKED': 0.4,
           'leads.email:REPLIED': 0.9, 'leads.email:UNSUBSCRIBED': -1.5,
           'leads.web:PAGE_VIEW': 0.05, 'leads.web:FORM_SUBMIT': 0.6,
           'leads.web:DEMO_REQUEST': 1.2, 'leads.call:CONNECTED': 0.5,
           'leads.call:MEETING_BOOKED': 1.5}
BIAS = -3.0


def score(state):
    z = BIAS + sum(w * state.get(k, 0) for k, w in WEIGHTS.items())
    z = max(-30.0, min(30.0, z))
    return 1.0 / (1.0 + math.exp(-z))


def main():
    n = int(os.environ['LS_BENCH_EVENTS'])
    url = os.environ['LS_BENCH_REDIS_URL']
    r = redis.Redis(unix_socket_path=url[len('unix://'):]) if url.startswith('unix://') \
        else redis.Redis.from_url(url)
    readers = {}
    for topic, name in TOPICS.items():
        with open(os.path.join(ROOT, 'schemas', name + '.avsc')) as f:
            readers[topic] = avro.io.DatumReader(avro.schema.parse(f.read()))
    group = os.environ.get('LS_BENCH_GROUP', 'bench-python')
    c = Consumer({'bootstrap.servers': os.environ['LS_BENCH_BOOTSTRAP'],
                  'group.id': group, 'auto.offset.reset': 'earliest',
                  'enable.auto.commit': False})
    c.subscribe(list(TOPICS))
    done, t0, t1 = 0, None, None
    deadline = time.monotonic() + float(os.environ.get('LS_BENCH_TIMEOUT', '900'))
    while done < n and time.monotonic() < deadline:
        msgs = c.consume(5000, 0.1)
        if not msgs:
            continue
        if t0 is None:
            t0 = time.monotonic()
        events, offsets = [], {}
        for m in msgs:
            if m.error():
                continue
            rec = readers[m.topic()].read(avro.io.BinaryDecoder(io.BytesIO(m.value())))
            events.append((m.topic(), rec))
            offsets['%s:%d' % (m.topic(), m.partition())] = m.offset() + 1
        leads = sorted({rec['lead_id'] for _, rec in events})
        p = r.pipeline(transaction=False)
        for lead in leads:
            p.get('py:{%s}:s' % lead)
        state = {lead: json.loads(v) if v else {} for lead, v in zip(leads, p.execute())}
        for topic, rec in events:
            s = state[rec['lead_id']]
            key = topic + ':' + str(rec.get('type') or rec.get('outcome') or 'profile')
            s[key] = s.get(key, 0) + 1
            s['last_ts'] = max(s.get('last_ts', 0), int(rec['ts'].timestamp() * 1000))
        for s in state.values():
            s['score'] = score(s)
        p = r.pipeline(transaction=True)
        for lead, s in state.items():
            p.set('py:{%s}:s' % lead, json.dumps(s), px=30 * 86400 * 1000)
        p.hset('py:offsets:' + group, mapping=offsets)
        p.execute()
        done += len(msgs)
        t1 = time.monotonic()
    c.close()
    if done < n or t1 is None or t1 <= t0:
        print('baseline: processed %d of %d' % (done, n))
        return 1
    print('baseline: %d events' % done)
    print('events_per_s=%.0f' % (done / (t1 - t0)))
    return 0


if __name__ == '__main__':
    sys.exit(main())
