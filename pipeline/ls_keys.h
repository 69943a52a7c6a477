/*
 * ls_keys.h - the Redis key schema: every key leadscore reads or writes,
 * built in one place.
 *
 * <p> is redis.key_prefix (default "ls:", may be ""); <m> a model name,
 * C a campaign id, <group_id> kafka.group_id, <partition> a Kafka
 * partition in decimal, <id> a decision id. Every key is byte-for-byte
 * what earlier versions wrote, so an upgrade finds its state: change
 * nothing here without a migration (tests/test_keys.c holds this table,
 * docs/operations.md's and the functions to the same keys).
 *
 * key                     type    TTL                content
 *                                                    w: written by; r: read by
 * ----------------------  ------  -----------------  --------------------------------------
 * <p>{<lead_id>}:s        string  redis.lead_ttl,    the lead's state blob (ls_lead codec)
 *                                 refreshed by each  w: loop, SET PX in the batch commit
 *                                 write              r: loop, HTTP /v1/leads/{lead_id},
 *                                                      leadscorectl lead
 * <p>offsets:<group_id>   hash    none               field "<topic>:<partition>", value the
 *                                                    next offset to consume, decimal
 *                                                    w: loop, the batch commit
 *                                                    r: loop on assignment, leadscorectl
 *                                                       offsets
 * <p>epoch                string  none               the replay epoch, an integer
 *                                                    w: loop, INCR at each (re)start
 *                                                    r: loop (the INCR's reply)
 * <p>model:<m>            string  none               FTRL checkpoint blob (z and n)
 *                                                    w: scorer checkpoint (WATCH, MULTI)
 *                                                    r: scorer, leadscorectl model/lead
 * <p>model:<m>:eval       string  none               evaluation window blob
 *                                                    w: scorer checkpoint
 *                                                    r: scorer, leadscorectl model/lead
 * <p>model:<m>:log        list    none (the          learning-log entries, one per label
 *                                 checkpoint LTRIMs  w: loop, RPUSH in the batch commit
 *                                 what it folded)    r: scorer checkpoint, leadscorectl
 * <p>rescore:<partition>  zset    none (members go   member lead id, score the ms of
 *                                 when done)         partition event time it is due at
 *                                                    w: loop, the batch commit
 *                                                    r: sweeps (ZRANGEBYSCORE)
 * <p>due:<m>:<partition>  zset    none (ditto)       member lead id, score its label
 *                                                    deadline ms for model m
 *                                                    w: loop, the batch commit
 *                                                    r: sweeps
 * <p>{bandit:C}:counts    hash    none               "n:<arm>:<bkt>" trials and
 *                                                    "r:<arm>:<bkt>" rewards in millionths
 *                                                    (bkt "" = campaign-wide); "b:<bkt>" 1
 *                                                    per stored bucket, "nb" their number,
 *                                                    "v" a version moved by every change
 *                                                    w: campaign Lua scripts (reward, trim)
 *                                                    r: campaign snapshot (HGET v, HGETALL),
 *                                                       leadscorectl evaluate
 * <p>{bandit:C}:d:<id>    hash    activation_timeout one decision: lead, arm, bkt, ts, win,
 *                                 after the          st (0 waiting, 1 active, 2 resolved),
 *                                 decision, then     act (activation ms), rw (reward)
 *                                 reward_window +    w: campaign writer thread (HSET,
 *                                 1 h after its         PEXPIRE), activate/reward scripts
 *                                 activation         r: scripts, leadscorectl evaluate
 *                                                       (HMGET st arm bkt rw)
 * <p>{bandit:C}:pending   zset    none (members go   member decision id, score the end of
 *                                 when resolved)     its reward window, ms
 *                                                    w: writer thread (ZADD), activate
 *                                                       script; reward/expiry ZREM
 *                                                    r: expiry sweep
 *
 * Hash tags (Redis Cluster). {<lead_id>} puts everything stored for one
 * lead in one slot. {bandit:C} puts a campaign's keys in one slot, so
 * each of its Lua scripts (which take the keys as KEYS[], never build
 * one) touches one slot. The batch commit, however, spans many leads,
 * the offsets hash, the model logs and the schedules in one MULTI/EXEC,
 * i.e. many slots: the deployment is a single Redis primary (optionally
 * with replicas), not Cluster; the other families carry no tag, as
 * nothing would gain from one.
 *
 * Functions: each builds one key, NUL-terminated, into buf[0..cap) and
 * returns its length, or -1 when it does not fit (buf is then "" if cap
 * > 0). Nothing is validated: prefix, names and ids are the caller's
 * (config and decision ids are checked where they enter). Pure, no
 * allocation, thread-safe.
 */
#ifndef LS_KEYS_H
#define LS_KEYS_H

#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Every key fits in the lengths of its string arguments (prefix, names,
 * ids) plus this many bytes, NUL included: the size of a buffer sized at
 * run time.
 */
#define LS_KEYS_OVERHEAD 32

/*
 * A field of the offsets hash, "<topic>:<partition>": a printf format for
 * (const char *topic, int32_t partition), for callers that format fields
 * straight into their command text.
 */
#define LS_KEYS_OFFSETS_FIELD "%s:%" PRId32

/* The campaign keys ls_keys_bandit() builds, by their final part. */
#define LS_KEYS_BANDIT_COUNTS "counts"
#define LS_KEYS_BANDIT_PENDING "pending"

int ls_keys_lead(char *buf, size_t cap, const char *prefix, const char *lead_id);

int ls_keys_offsets(char *buf, size_t cap, const char *prefix, const char *group_id);
int ls_keys_epoch(char *buf, size_t cap, const char *prefix);

int ls_keys_model(char *buf, size_t cap, const char *prefix, const char *model);
int ls_keys_model_eval(char *buf, size_t cap, const char *prefix, const char *model);
int ls_keys_model_log(char *buf, size_t cap, const char *prefix, const char *model);

int ls_keys_rescore(char *buf, size_t cap, const char *prefix, int32_t partition);
int ls_keys_due(char *buf, size_t cap, const char *prefix, const char *model,
		int32_t partition);

/* part is LS_KEYS_BANDIT_COUNTS or LS_KEYS_BANDIT_PENDING; -1 for any other. */
int ls_keys_bandit(char *buf, size_t cap, const char *prefix, const char *campaign,
		   const char *part);
int ls_keys_bandit_decision(char *buf, size_t cap, const char *prefix,
			    const char *campaign, const char *decision_id);

#endif
