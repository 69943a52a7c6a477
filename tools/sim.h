/*
 * sim.h - what the three files of leadscore-sim share: limits, the
 * options, the run state (struct sim), the event heap's items, the
 * --feedback decisions and rates, and the functions one file calls in
 * another. Internal to the tool; nothing outside tools/sim*.c includes it.
 *
 * Memory: a sim owns everything it points to and sim_main.c's sim_free()
 * releases it. Errors: int functions return 0, or non-zero once the
 * reason is reported (ls_log, or stderr for a bad --feedback line).
 * Thread-safety: one thread; sim_stop is set from the signal handler and
 * only read elsewhere.
 */
#ifndef LS_SIM_H
#define LS_SIM_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <librdkafka/rdkafka.h>

#include "ls_codec.h"
#include "ls_event.h"
#include "ls_rng.h"

#define SIM_HOUR INT64_C(3600000)
#define SIM_DAY INT64_C(86400000)
#define SIM_DAYS_KEPT 32 /* day buckets per signal: a 30 d window plus slack */
#define SIM_DECIDE LS_SOURCE__COUNT /* heap item that decides a lead */
#define SIM_MAX_LEADS 1000000
#define SIM_MAX_DAYS 365
#define SIM_FB_MAX_FIELD 200 /* bytes per --feedback field */
#define SIM_FB_MAX_DECISIONS 10000000
#define SIM_FB_MAX_TS INT64_C(253402300799999) /* 9999-12-31T23:59:59.999Z */

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
	SIM_SIG_PAGES, /* every page view (--nonlinear's engagement) */
	SIM_SIG__COUNT
};

typedef struct sim_lead {
	int64_t created;   /* ms */
	int64_t decide_at; /* ms; >= end when undecided */
	int64_t next_send;
	double z, mu;
	double employees, revenue;
	uint8_t industry, size, country, role, source;
	bool hard_bounce_addr, jobseeker;
	bool heavy; /* --nonlinear: a bot or researcher, browses at any intent */
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
	bool nonlinear; /* add the non-linear terms to the hidden model */
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

/* simulator.c: state the signal handler and delivery reports share */
extern volatile sig_atomic_t sim_stop;
extern uint64_t sim_delivery_failed;
extern char sim_delivery_err[256];

/* simulator.c: the generator and what both modes use */
void sim_on_signal(int sig);
double sim_u01(sim *s);
double sim_uniform(sim *s, double lo, double hi);
int64_t sim_ms(double x);
int sim_push(sim *s, sim_item it);
sim_item sim_pop(sim *s);
double sim_mono(void);
void sim_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque);
int sim_send(sim *s, const ls_event *ev);
void sim_print_model(bool nonlinear);
int sim_run(sim *s);

/* sim_feedback.c: --feedback */
int sim_fb_read(sim *s);
int sim_fb_run(sim *s);
void sim_fb_report(const sim *s);

/* sim_main.c */
void sim_report_topic(const sim *s, int src);

#endif
