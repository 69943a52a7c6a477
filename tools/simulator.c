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
 * Non-linear effects (--nonlinear; off by default, and without it every
 * random draw and so every byte of the stream is what it always was). The
 * terms above are monotone, so a model with one log1p term per feature
 * fits them well; real engagement is not like that. With the flag:
 *   - an inverted U in page_views_30d (every page view, all categories,
 *     in the 30 d before T): + max(-2.5, 1.0 - 1.5 (log1p(v) - log1p(30))^2),
 *     i.e. -2.5 up to 6 views, -0.61 at 10, +1.0 at 30, -0.03 at 70, -1.09
 *     at 100, -2.5 from about 145: moderate browsing converts best, extreme
 *     volumes are bots, students or researchers who read everything and
 *     buy nothing;
 *   - heavy browsers, 10 % of leads (drawn last per lead, so the others'
 *     draws do not move), have 6x the session rate at any intent and 4
 *     more pages per session on average: they populate the far side of
 *     the U, as bots and researchers do;
 *   - a threshold: + 0.9 once pricing_views_7d >= 3 (a buying committee
 *     comparing plans), on top of the capped linear term.
 * Both are functions of what the daemon's default feature set computes
 * (page_views and pricing_views windows), so a model with the right
 * numeric map can learn them; a linear or log1p term per feature cannot.
 * Strength, measured by tools/model_baseline.py --nonlinear (3,000 leads,
 * seeds 1-3): offline LR with 10 quantile buckets per number beside the
 * log1p term beats the log1p term alone by 0.011-0.036 AUC; without the
 * flag it loses 0.006-0.008 to it (more columns, same labels).
 * --print-model --nonlinear adds them to the table ("nl:" rows).
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
 * The program is three files around sim.h: this one (the generator, and
 * the random draws, event heap and emission that the feedback mode
 * shares), sim_feedback.c (--feedback, described there) and sim_main.c
 * (options, reports, main).
 */
#include <errno.h>
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
#include "sim.h"

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

/* --nonlinear (see the header comment): engagement as an inverted U in
 * log1p(page_views_30d), a step at a pricing-view threshold, and the heavy
 * browsers that populate the far side of the U. */
static const double sim_nl_views_peak = 30.0;  /* page views in 30 d */
static const double sim_nl_views_gain = 1.0;   /* logit at the peak */
static const double sim_nl_views_curve = 1.5;  /* per (log1p unit)^2 off it */
static const double sim_nl_views_floor = -2.5;
static const double sim_nl_pricing_min = 3.0; /* pricing_views_7d */
static const double sim_nl_pricing_step = 0.9;
static const double sim_nl_heavy_share = 0.10;
static const double sim_nl_heavy_sessions = 6.0; /* x the session rate */
static const double sim_nl_heavy_pages = 4.0;    /* + mean pages/session */

static const char *const sim_categories[] = { "pricing", "product", "docs", "blog", "careers" };
#define SIM_CAT_PRICING 0
#define SIM_CAT_CAREERS 4
#define SIM_N_CAT 5
#define SIM_N_CAMPAIGNS 8

/* ---------------------------------------------------------------- state */

volatile sig_atomic_t sim_stop;
uint64_t sim_delivery_failed;
char sim_delivery_err[256];

void sim_on_signal(int sig)
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
double sim_u01(sim *s)
{
	return (double)(ls_rng_next(&s->rng) >> 11) * 0x1.0p-53;
}

double sim_uniform(sim *s, double lo, double hi)
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

int64_t sim_ms(double x)
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
int sim_push(sim *s, sim_item it)
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

sim_item sim_pop(sim *s)
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

/* The inverted U over page views in 30 d (peak sim_nl_views_gain at
 * sim_nl_views_peak, falling with the squared distance in log1p units,
 * never below the floor). */
static double sim_nl_views(double views)
{
	double d = log1p(views) - log1p(sim_nl_views_peak);
	double v = sim_nl_views_gain - sim_nl_views_curve * d * d;
	return v > sim_nl_views_floor ? v : sim_nl_views_floor;
}

/* --nonlinear's terms of the logit of lead l on day `day`. */
static double sim_nonlinear_logit(const sim_lead *l, int32_t day)
{
	double x = sim_nl_views(sim_window(l, SIM_SIG_PAGES, 30, day));
	if (sim_window(l, SIM_SIG_PRICING, 7, day) >= sim_nl_pricing_min)
		x += sim_nl_pricing_step;
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
	if (s->o.nonlinear)
		x += sim_nonlinear_logit(l, day);
	return sim_sigmoid(x);
}

void sim_print_model(bool nonlinear)
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
	if (!nonlinear)
		return;
	printf("# --nonlinear: + views(page_views_30d) + step(pricing_views_7d)\n");
	printf("# views(v) = max(floor, gain - curve*(log1p(v) - log1p(peak))^2)\n");
	printf("nl:page_views_30d_peak\t%+.2f\tpeak=%.0f curve=%.2f floor=%+.2f\n",
	       sim_nl_views_gain, sim_nl_views_peak, sim_nl_views_curve, sim_nl_views_floor);
	static const double shown[] = { 0, 3, 10, 30, 100, 300 };
	for (size_t i = 0; i < sizeof shown / sizeof shown[0]; i++)
		printf("nl:page_views_30d=%.0f\t%+.2f\t-\n", shown[i], sim_nl_views(shown[i]));
	printf("nl:pricing_views_7d>=%.0f\t%+.2f\t-\n", sim_nl_pricing_min,
	       sim_nl_pricing_step);
	printf("nl:heavy_browsers\t%+.2f\tshare=%.2f sessions=x%.0f pages=+%.0f\n", 0.0,
	       sim_nl_heavy_share, sim_nl_heavy_sessions, sim_nl_heavy_pages);
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
	/* last, and only with the flag: without it every draw stays in place */
	if (s->o.nonlinear)
		l->heavy = sim_chance(s, sim_nl_heavy_share);
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
	if (l->heavy)
		mean_extra += sim_nl_heavy_pages;
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
	double rate = 0.012 * seg * exp(l->z);
	if (l->heavy)
		rate *= sim_nl_heavy_sessions;
	unsigned n = sim_poisson(s, rate);
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

double sim_mono(void)
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

void sim_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
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
int sim_send(sim *s, const ls_event *ev)
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
			sim_note(s, l, it->ts, SIM_SIG_PAGES, 1);
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

int sim_run(sim *s)
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
