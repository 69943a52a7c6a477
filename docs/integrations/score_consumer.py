#!/usr/bin/python3
"""Follow leadscored's score changes and print one JSON line per change.

A starting point for a consumer of the `ScoreChange` records leadscored
publishes on `kafka.topics.scores` (default `leads.scores`, key =
lead_id). Values are plain Avro binary in schemas/score_change.avsc (no
Confluent header; one is skipped if present). Delivery is at least once
and a replay after a crash republishes leads with higher versions, so,
as the schema says, it keeps the highest `version` per lead and model
and drops records whose version is not above it.

Needs confluent-kafka and avro (Debian: python3-confluent-kafka,
python3-avro).

    score_consumer.py --brokers HOST:PORT [--topic leads.scores]
        [--group score-consumer] [--schema PATH] [--from-beginning]
        [--tier hot] [--exit-when-idle SECONDS]

Output, one line per kept change (fields of the record, `ts` in ms since
the epoch, plus where it was read):

    {"lead_id": "L-17", "model": "conversion", "score": 0.74,
     "previous_score": 0.61, "tier": "hot", "previous_tier": "warm",
     "version": 4294967299, "ts": 1733480000000, "cause_event_id": "e-99",
     "factors": [{"name": "pricing_views_7d in [3, 6)", "contribution": 0.9}],
     "partition": 2, "offset": 1234}

Exit status: 0 on Ctrl-C or after --exit-when-idle seconds without a
record; 1 on a Kafka error; 2 on a usage error. A record that does not
decode is reported on stderr and skipped.
"""
import argparse
import datetime
import io
import json
import os
import signal
import sys
import time

import avro.io
import avro.schema
from confluent_kafka import Consumer, KafkaError, KafkaException

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_SCHEMA = os.path.join(HERE, '..', '..', 'schemas', 'score_change.avsc')
EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def decoder(schema_path):
    with open(schema_path, encoding='utf-8') as f:
        reader = avro.io.DatumReader(avro.schema.parse(f.read()))

    def decode(value):
        if value[:1] == b'\x00':  # Confluent framing: magic byte + schema id
            value = value[5:]
        rec = reader.read(avro.io.BinaryDecoder(io.BytesIO(value)))
        if isinstance(rec['ts'], datetime.datetime):  # timestamp-millis
            rec['ts'] = (rec['ts'] - EPOCH) // datetime.timedelta(milliseconds=1)
        return rec
    return decode


def main(argv):
    ap = argparse.ArgumentParser(description='Print leadscored ScoreChange records as JSON lines.')
    ap.add_argument('--brokers', required=True, help='bootstrap servers, host:port[,...]')
    ap.add_argument('--topic', default='leads.scores')
    ap.add_argument('--group', default='score-consumer',
                    help='consumer group; its offsets are committed to Kafka')
    ap.add_argument('--schema', default=DEFAULT_SCHEMA, help='score_change.avsc')
    ap.add_argument('--from-beginning', action='store_true',
                    help='a group with no committed offset starts at the oldest record '
                         '(default: only new records)')
    ap.add_argument('--tier', help='print only changes into this tier')
    ap.add_argument('--exit-when-idle', type=float, metavar='SECONDS',
                    help='exit once no record has come for this long')
    args = ap.parse_args(argv)

    decode = decoder(args.schema)
    consumer = Consumer({
        'bootstrap.servers': args.brokers,
        'group.id': args.group,
        'auto.offset.reset': 'earliest' if args.from_beginning else 'latest',
    })
    stop = []
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    # the highest version kept per (lead, model); grows with the number of
    # leads: a real consumer keeps it where it keeps the scores
    newest = {}
    last = time.monotonic()
    try:
        consumer.subscribe([args.topic])
        while not stop:
            msg = consumer.poll(0.5)
            if msg is None:
                if args.exit_when_idle is not None and \
                        time.monotonic() - last > args.exit_when_idle:
                    break
                continue
            if msg.error():
                if msg.error().code() == KafkaError._PARTITION_EOF:
                    continue
                raise KafkaException(msg.error())
            last = time.monotonic()
            try:
                rec = decode(msg.value())
            except Exception as e:  # noqa: BLE001 - any decoding failure
                print('partition %d offset %d: cannot decode: %s'
                      % (msg.partition(), msg.offset(), e), file=sys.stderr)
                continue
            key = (rec['lead_id'], rec['model'])
            if newest.get(key, -1) >= rec['version']:
                continue  # a duplicate or a stale replay
            newest[key] = rec['version']
            if args.tier is not None and rec['tier'] != args.tier:
                continue
            rec['partition'], rec['offset'] = msg.partition(), msg.offset()
            print(json.dumps(rec), flush=True)
    except KafkaException as e:
        print('kafka: %s' % e, file=sys.stderr)
        return 1
    finally:
        consumer.close()
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
