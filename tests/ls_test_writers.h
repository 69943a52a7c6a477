/*
 * ls_test_writers.h - writer schemas of other producers, for the codec's
 * unit test (tests/test_codec.c) and its fuzzer (tests/fuzz/fuzz_codec.c):
 * registered under a Confluent schema id, records written in them decode
 * through Avro schema resolution.
 */
#ifndef LS_TEST_WRITERS_H
#define LS_TEST_WRITERS_H

/* EmailEvent v2 as another producer might have it: fields reordered, an
 * extra field with a default, variant_id and decision_id dropped, and an
 * enum whose symbols are reordered with one we do not know. */
static const char evolved_email[] =
	"{\"type\":\"record\",\"name\":\"EmailEvent\",\"namespace\":\"io.leadscore\",\"fields\":["
	"{\"name\":\"lead_id\",\"type\":\"string\"},"
	"{\"name\":\"type\",\"type\":{\"type\":\"enum\",\"name\":\"EmailEventType\",\"symbols\":"
	"[\"OPENED\",\"SENT\",\"FORWARDED\",\"DELIVERED\",\"CLICKED\",\"REPLIED\",\"BOUNCED\","
	"\"UNSUBSCRIBED\",\"SPAM_REPORTED\"]}},"
	"{\"name\":\"client\",\"type\":\"string\",\"default\":\"unknown\"},"
	"{\"name\":\"event_id\",\"type\":\"string\"},"
	"{\"name\":\"url\",\"type\":[\"null\",\"string\"],\"default\":null},"
	"{\"name\":\"ts\",\"type\":\"long\"},"
	"{\"name\":\"campaign_id\",\"type\":[\"null\",\"string\"],\"default\":null}"
	"]}";

/* A writer with extra fields the reader skips: a recursive record (the walk
 * must follow links and bound the depth) and an array of nulls (zero-byte
 * items, so the count alone must be bounded: by design a block may not
 * claim more items than bytes remain, even for zero-byte items). */
static const char recursive_email[] =
	"{\"type\":\"record\",\"name\":\"EmailEvent\",\"namespace\":\"io.leadscore\",\"fields\":["
	"{\"name\":\"event_id\",\"type\":\"string\"},{\"name\":\"lead_id\",\"type\":\"string\"},"
	"{\"name\":\"ts\",\"type\":\"long\"},"
	"{\"name\":\"type\",\"type\":{\"type\":\"enum\",\"name\":\"EmailEventType\",\"symbols\":"
	"[\"SENT\",\"DELIVERED\",\"OPENED\",\"CLICKED\",\"REPLIED\",\"BOUNCED\",\"UNSUBSCRIBED\","
	"\"SPAM_REPORTED\"]}},"
	"{\"name\":\"trail\",\"type\":[\"null\",{\"type\":\"record\",\"name\":\"Hop\",\"fields\":["
	"{\"name\":\"next\",\"type\":[\"null\",\"Hop\"]}]}],\"default\":null},"
	"{\"name\":\"nulls\",\"type\":{\"type\":\"array\",\"items\":\"null\"},\"default\":[]}"
	"]}";

#endif
