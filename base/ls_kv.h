/*
 * ls_kv.h - one name and value pair of strings, for the maps every layer
 * passes along: the config engine's map keys (kafka.properties) and the
 * librdkafka properties the pipeline applies from them.
 *
 * Memory: whoever fills an array of pairs owns its strings (the config
 * frees them in ls_config_free()); readers only borrow them. Errors: none.
 * Thread-safety: plain data.
 */
#ifndef LS_KV_H
#define LS_KV_H

typedef struct ls_kv {
	char *key;
	char *value;
} ls_kv;

#endif
