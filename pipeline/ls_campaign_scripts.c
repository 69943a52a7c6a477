/*
 * ls_campaign_scripts.c - see ls_campaign_scripts.h for the contract.
 *
 * Why its own file: the scripts are the campaign state's whole write
 * protocol (who counts a trial, when a bucket is stored), read by both
 * the HTTP side and the writer thread; kept together they can be read
 * as one protocol, apart from the C that calls them.
 */
#include "ls_campaign_scripts.h"

/* KEYS: decision, pending. ARGV: now ms, decision id. */
const char ls_campaign_act_script[] =
	"local st = redis.call('HGET', KEYS[1], 'st')\n"
	"if not st then return -1 end\n"
	"if st ~= '0' then return 0 end\n"
	"local win = tonumber(redis.call('HGET', KEYS[1], 'win'))\n"
	"redis.call('HSET', KEYS[1], 'st', '1', 'act', ARGV[1])\n"
	"redis.call('PEXPIRE', KEYS[1], win + 3600000)\n"
	"redis.call('ZADD', KEYS[2], tonumber(ARGV[1]) + win, ARGV[2])\n"
	"return 1\n";

/*
 * KEYS: decision, counts, pending. ARGV: ts ms, reward in millionths,
 * decision id, mode ("r" a reward, "x" expiry with the default reward),
 * max_buckets. Answers 1 resolved, 2 reward raised, 0 nothing to do, -1
 * unknown, -2 not activated, -3 after the window, -4 (expiry) not due
 * yet. The first resolution in a bucket stores the bucket ("b:<bucket>",
 * "nb") while fewer than max_buckets are; in any other bucket it counts
 * campaign-wide only and the record forgets its bucket, so a raise later
 * adds where the trial went. "v" moves with every change of the counters.
 */
const char ls_campaign_rew_script[] =
	"local d = redis.call('HMGET', KEYS[1], 'st', 'act', 'arm', 'bkt', 'rw', 'win')\n"
	"local st, mode = d[1], ARGV[4]\n"
	"if not st then\n"
	"  if mode == 'x' then redis.call('ZREM', KEYS[3], ARGV[3]) end\n"
	"  return -1\n"
	"end\n"
	"if st == '0' then return -2 end\n"
	"local ts, r = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
	"local due = tonumber(d[2]) + tonumber(d[6])\n"
	"if mode == 'x' then\n"
	"  if st ~= '1' then redis.call('ZREM', KEYS[3], ARGV[3]) return 0 end\n"
	"  if ts < due then return -4 end\n"
	"elseif ts > due then\n"
	"  return -3\n"
	"end\n"
	"local arm, b = d[3], d[4]\n"
	"if st == '1' then\n"
	"  redis.call('HINCRBY', KEYS[2], 'n:' .. arm .. ':', 1)\n"
	"  redis.call('HINCRBY', KEYS[2], 'r:' .. arm .. ':', r)\n"
	"  if b ~= '' and redis.call('HEXISTS', KEYS[2], 'b:' .. b) == 0 then\n"
	"    if tonumber(redis.call('HGET', KEYS[2], 'nb') or '0') < tonumber(ARGV[5]) then\n"
	"      redis.call('HSET', KEYS[2], 'b:' .. b, '1')\n"
	"      redis.call('HINCRBY', KEYS[2], 'nb', 1)\n"
	"    else\n"
	"      b = ''\n"
	"    end\n"
	"  end\n"
	"  if b ~= '' then\n"
	"    redis.call('HINCRBY', KEYS[2], 'n:' .. arm .. ':' .. b, 1)\n"
	"    redis.call('HINCRBY', KEYS[2], 'r:' .. arm .. ':' .. b, r)\n"
	"  end\n"
	"  redis.call('HINCRBY', KEYS[2], 'v', 1)\n"
	"  redis.call('HSET', KEYS[1], 'st', '2', 'rw', r, 'bkt', b)\n"
	"  redis.call('ZREM', KEYS[3], ARGV[3])\n"
	"  return 1\n"
	"end\n"
	"local cur = tonumber(d[5])\n"
	"if r <= cur then return 0 end\n"
	"redis.call('HINCRBY', KEYS[2], 'r:' .. arm .. ':', r - cur)\n"
	"if b ~= '' then redis.call('HINCRBY', KEYS[2], 'r:' .. arm .. ':' .. b, r - cur) end\n"
	"redis.call('HINCRBY', KEYS[2], 'v', 1)\n"
	"redis.call('HSET', KEYS[1], 'rw', r)\n"
	"return 2\n";

/*
 * KEYS: counts. ARGV: max_buckets, then counter fields. Deletes those of
 * buckets that are not stored, once max_buckets are (so none of them can
 * be stored any more): counters an earlier version wrote for every
 * bucket, or a raise of such a decision. Their trials are in the
 * campaign-wide counters already. Answers the number deleted.
 */
const char ls_campaign_trim_script[] =
	"if tonumber(redis.call('HGET', KEYS[1], 'nb') or '0') < tonumber(ARGV[1]) then return 0 end\n"
	"local n = 0\n"
	"for i = 2, #ARGV do\n"
	"  local b = string.match(ARGV[i], '^[nr]:[^:]*:(.+)$')\n"
	"  if b and redis.call('HEXISTS', KEYS[1], 'b:' .. b) == 0 then\n"
	"    n = n + redis.call('HDEL', KEYS[1], ARGV[i])\n"
	"  end\n"
	"end\n"
	"return n\n";

const size_t ls_campaign_act_script_len = sizeof ls_campaign_act_script - 1;
const size_t ls_campaign_rew_script_len = sizeof ls_campaign_rew_script - 1;
const size_t ls_campaign_trim_script_len = sizeof ls_campaign_trim_script - 1;
