/*
 * leadscorectl_avrofile.h - a reader of Avro object container files
 * (the Avro 1.x spec's "Object Container Files") for `leadscorectl
 * replay`: the writer schema from the header, then each record's Avro
 * binary datum, one at a time, without decoding it.
 *
 * Why not Avro-C's file reader: it trusts the file (a truncated or forged
 * block length makes it allocate or read what is not there), and replay
 * must survive any file. Here every length is checked against what is
 * left of the block or the file before anything is read or allocated,
 * and a record is cut out of its block by walking the writer schema
 * (bounds-checked, depth-limited); the codec then decodes the datum with
 * its own checks. Codecs: null and deflate (zlib); others are refused.
 *
 * Memory: the reader owns its buffers; a datum returned by
 * ctl_avrofile_next() points into them and lives until the next call.
 * Errors: 0/-1 (or the documented codes) with a reason in err.
 * Thread-safety: none; one reader per thread.
 */
#ifndef LEADSCORECTL_AVROFILE_H
#define LEADSCORECTL_AVROFILE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* "Obj" then version 1: the first four bytes of every container file. */
#define CTL_AVRO_MAGIC "Obj\x01"

typedef struct ctl_avrofile ctl_avrofile;

/*
 * Read the header of the container file f (positioned at its start; the
 * caller keeps f open while the reader is used and closes it after).
 * file_size is the file's size in bytes, or -1 when unknown (a pipe).
 * NULL with the reason in err: not a container, a bad or truncated
 * header, an unparseable schema, an unsupported codec.
 */
ctl_avrofile *ctl_avrofile_open(FILE *f, int64_t file_size, char *err, size_t errlen);
void ctl_avrofile_close(ctl_avrofile *af);

/* The writer schema as written in the header (JSON), and its record's
 * name without namespace ("EmailEvent"); never NULL for an open reader. */
const char *ctl_avrofile_schema_json(const ctl_avrofile *af);
const char *ctl_avrofile_schema_name(const ctl_avrofile *af);

/*
 * The next record's datum: 1 with *p and *len set; 0 at the clean end of
 * the file; -1 when the file cannot be read on (truncated, bad sync
 * marker, a bad block header, a read error): the reason is in err and
 * *lost counts the records the current block still announced; -2 when
 * one record does not fit the writer schema: its block's remaining
 * records (*lost, this one included) are skipped with the reason in err
 * and the next call goes on with the next block.
 */
int ctl_avrofile_next(ctl_avrofile *af, const uint8_t **p, size_t *len, uint64_t *lost,
		      char *err, size_t errlen);

/* 1-based number of the record last returned, or of the last one lost
 * (counting every record the blocks read so far announced). */
uint64_t ctl_avrofile_record_no(const ctl_avrofile *af);

#endif
