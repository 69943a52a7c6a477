/*
 * simulator.c - leadscore-sim, a ground-truth generator of lead events.
 *
 * What it is for. Learning code can only be judged against a truth it did
 * not see. This program invents leads, lets a hidden intent drive what they
 * do on the email, web and call channels, and decides each lead's outcome
 * with a conversion model whose weights are written below. Because the
 * model is known, a test can compare a learned model's AUC with the hidden
 * model's own AUC on the same leads (--truth writes what it needs), and the
 * demo and the benchmarks get a realistic stream instead of uniform noise.
 *
 * Leads. Lead i ("lead-%06u") is created at a uniformly drawn time in the
 * simulated period with a profile (one LeadProfile event): industry, size
 * band (from the employee count), country, role and acquisition source as
 * attributes; employees and annual_revenue as metrics. Its sales cycle lasts
 * 7 to 21 days (uniform); at the end of it the lead is decided (below) and
 * leaves the stream. Leads whose cycle ends after the simulated period stay
 * undecided: they produce events but no outcome and no truth row.
 *
 * Intent. Each lead has a latent intent z, never emitted, that moves hourly
 * as a mean-reverting (Ornstein-Uhlenbeck) process around a segment mean
 * mu (-0.6, +0.4 for saas, +0.2 for finance, +0.3 for mid-market), with a
 * relaxation time of 3 days and a stationary spread of 0.6, plus surges: on
 * average once in 12 days z jumps up by 1.5 to 2.5 and then decays back. A
 * surge is a buying moment: more sessions, more pricing pages, demo
 * requests, replies and meetings, all as exp(b * z) multipliers on rates.
 *
 * Channels (rates per hour at z = 0 unless said otherwise):
 *   email  marketing cadence independent of intent: one send every 3.5 days
 *          (+-6 h), campaigns nurture-01..08 in turn. Each send: DELIVERED
 *          within a minute, or BOUNCED (hard-bouncing addresses, 3 % of
 *          leads, bounce every time and are not mailed again; 1 % soft
 *          bounces otherwise). OPENED with p = sigmoid(-0.8 + 0.8 z) after
 *          ~4 h, then CLICKED sigmoid(-1.8 + 0.9 z), REPLIED
 *          sigmoid(-3.6 + 1.1 z), UNSUBSCRIBED 1 % * exp(-0.5 z) (no more
 *          mail), SPAM_REPORTED 0.1 %.
 *   web    sessions 0.012 * seg * exp(1.0 z); pages per session 1 + a
 *          geometric number with mean 2 + z; page_category from weights
 *          pricing 0.06 + 0.30 s, product 0.30, docs 0.20, blog 0.30 (1 - s),
 *          careers 0.03 (0.6 for job seekers, 4 % of leads), with
 *          s = sigmoid(1.5 (z - 0.5)). Time on page log-normal around 40 s;
 *          per session FORM_SUBMIT 4 % * e^{0.6 z}, DOWNLOAD 5 %,
 *          DEMO_REQUEST 1 % * e^{1.3 z} (at most 40 %).
 *   call   outbound 0.003 * exp(0.7 z), inbound 0.0004 * exp(1.0 z).
 *          CONNECTED 35 %, NO_ANSWER, VOICEMAIL, BUSY otherwise; a connected
 *          call becomes MEETING_BOOKED with p = sigmoid(-2.5 + 0.9 z).
 *          Durations: connected 1-20 min, meetings 5-30 min, voicemail
 *          20-40 s, else 0. Sentiment tanh(0.5 z + N(0, 0.4)) when connected.
 *
 * Hidden conversion model. At the lead's decision time T,
 *     p = sigmoid(b0 + sum_k w_k * min(x_k, cap_k) + segment effects + w_z z)
 * over behaviour summaries x_k computed by the simulator from the events it
 * actually emitted for the lead before T (simulated-day buckets counted
 * from --start: a "7 d" summary is the current day and the 6 before it):
 *
 *     term                         weight   cap
 *     intercept b0                 -4.20
 *     pricing_views_7d             +0.30     10
 *     demo_requests_30d            +1.10      2
 *     email_replies_30d            +0.80      3
 *     meetings_booked_30d          +1.30      2
 *     email_clicks_30d             +0.15      8
 *     form_submits_30d             +0.40      3
 *     careers_views_30d            -0.50      4
 *     log1p(time_on_site_min_7d)   +0.25
 *     unsubscribed (ever)          -1.50
 *     hard bounce (ever)           -1.00
 *     intent z (latent)            +0.80
 *
 * Segment effects (added to the logit):
 *     industry  saas +0.9, finance +0.4, healthcare 0, manufacturing -0.3,
 *               retail -0.5, education -1.0
 *     size      1-10 -0.8, 11-50 -0.2, 51-200 +0.3, 201-1000 +0.6,
 *               1000+ +0.2
 *     role      c_level +0.5, vp +0.7, director +0.5, manager +0.2,
 *               engineer -0.1, student -1.5
 *     country   US +0.2, GB +0.1, DE +0.1, FR 0, IN -0.2, BR -0.2
 *     hot segments (on top of the above):
 *               saas x 201-1000          +1.0  (mid-market SaaS)
 *               finance x (vp, c_level)  +0.8  (finance executives)
 *               healthcare x 1000+       +0.6  (enterprise healthcare)
 * --print-model prints this table from the same arrays the code uses.
 *
 * Outcome. The label is drawn as Bernoulli(p) at T and emitted at T as a
 * LeadOutcome: CONVERTED (70 %) or WON (30 %, with a deal value) when
 * positive; LOST (80 %) or DISQUALIFIED (20 %) when negative, or nothing
 * with --negatives none (the daemon's label timeout then decides). p is the
 * probability "at label time": every summary counts only events with a
 * timestamp before the outcome's, which is exactly what a model trained on
 * the features as they stood before the label could see, plus the latent
 * intent and the segment effects it has to infer. After T the lead emits
 * nothing more (queued email follow-ups are dropped).
 *
 * Ordering and reproducibility. The simulation advances in simulated
 * hours: every active lead draws its events for the hour (follow-ups may
 * land later), all go into one min-heap ordered by (ts, creation number),
 * and everything before the end of the hour is popped and sent. So the
 * stream is in global event-time order (and so in order per lead), and
 * every random draw happens in a fixed order from one xoshiro256** stream
 * seeded with --seed: the same seed, start and options give the same bytes.
 * The FNV-1a 64 hash of all topic names, keys and values is printed so two
 * runs can be compared (--dry-run skips the broker).
 *
 * Real time. With --rate R events are paced at R per second, and an event
 * is never sent before the wall clock reaches its ts (so ts is never in the
 * future at send time); without --rate they go as fast as the broker takes
 * them. The default start, the current hour minus --days, ends the
 * simulated period in the past.
 *
 * The dev broker keeps only about 5 MiB per partition, so the byte totals
 * per topic are logged at the end; a default run (2,000 leads, 30 days) is
 * well under that per partition.
 *
 * Bandit feedback (--feedback FILE, - for stdin). Instead of inventing
 * leads, play the email system's side of leadscored's email-variant
 * bandit, so tests and benchmarks can close the loop. Each input line is a
 * decision the bandit made:
 *     decision_id TAB lead_id TAB campaign_id TAB variant_id [TAB ts_ms]
 * where ts_ms is when the email was sent (ms since the epoch; default: the
 * wall clock when the line is read). Blank lines and lines starting with
 * '#' are skipped; any other line that does not fit (field count, empty,
 * longer than 200 bytes, control characters, not UTF-8, bad ts_ms, a
 * repeated decision_id, a variant without rates) stops the run before
 * anything is sent, with the line number, and exit status 2. For each
 * decision, email events that carry its campaign_id, variant_id and
 * decision_id, keyed by lead_id, go to the email topic (--topic-prefix,
 * --brokers, --rate and --dry-run work as above): SENT at ts_ms (left out
 * with --feedback-no-sent, for decisions that are never activated), then,
 * drawn with the variant's true rates, OPENED, CLICKED (only after an
 * open) and REPLIED (only after a click).
 *
 * Rates are absolute, per decision: --variant-rates 'A=0.30/0.10/0.02'
 * means P(open) 0.30, P(click) 0.10, P(reply) 0.02, so 0 <= reply <= click
 * <= open <= 1. A key CAMPAIGN:VARIANT (split at the first ':') applies to
 * that campaign only and wins over a bare VARIANT key; a variant with
 * neither uses --variant-default O/C/R, and without that is an input
 * error. The draws are nested: opened when u1 < P(open), clicked when also
 * u2 < P(click)/P(open), replied when also u3 < P(reply)/P(click).
 *
 * Delays, with M = --feedback-max-delay (default 48 h, so that every event
 * lies inside a 72 h reward window): OPENED min(1 min, M/20) plus an
 * exponential of mean 4 h after the send, truncated to at most M/2;
 * CLICKED uniform min(5 s, M/80)..min(10 min, M/8) after the open; REPLIED
 * uniform min(6 min, M/40)..min(24 h, 3M/8) after the click. The maxima add
 * up to M, so the last event of a decision is less than M after its send.
 *
 * Each decision's draws come from its own xoshiro256** stream seeded from
 * --seed and an FNV-1a hash of its decision_id, always in the same order
 * (u1, u2, u3, then the three delays) whatever the variant: a decision's
 * events depend only on the seed, its line and its variant's rates, never
 * on the other lines or their order, and two variants of one decision are
 * compared with common random numbers. The whole input is read before
 * anything is sent; then all events go out in event-time order (equal
 * times in decision_id byte order), so the stream does not depend on the
 * input order either and is in order per lead.
 * event_id is fb-SEED-DECISION_ID-TYPE: a replay is deduplicated.
 *
 * A decision's reward is the largest --reward-weights weight among its
 * events (default OPENED=0,CLICKED=1,REPLIED=1; unnamed types weigh 0; 0
 * without events). --truth then writes one row per decision, in
 * decision_id byte order: decision_id, variant_id, expected_reward (under
 * the variant's rates), reward (realised), campaign_id, lead_id, sent (0
 * with --feedback-no-sent) and outcome (the deepest event, or none); the
 * expected rewards are what a benchmark needs for regret.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <librdkafka/rdkafka.h>

#include "ls_clock.h"
#include "ls_codec.h"
#include "ls_event.h"
#include "ls_log.h"
#include "ls_rng.h"
#include "ls_utf8.h"

#define SIM_HOUR INT64_C(3600000)
#define SIM_DAY INT64_C(86400000)
#define SIM_DAYS_KEPT 32 /* day buckets per signal: a 30 d window plus slack */
#define SIM_DECIDE LS_SOURCE__COUNT /* heap item that decides a lead */
#define SIM_MAX_LEADS 1000000
#define SIM_MAX_DAYS 365
#define SIM_FB_MAX_FIELD 200 /* bytes per --feedback field */
#define SIM_FB_MAX_DECISIONS 10000000
#define SIM_FB_MAX_TS INT64_C(253402300799999) /* 9999-12-31T23:59:59.999Z */

/* ------------------------------------------------------------ segments */

static const char *const sim_industries[] = { "saas", "retail", "finance",
	"manufacturing", "healthcare", "education" };
static const double sim_industry_share[] = { 0.25, 0.18, 0.15, 0.17, 0.15, 0.10 };
static const double sim_industry_w[] = { 0.9, -0.5, 0.4, -0.3, 0.0, -1.0 };
static const double sim_industry_mu[] = { 0.4, 0.0, 0.2, 0.0, 0.0, -0.2 };
#define SIM_SAAS 0
#define SIM_FINANCE 2
#define SIM_HEALTHCARE 4
#define SIM_N_INDUSTRY 6

static const char *const sim_sizes[] = { "1-10", "11-50", "51-200", "201-1000", "1000+" };
static const double sim_size_share[] = { 0.20, 0.28, 0.25, 0.17, 0.10 };
static const double sim_size_lo[] = { 1, 11, 51, 201, 1001 };
static const double sim_size_hi[] = { 10, 50, 200, 1000, 20000 };
static const double sim_size_w[] = { -0.8, -0.2, 0.3, 0.6, 0.2 };
#define SIM_MID_MARKET 3
#define SIM_ENTERPRISE 4
#define SIM_N_SIZE 5

static const char *const sim_countries[] = { "US", "GB", "DE", "FR", "IN", "BR" };
static const double sim_country_share[] = { 0.35, 0.12, 0.13, 0.10, 0.18, 0.12 };
static const double sim_country_w[] = { 0.2, 0.1, 0.1, 0.0, -0.2, -0.2 };
#define SIM_N_COUNTRY 6

static const char *const sim_roles[] = { "engineer", "manager", "director", "vp",
	"c_level", "student" };
static const double sim_role_share[] = { 0.30, 0.25, 0.15, 0.08, 0.07, 0.15 };
static const double sim_role_w[] = { -0.1, 0.2, 0.5, 0.7, 0.5, -1.5 };
#define SIM_VP 3
#define SIM_C_LEVEL 4
#define SIM_N_ROLE 6

static const char *const sim_sources[] = { "organic", "paid", "referral", "event" };
static const double sim_source_share[] = { 0.40, 0.30, 0.15, 0.15 };
#define SIM_N_SOURCE 4

/* Hot segments: extra logit on top of the per-attribute effects. */
static const double sim_hot_saas_mid = 1.0;
static const double sim_hot_finance_exec = 0.8;
static const double sim_hot_health_ent = 0.6;

/* ------------------------------------------------------ behaviour model */

/* Behaviour summaries kept per lead in simulated-day buckets. */
enum {
	SIM_SIG_PRICING = 0,
	SIM_SIG_DEMO,
	SIM_SIG_REPLY,
	SIM_SIG_MEETING,
	SIM_SIG_CLICK,
	SIM_SIG_FORM,
	SIM_SIG_CAREERS,
	SIM_SIG_TOS_S, /* time on site, seconds */
	SIM_SIG__COUNT
};

typedef struct sim_weight {
	const char *name;
	int signal;  /* SIM_SIG_* */
	int days;    /* window in simulated days */
	double w;
	double cap;  /* 0: log1p of minutes instead of a cap */
} sim_weight;

static const double sim_b0 = -4.2;
static const double sim_w_intent = 0.8;
static const double sim_w_unsubscribed = -1.5;
static const double sim_w_hard_bounce = -1.0;

static const sim_weight sim_weights[] = {
	{ "pricing_views_7d", SIM_SIG_PRICING, 7, 0.30, 10 },
	{ "demo_requests_30d", SIM_SIG_DEMO, 30, 1.10, 2 },
	{ "email_replies_30d", SIM_SIG_REPLY, 30, 0.80, 3 },
	{ "meetings_booked_30d", SIM_SIG_MEETING, 30, 1.30, 2 },
	{ "email_clicks_30d", SIM_SIG_CLICK, 30, 0.15, 8 },
	{ "form_submits_30d", SIM_SIG_FORM, 30, 0.40, 3 },
	{ "careers_views_30d", SIM_SIG_CAREERS, 30, -0.50, 4 },
	{ "log1p_time_on_site_min_7d", SIM_SIG_TOS_S, 7, 0.25, 0 },
};
#define SIM_N_WEIGHTS (sizeof sim_weights / sizeof sim_weights[0])

static const char *const sim_categories[] = { "pricing", "product", "docs", "blog", "careers" };
#define SIM_CAT_PRICING 0
#define SIM_CAT_CAREERS 4
#define SIM_N_CAT 5
#define SIM_N_CAMPAIGNS 8

/* ---------------------------------------------------------------- state */

typedef struct sim_lead {
	int64_t created;   /* ms */
	int64_t decide_at; /* ms; >= end when undecided */
	int64_t next_send;
	double z, mu;
	double employees, revenue;
	uint8_t industry, size, country, role, source;
	bool hard_bounce_addr, jobseeker;
	bool unsubscribed, bounced, done;
	uint32_t sends, sessions;
	int32_t last_day; /* newest day bucket in use; -1 before any */
	uint16_t win[SIM_SIG__COUNT][SIM_DAYS_KEPT];
} sim_lead;

/* One pending event (or a decision) in the heap. */
typedef struct sim_item {
	int64_t ts;
	uint64_t seq;
	int64_t amount;   /* web duration_ms, call duration_s, campaign number */
	double sentiment; /* calls; NaN when absent */
	uint32_t lead;
	uint32_t session; /* web session number */
	uint8_t source;   /* ls_source or SIM_DECIDE */
	uint8_t type;     /* ls_email_type, ls_web_type, ls_call_outcome */
	uint8_t cat;      /* web category index, call direction */
} sim_item;

/* One --variant-rates entry (or --variant-default) and what its decisions
 * drew. campaign and variant point into sim_opts.rates_spec. */
typedef struct sim_rates {
	const char *campaign; /* NULL: any campaign */
	const char *variant;  /* NULL only for the default */
	double open, click, reply; /* absolute probabilities per decision */
	uint64_t decisions, opened, clicked, replied;
	double expected, reward; /* sums over its decisions */
} sim_rates;

/* One --feedback line. The strings point into `line`, which it owns. */
typedef struct sim_decision {
	char *line;
	const char *decision_id, *lead_id, *campaign_id, *variant_id;
	int64_t ts;
	long line_no;
	sim_rates *rates;
} sim_decision;

typedef struct sim_opts {
	long leads;
	long days;
	uint64_t seed;
	int64_t start;
	bool have_start;
	const char *brokers;
	const char *prefix;
	double rate;
	const char *truth;
	bool dry_run;
	bool negatives; /* emit LOST / DISQUALIFIED for negative decisions */
	const char *generator_only; /* a given option that --feedback excludes */
	const char *feedback_only;  /* a given option that needs --feedback */
	const char *feedback;       /* input path, "-" stdin; NULL: generator */
	bool feedback_no_sent;
	int64_t max_delay; /* ms */
	char *rates_spec;  /* owned copy of --variant-rates */
	sim_rates *rates;  /* owned, n_rates entries */
	size_t n_rates;
	sim_rates fallback; /* --variant-default */
	bool have_fallback;
	double reward_w[LS_EMAIL__COUNT];
} sim_opts;

typedef struct sim {
	sim_opts o;
	ls_rng rng;
	int64_t start, end;
	sim_lead *leads;
	sim_item *heap;
	size_t n_heap, cap_heap;
	uint64_t next_seq;
	uint64_t emitted;
	uint64_t dropped;
	ls_codec *codec;
	ls_buf buf;
	rd_kafka_t *rk;
	char topics[LS_SOURCE__COUNT][256];
	uint64_t hash;
	uint64_t count_src[LS_SOURCE__COUNT];
	uint64_t bytes_src[LS_SOURCE__COUNT];
	uint64_t count_type[LS_SOURCE__COUNT][8];
	FILE *truth;
	uint64_t decided, positives;
	double p_sum;
	double t0_wall; /* pacing origin, monotonic seconds */
	sim_decision *fb; /* --feedback decisions, sorted by decision_id */
	size_t n_fb, cap_fb;
} sim;

static volatile sig_atomic_t sim_stop;
static uint64_t sim_delivery_failed;
static char sim_delivery_err[256];

static void sim_on_signal(int sig)
{
	(void)sig;
	sim_stop = 1;
}

/* ------------------------------------------------------------------ rng */

/*
 * ls_rng (xoshiro256**, ls_rng.h) supplies the bits; the shaping stays
 * here. Uniform in [0, 1) from 53 bits, not ls_rng_uniform's 52 in (0, 1),
 * so that every seed keeps generating the stream it always did.
 */
static double sim_u01(sim *s)
{
	return (double)(ls_rng_next(&s->rng) >> 11) * 0x1.0p-53;
}

static double sim_uniform(sim *s, double lo, double hi)
{
	return lo + (hi - lo) * sim_u01(s);
}

static bool sim_chance(sim *s, double p)
{
	return sim_u01(s) < p;
}

static double sim_normal(sim *s)
{
	double u1 = 1.0 - sim_u01(s); /* (0, 1] */
	double u2 = sim_u01(s);
	return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

/* Knuth's method; fine for the small rates here (capped at 50 draws). */
static unsigned sim_poisson(sim *s, double lambda)
{
	double limit = exp(-lambda), prod = sim_u01(s);
	unsigned k = 0;
	while (prod > limit && k < 50) {
		prod *= sim_u01(s);
		k++;
	}
	return k;
}

static size_t sim_pick(sim *s, const double *w, size_t n)
{
	double total = 0;
	for (size_t i = 0; i < n; i++)
		total += w[i];
	double x = sim_u01(s) * total;
	for (size_t i = 0; i < n; i++) {
		if (x < w[i])
			return i;
		x -= w[i];
	}
	return n - 1;
}

static double sim_sigmoid(double x)
{
	return 1.0 / (1.0 + exp(-x));
}

static int64_t sim_ms(double x)
{
	return (int64_t)llround(x);
}

/* ----------------------------------------------------------------- heap */

static bool sim_item_less(const sim_item *a, const sim_item *b)
{
	return a->ts < b->ts || (a->ts == b->ts && a->seq < b->seq);
}

/* Queue it (seq assigned here). Items at or after the end are discarded:
 * the simulated period is over. 0, or -1 on OOM. */
static int sim_push(sim *s, sim_item it)
{
	if (it.ts >= s->end)
		return 0;
	if (s->n_heap == s->cap_heap) {
		size_t cap = s->cap_heap ? s->cap_heap * 2 : 4096;
		sim_item *h = realloc(s->heap, cap * sizeof *h);
		if (h == NULL) {
			ls_error("sim", "out of memory", "queued=%zu", s->n_heap);
			return -1;
		}
		s->heap = h;
		s->cap_heap = cap;
	}
	it.seq = s->next_seq++;
	size_t i = s->n_heap++;
	while (i > 0) {
		size_t parent = (i - 1) / 2;
		if (!sim_item_less(&it, &s->heap[parent]))
			break;
		s->heap[i] = s->heap[parent];
		i = parent;
	}
	s->heap[i] = it;
	return 0;
}

static sim_item sim_pop(sim *s)
{
	sim_item top = s->heap[0];
	sim_item last = s->heap[--s->n_heap];
	size_t i = 0, n = s->n_heap;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= n)
			break;
		if (c + 1 < n && sim_item_less(&s->heap[c + 1], &s->heap[c]))
			c++;
		if (!sim_item_less(&s->heap[c], &last))
			break;
		s->heap[i] = s->heap[c];
		i = c;
	}
	if (n > 0)
		s->heap[i] = last;
	return top;
}

/* -------------------------------------------------------- hidden model */

/* Move the lead's day buckets forward to day, clearing the days skipped. */
static void sim_advance(sim_lead *l, int32_t day)
{
	if (l->last_day < 0) {
		memset(l->win, 0, sizeof l->win);
		l->last_day = day;
		return;
	}
	int32_t from = l->last_day + 1;
	if (day - l->last_day >= SIM_DAYS_KEPT)
		from = day - SIM_DAYS_KEPT + 1;
	for (int32_t d = from; d <= day; d++)
		for (int k = 0; k < SIM_SIG__COUNT; k++)
			l->win[k][d % SIM_DAYS_KEPT] = 0;
	if (day > l->last_day)
		l->last_day = day;
}

static int32_t sim_day(const sim *s, int64_t ts)
{
	return (int32_t)((ts - s->start) / SIM_DAY);
}

static void sim_note(sim *s, sim_lead *l, int64_t ts, int signal, unsigned add)
{
	int32_t day = sim_day(s, ts);
	sim_advance(l, day);
	uint16_t *b = &l->win[signal][day % SIM_DAYS_KEPT];
	unsigned v = *b + add;
	*b = (uint16_t)(v > UINT16_MAX ? UINT16_MAX : v);
}

static double sim_window(const sim_lead *l, int signal, int days, int32_t day)
{
	double sum = 0;
	for (int32_t d = day - days + 1; d <= day; d++)
		if (d >= 0 && d <= l->last_day && l->last_day - d < SIM_DAYS_KEPT)
			sum += l->win[signal][d % SIM_DAYS_KEPT];
	return sum;
}

static double sim_segment_logit(const sim_lead *l)
{
	double x = sim_industry_w[l->industry] + sim_size_w[l->size] +
		   sim_role_w[l->role] + sim_country_w[l->country];
	if (l->industry == SIM_SAAS && l->size == SIM_MID_MARKET)
		x += sim_hot_saas_mid;
	if (l->industry == SIM_FINANCE && (l->role == SIM_VP || l->role == SIM_C_LEVEL))
		x += sim_hot_finance_exec;
	if (l->industry == SIM_HEALTHCARE && l->size == SIM_ENTERPRISE)
		x += sim_hot_health_ent;
	return x;
}

/* The hidden conversion probability of lead l at time ts (events before ts
 * are already counted: the heap pops in event-time order). */
static double sim_hidden_p(sim *s, sim_lead *l, int64_t ts)
{
	int32_t day = sim_day(s, ts);
	sim_advance(l, day);
	double x = sim_b0 + sim_segment_logit(l) + sim_w_intent * l->z;
	for (size_t i = 0; i < SIM_N_WEIGHTS; i++) {
		const sim_weight *w = &sim_weights[i];
		double v = sim_window(l, w->signal, w->days, day);
		if (w->cap > 0)
			v = v < w->cap ? v : w->cap;
		else
			v = log1p(v / 60.0);
		x += w->w * v;
	}
	if (l->unsubscribed)
		x += sim_w_unsubscribed;
	if (l->bounced)
		x += sim_w_hard_bounce;
	return sim_sigmoid(x);
}

static void sim_print_model(void)
{
	printf("# leadscore-sim hidden conversion model\n");
	printf("# p = sigmoid(b0 + sum w*min(x,cap) + segment + w_intent*z)\n");
	printf("term\tweight\tcap\n");
	printf("intercept\t%+.2f\t-\n", sim_b0);
	for (size_t i = 0; i < SIM_N_WEIGHTS; i++) {
		if (sim_weights[i].cap > 0)
			printf("%s\t%+.2f\t%.0f\n", sim_weights[i].name, sim_weights[i].w,
			       sim_weights[i].cap);
		else
			printf("%s\t%+.2f\t-\n", sim_weights[i].name, sim_weights[i].w);
	}
	printf("unsubscribed\t%+.2f\t-\n", sim_w_unsubscribed);
	printf("hard_bounce\t%+.2f\t-\n", sim_w_hard_bounce);
	printf("intent_z_latent\t%+.2f\t-\n", sim_w_intent);
	for (size_t i = 0; i < SIM_N_INDUSTRY; i++)
		printf("industry=%s\t%+.2f\tshare=%.2f\n", sim_industries[i],
		       sim_industry_w[i], sim_industry_share[i]);
	for (size_t i = 0; i < SIM_N_SIZE; i++)
		printf("size_band=%s\t%+.2f\tshare=%.2f\n", sim_sizes[i], sim_size_w[i],
		       sim_size_share[i]);
	for (size_t i = 0; i < SIM_N_ROLE; i++)
		printf("role=%s\t%+.2f\tshare=%.2f\n", sim_roles[i], sim_role_w[i],
		       sim_role_share[i]);
	for (size_t i = 0; i < SIM_N_COUNTRY; i++)
		printf("country=%s\t%+.2f\tshare=%.2f\n", sim_countries[i],
		       sim_country_w[i], sim_country_share[i]);
	printf("hot:industry=saas&size_band=201-1000\t%+.2f\t-\n", sim_hot_saas_mid);
	printf("hot:industry=finance&role=vp|c_level\t%+.2f\t-\n", sim_hot_finance_exec);
	printf("hot:industry=healthcare&size_band=1000+\t%+.2f\t-\n", sim_hot_health_ent);
}

/* ----------------------------------------------------------- generation */

static void sim_make_lead(sim *s, sim_lead *l)
{
	memset(l, 0, sizeof *l);
	l->last_day = -1;
	l->industry = (uint8_t)sim_pick(s, sim_industry_share, SIM_N_INDUSTRY);
	l->size = (uint8_t)sim_pick(s, sim_size_share, SIM_N_SIZE);
	l->country = (uint8_t)sim_pick(s, sim_country_share, SIM_N_COUNTRY);
	l->role = (uint8_t)sim_pick(s, sim_role_share, SIM_N_ROLE);
	l->source = (uint8_t)sim_pick(s, sim_source_share, SIM_N_SOURCE);
	/* log-uniform employees within the band */
	double lo = log(sim_size_lo[l->size]), hi = log(sim_size_hi[l->size]);
	l->employees = floor(exp(sim_uniform(s, lo, hi)));
	l->revenue = floor(l->employees * exp(sim_uniform(s, log(5e4), log(4e5))));
	l->hard_bounce_addr = sim_chance(s, 0.03);
	l->jobseeker = sim_chance(s, l->role == 5 ? 0.15 : 0.02);
	l->mu = -0.6 + sim_industry_mu[l->industry] +
		(l->size == SIM_MID_MARKET ? 0.3 : 0.0);
	l->z = l->mu + 0.6 * sim_normal(s);
	int64_t period = s->end - s->start;
	l->created = s->start + (int64_t)(sim_u01(s) * (double)period);
	l->decide_at = l->created + sim_ms(sim_uniform(s, 7.0, 21.0) * (double)SIM_DAY);
	l->next_send = l->created + sim_ms(sim_uniform(s, 0.05, 3.5) * (double)SIM_DAY);
}

static int sim_email(sim *s, uint32_t id, sim_lead *l, int64_t t)
{
	sim_item it = { .lead = id, .source = LS_SOURCE_EMAIL, .sentiment = NAN };
	it.amount = (int64_t)(l->sends % SIM_N_CAMPAIGNS);
	l->sends++;
	it.ts = t;
	it.type = LS_EMAIL_SENT;
	if (sim_push(s, it) != 0)
		return -1;
	it.ts = t + sim_ms(sim_uniform(s, 1000, 60000));
	if (l->hard_bounce_addr || sim_chance(s, 0.01)) {
		it.type = LS_EMAIL_BOUNCED;
		return sim_push(s, it);
	}
	it.type = LS_EMAIL_DELIVERED;
	if (sim_push(s, it) != 0)
		return -1;
	double z = l->z;
	if (!sim_chance(s, sim_sigmoid(-0.8 + 0.8 * z)))
		return 0;
	it.ts += sim_ms(-4.0 * (double)SIM_HOUR * log(1.0 - sim_u01(s)));
	it.type = LS_EMAIL_OPENED;
	if (sim_push(s, it) != 0)
		return -1;
	int64_t after = it.ts;
	if (sim_chance(s, sim_sigmoid(-1.8 + 0.9 * z))) {
		it.ts = after + sim_ms(sim_uniform(s, 5000, 600000));
		it.type = LS_EMAIL_CLICKED;
		if (sim_push(s, it) != 0)
			return -1;
	}
	if (sim_chance(s, sim_sigmoid(-3.6 + 1.1 * z))) {
		it.ts = after + sim_ms(sim_uniform(s, 0.1, 24.0) * (double)SIM_HOUR);
		it.type = LS_EMAIL_REPLIED;
		if (sim_push(s, it) != 0)
			return -1;
	}
	if (sim_chance(s, 0.01 * exp(-0.5 * z))) {
		it.ts = after + sim_ms(sim_uniform(s, 5000, 120000));
		it.type = LS_EMAIL_UNSUBSCRIBED;
		if (sim_push(s, it) != 0)
			return -1;
	} else if (sim_chance(s, 0.001)) {
		it.ts = after + sim_ms(sim_uniform(s, 5000, 120000));
		it.type = LS_EMAIL_SPAM_REPORTED;
		if (sim_push(s, it) != 0)
			return -1;
	}
	return 0;
}

static int sim_session(sim *s, uint32_t id, sim_lead *l, int64_t t)
{
	double z = l->z;
	double hot = sim_sigmoid(1.5 * (z - 0.5));
	double w[SIM_N_CAT] = { 0.06 + 0.30 * hot, 0.30, 0.20, 0.30 * (1.0 - hot),
				l->jobseeker ? 0.6 : 0.03 };
	sim_item it = { .lead = id, .source = LS_SOURCE_WEB, .sentiment = NAN };
	it.session = l->sessions++;
	double mean_extra = (2.0 + z > 0.2) ? 2.0 + z : 0.2;
	unsigned pages = 1;
	while (pages < 40 && sim_chance(s, mean_extra / (1.0 + mean_extra)))
		pages++;
	it.ts = t;
	for (unsigned i = 0; i < pages; i++) {
		double secs = exp(log(40.0) + 0.2 * z + 0.8 * sim_normal(s));
		if (secs > 1800)
			secs = 1800;
		it.type = LS_WEB_PAGE_VIEW;
		it.cat = (uint8_t)sim_pick(s, w, SIM_N_CAT);
		it.amount = sim_ms(secs * 1000.0);
		if (sim_push(s, it) != 0)
			return -1;
		it.ts += it.amount + sim_ms(sim_uniform(s, 500, 5000));
	}
	it.amount = -1;
	it.cat = 0;
	if (sim_chance(s, 0.04 * exp(0.6 * z))) {
		it.type = LS_WEB_FORM_SUBMIT;
		if (sim_push(s, it) != 0)
			return -1;
		it.ts += 1000;
	}
	if (sim_chance(s, 0.05)) {
		it.type = LS_WEB_DOWNLOAD;
		if (sim_push(s, it) != 0)
			return -1;
		it.ts += 1000;
	}
	double pd = 0.01 * exp(1.3 * z);
	if (sim_chance(s, pd < 0.4 ? pd : 0.4)) {
		it.type = LS_WEB_DEMO_REQUEST;
		if (sim_push(s, it) != 0)
			return -1;
	}
	return 0;
}

static int sim_call(sim *s, uint32_t id, sim_lead *l, int64_t t, bool inbound)
{
	double z = l->z;
	sim_item it = { .lead = id, .source = LS_SOURCE_CALL, .ts = t, .sentiment = NAN };
	it.cat = (uint8_t)(inbound ? LS_CALL_INBOUND : LS_CALL_OUTBOUND);
	double pc = inbound ? 0.9 : 0.35;
	if (sim_chance(s, pc)) {
		bool meeting = sim_chance(s, sim_sigmoid(-2.5 + 0.9 * z));
		it.type = (uint8_t)(meeting ? LS_CALL_MEETING_BOOKED : LS_CALL_CONNECTED);
		it.amount = sim_ms(meeting ? sim_uniform(s, 300, 1800) : sim_uniform(s, 60, 1200));
		it.sentiment = tanh(0.5 * z + 0.4 * sim_normal(s));
	} else {
		static const double w[3] = { 0.5, 0.35, 0.15 };
		size_t k = sim_pick(s, w, 3);
		it.type = (uint8_t)(k == 0 ? LS_CALL_NO_ANSWER : k == 1 ? LS_CALL_VOICEMAIL
									: LS_CALL_BUSY);
		it.amount = k == 1 ? sim_ms(sim_uniform(s, 20, 40)) : 0;
	}
	return sim_push(s, it);
}

/* The lead's events for the simulated hour starting at h (ms). */
static int sim_hour(sim *s, uint32_t id, int64_t h)
{
	sim_lead *l = &s->leads[id];
	int64_t h_end = h + SIM_HOUR;
	if (l->done || l->created >= h_end)
		return 0;
	int64_t from = l->created > h ? l->created + 1 : h;
	double span = (double)(h_end - from);

	/* intent: OU step (theta = 1/72 per hour, stationary sd 0.6) + surges */
	const double theta = 1.0 / 72.0;
	l->z += theta * (l->mu - l->z) + 0.6 * sqrt(2.0 * theta) * sim_normal(s);
	if (sim_chance(s, 1.0 / (12.0 * 24.0)))
		l->z += sim_uniform(s, 1.5, 2.5);

	while (l->next_send < h_end) {
		if (!l->unsubscribed && !l->bounced && l->next_send >= from &&
		    sim_email(s, id, l, l->next_send) != 0)
			return -1;
		l->next_send += sim_ms(sim_uniform(s, 3.25, 3.75) * (double)SIM_DAY);
	}
	double seg = 0.7 + 0.15 * (double)l->size;
	unsigned n = sim_poisson(s, 0.012 * seg * exp(l->z));
	for (unsigned i = 0; i < n; i++)
		if (sim_session(s, id, l, from + sim_ms(sim_u01(s) * span)) != 0)
			return -1;
	n = sim_poisson(s, 0.003 * exp(0.7 * l->z));
	for (unsigned i = 0; i < n; i++)
		if (sim_call(s, id, l, from + sim_ms(sim_u01(s) * span), false) != 0)
			return -1;
	n = sim_poisson(s, 0.0004 * exp(1.0 * l->z));
	for (unsigned i = 0; i < n; i++)
		if (sim_call(s, id, l, from + sim_ms(sim_u01(s) * span), true) != 0)
			return -1;
	return 0;
}

/* ------------------------------------------------------------- emission */

static double sim_mono(void)
{
	return (double)ls_clock_mono_ns() / 1e9;
}

static void sim_sleep(double secs)
{
	if (secs <= 0)
		return;
	if (secs > 0.2)
		secs = 0.2; /* wake up often enough to see a signal */
	struct timespec ts = { .tv_sec = (time_t)secs,
			       .tv_nsec = (long)((secs - floor(secs)) * 1e9) };
	nanosleep(&ts, NULL);
}

static void sim_hash(sim *s, const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++) {
		s->hash ^= b[i];
		s->hash *= UINT64_C(0x100000001b3);
	}
}

static void sim_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	(void)rk;
	(void)opaque;
	if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
		if (sim_delivery_failed++ == 0)
			snprintf(sim_delivery_err, sizeof sim_delivery_err, "%s",
				 rd_kafka_err2str(m->err));
	}
}

/* Wait for the pace and the wall clock (real-time mode only). */
static void sim_pace(sim *s, int64_t ts)
{
	if (s->o.rate <= 0)
		return;
	for (;;) {
		if (sim_stop)
			return;
		double due = s->t0_wall + (double)s->emitted / s->o.rate;
		double ahead = due - sim_mono();
		int64_t wait_ts = ts - ls_clock_wall_ms();
		double wait = ahead > (double)wait_ts / 1000.0 ? ahead : (double)wait_ts / 1000.0;
		if (wait <= 0)
			return;
		if (s->rk != NULL)
			rd_kafka_poll(s->rk, 0);
		sim_sleep(wait);
	}
}

/* Encode ev, hash it, send it (unless dry run) and count it. */
static int sim_send(sim *s, const ls_event *ev)
{
	char err[256];
	ls_buf_reset(&s->buf);
	if (ls_codec_encode_event(s->codec, ev, -1, &s->buf, err, sizeof err) != 0) {
		ls_error("sim", "encode failed", "source=%s detail=%s",
			 ls_source_name(ev->source), err);
		return -1;
	}
	const char *topic = s->topics[ev->source];
	size_t klen = strlen(ev->lead_id);
	sim_hash(s, topic, strlen(topic) + 1);
	sim_hash(s, ev->lead_id, klen + 1);
	sim_hash(s, s->buf.data, s->buf.len);
	sim_pace(s, ev->ts);
	if (s->rk != NULL) {
		for (;;) {
			rd_kafka_resp_err_t e = rd_kafka_producev(
				s->rk, RD_KAFKA_V_TOPIC(topic),
				RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
				RD_KAFKA_V_KEY(ev->lead_id, klen),
				RD_KAFKA_V_VALUE(s->buf.data, s->buf.len),
				RD_KAFKA_V_TIMESTAMP(ev->ts), RD_KAFKA_V_END);
			if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
				rd_kafka_poll(s->rk, 50);
				continue;
			}
			if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
				ls_error("sim", "produce failed", "topic=%s error=%s", topic,
					 rd_kafka_err2str(e));
				return -1;
			}
			break;
		}
		rd_kafka_poll(s->rk, 0);
	}
	s->emitted++;
	s->count_src[ev->source]++;
	s->bytes_src[ev->source] += s->buf.len + klen;
	return 0;
}

static void sim_lead_id(char *buf, size_t len, uint32_t id)
{
	snprintf(buf, len, "lead-%06" PRIu32, id);
}

static int sim_profile(sim *s, uint32_t id, int64_t ts, const char *event_id)
{
	const sim_lead *l = &s->leads[id];
	char lead[32];
	sim_lead_id(lead, sizeof lead, id);
	ls_attribute attrs[5] = {
		{ "industry", sim_industries[l->industry] },
		{ "size_band", sim_sizes[l->size] },
		{ "country", sim_countries[l->country] },
		{ "role", sim_roles[l->role] },
		{ "source", sim_sources[l->source] },
	};
	ls_metric mets[2] = { { "employees", l->employees }, { "annual_revenue", l->revenue } };
	ls_event ev = { .source = LS_SOURCE_PROFILE, .event_id = event_id, .lead_id = lead,
			.ts = ts };
	ev.u.profile.n_attributes = 5;
	ev.u.profile.attributes = attrs;
	ev.u.profile.n_metrics = 2;
	ev.u.profile.metrics = mets;
	return sim_send(s, &ev);
}

static int sim_decide(sim *s, uint32_t id, int64_t ts, const char *event_id)
{
	sim_lead *l = &s->leads[id];
	double p = sim_hidden_p(s, l, ts);
	bool won = sim_chance(s, p);
	double kind = sim_u01(s);
	double value = floor(l->employees * sim_uniform(s, 20.0, 60.0)) + 500.0;
	l->done = true;
	s->decided++;
	s->positives += won;
	s->p_sum += p;
	char lead[32];
	sim_lead_id(lead, sizeof lead, id);
	ls_event ev = { .source = LS_SOURCE_OUTCOME, .event_id = event_id, .lead_id = lead,
			.ts = ts };
	if (won) {
		ev.u.outcome.outcome = kind < 0.7 ? LS_OUTCOME_CONVERTED : LS_OUTCOME_WON;
		ev.u.outcome.has_value = ev.u.outcome.outcome == LS_OUTCOME_WON;
		ev.u.outcome.value = value;
	} else {
		ev.u.outcome.outcome = kind < 0.8 ? LS_OUTCOME_LOST : LS_OUTCOME_DISQUALIFIED;
	}
	bool emit = won || s->o.negatives;
	if (s->truth != NULL &&
	    fprintf(s->truth, "%s\t%d\t%.9f\t%" PRId64 "\t%s\n", lead, won ? 1 : 0, p, ts,
		    emit ? ls_outcome_type_name(ev.u.outcome.outcome) : "none") < 0) {
		ls_error("sim", "cannot write truth file", "path=%s error=%s", s->o.truth,
			 strerror(errno));
		return -1;
	}
	if (!emit)
		return 0;
	s->count_type[LS_SOURCE_OUTCOME][ev.u.outcome.outcome]++;
	return sim_send(s, &ev);
}

/* Send one popped item: update the hidden summaries, then encode. */
static int sim_emit(sim *s, const sim_item *it)
{
	sim_lead *l = &s->leads[it->lead];
	if (l->done) {
		s->dropped++;
		return 0;
	}
	char event_id[64], lead[32], url[64], session[48], campaign[32];
	/* seed and start in the id: a replay of the same run repeats its ids
	 * (and is deduplicated), a run with another seed or start does not */
	snprintf(event_id, sizeof event_id, "sim-%" PRIu64 "-%" PRId64 "-%09" PRIu64,
		 s->o.seed, s->start, s->emitted);
	if (it->source == SIM_DECIDE)
		return sim_decide(s, it->lead, it->ts, event_id);
	if (it->source == LS_SOURCE_PROFILE) {
		s->count_type[LS_SOURCE_PROFILE][0]++;
		return sim_profile(s, it->lead, it->ts, event_id);
	}
	sim_lead_id(lead, sizeof lead, it->lead);
	ls_event ev = { .source = (ls_source)it->source, .event_id = event_id,
			.lead_id = lead, .ts = it->ts };
	s->count_type[it->source][it->type]++;
	switch (it->source) {
	case LS_SOURCE_EMAIL:
		snprintf(campaign, sizeof campaign, "nurture-%02" PRId64, it->amount + 1);
		ev.u.email.type = (ls_email_type)it->type;
		ev.u.email.campaign_id = campaign;
		if (it->type == LS_EMAIL_CLICKED) {
			snprintf(url, sizeof url, "https://example.com/c/nurture-%02" PRId64,
				 it->amount + 1);
			ev.u.email.url = url;
			sim_note(s, l, it->ts, SIM_SIG_CLICK, 1);
		} else if (it->type == LS_EMAIL_REPLIED) {
			sim_note(s, l, it->ts, SIM_SIG_REPLY, 1);
		} else if (it->type == LS_EMAIL_UNSUBSCRIBED ||
			   it->type == LS_EMAIL_SPAM_REPORTED) {
			l->unsubscribed = true;
		} else if (it->type == LS_EMAIL_BOUNCED && l->hard_bounce_addr) {
			l->bounced = true;
		}
		break;
	case LS_SOURCE_WEB:
		ev.u.web.type = (ls_web_type)it->type;
		snprintf(session, sizeof session, "%s-s%" PRIu32, lead, it->session);
		ev.u.web.session_id = session;
		if (it->type == LS_WEB_PAGE_VIEW) {
			const char *cat = sim_categories[it->cat];
			snprintf(url, sizeof url, "https://example.com/%s", cat);
			ev.u.web.url = url;
			ev.u.web.page_category = cat;
			ev.u.web.has_duration_ms = true;
			ev.u.web.duration_ms = it->amount;
			if (it->cat == SIM_CAT_PRICING)
				sim_note(s, l, it->ts, SIM_SIG_PRICING, 1);
			else if (it->cat == SIM_CAT_CAREERS)
				sim_note(s, l, it->ts, SIM_SIG_CAREERS, 1);
			sim_note(s, l, it->ts, SIM_SIG_TOS_S, (unsigned)(it->amount / 1000));
		} else if (it->type == LS_WEB_FORM_SUBMIT) {
			ev.u.web.url = "https://example.com/contact";
			ev.u.web.page_category = "contact";
			sim_note(s, l, it->ts, SIM_SIG_FORM, 1);
		} else if (it->type == LS_WEB_DOWNLOAD) {
			ev.u.web.url = "https://example.com/resources/whitepaper.pdf";
			ev.u.web.page_category = "resources";
		} else {
			ev.u.web.url = "https://example.com/demo";
			ev.u.web.page_category = "demo";
			sim_note(s, l, it->ts, SIM_SIG_DEMO, 1);
		}
		break;
	case LS_SOURCE_CALL:
		ev.u.call.direction = (ls_call_direction)it->cat;
		ev.u.call.outcome = (ls_call_outcome)it->type;
		ev.u.call.duration_s = it->amount;
		if (!isnan(it->sentiment)) {
			ev.u.call.has_sentiment = true;
			ev.u.call.sentiment = it->sentiment;
		}
		if (it->type == LS_CALL_MEETING_BOOKED)
			sim_note(s, l, it->ts, SIM_SIG_MEETING, 1);
		break;
	default:
		break;
	}
	return sim_send(s, &ev);
}

/* Pop and send everything before `until`. */
static int sim_drain(sim *s, int64_t until)
{
	while (s->n_heap > 0 && s->heap[0].ts < until && !sim_stop) {
		sim_item it = sim_pop(s);
		if (sim_emit(s, &it) != 0)
			return -1;
	}
	return 0;
}

static int sim_run(sim *s)
{
	for (uint32_t i = 0; i < (uint32_t)s->o.leads; i++) {
		sim_make_lead(s, &s->leads[i]);
		sim_item it = { .lead = i, .source = LS_SOURCE_PROFILE, .ts = s->leads[i].created };
		if (sim_push(s, it) != 0)
			return -1;
		it.source = SIM_DECIDE;
		it.ts = s->leads[i].decide_at;
		if (sim_push(s, it) != 0)
			return -1;
	}
	s->t0_wall = sim_mono();
	for (int64_t h = s->start; h < s->end && !sim_stop; h += SIM_HOUR) {
		for (uint32_t i = 0; i < (uint32_t)s->o.leads; i++)
			if (sim_hour(s, i, h) != 0)
				return -1;
		if (sim_drain(s, h + SIM_HOUR) != 0)
			return -1;
	}
	return sim_drain(s, s->end);
}

/* ------------------------------------------------------ bandit feedback */


/* The rates for a decision: CAMPAIGN:VARIANT, then VARIANT, then the
 * default; NULL when none applies. */
static sim_rates *sim_fb_rates_for(sim *s, const char *campaign, const char *variant)
{
	sim_rates *bare = NULL;
	for (size_t i = 0; i < s->o.n_rates; i++) {
		sim_rates *r = &s->o.rates[i];
		if (strcmp(r->variant, variant) != 0)
			continue;
		if (r->campaign == NULL)
			bare = r;
		else if (strcmp(r->campaign, campaign) == 0)
			return r;
	}
	if (bare != NULL)
		return bare;
	return s->o.have_fallback ? &s->o.fallback : NULL;
}

static const char *const sim_fb_fields[] = { "decision_id", "lead_id", "campaign_id",
	"variant_id", "ts_ms" };

/* Split and check one input line (without its newline) into d, which then
 * owns a copy of it. 0, or 2 after printing what is wrong with the line. */
static int sim_fb_parse_line(sim *s, const char *name, long no, const char *text, size_t len,
			     sim_decision *d)
{
	char *copy = malloc(len + 1);
	if (copy == NULL) {
		fprintf(stderr, "leadscore-sim: %s:%ld: out of memory\n", name, no);
		return 2;
	}
	memcpy(copy, text, len);
	copy[len] = '\0';
	char *field[6];
	size_t n = 0;
	for (char *p = copy;; ) {
		char *tab = strchr(p, '\t');
		if (n < 6)
			field[n] = p;
		n++;
		if (tab == NULL)
			break;
		*tab = '\0';
		p = tab + 1;
	}
	if (n != 4 && n != 5) {
		fprintf(stderr,
			"leadscore-sim: %s:%ld: expected 4 or 5 tab-separated fields (decision_id, "
			"lead_id, campaign_id, variant_id[, ts_ms]), found %zu\n", name, no, n);
		goto bad;
	}
	for (size_t i = 0; i < n; i++) {
		size_t flen = strlen(field[i]);
		if (flen == 0) {
			fprintf(stderr, "leadscore-sim: %s:%ld: field %zu (%s) is empty\n", name, no,
				i + 1, sim_fb_fields[i]);
			goto bad;
		}
		if (flen > SIM_FB_MAX_FIELD) {
			fprintf(stderr, "leadscore-sim: %s:%ld: field %zu (%s) is longer than %d bytes\n",
				name, no, i + 1, sim_fb_fields[i], SIM_FB_MAX_FIELD);
			goto bad;
		}
		for (size_t k = 0; k < flen; k++) {
			unsigned char c = (unsigned char)field[i][k];
			if (c < 0x20 || c == 0x7f) {
				fprintf(stderr,
					"leadscore-sim: %s:%ld: field %zu (%s) contains a control "
					"character (byte %zu)\n", name, no, i + 1, sim_fb_fields[i], k + 1);
				goto bad;
			}
		}
		if (!ls_utf8_valid(field[i], flen)) {
			fprintf(stderr, "leadscore-sim: %s:%ld: field %zu (%s) is not valid UTF-8\n",
				name, no, i + 1, sim_fb_fields[i]);
			goto bad;
		}
	}
	d->ts = ls_clock_wall_ms();
	if (n == 5) {
		const char *v = field[4];
		int64_t ts = 0;
		bool ok = true;
		for (const char *p = v; *p != '\0' && ok; p++) {
			if (*p < '0' || *p > '9' || ts > (SIM_FB_MAX_TS - (*p - '0')) / 10)
				ok = false;
			else
				ts = ts * 10 + (*p - '0');
		}
		if (!ok) {
			fprintf(stderr,
				"leadscore-sim: %s:%ld: field 5 (ts_ms) wants ms since the epoch, "
				"0..%" PRId64 ", not '%s'\n", name, no, SIM_FB_MAX_TS, v);
			goto bad;
		}
		d->ts = ts;
	}
	d->line = copy;
	d->decision_id = field[0];
	d->lead_id = field[1];
	d->campaign_id = field[2];
	d->variant_id = field[3];
	d->line_no = no;
	d->rates = sim_fb_rates_for(s, d->campaign_id, d->variant_id);
	if (d->rates == NULL) {
		fprintf(stderr,
			"leadscore-sim: %s:%ld: variant '%s' (campaign '%s') has no --variant-rates "
			"entry and there is no --variant-default\n", name, no, d->variant_id,
			d->campaign_id);
		goto bad;
	}
	return 0;
bad:
	free(copy);
	return 2;
}

static int sim_fb_cmp(const void *a, const void *b)
{
	const sim_decision *x = a, *y = b;
	int c = strcmp(x->decision_id, y->decision_id);
	if (c != 0)
		return c;
	return x->line_no < y->line_no ? -1 : x->line_no > y->line_no;
}

/* Read every decision, then sort them by decision_id: the order that the
 * output follows instead of the input's. 0, 1 (cannot read) or 2 (a bad
 * line, reported). */
static int sim_fb_read(sim *s)
{
	bool is_stdin = strcmp(s->o.feedback, "-") == 0;
	const char *name = is_stdin ? "<stdin>" : s->o.feedback;
	FILE *f = is_stdin ? stdin : fopen(s->o.feedback, "r");
	if (f == NULL) {
		ls_error("sim", "cannot open feedback input", "path=%s error=%s", s->o.feedback,
			 strerror(errno));
		return 1;
	}
	char *line = NULL;
	size_t cap = 0;
	ssize_t got;
	long no = 0;
	int rc = 0;
	while ((got = getline(&line, &cap, f)) != -1) {
		size_t len = (size_t)got;
		no++;
		if (len > 0 && line[len - 1] == '\n')
			len--;
		if (len > 0 && line[len - 1] == '\r')
			len--;
		if (len == 0 || line[0] == '#')
			continue;
		if (memchr(line, '\0', len) != NULL) {
			fprintf(stderr, "leadscore-sim: %s:%ld: contains a NUL byte\n", name, no);
			rc = 2;
			break;
		}
		if (s->n_fb == SIM_FB_MAX_DECISIONS) {
			fprintf(stderr, "leadscore-sim: %s:%ld: more than %d decisions\n", name, no,
				SIM_FB_MAX_DECISIONS);
			rc = 2;
			break;
		}
		if (s->n_fb == s->cap_fb) {
			size_t ncap = s->cap_fb ? s->cap_fb * 2 : 1024;
			sim_decision *nfb = realloc(s->fb, ncap * sizeof *nfb);
			if (nfb == NULL) {
				ls_error("sim", "out of memory", "decisions=%zu", s->n_fb);
				rc = 1;
				break;
			}
			s->fb = nfb;
			s->cap_fb = ncap;
		}
		rc = sim_fb_parse_line(s, name, no, line, len, &s->fb[s->n_fb]);
		if (rc != 0)
			break;
		s->n_fb++;
	}
	if (rc == 0 && ferror(f)) {
		ls_error("sim", "cannot read feedback input", "path=%s error=%s", s->o.feedback,
			 strerror(errno));
		rc = 1;
	}
	free(line);
	if (!is_stdin)
		fclose(f);
	if (rc != 0)
		return rc;
	if (s->n_fb > 1)
		qsort(s->fb, s->n_fb, sizeof *s->fb, sim_fb_cmp);
	/* report the first repeat in input order: the smallest second line */
	const sim_decision *first = NULL, *again = NULL;
	for (size_t i = 1; i < s->n_fb; i++) {
		const sim_decision *a = &s->fb[i - 1], *b = &s->fb[i];
		if (strcmp(a->decision_id, b->decision_id) != 0 ||
		    (i >= 2 && strcmp(s->fb[i - 2].decision_id, a->decision_id) == 0))
			continue; /* a is not the first of its group */
		if (again == NULL || b->line_no < again->line_no) {
			first = a;
			again = b;
		}
	}
	if (again != NULL) {
		fprintf(stderr, "leadscore-sim: %s:%ld: decision_id '%s' was already given on line "
			"%ld\n", name, again->line_no, again->decision_id, first->line_no);
		return 2;
	}
	return 0;
}

/* This decision's own random stream: seed and decision_id, nothing else. */
static void sim_fb_seed(sim *s, const char *decision_id)
{
	uint64_t h = UINT64_C(0xcbf29ce484222325);
	for (const unsigned char *p = (const unsigned char *)decision_id; *p != '\0'; p++) {
		h ^= *p;
		h *= UINT64_C(0x100000001b3);
	}
	uint64_t x = s->o.seed;
	ls_rng_seed(&s->rng, ls_splitmix64(&x) ^ h);
}

/* Draw every decision's outcome, queue its events and write its truth
 * row; then send the queue in event-time order. */
static int sim_fb_run(sim *s)
{
	const double *w = s->o.reward_w;
	double w_open = w[LS_EMAIL_OPENED];
	double w_click = fmax(w_open, w[LS_EMAIL_CLICKED]);
	double w_reply = fmax(w_click, w[LS_EMAIL_REPLIED]);
	double m = (double)s->o.max_delay, mean_open = 4.0 * (double)SIM_HOUR;
	double open_lo = fmin(60000.0, m / 20.0);
	double open_tail = 1.0 - exp(-(m / 2.0 - open_lo) / mean_open);
	double click_lo = fmin(5000.0, m / 80.0), click_hi = fmin(600000.0, m / 8.0);
	double reply_lo = fmin(360000.0, m / 40.0);
	double reply_hi = fmin((double)SIM_DAY, 3.0 * m / 8.0);
	for (size_t i = 0; i < s->n_fb; i++) {
		sim_decision *d = &s->fb[i];
		sim_rates *r = d->rates;
		sim_fb_seed(s, d->decision_id);
		double u_open = sim_u01(s), u_click = sim_u01(s), u_reply = sim_u01(s);
		/* floor, not round: each delay stays below its share of M */
		int64_t open_after = (int64_t)floor(open_lo - mean_open * log(1.0 - sim_u01(s) *
									      open_tail));
		int64_t click_after = (int64_t)floor(sim_uniform(s, click_lo, click_hi));
		int64_t reply_after = (int64_t)floor(sim_uniform(s, reply_lo, reply_hi));
		/* products, not quotients: a zero rate needs no special case */
		bool opened = u_open < r->open;
		bool clicked = opened && u_click * r->open < r->click;
		bool replied = clicked && u_reply * r->click < r->reply;
		double expected = (r->open - r->click) * w_open + (r->click - r->reply) * w_click +
				  r->reply * w_reply;
		double reward = replied ? w_reply : clicked ? w_click : opened ? w_open : 0.0;
		r->decisions++;
		r->opened += opened;
		r->clicked += clicked;
		r->replied += replied;
		r->expected += expected;
		r->reward += reward;

		sim_item it = { .lead = (uint32_t)i, .source = LS_SOURCE_EMAIL, .ts = d->ts,
				.sentiment = NAN, .type = LS_EMAIL_SENT };
		if (!s->o.feedback_no_sent && sim_push(s, it) != 0)
			return -1;
		it.ts += open_after;
		it.type = LS_EMAIL_OPENED;
		if (opened && sim_push(s, it) != 0)
			return -1;
		it.ts += click_after;
		it.type = LS_EMAIL_CLICKED;
		if (clicked && sim_push(s, it) != 0)
			return -1;
		it.ts += reply_after;
		it.type = LS_EMAIL_REPLIED;
		if (replied && sim_push(s, it) != 0)
			return -1;
		const char *outcome = replied ? "REPLIED" : clicked ? "CLICKED" : opened ? "OPENED"
											 : "none";
		if (s->truth != NULL &&
		    fprintf(s->truth, "%s\t%s\t%.9f\t%.9g\t%s\t%s\t%d\t%s\n", d->decision_id,
			    d->variant_id, expected, reward, d->campaign_id, d->lead_id,
			    s->o.feedback_no_sent ? 0 : 1, outcome) < 0) {
			ls_error("sim", "cannot write truth file", "path=%s error=%s", s->o.truth,
				 strerror(errno));
			return -1;
		}
	}
	s->t0_wall = sim_mono();
	while (s->n_heap > 0 && !sim_stop) {
		sim_item it = sim_pop(s);
		const sim_decision *d = &s->fb[it.lead];
		char event_id[SIM_FB_MAX_FIELD + 64], url[2 * SIM_FB_MAX_FIELD + 32];
		ls_email_type type = (ls_email_type)it.type;
		snprintf(event_id, sizeof event_id, "fb-%" PRIu64 "-%s-%s", s->o.seed,
			 d->decision_id, ls_email_type_name(type));
		ls_event ev = { .source = LS_SOURCE_EMAIL, .event_id = event_id,
				.lead_id = d->lead_id, .ts = it.ts };
		ev.u.email.type = type;
		ev.u.email.campaign_id = d->campaign_id;
		ev.u.email.variant_id = d->variant_id;
		ev.u.email.decision_id = d->decision_id;
		if (type == LS_EMAIL_CLICKED) {
			snprintf(url, sizeof url, "https://example.com/c/%s/%s", d->campaign_id,
				 d->variant_id);
			ev.u.email.url = url;
		}
		s->count_type[LS_SOURCE_EMAIL][type]++;
		if (sim_send(s, &ev) != 0)
			return -1;
	}
	return 0;
}

/* -------------------------------------------------------------- options */

static void sim_usage(FILE *f)
{
	fprintf(f,
		"usage: leadscore-sim [options]\n"
		"Generate a seeded, reproducible stream of lead events (email, web, call,\n"
		"profile) and outcomes decided by a hidden conversion model; write plain\n"
		"Avro to Kafka, key = lead_id, in event-time order.\n"
		"\n"
		"  --leads N          leads to simulate (default 2000, at most %d)\n"
		"  --days D           simulated days (default 30, at most %d)\n"
		"  --start T          first simulated instant: ms since the epoch or\n"
		"                     YYYY-MM-DD[THH:MM:SS[Z]] UTC (default: the current\n"
		"                     hour minus D days)\n"
		"  --seed S           random seed (default 1); same seed, same bytes\n"
		"  --brokers B        Kafka bootstrap servers (required unless --dry-run)\n"
		"  --topic-prefix P   topics P{email,web,call,outcome,profile} (default leads.)\n"
		"  --rate R           send R events/s in real time, never before an\n"
		"                     event's ts (default: as fast as possible)\n"
		"  --negatives MODE   lost: emit LOST/DISQUALIFIED for non-converting leads\n"
		"                     (default); none: emit nothing for them\n"
		"  --truth FILE       write one TSV row per decided lead: lead_id, label,\n"
		"                     p_hidden (at label time), label_ts, outcome\n"
		"  --dry-run          encode everything but send nothing\n"
		"  --print-model      print the hidden model's weights and exit\n"
		"  --help             this text\n"
		"\n"
		"Bandit feedback (instead of leads; --leads, --days, --start and\n"
		"--negatives do not apply; --seed, --brokers, --topic-prefix, --rate,\n"
		"--truth and --dry-run do):\n"
		"  --feedback FILE    read decisions (- for stdin), one per line:\n"
		"                     decision_id TAB lead_id TAB campaign_id TAB variant_id\n"
		"                     [TAB ts_ms of the send, default now]; blank and #\n"
		"                     lines skipped, a bad line stops the run (exit 2)\n"
		"                     before anything is sent. Each decision gets email\n"
		"                     events carrying its campaign_id, variant_id and\n"
		"                     decision_id, keyed by lead_id: SENT at ts_ms, then\n"
		"                     OPENED, CLICKED only after an open and REPLIED only\n"
		"                     after a click, drawn with the variant's rates; all\n"
		"                     sent in event-time order once the input is read\n"
		"  --variant-rates S  true rates per variant, absolute per decision:\n"
		"                     'A=0.30/0.10/0.02,B=...' is P(open)/P(click)/P(reply)\n"
		"                     with reply <= click <= open; a key CAMPAIGN:VARIANT\n"
		"                     applies to one campaign and wins over VARIANT\n"
		"  --variant-default O/C/R  rates of variants not in --variant-rates\n"
		"                     (default: such a variant is a bad line)\n"
		"  --feedback-no-sent no SENT events (decisions never activated)\n"
		"  --feedback-max-delay D  every event within D of its send: a number\n"
		"                     and s, m, h or d, 1m..30d (default 48h). OPENED is\n"
		"                     1 min + exponential(mean 4 h) after the send, at most\n"
		"                     D/2; CLICKED 5 s-10 min after the open (at most D/8);\n"
		"                     REPLIED 6 min-24 h after the click (at most 3D/8)\n"
		"  --reward-weights W a decision's reward is the largest weight of its\n"
		"                     events (default 'OPENED=0,CLICKED=1,REPLIED=1';\n"
		"                     unnamed types weigh 0; no event: 0)\n"
		"  With --truth FILE: one TSV row per decision in decision_id order:\n"
		"  decision_id, variant_id, expected_reward (under the variant's rates),\n"
		"  reward (realised), campaign_id, lead_id, sent (0/1), outcome (deepest\n"
		"  event or none). A decision's draws depend only on --seed and its\n"
		"  decision_id, never on other lines or their order; event_id is\n"
		"  fb-SEED-DECISION_ID-TYPE.\n"
		"\n"
		"stdout gets one summary line: events=N bytes=N decided=N positives=N\n"
		"hash=FNV1A64 (with --feedback: decisions=N events=N bytes=N\n"
		"hash=FNV1A64); counts per topic and type are logged on stderr.\n"
		"SIGINT or SIGTERM stops early: what was produced is flushed and reported.\n"
		"Exit status: 0 ok (also when stopped by a signal), 1 runtime failure\n"
		"(encoding, delivery, truth file, reading --feedback, memory), 2 usage\n"
		"error or a bad --feedback line.\n",
		SIM_MAX_LEADS, SIM_MAX_DAYS);
}

static bool sim_parse_long(const char *v, long lo, long hi, long *out)
{
	char *end;
	errno = 0;
	long x = strtol(v, &end, 10);
	if (errno != 0 || end == v || *end != '\0' || x < lo || x > hi)
		return false;
	*out = x;
	return true;
}

static bool sim_parse_start(const char *v, int64_t *out)
{
	char *end;
	errno = 0;
	long long ms = strtoll(v, &end, 10);
	if (errno == 0 && end != v && *end == '\0') {
		if (ms < 0)
			return false;
		*out = ms;
		return true;
	}
	struct tm tm;
	memset(&tm, 0, sizeof tm);
	int y, mo, d, hh = 0, mi = 0, ss = 0, n = 0;
	if (sscanf(v, "%4d-%2d-%2d%n", &y, &mo, &d, &n) != 3)
		return false;
	const char *rest = v + n;
	if (*rest == 'T' || *rest == ' ') {
		int m = 0;
		if (sscanf(rest + 1, "%2d:%2d:%2d%n", &hh, &mi, &ss, &m) != 3)
			return false;
		rest += 1 + m;
	}
	if (*rest == 'Z')
		rest++;
	if (*rest != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || hh > 23 || mi > 59 ||
	    ss > 60 || y < 1970)
		return false;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = hh;
	tm.tm_min = mi;
	tm.tm_sec = ss;
	time_t t = timegm(&tm);
	if (t < 0)
		return false;
	*out = (int64_t)t * 1000;
	return true;
}

/* "O/C/R": absolute P(open), P(click), P(reply) with 0 <= R <= C <= O <= 1. */
static bool sim_parse_rates(const char *v, sim_rates *r)
{
	double x[3];
	const char *p = v;
	for (int i = 0; i < 3; i++) {
		char *end;
		errno = 0;
		x[i] = strtod(p, &end);
		if (errno != 0 || end == p || !isfinite(x[i]) || *end != (i < 2 ? '/' : '\0'))
			return false;
		p = end + 1;
	}
	if (!(x[2] >= 0.0 && x[2] <= x[1] && x[1] <= x[0] && x[0] <= 1.0))
		return false;
	r->open = x[0];
	r->click = x[1];
	r->reply = x[2];
	return true;
}

/* --variant-rates 'KEY=O/C/R,...' into o->rates; the keys point into
 * o->rates_spec. false after printing what is wrong. */
static bool sim_parse_variant_rates(const char *v, sim_opts *o)
{
	free(o->rates);
	free(o->rates_spec);
	o->rates = NULL;
	o->n_rates = 0;
	o->rates_spec = strdup(v);
	size_t n = 1;
	for (const char *p = v; *p != '\0'; p++)
		n += *p == ',';
	o->rates = calloc(n, sizeof *o->rates);
	if (o->rates_spec == NULL || o->rates == NULL) {
		fprintf(stderr, "leadscore-sim: out of memory\n");
		return false;
	}
	char *save = NULL;
	for (char *e = strtok_r(o->rates_spec, ",", &save); e != NULL;
	     e = strtok_r(NULL, ",", &save)) {
		sim_rates *r = &o->rates[o->n_rates];
		char *eq = strchr(e, '=');
		if (eq == NULL || eq == e) {
			fprintf(stderr, "leadscore-sim: --variant-rates entry '%s' is not "
				"[CAMPAIGN:]VARIANT=OPEN/CLICK/REPLY\n", e);
			return false;
		}
		*eq = '\0';
		if (!sim_parse_rates(eq + 1, r)) {
			fprintf(stderr, "leadscore-sim: --variant-rates %s: '%s' is not OPEN/CLICK/REPLY "
				"with 0 <= REPLY <= CLICK <= OPEN <= 1\n", e, eq + 1);
			return false;
		}
		char *colon = strchr(e, ':');
		r->variant = e;
		if (colon != NULL) {
			*colon = '\0';
			r->campaign = e;
			r->variant = colon + 1;
			if (e[0] == '\0' || r->variant[0] == '\0') {
				fprintf(stderr, "leadscore-sim: --variant-rates: empty campaign or variant "
					"in '%s:%s'\n", e, r->variant);
				return false;
			}
		}
		for (size_t i = 0; i < o->n_rates; i++) {
			const sim_rates *q = &o->rates[i];
			bool same_campaign = q->campaign == NULL
						     ? r->campaign == NULL
						     : r->campaign != NULL && strcmp(q->campaign, r->campaign) == 0;
			if (same_campaign && strcmp(q->variant, r->variant) == 0) {
				fprintf(stderr, "leadscore-sim: --variant-rates names %s%s%s twice\n",
					r->campaign ? r->campaign : "", r->campaign ? ":" : "",
					r->variant);
				return false;
			}
		}
		o->n_rates++;
	}
	if (o->n_rates == 0) {
		fprintf(stderr, "leadscore-sim: --variant-rates is empty\n");
		return false;
	}
	return true;
}

/* --reward-weights 'TYPE=W,...' over OPENED, CLICKED, REPLIED; W >= 0. */
static bool sim_parse_weights(const char *v, double *w)
{
	static const ls_email_type allowed[] = { LS_EMAIL_OPENED, LS_EMAIL_CLICKED,
						  LS_EMAIL_REPLIED };
	bool seen[LS_EMAIL__COUNT] = { false };
	for (int i = 0; i < LS_EMAIL__COUNT; i++)
		w[i] = 0.0;
	const char *p = v;
	for (;;) {
		const char *eq = strchr(p, '=');
		size_t nlen = eq ? (size_t)(eq - p) : 0;
		int type = -1;
		for (size_t i = 0; eq != NULL && i < sizeof allowed / sizeof allowed[0]; i++) {
			const char *name = ls_email_type_name(allowed[i]);
			if (strlen(name) == nlen && strncmp(p, name, nlen) == 0)
				type = (int)allowed[i];
		}
		if (type < 0) {
			fprintf(stderr, "leadscore-sim: --reward-weights wants TYPE=WEIGHT,... with "
				"TYPE one of OPENED, CLICKED, REPLIED, not '%s'\n", v);
			return false;
		}
		char *end;
		errno = 0;
		double x = strtod(eq + 1, &end);
		if (errno != 0 || end == eq + 1 || !isfinite(x) || x < 0.0 ||
		    (*end != ',' && *end != '\0') || seen[type]) {
			fprintf(stderr, "leadscore-sim: --reward-weights wants each of OPENED, "
				"CLICKED, REPLIED at most once with a weight >= 0, not '%s'\n", v);
			return false;
		}
		seen[type] = true;
		w[type] = x;
		if (*end == '\0')
			return true;
		p = end + 1;
	}
}

/* NUMBER followed by s, m, h or d; 1 minute to 30 days. */
static bool sim_parse_duration(const char *v, int64_t *ms)
{
	char *end;
	errno = 0;
	double x = strtod(v, &end);
	if (errno != 0 || end == v || !isfinite(x) || end[0] == '\0' || end[1] != '\0')
		return false;
	double unit = end[0] == 's' ? 1e3 : end[0] == 'm' ? 6e4 : end[0] == 'h' ? 3.6e6
				 : end[0] == 'd' ? 8.64e7 : 0.0;
	x *= unit;
	if (!(x >= 6e4 && x <= 30 * 8.64e7))
		return false;
	*ms = sim_ms(x);
	return true;
}

/* 0 ok, 2 usage error (message printed), 3 --help/--print-model done. */
static int sim_parse(int argc, char **argv, sim_opts *o)
{
	static const struct option opts[] = {
		{ "leads", required_argument, NULL, 'l' },
		{ "days", required_argument, NULL, 'd' },
		{ "start", required_argument, NULL, 'S' },
		{ "seed", required_argument, NULL, 's' },
		{ "brokers", required_argument, NULL, 'b' },
		{ "topic-prefix", required_argument, NULL, 'p' },
		{ "rate", required_argument, NULL, 'r' },
		{ "negatives", required_argument, NULL, 'n' },
		{ "truth", required_argument, NULL, 't' },
		{ "dry-run", no_argument, NULL, 'D' },
		{ "print-model", no_argument, NULL, 'M' },
		{ "feedback", required_argument, NULL, 'F' },
		{ "feedback-no-sent", no_argument, NULL, 'N' },
		{ "feedback-max-delay", required_argument, NULL, 'X' },
		{ "variant-rates", required_argument, NULL, 'V' },
		{ "variant-default", required_argument, NULL, 'E' },
		{ "reward-weights", required_argument, NULL, 'W' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	memset(o, 0, sizeof *o);
	o->leads = 2000;
	o->days = 30;
	o->seed = 1;
	o->prefix = "leads.";
	o->negatives = true;
	o->max_delay = 48 * SIM_HOUR;
	o->reward_w[LS_EMAIL_CLICKED] = 1.0;
	o->reward_w[LS_EMAIL_REPLIED] = 1.0;
	bool print_model = false;
	opterr = 0;
	int opt;
	int idx = -1;
	while ((opt = getopt_long(argc, argv, "h", opts, &idx)) != -1) {
		char *end;
		if (opt != 0 && idx >= 0 && strchr("ldSn", opt) != NULL)
			o->generator_only = opts[idx].name;
		if (opt != 0 && idx >= 0 && strchr("NXVEW", opt) != NULL)
			o->feedback_only = opts[idx].name;
		idx = -1;
		switch (opt) {
		case 'l':
			if (!sim_parse_long(optarg, 1, SIM_MAX_LEADS, &o->leads)) {
				fprintf(stderr, "leadscore-sim: --leads wants 1..%d, not '%s'\n",
					SIM_MAX_LEADS, optarg);
				return 2;
			}
			break;
		case 'd':
			if (!sim_parse_long(optarg, 1, SIM_MAX_DAYS, &o->days)) {
				fprintf(stderr, "leadscore-sim: --days wants 1..%d, not '%s'\n",
					SIM_MAX_DAYS, optarg);
				return 2;
			}
			break;
		case 'S':
			if (!sim_parse_start(optarg, &o->start)) {
				fprintf(stderr,
					"leadscore-sim: --start wants ms since the epoch or "
					"YYYY-MM-DD[THH:MM:SS[Z]], not '%s'\n", optarg);
				return 2;
			}
			o->have_start = true;
			break;
		case 's':
			errno = 0;
			o->seed = strtoull(optarg, &end, 10);
			if (errno != 0 || end == optarg || *end != '\0' || optarg[0] == '-') {
				fprintf(stderr, "leadscore-sim: --seed wants an unsigned integer, not '%s'\n",
					optarg);
				return 2;
			}
			break;
		case 'b':
			o->brokers = optarg;
			break;
		case 'p':
			if (strlen(optarg) > 200) {
				fprintf(stderr, "leadscore-sim: --topic-prefix is too long\n");
				return 2;
			}
			o->prefix = optarg;
			break;
		case 'r':
			errno = 0;
			o->rate = strtod(optarg, &end);
			if (errno != 0 || end == optarg || *end != '\0' || !(o->rate > 0) ||
			    o->rate > 1e9) {
				fprintf(stderr, "leadscore-sim: --rate wants events/s > 0, not '%s'\n",
					optarg);
				return 2;
			}
			break;
		case 'n':
			if (strcmp(optarg, "lost") == 0) {
				o->negatives = true;
			} else if (strcmp(optarg, "none") == 0) {
				o->negatives = false;
			} else {
				fprintf(stderr, "leadscore-sim: --negatives wants lost or none, not '%s'\n",
					optarg);
				return 2;
			}
			break;
		case 't':
			o->truth = optarg;
			break;
		case 'D':
			o->dry_run = true;
			break;
		case 'M':
			print_model = true;
			break;
		case 'F':
			o->feedback = optarg;
			break;
		case 'N':
			o->feedback_no_sent = true;
			break;
		case 'X':
			if (!sim_parse_duration(optarg, &o->max_delay)) {
				fprintf(stderr, "leadscore-sim: --feedback-max-delay wants 1m..30d "
					"(a number and s, m, h or d), not '%s'\n", optarg);
				return 2;
			}
			break;
		case 'V':
			if (!sim_parse_variant_rates(optarg, o))
				return 2;
			break;
		case 'E':
			if (!sim_parse_rates(optarg, &o->fallback)) {
				fprintf(stderr, "leadscore-sim: --variant-default wants OPEN/CLICK/REPLY "
					"with 0 <= REPLY <= CLICK <= OPEN <= 1, not '%s'\n", optarg);
				return 2;
			}
			o->have_fallback = true;
			break;
		case 'W':
			if (!sim_parse_weights(optarg, o->reward_w))
				return 2;
			break;
		case 'h':
			sim_usage(stdout);
			return 3;
		default:
			if (optopt != 0)
				fprintf(stderr, "leadscore-sim: bad or incomplete option -%c\n", optopt);
			else
				fprintf(stderr, "leadscore-sim: unknown option '%s'\n",
					argv[optind - 1]);
			fprintf(stderr, "try leadscore-sim --help\n");
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "leadscore-sim: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (print_model) {
		sim_print_model();
		return 3;
	}
	if (o->feedback != NULL && o->generator_only != NULL) {
		fprintf(stderr, "leadscore-sim: --%s does not apply with --feedback\n",
			o->generator_only);
		return 2;
	}
	if (o->feedback == NULL && o->feedback_only != NULL) {
		fprintf(stderr, "leadscore-sim: --%s needs --feedback\n", o->feedback_only);
		return 2;
	}
	if (!o->dry_run && (o->brokers == NULL || o->brokers[0] == '\0')) {
		fprintf(stderr, "leadscore-sim: --brokers is required (or use --dry-run)\n");
		return 2;
	}
	return 0;
}

/* ----------------------------------------------------------------- main */

static rd_kafka_t *sim_producer(const char *brokers)
{
	char err[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	if (conf == NULL) {
		ls_error("sim", "out of memory", NULL);
		return NULL;
	}
	if (rd_kafka_conf_set(conf, "bootstrap.servers", brokers, err, sizeof err) ||
	    rd_kafka_conf_set(conf, "linger.ms", "20", err, sizeof err) ||
	    rd_kafka_conf_set(conf, "queue.buffering.max.messages", "200000", err, sizeof err) ||
	    rd_kafka_conf_set(conf, "enable.idempotence", "true", err, sizeof err)) {
		ls_error("sim", "kafka config", "error=%s", err);
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	rd_kafka_conf_set_dr_msg_cb(conf, sim_dr_cb);
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof err);
	if (rk == NULL)
		ls_error("sim", "cannot create producer", "error=%s", err);
	return rk;
}

/* The "topic totals" line of one topic: events, bytes and per type. */
static void sim_report_topic(const sim *s, int src)
{
	static const char *const email[] = { "sent", "delivered", "opened", "clicked",
		"replied", "bounced", "unsubscribed", "spam_reported" };
	static const char *const web[] = { "page_view", "form_submit", "download",
		"demo_request" };
	static const char *const call[] = { "connected", "no_answer", "voicemail", "busy",
		"meeting_booked" };
	static const char *const outcome[] = { "converted", "opportunity_created", "won",
		"lost", "disqualified" };
	static const char *const *const names[LS_SOURCE__COUNT] = { email, web, call, outcome,
								    NULL };
	static const size_t n_names[LS_SOURCE__COUNT] = { 8, 4, 5, 5, 0 };
	char line[512];
	size_t off = 0;
	line[0] = '\0';
	for (size_t t = 0; t < n_names[src] && off < sizeof line; t++) {
		int k = snprintf(line + off, sizeof line - off, "%s%s=%" PRIu64,
				 t ? " " : "", names[src][t], s->count_type[src][t]);
		if (k < 0)
			break;
		off += (size_t)k;
	}
	ls_info("sim", "topic totals", "topic=%s events=%" PRIu64 " bytes=%" PRIu64 "%s%s",
		s->topics[src], s->count_src[src], s->bytes_src[src], off ? " " : "", line);
	/* 4 partitions (the dev broker's default) of ~5 MiB each */
	if (s->bytes_src[src] > UINT64_C(20) << 20)
		ls_warn("sim", "topic may exceed the dev broker's retention",
			"topic=%s bytes=%" PRIu64 " note=\"the dev broker keeps only "
			"~5 MiB per partition; the oldest events may be gone\"",
			s->topics[src], s->bytes_src[src]);
}

static void sim_report(const sim *s)
{
	for (int src = 0; src < LS_SOURCE__COUNT; src++)
		sim_report_topic(s, src);
	double rate = s->decided ? (double)s->positives / (double)s->decided : 0.0;
	ls_info("sim", "labels", "decided=%" PRIu64 " positives=%" PRIu64
		" label_rate=%.4f mean_p=%.4f dropped_after_decision=%" PRIu64,
		s->decided, s->positives, rate, s->decided ? s->p_sum / (double)s->decided : 0.0,
		s->dropped);
}

static void sim_fb_report_rates(const sim_rates *r)
{
	char campaign[256], variant[256];
	double n = r->decisions ? (double)r->decisions : 1.0;
	ls_info("sim", "feedback variant",
		"campaign=%s variant=%s rates=%g/%g/%g decisions=%" PRIu64 " opened=%" PRIu64
		" clicked=%" PRIu64 " replied=%" PRIu64 " mean_expected_reward=%.4f"
		" mean_reward=%.4f",
		r->campaign ? ls_log_quote(r->campaign, campaign, sizeof campaign) : "*",
		r->variant ? ls_log_quote(r->variant, variant, sizeof variant) : "(default)",
		r->open, r->click, r->reply, r->decisions, r->opened, r->clicked, r->replied,
		r->expected / n, r->reward / n);
}

/* Outcomes per rates entry (drawn) and events per type (sent). */
static void sim_fb_report(const sim *s)
{
	sim_report_topic(s, LS_SOURCE_EMAIL);
	for (size_t i = 0; i < s->o.n_rates; i++)
		sim_fb_report_rates(&s->o.rates[i]);
	if (s->o.have_fallback)
		sim_fb_report_rates(&s->o.fallback);
	const uint64_t *c = s->count_type[LS_SOURCE_EMAIL];
	ls_info("sim", "feedback totals",
		"decisions=%zu sent=%" PRIu64 " opened=%" PRIu64 " clicked=%" PRIu64
		" replied=%" PRIu64, s->n_fb, c[LS_EMAIL_SENT], c[LS_EMAIL_OPENED],
		c[LS_EMAIL_CLICKED], c[LS_EMAIL_REPLIED]);
}

static void sim_free(sim *s)
{
	for (size_t i = 0; i < s->n_fb; i++)
		free(s->fb[i].line);
	free(s->fb);
	free(s->o.rates);
	free(s->o.rates_spec);
	if (s->rk != NULL)
		rd_kafka_destroy(s->rk);
	if (s->truth != NULL)
		fclose(s->truth);
	ls_codec_free(s->codec);
	ls_buf_free(&s->buf);
	free(s->heap);
	free(s->leads);
}

int main(int argc, char **argv)
{
	sim s;
	memset(&s, 0, sizeof s);
	ls_buf_init(&s.buf);
	int prc = sim_parse(argc, argv, &s.o);
	if (prc != 0) {
		sim_free(&s);
		return prc == 3 ? 0 : 2;
	}
	bool feedback = s.o.feedback != NULL;

	int64_t now = ls_clock_wall_ms();
	s.start = s.o.have_start ? s.o.start
				 : (now / SIM_HOUR) * SIM_HOUR - (int64_t)s.o.days * SIM_DAY;
	if (s.start < 0) {
		fprintf(stderr, "leadscore-sim: --start minus nothing is before 1970\n");
		sim_free(&s);
		return 2;
	}
	s.end = s.start + (int64_t)s.o.days * SIM_DAY;
	if (feedback) {
		s.start = 0;
		s.end = INT64_MAX; /* nothing is cut off: every decision's events go out */
	}
	ls_rng_seed(&s.rng, s.o.seed);
	s.hash = UINT64_C(0xcbf29ce484222325);
	for (int i = 0; i < LS_SOURCE__COUNT; i++)
		snprintf(s.topics[i], sizeof s.topics[i], "%s%s", s.o.prefix,
			 ls_source_name((ls_source)i));

	int rc = 1;
	char err[512];
	if (feedback) {
		/* all of the input first: a bad line stops the run before a send */
		rc = sim_fb_read(&s);
		if (rc != 0)
			goto out;
		rc = 1;
	} else {
		s.leads = calloc((size_t)s.o.leads, sizeof *s.leads);
		if (s.leads == NULL) {
			ls_error("sim", "out of memory", "leads=%ld", s.o.leads);
			goto out;
		}
	}
	s.codec = ls_codec_new(err, sizeof err);
	if (s.codec == NULL) {
		ls_error("sim", "cannot create codec", "error=%s", err);
		goto out;
	}
	if (s.o.truth != NULL) {
		s.truth = fopen(s.o.truth, "w");
		if (s.truth == NULL) {
			ls_error("sim", "cannot open truth file", "path=%s error=%s", s.o.truth,
				 strerror(errno));
			goto out;
		}
		fprintf(s.truth, feedback ? "decision_id\tvariant_id\texpected_reward\treward\t"
					    "campaign_id\tlead_id\tsent\toutcome\n"
					  : "lead_id\tlabel\tp_hidden\tlabel_ts\toutcome\n");
	}
	if (!s.o.dry_run) {
		s.rk = sim_producer(s.o.brokers);
		if (s.rk == NULL)
			goto out;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = sim_on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	if (feedback)
		ls_info("sim", "starting", "feedback=%s decisions=%zu seed=%" PRIu64
			" max_delay_ms=%" PRId64 " sent=%s mode=%s rate=%g", s.o.feedback, s.n_fb,
			s.o.seed, s.o.max_delay, s.o.feedback_no_sent ? "no" : "yes",
			s.o.dry_run ? "dry-run" : "kafka", s.o.rate);
	else
		ls_info("sim", "starting", "leads=%ld days=%ld seed=%" PRIu64 " start=%" PRId64
			" end=%" PRId64 " mode=%s rate=%g", s.o.leads, s.o.days, s.o.seed, s.start,
			s.end, s.o.dry_run ? "dry-run" : "kafka", s.o.rate);
	double t0 = sim_mono();
	int run = feedback ? sim_fb_run(&s) : sim_run(&s);
	if (s.rk != NULL) {
		rd_kafka_resp_err_t fe = rd_kafka_flush(s.rk, 60000);
		if (fe != RD_KAFKA_RESP_ERR_NO_ERROR) {
			ls_error("sim", "flush did not finish", "error=%s undelivered=%d",
				 rd_kafka_err2str(fe), rd_kafka_outq_len(s.rk));
			run = -1;
		}
		if (sim_delivery_failed > 0) {
			ls_error("sim", "delivery failed", "messages=%" PRIu64 " first_error=%s",
				 sim_delivery_failed, sim_delivery_err);
			run = -1;
		}
	}
	if (s.truth != NULL) {
		FILE *f = s.truth;
		s.truth = NULL;
		if (fclose(f) != 0) {
			ls_error("sim", "cannot write truth file", "path=%s error=%s", s.o.truth,
				 strerror(errno));
			run = -1;
		}
	}
	if (feedback)
		sim_fb_report(&s);
	else
		sim_report(&s);
	double secs = sim_mono() - t0;
	uint64_t bytes = 0;
	for (int i = 0; i < LS_SOURCE__COUNT; i++)
		bytes += s.bytes_src[i];
	ls_info("sim", sim_stop ? "interrupted" : "done",
		"events=%" PRIu64 " bytes=%" PRIu64 " seconds=%.2f events_per_s=%.0f",
		s.emitted, bytes, secs, secs > 0 ? (double)s.emitted / secs : 0.0);
	if (feedback)
		printf("decisions=%zu events=%" PRIu64 " bytes=%" PRIu64 " hash=%016" PRIx64 "\n",
		       s.n_fb, s.emitted, bytes, s.hash);
	else
		printf("events=%" PRIu64 " bytes=%" PRIu64 " decided=%" PRIu64 " positives=%" PRIu64
		       " hash=%016" PRIx64 "\n", s.emitted, bytes, s.decided, s.positives,
		       s.hash);
	fflush(stdout);
	rc = run == 0 ? 0 : 1;
out:
	sim_free(&s);
	return rc;
}
