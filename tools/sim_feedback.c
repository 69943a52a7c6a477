/*
 * sim_feedback.c - leadscore-sim --feedback: the email system's side of
 * the bandit.
 *
 * A file of its own because it is a second program sharing the first's
 * machinery: it reads decisions instead of inventing leads, and draws each
 * decision's outcome from a stream of its own; the heap, the encoding and
 * the sending (simulator.c) and the options (sim_main.c) are common.
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
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ls_clock.h"
#include "ls_event.h"
#include "ls_log.h"
#include "ls_rng.h"
#include "ls_utf8.h"
#include "sim.h"

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
int sim_fb_read(sim *s)
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
int sim_fb_run(sim *s)
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
void sim_fb_report(const sim *s)
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
