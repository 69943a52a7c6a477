/*
 * leadscorectl_avrofile.c - Avro object container files for replay, read
 * defensively (see the header for why not Avro-C's reader).
 *
 * Layout (Avro spec): "Obj\x01", a map<bytes> of metadata (avro.schema,
 * avro.codec) in map blocks, a 16-byte sync marker; then blocks of
 * (record count, byte size, bytes, sync marker). The block's bytes are
 * read whole (a block is what the writer buffered, usually ~64 KiB) after
 * checking the size against the file's remaining bytes, inflated for
 * deflate, and cut into records by skip(): a walk of the writer schema
 * that checks every length against the end of the block.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <avro.h>
#include <zlib.h>

#include "leadscorectl_avrofile.h"

#define SYNC_LEN 16
#define META_MAX ((int64_t)1 << 20)    /* bytes of a header key or value */
#define BLOCK_MAX ((int64_t)256 << 20) /* bytes of a block, stored or inflated */
#define DEPTH_MAX 64                   /* nesting of the writer schema */

struct ctl_avrofile {
	FILE *f;
	int64_t left; /* bytes of the file not read yet; -1 unknown */
	char *schema_json;
	avro_schema_t schema;
	char name[128];
	bool deflate;
	uint8_t sync[SYNC_LEN];
	uint8_t *raw;    /* the block as stored */
	size_t raw_cap;
	uint8_t *data;   /* the block's records (raw or inflated) */
	size_t data_cap;
	const uint8_t *p, *end; /* the current block's unread records */
	uint64_t block_left;    /* records the block still holds */
	bool truncated;         /* the current block is cut short by EOF */
	uint64_t record_no;
};

static void set_err(char *err, size_t errlen, const char *what)
{
	snprintf(err, errlen, "%s", what);
}

/* -1 at EOF or a read error, else the byte. */
static int get_byte(ctl_avrofile *af)
{
	int c = getc(af->f);
	if (c != EOF && af->left > 0)
		af->left--;
	return c;
}

static bool read_exact(ctl_avrofile *af, void *buf, size_t n)
{
	if (n == 0)
		return true;
	if (fread(buf, 1, n, af->f) != n)
		return false;
	if (af->left >= 0)
		af->left -= (int64_t)n;
	return true;
}

/* A zigzag varint long from the file: 1, 0 at EOF before its first byte,
 * -1 for a truncated or over-long one. */
static int file_long(ctl_avrofile *af, int64_t *out)
{
	uint64_t v = 0;
	for (int shift = 0; shift < 70; shift += 7) {
		int c = get_byte(af);
		if (c == EOF)
			return shift == 0 ? 0 : -1;
		v |= (uint64_t)(c & 0x7f) << shift;
		if ((c & 0x80) == 0) {
			*out = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
			return 1;
		}
	}
	return -1;
}

/* A zigzag varint long from [*p, end): false when it does not fit. */
static bool mem_long(const uint8_t **p, const uint8_t *end, int64_t *out)
{
	uint64_t v = 0;
	for (int shift = 0; shift < 70 && *p < end; shift += 7) {
		uint8_t c = *(*p)++;
		v |= (uint64_t)(c & 0x7f) << shift;
		if ((c & 0x80) == 0) {
			*out = (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
			return true;
		}
	}
	return false;
}

static bool mem_skip(const uint8_t **p, const uint8_t *end, int64_t n)
{
	if (n < 0 || n > end - *p)
		return false;
	*p += n;
	return true;
}

/* Step over one datum of schema s: false when it does not fit. */
static bool skip(avro_schema_t s, const uint8_t **p, const uint8_t *end, int depth)
{
	int64_t n;
	if (depth > DEPTH_MAX)
		return false;
	switch (avro_typeof(s)) {
	case AVRO_NULL:
		return true;
	case AVRO_BOOLEAN:
		return mem_skip(p, end, 1);
	case AVRO_INT32:
	case AVRO_INT64:
	case AVRO_ENUM:
		return mem_long(p, end, &n);
	case AVRO_FLOAT:
		return mem_skip(p, end, 4);
	case AVRO_DOUBLE:
		return mem_skip(p, end, 8);
	case AVRO_STRING:
	case AVRO_BYTES:
		return mem_long(p, end, &n) && mem_skip(p, end, n);
	case AVRO_FIXED:
		return mem_skip(p, end, avro_schema_fixed_size(s));
	case AVRO_RECORD: {
		size_t nf = avro_schema_record_size(s);
		for (size_t i = 0; i < nf; i++) {
			avro_schema_t f = avro_schema_record_field_get_by_index(s, (int)i);
			if (f == NULL || !skip(f, p, end, depth + 1))
				return false;
		}
		return true;
	}
	case AVRO_UNION: {
		if (!mem_long(p, end, &n) || n < 0 || (uint64_t)n >= avro_schema_union_size(s))
			return false;
		avro_schema_t b = avro_schema_union_branch(s, (int)n);
		return b != NULL && skip(b, p, end, depth + 1);
	}
	case AVRO_MAP:
	case AVRO_ARRAY: {
		bool map = avro_typeof(s) == AVRO_MAP;
		avro_schema_t item = map ? avro_schema_map_values(s) : avro_schema_array_items(s);
		for (;;) {
			if (!mem_long(p, end, &n))
				return false;
			if (n == 0)
				return true;
			if (n < 0) {
				int64_t bytes;
				if (n == INT64_MIN || !mem_long(p, end, &bytes))
					return false;
				n = -n;
			}
			/* every item takes at least a byte, or none (null, empty
			 * record): bound the loop by what is left either way */
			if (n > end - *p && n > (int64_t)1 << 24)
				return false;
			for (int64_t i = 0; i < n; i++) {
				int64_t kl;
				if (map && !(mem_long(p, end, &kl) && mem_skip(p, end, kl)))
					return false;
				if (!skip(item, p, end, depth + 1))
					return false;
			}
		}
	}
	case AVRO_LINK:
		return skip(avro_schema_link_target(s), p, end, depth + 1);
	default:
		return false;
	}
}

static bool grow(uint8_t **buf, size_t *cap, size_t need)
{
	if (need <= *cap)
		return true;
	uint8_t *b = realloc(*buf, need);
	if (b == NULL)
		return false;
	*buf = b;
	*cap = need;
	return true;
}

/* Read one header metadata string (key or value) into a new buffer. */
static char *file_bytes(ctl_avrofile *af, size_t *len, char *err, size_t errlen)
{
	int64_t n;
	if (file_long(af, &n) != 1 || n < 0 || n > META_MAX ||
	    (af->left >= 0 && n > af->left)) {
		set_err(err, errlen, "bad or truncated header metadata");
		return NULL;
	}
	char *s = malloc((size_t)n + 1);
	if (s == NULL) {
		set_err(err, errlen, "out of memory");
		return NULL;
	}
	if (!read_exact(af, s, (size_t)n)) {
		free(s);
		set_err(err, errlen, "truncated header");
		return NULL;
	}
	s[n] = '\0';
	*len = (size_t)n;
	return s;
}

/* The header's metadata map: schema and codec. 0 or -1. */
static int read_meta(ctl_avrofile *af, char *err, size_t errlen)
{
	bool codec_seen = false;
	for (;;) {
		int64_t n;
		if (file_long(af, &n) != 1) {
			set_err(err, errlen, "truncated header");
			return -1;
		}
		if (n == 0)
			break;
		if (n < 0) {
			int64_t bytes;
			if (n == INT64_MIN || file_long(af, &bytes) != 1) {
				set_err(err, errlen, "bad header metadata block");
				return -1;
			}
			n = -n;
		}
		if (n > 4096) {
			set_err(err, errlen, "header metadata with more than 4096 entries");
			return -1;
		}
		for (int64_t i = 0; i < n; i++) {
			size_t kl, vl;
			char *k = file_bytes(af, &kl, err, errlen);
			if (k == NULL)
				return -1;
			char *v = file_bytes(af, &vl, err, errlen);
			if (v == NULL) {
				free(k);
				return -1;
			}
			if (strcmp(k, "avro.schema") == 0) {
				free(af->schema_json);
				af->schema_json = v;
				v = NULL;
			} else if (strcmp(k, "avro.codec") == 0) {
				codec_seen = true;
				if (strcmp(v, "deflate") == 0) {
					af->deflate = true;
				} else if (strcmp(v, "null") != 0) {
					snprintf(err, errlen, "codec '%.64s' is not supported (null and "
							      "deflate are)", v);
					free(k);
					free(v);
					return -1;
				}
			}
			free(k);
			free(v);
		}
	}
	(void)codec_seen; /* absent: null, as the spec says */
	if (af->schema_json == NULL) {
		set_err(err, errlen, "the header has no avro.schema");
		return -1;
	}
	return 0;
}

ctl_avrofile *ctl_avrofile_open(FILE *f, int64_t file_size, char *err, size_t errlen)
{
	ctl_avrofile *af = calloc(1, sizeof *af);
	if (af == NULL) {
		set_err(err, errlen, "out of memory");
		return NULL;
	}
	af->f = f;
	af->left = file_size;
	char magic[4];
	if (!read_exact(af, magic, 4) || memcmp(magic, CTL_AVRO_MAGIC, 4) != 0) {
		set_err(err, errlen, "not an Avro container file (no Obj\\x01 magic)");
		goto fail;
	}
	if (read_meta(af, err, errlen) != 0)
		goto fail;
	if (!read_exact(af, af->sync, SYNC_LEN)) {
		set_err(err, errlen, "truncated header (no sync marker)");
		goto fail;
	}
	if (avro_schema_from_json_length(af->schema_json, strlen(af->schema_json),
					 &af->schema) != 0) {
		snprintf(err, errlen, "the header's schema does not parse: %.200s",
			 avro_strerror());
		goto fail;
	}
	if (avro_typeof(af->schema) != AVRO_RECORD) {
		set_err(err, errlen, "the header's schema is not a record");
		goto fail;
	}
	snprintf(af->name, sizeof af->name, "%s", avro_schema_name(af->schema));
	return af;
fail:
	ctl_avrofile_close(af);
	return NULL;
}

void ctl_avrofile_close(ctl_avrofile *af)
{
	if (af == NULL)
		return;
	if (af->schema != NULL)
		avro_schema_decref(af->schema);
	free(af->schema_json);
	free(af->raw);
	free(af->data);
	free(af);
}

const char *ctl_avrofile_schema_json(const ctl_avrofile *af)
{
	return af->schema_json;
}

const char *ctl_avrofile_schema_name(const ctl_avrofile *af)
{
	return af->name;
}

uint64_t ctl_avrofile_record_no(const ctl_avrofile *af)
{
	return af->record_no;
}

/* Inflate raw[0..n) (raw deflate, RFC 1951) into af->data: 0 or -1. */
static int inflate_block(ctl_avrofile *af, size_t n, size_t *out_len, char *err, size_t errlen)
{
	z_stream z;
	memset(&z, 0, sizeof z);
	if (inflateInit2(&z, -15) != Z_OK) {
		set_err(err, errlen, "cannot start zlib");
		return -1;
	}
	z.next_in = af->raw;
	z.avail_in = (uInt)n;
	size_t len = 0;
	for (;;) {
		if (len == af->data_cap) {
			size_t want = af->data_cap != 0 ? af->data_cap * 2 : 65536;
			if (want > (size_t)BLOCK_MAX) {
				set_err(err, errlen, "a deflated block inflates past 256 MiB");
				break;
			}
			if (!grow(&af->data, &af->data_cap, want)) {
				set_err(err, errlen, "out of memory");
				break;
			}
		}
		z.next_out = af->data + len;
		z.avail_out = (uInt)(af->data_cap - len);
		int rc = inflate(&z, Z_NO_FLUSH);
		len = af->data_cap - z.avail_out;
		if (rc == Z_STREAM_END || (rc == Z_BUF_ERROR && z.avail_out > 0)) {
			/* the end, or all input used (a writer that did not finish
			 * the stream): what inflated is the block */
			inflateEnd(&z);
			*out_len = len;
			return 0;
		}
		if (rc != Z_OK && rc != Z_BUF_ERROR) {
			set_err(err, errlen, "a deflated block does not inflate (corrupt)");
			break;
		}
	}
	inflateEnd(&z);
	return -1;
}

/* Read the next block: 1, 0 at the clean end, -1 (err). */
static int next_block(ctl_avrofile *af, uint64_t *lost, char *err, size_t errlen)
{
	int64_t count, size;
	int r = file_long(af, &count);
	if (r == 0)
		return ferror(af->f) ? (set_err(err, errlen, "read error"), -1) : 0;
	if (r < 0 || count < 0 || file_long(af, &size) != 1 || size < 0) {
		set_err(err, errlen, "truncated or bad block header");
		return -1;
	}
	*lost = (uint64_t)count;
	if (size > BLOCK_MAX) {
		snprintf(err, errlen, "block of %lld bytes: over the 256 MiB this reader takes",
			 (long long)size);
		return -1;
	}
	/* a regular file cannot give more than it has left */
	size_t want = af->left >= 0 && size > af->left ? (size_t)af->left : (size_t)size;
	if (!grow(&af->raw, &af->raw_cap, want + 1)) {
		set_err(err, errlen, "out of memory");
		return -1;
	}
	/* A truncated file: its last block's whole records are still read
	 * (not for deflate, which needs the whole block). */
	size_t got = fread(af->raw, 1, want, af->f);
	if (af->left >= 0)
		af->left -= (int64_t)got;
	uint8_t sync[SYNC_LEN];
	if (got < (size_t)size || !read_exact(af, sync, SYNC_LEN)) {
		if (af->deflate || ferror(af->f)) {
			set_err(err, errlen, ferror(af->f) ? "read error" : "truncated block");
			return -1;
		}
		af->truncated = true;
		size = (int64_t)got;
	} else if (memcmp(sync, af->sync, SYNC_LEN) != 0) {
		set_err(err, errlen, "bad sync marker after a block (corrupt file)");
		return -1;
	}
	size_t len = (size_t)size;
	if (af->deflate) {
		if (inflate_block(af, len, &len, err, errlen) != 0)
			return -1;
		af->p = af->data;
	} else {
		af->p = af->raw;
	}
	af->end = af->p + len;
	/* Every record of an event schema takes bytes (event_id's length at
	 * least): a count above the block's bytes is a corrupt header, and
	 * the records it invents would only be counted as lost. */
	af->block_left = (uint64_t)count <= len ? (uint64_t)count : len;
	*lost = 0;
	return 1;
}

int ctl_avrofile_next(ctl_avrofile *af, const uint8_t **p, size_t *len, uint64_t *lost,
		      char *err, size_t errlen)
{
	*lost = 0;
	while (af->block_left == 0) {
		if (af->truncated)
			return 0; /* its records all read; the next read sees EOF */
		int r = next_block(af, lost, err, errlen);
		if (r < 0)
			af->record_no += *lost; /* numbered, as ones a bad record skips */
		if (r <= 0)
			return r;
	}
	const uint8_t *start = af->p;
	af->record_no++;
	if (!skip(af->schema, &af->p, af->end, 0)) {
		*lost = af->block_left;
		if (af->truncated) {
			snprintf(err, errlen, "the file is truncated: %llu record(s) of its last "
					      "block missing", (unsigned long long)af->block_left);
			af->record_no += af->block_left - 1;
			af->block_left = 0;
			return -1;
		}
		snprintf(err, errlen, "record does not fit the writer schema (%llu record(s) of "
				      "its block skipped)", (unsigned long long)af->block_left);
		af->record_no += af->block_left - 1;
		af->block_left = 0;
		return -2;
	}
	af->block_left--;
	*p = start;
	*len = (size_t)(af->p - start);
	return 1;
}
