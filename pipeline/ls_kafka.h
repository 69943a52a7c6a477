/*
 * ls_kafka.h - librdkafka set-up shared by the consumer and producers.
 *
 * Configuration order: our defaults, then `kafka.properties` verbatim (the
 * operator wins), then the few settings correctness depends on (group.id
 * from `kafka.group_id`, enable.auto.commit=false because offsets are
 * committed to Redis together with the state they produced). librdkafka's
 * own log lines are routed into ls_log under component "rdkafka".
 *
 * The consumer wraps rebalancing: it applies assignments (eager or
 * cooperative, whichever protocol the group negotiated), keeps a count of
 * assigned partitions readable from any thread, and calls optional hooks so
 * the pipeline can flush revoked partitions and seek assigned ones.
 *
 * Memory: handles returned here are owned by the caller and released with
 * the matching _free/_close functions. Thread-safety: as librdkafka's; the
 * consumer is polled by one thread; ls_kafka_consumer_assigned() is safe
 * from any thread.
 */
#ifndef LS_KAFKA_H
#define LS_KAFKA_H

#include <stdbool.h>
#include <stddef.h>

#include <librdkafka/rdkafka.h>

#include "ls_kv.h"

/*
 * What the consumer and the producers are built from (the daemon fills it
 * from `kafka.*`, ls_settings_kafka()). Every string is borrowed for the
 * call that takes the settings: librdkafka copies what it keeps.
 */
typedef struct ls_kafka_settings {
	const char *brokers;  /* kafka.brokers: bootstrap.servers */
	const char *group_id; /* kafka.group_id: the consumer's group.id */
	struct {
		/* consumed: the consumer subscribes to these five */
		const char *email, *web, *call, *outcome, *profile;
		/* produced by the pipeline, the scorer and the campaigns */
		const char *scores, *dead_letter, *decisions;
	} topics;
	size_t n_properties;     /* kafka.properties, applied in this order */
	const ls_kv *properties;
} ls_kafka_settings;

/*
 * A conf carrying brokers, logging, our defaults (for a consumer:
 * auto.offset.reset=earliest) and s's properties. Returns NULL with a
 * reason in err (e.g. librdkafka rejected a property).
 */
rd_kafka_conf_t *ls_kafka_conf_new(const ls_kafka_settings *s, bool consumer,
				   char *err, size_t errlen);

/*
 * rd_kafka_conf_set() without the echo: librdkafka's reason (in why) quotes
 * a rejected value, and kafka.properties values may be passwords, so every
 * echo of value is replaced by "<value>". Returns librdkafka's result:
 * RD_KAFKA_CONF_UNKNOWN for a name it does not know, RD_KAFKA_CONF_INVALID
 * for a value it rejects. Topic-level names are accepted on a global conf
 * (librdkafka applies them to the default topic conf). Setting
 * plugin.library.paths loads the plugins, whose properties are known from
 * then on. Thread-safety: as conf's.
 */
rd_kafka_conf_res_t ls_kafka_conf_set(rd_kafka_conf_t *conf, const char *key,
				      const char *value, char *why,
				      size_t whylen);

/*
 * True when a property's value is a secret (sasl.password, ssl.key.password,
 * ssl.keystore.password, ssl.key.pem, sasl.oauthbearer.client.secret,
 * sasl.oauthbearer.config, or any name with "password" or "secret" in it).
 * Pure.
 */
bool ls_kafka_property_is_secret(const char *name);

/*
 * The librdkafka property name closest to name (a typo's likely meaning)
 * into buf: 0, or -1 when none is within a few edits.
 */
int ls_kafka_property_suggest(const char *name, char *buf, size_t buflen);

/*
 * Called from the poll thread during a rebalance, before the change. An
 * assign hook may set parts->elems[i].offset to choose where each
 * partition starts.
 */
typedef void (*ls_kafka_rebalance_fn)(
	rd_kafka_t *rk, rd_kafka_topic_partition_list_t *parts, void *ud);

typedef struct ls_kafka_consumer ls_kafka_consumer;

/* A consumer in s->group_id, subscribed to the five input topics of s. */
ls_kafka_consumer *ls_kafka_consumer_new(const ls_kafka_settings *s, char *err,
					 size_t errlen);

/*
 * Hooks: on_assign runs before partitions are taken (seek them there);
 * on_revoke runs before they are given up (flush their state there).
 */
void ls_kafka_consumer_set_hooks(ls_kafka_consumer *c,
				 ls_kafka_rebalance_fn on_assign,
				 ls_kafka_rebalance_fn on_revoke, void *ud);

rd_kafka_t *ls_kafka_consumer_handle(ls_kafka_consumer *c);

/* Number of partitions currently assigned. Any thread. */
int ls_kafka_consumer_assigned(const ls_kafka_consumer *c);

/* True once any partition has ever been assigned. Any thread. */
bool ls_kafka_consumer_ever_assigned(const ls_kafka_consumer *c);

/* Leave the group cleanly (revoking through the hooks) and free. */
/*
 * fn(ud) runs when the consumer has left the group and before its handle
 * is destroyed (ls_kafka_consumer_close): the last moment to release
 * references to its queues, which rd_kafka_destroy() waits for.
 */
void ls_kafka_consumer_set_close_hook(ls_kafka_consumer *c, void (*fn)(void *ud));

void ls_kafka_consumer_close(ls_kafka_consumer *c);

/* A copy of librdkafka's latest statistics JSON (every
   statistics.interval.ms, 5 s unless kafka.properties sets it), for the
   consumer-lag metric; NULL before the first. Any thread; free() it. */
char *ls_kafka_consumer_stats(ls_kafka_consumer *c);

#endif
