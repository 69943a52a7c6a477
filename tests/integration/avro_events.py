"""Encode and decode leadscore records with the Apache Avro Python library.

Integration tests use this instead of our C codec so that what goes into the
broker and what comes out of it is checked by an independent implementation
of the schemas in schemas/*.avsc.
"""
import datetime
import io
import os
import struct

import avro.io
import avro.schema

SOURCE_ROOT = os.environ.get(
    'LS_SOURCE_ROOT',
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

SCHEMA_FILES = {
    'email': 'email_event.avsc',
    'web': 'web_event.avsc',
    'call': 'call_event.avsc',
    'outcome': 'lead_outcome.avsc',
    'profile': 'lead_profile.avsc',
    'score_change': 'score_change.avsc',
    'bandit_decision': 'bandit_decision.avsc',
}

_cache = {}


def schema(kind):
    if kind not in _cache:
        path = os.path.join(SOURCE_ROOT, 'schemas', SCHEMA_FILES[kind])
        with open(path, encoding='utf-8') as f:
            _cache[kind] = avro.schema.parse(f.read())
    return _cache[kind]


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def _to_datetime(ms):
    return _EPOCH + datetime.timedelta(milliseconds=ms)


def _to_ms(dt):
    delta = dt - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1000 + delta.microseconds // 1000


def encode(kind, record, schema_id=None):
    """Plain Avro binary, or Confluent framing when schema_id is given.

    `ts` is given in milliseconds since the epoch, as on the wire; the Avro
    library wants a datetime for timestamp-millis, so it is converted here.
    """
    record = dict(record)
    if isinstance(record.get('ts'), int):
        record['ts'] = _to_datetime(record['ts'])
    for f in schema(kind).fields:
        record.setdefault(f.name, None)
    buf = io.BytesIO()
    if schema_id is not None:
        buf.write(b'\x00' + struct.pack('>i', schema_id))
    avro.io.DatumWriter(schema(kind)).write(record, avro.io.BinaryEncoder(buf))
    return buf.getvalue()


def decode(kind, data):
    if data[:1] == b'\x00':
        data = data[5:]
    reader = avro.io.DatumReader(schema(kind))
    rec = reader.read(avro.io.BinaryDecoder(io.BytesIO(data)))
    if isinstance(rec.get('ts'), datetime.datetime):
        rec['ts'] = _to_ms(rec['ts'])
    return rec
