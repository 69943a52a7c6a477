/*
 * ls_scorer.c - models in the batch loop.
 *
 * Why roll back instead of patching: learning is folded into the shared
 * model only through log entries that were committed with their offsets.
 * A batch that fails is replayed, so whatever the local model learned
 * from it must go (ls_scorer_discard restores the committed copy), or the
 * replay would learn the same labels a second time.
 *
 * Why the checkpoint adopts the folded model wholesale: after a fold, the
 * shared model holds every committed delta of every instance, including
 * ours; nothing local is pending (a checkpoint follows a commit), so local
 * = committed = shared loses nothing and picks up everyone else's labels.
 */
#include "ls_scorer.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ls_clock.h"
#include "ls_err.h"
#include "ls_keys.h"
#include "ls_scorestate.h"
#include "ls_log.h"
#include "ls_mlog.h"

#define COMPONENT "scorer"
#define KEY_MAX 512
#define WATCH_ATTEMPTS 5

typedef struct model {
	const ls_model_spec *spec;
	uint32_t key;
	char k_model[KEY_MAX], k_eval[KEY_MAX], k_log[KEY_MAX];
	ls_ftrl *local;
	ls_ftrl *committed;
	ls_ftrl *delta; /* reused for every commit's delta */
	bool learned; /* local differs from committed (or staged) */
	ls_ftrl *staged; /* a commit in flight: local when it was taken */
	bool is_staged;
	ls_mlog_pair *staged_pend; /* its labels */
	size_t n_staged, cap_staged;
	ls_eval *eval; /* shared window at the last fold + committed pairs */
	ls_mlog_pair *pend;
	size_t n_pend, cap_pend;
	ls_buf delta_buf;
	ls_buf entry;
	uint64_t timeouts, scored, published;
} model;

struct ls_scorer {
	void (*on_publish)(void *ud, double seconds);
	void *on_publish_ud;
	ls_model_spec specs[LS_MODEL_MAX]; /* the settings' copy; m[i].spec points here */
	char *scores_topic;
	const ls_feature_set *set;
	const ls_lead_conf *lead_conf;
	ls_codec *codec;
	rd_kafka_t *producer;
	void *produce_opaque;
	bool staged; /* ls_scorer_stage since the last commit or discard */
	ls_store *store;
	model *m;
	size_t n_models;
	uint32_t keys[LS_MODEL_MAX];

	uint64_t epoch;       /* replay epoch, 0 until the pipeline takes one */
	uint64_t skipped;     /* ScoreChanges that can never be produced */
	uint64_t adoptions;   /* checkpoints that adopted a new shared model */
	ls_log_limit skip_log;
	ls_example_ctx ex;
	ls_buf out;
	ls_store_append appends[LS_MODEL_MAX];
	uint8_t ext[LS_LEAD_EXT_MAX];
};

/* Key names of model name under prefix; 0 or -1 when they do not fit. */
static int model_keys(const char *prefix, const char *name, char *km, char *ke,
		      char *kl, size_t cap)
{
	if (ls_keys_model(km, cap, prefix, name) < 0 ||
	    ls_keys_model_eval(ke, cap, prefix, name) < 0 ||
	    ls_keys_model_log(kl, cap, prefix, name) < 0)
		return -1;
	return 0;
}

static ls_ftrl *fresh_model(const ls_model_spec *spec, const ls_feature_set *set,
			    char *err, size_t errlen)
{
	char why[256];
	ls_ftrl *m = ls_model_spec_new_ftrl(spec, set, why, sizeof why);
	if (m == NULL)
		ls_set_err(err, errlen, "model %s: %s", spec->name, why);
	return m;
}

ls_scorer *ls_scorer_new(const ls_scorer_settings *s, const ls_feature_set *set,
			 const ls_lead_conf *lead_conf, ls_codec *codec,
			 rd_kafka_t *producer, ls_store *store, char *err,
			 size_t errlen)
{
	ls_scorer *sc = calloc(1, sizeof *sc);
	if (sc == NULL) {
		ls_set_err(err, errlen, "out of memory");
		return NULL;
	}
	sc->set = set;
	sc->lead_conf = lead_conf;
	sc->codec = codec;
	sc->producer = producer;
	sc->store = store;
	ls_buf_init(&sc->out);
	if (s->n_models > LS_MODEL_MAX) {
		ls_set_err(err, errlen, "%zu models, at most %d", s->n_models, LS_MODEL_MAX);
		goto fail;
	}
	sc->n_models = s->n_models;
	for (size_t i = 0; i < s->n_models; i++)
		sc->specs[i] = s->models[i];
	sc->scores_topic = strdup(s->scores_topic != NULL ? s->scores_topic : "");
	sc->m = calloc(sc->n_models ? sc->n_models : 1, sizeof *sc->m);
	if (sc->scores_topic == NULL || sc->m == NULL ||
	    ls_example_ctx_init(&sc->ex, set, lead_conf) != 0) {
		ls_set_err(err, errlen, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < sc->n_models; i++) {
		model *m = &sc->m[i];
		m->spec = &sc->specs[i];
		m->key = ls_scorestate_key(m->spec->name);
		sc->keys[i] = m->key;
		if (model_keys(ls_store_key_prefix(store), m->spec->name,
			       m->k_model, m->k_eval, m->k_log, KEY_MAX) != 0) {
			ls_set_err(err, errlen, "model %s: key prefix too long", m->spec->name);
			goto fail;
		}
		m->local = fresh_model(m->spec, set, err, errlen);
		if (m->local == NULL)
			goto fail;
		m->committed = ls_ftrl_clone(m->local);
		m->eval = ls_eval_new((size_t)m->spec->eval_window);
		if (m->committed == NULL || m->eval == NULL) {
			ls_set_err(err, errlen, "out of memory");
			goto fail;
		}
	}
	return sc;
fail:
	ls_scorer_free(sc);
	return NULL;
}

void ls_scorer_free(ls_scorer *sc)
{
	if (sc == NULL)
		return;
	for (size_t i = 0; sc->m != NULL && i < sc->n_models; i++) {
		model *m = &sc->m[i];
		ls_ftrl_free(m->local);
		ls_ftrl_free(m->committed);
		ls_ftrl_free(m->staged);
		ls_ftrl_free(m->delta);
		ls_eval_free(m->eval);
		free(m->pend);
		free(m->staged_pend);
		ls_buf_free(&m->delta_buf);
		ls_buf_free(&m->entry);
	}
	free(sc->m);
	free(sc->scores_topic);
	ls_example_ctx_free(&sc->ex);
	ls_buf_free(&sc->out);
	free(sc);
}

/* ----------------------------------------------------- per-lead state */

static int state_load(const ls_lead *lead, ls_scorestate *s, char *err,
		      size_t errlen)
{
	size_t len;
	const uint8_t *d = ls_lead_ext(lead, &len);
	char why[256];
	if (ls_scorestate_decode(d, len, s, why, sizeof why) != 0) {
		ls_set_err(err, errlen, "lead scoring state: %s", why);
		return -1;
	}
	return 0;
}

static int state_save(ls_scorer *sc, ls_lead *lead, const ls_scorestate *s,
		      char *err, size_t errlen)
{
	size_t len;
	int rc = ls_scorestate_encode(s, sc->ext, sizeof sc->ext, &len);
	if (rc != 0) {
		ls_set_err(err, errlen, "lead scoring state: %s",
			   ls_scorestate_result_str(rc));
		return -1;
	}
	rc = ls_lead_set_ext(lead, sc->ext, len);
	if (rc != 0) {
		ls_set_err(err, errlen, "lead scoring state: %s", ls_lead_result_str(rc));
		return -1;
	}
	return 0;
}

/* After a change of s (dirty): save it in lead and set *changed. 0 or -1. */
static int state_commit(ls_scorer *sc, ls_lead *lead, const ls_scorestate *s,
			bool dirty, bool *changed, char *err, size_t errlen)
{
	if (!dirty)
		return 0;
	if (state_save(sc, lead, s, err, errlen) != 0)
		return -1;
	*changed = true;
	return 0;
}

/* ---------------------------------------------------------- examples */

int ls_example_ctx_init(ls_example_ctx *c, const ls_feature_set *set,
			const ls_lead_conf *lead_conf)
{
	*c = (ls_example_ctx){ .set = set, .lead_conf = lead_conf };
	ls_ftrl_example_init(&c->x);
	size_t n_num = set->n_values + LS_LEAD_MAX_PROFILE_KEYS;
	c->values = malloc((set->n_values ? set->n_values : 1) * sizeof *c->values);
	c->num_names = malloc(n_num * sizeof *c->num_names);
	c->num_values = malloc(n_num * sizeof *c->num_values);
	c->num_dense = malloc(n_num * sizeof *c->num_dense);
	c->cat_keys = malloc(LS_LEAD_MAX_PROFILE_KEYS * sizeof *c->cat_keys);
	c->cat_values = malloc(LS_LEAD_MAX_PROFILE_KEYS * sizeof *c->cat_values);
	if (c->values == NULL || c->num_names == NULL || c->num_values == NULL ||
	    c->num_dense == NULL || c->cat_keys == NULL || c->cat_values == NULL) {
		ls_example_ctx_free(c);
		return -1;
	}
	return 0;
}

void ls_example_ctx_free(ls_example_ctx *c)
{
	free(c->values);
	free(c->num_names);
	free(c->num_values);
	free(c->num_dense);
	free(c->cat_keys);
	free(c->cat_values);
	for (size_t i = 0; i < c->n_layouts; i++)
		free(c->value_dense[i]);
	c->n_layouts = 0;
	ls_ftrl_example_free(&c->x);
	c->values = NULL;
	c->num_names = NULL;
	c->num_values = NULL;
	c->num_dense = NULL;
	c->cat_keys = c->cat_values = NULL;
}

/*
 * The dense index of every feature value in fm's layout, resolved once
 * per layout; NULL when out of memory (the caller then looks names up).
 */
static const int32_t *value_dense(ls_example_ctx *c, const ls_ftrl *fm)
{
	uint64_t layout = ls_ftrl_layout(fm);
	for (size_t i = 0; i < c->n_layouts; i++)
		if (c->layouts[i] == layout)
			return c->value_dense[i];
	size_t nv = c->set->n_values;
	int32_t *idx = malloc((nv ? nv : 1) * sizeof *idx);
	if (idx == NULL)
		return NULL;
	for (size_t i = 0; i < nv; i++)
		idx[i] = ls_ftrl_dense_index(fm, ls_feature_set_value_name(c->set, i));
	size_t slot = c->n_layouts;
	if (slot == LS_MODEL_MAX) { /* more layouts than models: forget one */
		slot = (size_t)(layout % LS_MODEL_MAX);
		free(c->value_dense[slot]);
	} else {
		c->n_layouts++;
	}
	c->layouts[slot] = layout;
	c->value_dense[slot] = idx;
	return idx;
}

int ls_example_build(ls_example_ctx *c, const ls_model_spec *spec,
		     const ls_ftrl *fm, const ls_lead *lead, int64_t T)
{
	int nv = ls_lead_features(lead, c->lead_conf, T, c->values,
				  c->set->n_values);
	if (nv < 0)
		return -1;
	const int32_t *vd = value_dense(c, fm);
	size_t n = 0, cap = c->set->n_values + LS_LEAD_MAX_PROFILE_KEYS;
	for (size_t i = 0; i < (size_t)nv; i++) {
		c->num_names[n] = ls_feature_set_value_name(c->set, i);
		c->num_dense[n] = vd != NULL ? vd[i] : LS_FTRL_UNRESOLVED;
		c->num_values[n++] = c->values[i];
	}
	size_t nm = ls_lead_n_metrics(lead);
	for (size_t i = 0; i < nm && n < cap; i++) {
		const char *k;
		double v;
		if (ls_lead_metric_at(lead, i, &k, &v)) {
			c->num_names[n] = k;
			c->num_dense[n] = LS_FTRL_UNRESOLVED;
			c->num_values[n++] = v;
		}
	}
	size_t nc = 0, na = ls_lead_n_attributes(lead);
	for (size_t i = 0; i < na && nc < LS_LEAD_MAX_PROFILE_KEYS; i++) {
		const char *k, *v;
		if (ls_lead_attribute_at(lead, i, &k, &v)) {
			c->cat_keys[nc] = k;
			c->cat_values[nc++] = v;
		}
	}
	for (size_t i = 0; i < spec->n_crosses; i++)
		c->crosses[i] = (ls_ftrl_cross){ spec->crosses[i].a, spec->crosses[i].b };
	ls_ftrl_input in = {
		.num_names = c->num_names, .num_values = c->num_values, .n_num = n,
		.cat_keys = c->cat_keys, .cat_values = c->cat_values, .n_cat = nc,
		.crosses = c->crosses, .n_crosses = spec->n_crosses,
	};
	return ls_ftrl_example_build_resolved(&c->x, fm, &in, c->num_dense);
}

static int build_example(ls_scorer *sc, const model *m, const ls_lead *lead,
			 int64_t T)
{
	return ls_example_build(&sc->ex, m->spec, m->local, lead, T);
}

void ls_scorer_reload(ls_scorer *sc, const ls_scorer_settings *s)
{
	size_t n = s->n_models;
	const ls_model_spec *specs = s->models;
	if (n != sc->n_models)
		return;
	for (size_t i = 0; i < n; i++)
		if (strcmp(specs[i].name, sc->m[i].spec->name) != 0)
			return;
	for (size_t i = 0; i < n; i++)
		sc->specs[i] = specs[i];
}

/* ------------------------------------------------------------ snapshot */

ls_scorer_snapshot *ls_scorer_snapshot_new(const ls_scorer *sc)
{
	ls_scorer_snapshot *s = calloc(1, sizeof *s);
	if (s == NULL)
		return NULL;
	for (size_t i = 0; i < sc->n_models; i++) {
		s->m[i].spec = *sc->m[i].spec;
		ls_scorer_stats(sc, i, &s->m[i].stats);
		s->m[i].model = ls_ftrl_clone(sc->m[i].local);
		s->n = i + 1;
		if (s->m[i].model == NULL) {
			ls_scorer_snapshot_free(s);
			return NULL;
		}
	}
	return s;
}

void ls_scorer_snapshot_free(ls_scorer_snapshot *s)
{
	if (s == NULL)
		return;
	for (size_t i = 0; i < s->n; i++)
		ls_ftrl_free(s->m[i].model);
	free(s);
}

/* ------------------------------------------------------------ labels */

static int learn(ls_scorer *sc, model *m, const ls_lead *lead, int64_t T,
		 int label, char *err, size_t errlen)
{
	if (build_example(sc, m, lead, T) != 0) {
		ls_set_err(err, errlen, "model %s: cannot build example", m->spec->name);
		return -1;
	}
	double p;
	/* the prediction judged is the one the model would have published:
	 * shrunk as the model stood before learning this label */
	uint64_t pos = ls_ftrl_positives(m->local), neg = ls_ftrl_negatives(m->local);
	double w0 = ls_scorer_bias(m->local);
	int rc = ls_ftrl_learn(m->local, &sc->ex.x, label, &p);
	if (rc != 0) {
		ls_set_err(err, errlen, "model %s: learn: %s", m->spec->name,
			   ls_ftrl_result_str(rc));
		return -1;
	}
	if (m->spec->shrink_young)
		p = ls_score_shrink(p, w0, pos, neg, m->spec->maturity);
	if (m->n_pend == m->cap_pend) {
		size_t cap = m->cap_pend ? m->cap_pend * 2 : 64;
		ls_mlog_pair *np = realloc(m->pend, cap * sizeof *np);
		if (np == NULL) {
			ls_set_err(err, errlen, "out of memory");
			return -1;
		}
		m->pend = np;
		m->cap_pend = cap;
	}
	m->pend[m->n_pend++] = (ls_mlog_pair){ p, (uint8_t)label };
	m->learned = true;
	return 0;
}

/* The timeout negative of model m when due at now_ts: 1 learned, 0 not
 * due, -1 error. */
static int expire_one(ls_scorer *sc, model *m, const ls_lead *lead,
		      const ls_scorestate *s, ls_scorestate_model *r, int64_t now_ts,
		      char *err, size_t errlen)
{
	int64_t timeout = m->spec->label_timeout_ms;
	int64_t wm = ls_lead_watermark(lead);
	if (wm < 0 || !ls_scorestate_timeout_due(s, r, now_ts, timeout))
		return 0;
	/* the features as they stood at the deadline */
	int64_t deadline = s->first_ts + timeout;
	if (learn(sc, m, lead, deadline > wm ? deadline : wm, 0, err, errlen) != 0)
		return -1;
	r->label = LS_LABEL_TIMEOUT;
	m->timeouts++;
	return 1;
}

int ls_scorer_expire(ls_scorer *sc, ls_lead *lead, int64_t now_ts,
		     bool *changed, char *err, size_t errlen)
{
	if (sc->n_models == 0)
		return 0;
	ls_scorestate s;
	if (state_load(lead, &s, err, errlen) != 0)
		return -1;
	bool dirty = false;
	for (size_t i = 0; i < sc->n_models; i++) {
		model *m = &sc->m[i];
		ls_scorestate_model *r = ls_scorestate_get(&s, m->key, false);
		if (r == NULL)
			continue;
		int rc = expire_one(sc, m, lead, &s, r, now_ts, err, errlen);
		if (rc < 0)
			return -1;
		dirty |= rc > 0;
	}
	return state_commit(sc, lead, &s, dirty, changed, err, errlen);
}

int64_t ls_scorer_timeout_ms(const ls_scorer *sc, size_t i)
{
	return sc->m[i].spec->label_timeout_ms;
}

int ls_scorer_due_key(const ls_scorer *sc, size_t i, int32_t partition,
		      char *buf, size_t cap)
{
	return ls_keys_due(buf, cap, ls_store_key_prefix(sc->store), sc->m[i].spec->name,
			   partition) < 0
		       ? -1
		       : 0;
}

bool ls_scorer_is_label(const ls_scorer *sc, const ls_lead *lead,
			const ls_event *ev)
{
	ls_scorestate s;
	if (ev->source != LS_SOURCE_OUTCOME || sc->n_models == 0 ||
	    state_load(lead, &s, NULL, 0) != 0)
		return false;
	for (size_t i = 0; i < sc->n_models; i++) {
		const ls_model_spec *spec = sc->m[i].spec;
		ls_label_state obs = ls_scorestate_label_of(spec->positive_mask,
							   spec->negative_mask,
							   (int)ev->u.outcome.outcome);
		const ls_scorestate_model *r = ls_scorestate_get(&s, sc->m[i].key, false);
		/* a copy: accepting marks the label learned */
		ls_scorestate_model copy = { 0 };
		if (r != NULL)
			copy = *r;
		if (obs != LS_LABEL_NONE && ls_scorestate_accept_label(&copy, obs))
			return true;
	}
	return false;
}

bool ls_scorer_settled(const ls_scorer *sc, const ls_lead *lead)
{
	ls_scorestate s;
	if (sc->n_models == 0 || state_load(lead, &s, NULL, 0) != 0)
		return false;
	for (size_t i = 0; i < sc->n_models; i++) {
		const ls_scorestate_model *r = ls_scorestate_get(&s, sc->m[i].key, false);
		if (r == NULL ||
		    (r->label != LS_LABEL_POSITIVE && r->label != LS_LABEL_NEGATIVE))
			return false;
	}
	return true;
}

bool ls_scorer_due(const ls_scorer *sc, const ls_lead *lead, size_t i,
		   int64_t *deadline)
{
	const model *m = &sc->m[i];
	if (m->spec->label_timeout_ms <= 0)
		return false;
	ls_scorestate s;
	if (state_load(lead, &s, NULL, 0) != 0 || s.first_ts < 0)
		return false;
	ls_scorestate_model *r = ls_scorestate_get(&s, m->key, false);
	if (r != NULL && r->label != LS_LABEL_NONE)
		return false;
	if (s.first_ts > INT64_MAX - m->spec->label_timeout_ms)
		return false;
	*deadline = s.first_ts + m->spec->label_timeout_ms;
	return true;
}

int ls_scorer_before_apply(ls_scorer *sc, ls_lead *lead, const ls_event *ev,
			   bool *changed, char *err, size_t errlen)
{
	if (sc->n_models == 0)
		return 0;
	ls_scorestate s;
	if (state_load(lead, &s, err, errlen) != 0)
		return -1;
	bool dirty = false;
	if (s.first_ts < 0 || ev->ts < s.first_ts) {
		s.first_ts = ev->ts;
		dirty = true;
	}
	int64_t wm = ls_lead_watermark(lead);
	for (size_t i = 0; i < sc->n_models; i++) {
		model *m = &sc->m[i];
		ls_scorestate_model *r = ls_scorestate_get(&s, m->key, true);
		if (r == NULL)
			continue; /* more records than models: cannot happen after retain */
		int rc = expire_one(sc, m, lead, &s, r, ev->ts, err, errlen);
		if (rc < 0)
			return -1;
		dirty |= rc > 0;
		if (ev->source != LS_SOURCE_OUTCOME)
			continue;
		ls_label_state obs = ls_scorestate_label_of(m->spec->positive_mask,
							   m->spec->negative_mask,
							   (int)ev->u.outcome.outcome);
		if (obs == LS_LABEL_NONE || !ls_scorestate_accept_label(r, obs))
			continue;
		/* before the label: the lead as it stands, at the label's time
		 * (windows age to it), the outcome itself not applied */
		if (wm < 0) {
			/* a label on a lead we know nothing of teaches only the
			 * bias; still one example, so learn it */
			wm = ev->ts;
		}
		if (learn(sc, m, lead, ev->ts > wm ? ev->ts : wm,
			  obs == LS_LABEL_POSITIVE ? 1 : 0, err, errlen) != 0)
			return -1;
		dirty = true;
	}
	return state_commit(sc, lead, &s, dirty, changed, err, errlen);
}

/* ------------------------------------------------------------ scores */

static int cmp_factor(const void *a, const void *b)
{
	double x = fabs(((const ls_factor *)a)->contribution);
	double y = fabs(((const ls_factor *)b)->contribution);
	if (x != y)
		return x > y ? -1 : 1;
	return strcmp(((const ls_factor *)a)->name, ((const ls_factor *)b)->name);
}

/* A ScoreChange that can never be produced: count it, say so (not too
 * often), and go on. Returns 1 (skipped). */
static int skip(ls_scorer *sc, const model *m, const char *lead_id, const char *why)
{
	sc->skipped++;
	uint64_t left_out = 0;
	if (ls_log_limit_allow(&sc->skip_log, ls_clock_mono_ms(), 10, &left_out)) {
		char q[300];
		ls_log(LS_LOG_WARN, "scorer", "score change cannot be produced, skipped",
		       "model=%s lead_id_bytes=%zu error=%s skipped=%" PRIu64, m->spec->name,
		       strlen(lead_id), ls_log_quote(why, q, sizeof q), sc->skipped);
	}
	return 1;
}

/* 0 queued, 1 skipped for good, -1 failed (transient: replay the batch). */
static int publish(ls_scorer *sc, model *m, const char *lead_id,
		   const ls_scorestate_model *prev, double score, int tier,
		   uint64_t version, int64_t ts, const ls_event *cause, char *err,
		   size_t errlen)
{
	ls_ftrl_factor pos[LS_FTRL_TOP], neg[LS_FTRL_TOP];
	size_t npos = 0, nneg = 0;
	if (ls_ftrl_explain(m->local, &sc->ex.x, pos, &npos, neg, &nneg) != 0)
		npos = nneg = 0;
	ls_factor f[2 * LS_FTRL_TOP];
	size_t nf = 0;
	for (size_t i = 0; i < npos; i++)
		f[nf++] = (ls_factor){ pos[i].name, pos[i].contribution };
	for (size_t i = 0; i < nneg; i++)
		f[nf++] = (ls_factor){ neg[i].name, neg[i].contribution };
	qsort(f, nf, sizeof *f, cmp_factor);
	ls_score_change ch = {
		.lead_id = lead_id,
		.model = m->spec->name,
		.score = score,
		.has_previous_score = !isnan(prev->score),
		.previous_score = isnan(prev->score) ? 0.0 : prev->score,
		.tier = ls_tiers_name(&m->spec->tiers, tier),
		.previous_tier = prev->tier >= 0 ? ls_tiers_name(&m->spec->tiers, prev->tier)
						 : NULL,
		.version = (int64_t)version,
		.ts = ts,
		.cause_event_id = cause != NULL ? cause->event_id : NULL,
		.n_factors = nf,
		.factors = f,
	};
	ls_buf_reset(&sc->out);
	char why[256];
	if (ls_codec_encode_score_change(sc->codec, &ch, -1, &sc->out, why,
					 sizeof why) != 0) {
		/* out of memory may pass; anything else is this record's for good */
		if (strstr(why, "out of memory") != NULL) {
			ls_set_err(err, errlen, "encode ScoreChange: %s", why);
			return -1;
		}
		return skip(sc, m, lead_id, why);
	}
	rd_kafka_resp_err_t e;
	int64_t full_since = 0;
	for (;;) {
		e = rd_kafka_producev(
			sc->producer, RD_KAFKA_V_TOPIC(sc->scores_topic),
			RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
			RD_KAFKA_V_KEY(lead_id, strlen(lead_id)),
			RD_KAFKA_V_VALUE(sc->out.data, sc->out.len),
			RD_KAFKA_V_OPAQUE(sc->produce_opaque), RD_KAFKA_V_END);
		if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL)
			break;
		/* transient: deliveries drain the queue */
		int64_t now = ls_clock_mono_ms();
		if (full_since == 0)
			full_since = now;
		if (now - full_since >= 30000)
			break;
		rd_kafka_poll(sc->producer, 100);
	}
	if (e == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE)
		return skip(sc, m, lead_id, rd_kafka_err2name(e));
	if (e != RD_KAFKA_RESP_ERR_NO_ERROR) {
		ls_set_err(err, errlen, "cannot queue ScoreChange: %s",
			   rd_kafka_err2name(e));
		return -1;
	}
	m->published++;
	if (sc->on_publish != NULL && cause != NULL) {
		sc->on_publish(sc->on_publish_ud,
			       (double)(ls_clock_wall_ms() - cause->ts) / 1000.0);
	}
	return 0;
}

void ls_scorer_set_epoch(ls_scorer *sc, uint64_t epoch) { sc->epoch = epoch; }

void ls_scorer_set_publish_observer(ls_scorer *sc, void (*fn)(void *ud, double seconds),
				    void *ud)
{
	sc->on_publish = fn;
	sc->on_publish_ud = ud;
}

int ls_scorer_score(ls_scorer *sc, const char *lead_id, ls_lead *lead,
		    int64_t T, const ls_event *cause, bool *changed,
		    size_t *produced, char *err, size_t errlen)
{
	if (sc->n_models == 0)
		return 0;
	ls_scorestate s;
	if (state_load(lead, &s, err, errlen) != 0)
		return -1;
	int64_t wm = ls_lead_watermark(lead);
	if (T != LS_LEAD_AT_WATERMARK && T < wm)
		T = LS_LEAD_AT_WATERMARK; /* never score a lead in its past */
	int64_t at = T == LS_LEAD_AT_WATERMARK ? (wm < 0 ? 0 : wm) : T;
	bool dirty = false;
	for (size_t i = 0; i < sc->n_models; i++) {
		model *m = &sc->m[i];
		ls_scorestate_model *r = ls_scorestate_get(&s, m->key, true);
		if (r == NULL)
			continue;
		if (build_example(sc, m, lead, T) != 0) {
			ls_set_err(err, errlen, "model %s: cannot build example",
				   m->spec->name);
			return -1;
		}
		double p;
		if (ls_ftrl_predict(m->local, &sc->ex.x, &p) != 0) {
			ls_set_err(err, errlen, "model %s: predict failed", m->spec->name);
			return -1;
		}
		p = ls_scorer_published(m->local, m->spec, p);
		m->scored++;
		/* A stored tier is an index into the tiers as they were: one
		 * past a reload's shorter list is no tier at all. */
		int prev_tier = r->tier < (int)m->spec->tiers.n ? r->tier : -1;
		int tier = ls_tiers_assign(&m->spec->tiers, prev_tier, p);
		if (tier < 0 ||
		    !ls_score_should_publish(r->score, prev_tier, p, tier, m->spec->min_delta))
			continue;
		uint64_t version = ls_scorestate_next_version(r->version, sc->epoch);
		if (!m->spec->shadow) {
			int prc = publish(sc, m, lead_id, r, p, tier, version, at, cause,
					  err, errlen);
			if (prc < 0)
				return -1;
			if (prc == 0)
				(*produced)++;
		}
		r->score = p;
		r->tier = (int8_t)tier;
		r->version = version;
		dirty = true;
	}
	if (dirty)
		ls_scorestate_retain(&s, sc->keys, sc->n_models);
	return state_commit(sc, lead, &s, dirty, changed, err, errlen);
}

/* ----------------------------------------------------------- commits */

int ls_scorer_commit_appends(ls_scorer *sc, const ls_store_append **a,
			     size_t *n, char *err, size_t errlen)
{
	size_t k = 0;
	for (size_t i = 0; i < sc->n_models; i++) {
		model *m = &sc->m[i];
		if (!m->learned)
			continue;
		int rc = LS_FTRL_ERR_NOMEM;
		if (m->delta == NULL)
			m->delta = ls_ftrl_clone(m->local);
		if (m->delta != NULL)
			rc = ls_ftrl_delta_into(m->delta, m->local, m->committed);
		if (rc == 0)
			rc = ls_ftrl_encode(m->delta, &m->delta_buf);
		if (rc != 0) {
			ls_set_err(err, errlen, "model %s: delta: %s", m->spec->name,
				   ls_ftrl_result_str(rc));
			return -1;
		}
		rc = ls_mlog_encode(m->pend, m->n_pend, m->delta_buf.data,
				    m->delta_buf.len, &m->entry);
		if (rc != 0) {
			ls_set_err(err, errlen, "model %s: log entry: %s", m->spec->name,
				   ls_mlog_result_str(rc));
			return -1;
		}
		sc->appends[k++] = (ls_store_append){ .key = m->k_log,
						      .data = m->entry.data,
						      .len = m->entry.len };
	}
	*a = sc->appends;
	*n = k;
	return 0;
}

int ls_scorer_stage(ls_scorer *sc)
{
	for (size_t i = 0; i < sc->n_models; i++) {
		model *m = &sc->m[i];
		if (!m->learned)
			continue;
		if (m->staged == NULL && (m->staged = ls_ftrl_clone(m->local)) == NULL)
			return -1;
	}
	for (size_t i = 0; i < sc->n_models; i++) {
		model *m = &sc->m[i];
		if (!m->learned)
			continue;
		/* same layout by construction: cannot fail */
		ls_ftrl_copy(m->staged, m->local);
		ls_mlog_pair *p = m->staged_pend;
		size_t cap = m->cap_staged;
		m->staged_pend = m->pend;
		m->cap_staged = m->cap_pend;
		m->n_staged = m->n_pend;
		m->pend = p;
		m->cap_pend = cap;
		m->n_pend = 0;
		m->is_staged = true;
		m->learned = false;
	}
	sc->staged = true;
	return 0;
}

static void committed_pairs(model *m, const ls_mlog_pair *p, size_t n)
{
	for (size_t j = 0; j < n; j++)
		ls_eval_add(m->eval, p[j].p, p[j].label != 0);
}

void ls_scorer_committed(ls_scorer *sc)
{
	for (size_t i = 0; i < sc->n_models; i++) {
		model *m = &sc->m[i];
		if (m->is_staged) {
			ls_ftrl *c = m->committed;
			m->committed = m->staged;
			m->staged = c;
			committed_pairs(m, m->staged_pend, m->n_staged);
			m->n_staged = 0;
			m->is_staged = false;
			continue;
		}
		if (!m->learned || sc->staged)
			continue; /* learned after the staged commit: the next one's */
		/* same layout by construction: cannot fail */
		ls_ftrl_copy(m->committed, m->local);
		committed_pairs(m, m->pend, m->n_pend);
		m->n_pend = 0;
		m->learned = false;
	}
	sc->staged = false;
}

void ls_scorer_discard(ls_scorer *sc)
{
	for (size_t i = 0; i < sc->n_models; i++) {
		model *m = &sc->m[i];
		m->n_pend = 0;
		m->n_staged = 0;
		if (!m->learned && !m->is_staged)
			continue;
		ls_ftrl_copy(m->local, m->committed);
		m->learned = false;
		m->is_staged = false;
	}
	sc->staged = false;
}

void ls_scorer_set_produce_opaque(ls_scorer *sc, void *opaque) { sc->produce_opaque = opaque; }

/* -------------------------------------------------------- checkpoint */

int ls_scorer_fold(const ls_store_model_state *st, const ls_ftrl *fresh,
		   size_t eval_window, ls_ftrl **out_model, ls_eval **out_eval,
		   size_t *skipped, char *err, size_t errlen)
{
	*out_model = NULL;
	*out_eval = NULL;
	*skipped = 0;
	ls_ftrl *fm = NULL;
	ls_eval *ev = NULL;
	char why[256];
	if (st->model.data != NULL) {
		if (ls_ftrl_decode(st->model.data, st->model.len, &fm, why,
				   sizeof why) != 0) {
			ls_set_err(err, errlen, "stored model: %s", why);
			return -1;
		}
		if (ls_ftrl_layout(fm) != ls_ftrl_layout(fresh)) {
			ls_set_err(err, errlen, "stored model has another layout "
				   "(features, numeric maps, buckets or parameters changed)");
			ls_ftrl_free(fm);
			return LS_SCORER_OTHER_LAYOUT;
		}
	} else if ((fm = ls_ftrl_clone(fresh)) == NULL) {
		ls_set_err(err, errlen, "out of memory");
		return -1;
	}
	if (st->eval.data != NULL) {
		if (ls_eval_decode(st->eval.data, st->eval.len, eval_window, &ev, why,
				   sizeof why) != 0) {
			ls_set_err(err, errlen, "stored evaluation window: %s", why);
			ls_ftrl_free(fm);
			return -1;
		}
	} else if ((ev = ls_eval_new(eval_window)) == NULL) {
		ls_set_err(err, errlen, "out of memory");
		ls_ftrl_free(fm);
		return -1;
	}
	for (size_t i = 0; i < st->n_log; i++) {
		ls_mlog_entry e;
		ls_ftrl *d = NULL;
		if (ls_mlog_decode(st->log[i].data, st->log[i].len, &e, why,
				   sizeof why) != 0 ||
		    (e.delta_len > 0 &&
		     ls_ftrl_decode(e.delta, e.delta_len, &d, why, sizeof why) != 0)) {
			ls_mlog_entry_free(&e);
			ls_warn(COMPONENT, "skipping unreadable learning-log entry",
				"index=%zu error=%s", i, why);
			(*skipped)++;
			continue;
		}
		if (d != NULL && ls_ftrl_apply_delta(fm, d) != 0) {
			(*skipped)++;
			ls_ftrl_free(d);
			ls_mlog_entry_free(&e);
			continue;
		}
		for (size_t j = 0; j < e.n_pairs; j++)
			ls_eval_add(ev, e.pairs[j].p, e.pairs[j].label != 0);
		ls_ftrl_free(d);
		ls_mlog_entry_free(&e);
	}
	*out_model = fm;
	*out_eval = ev;
	return 0;
}

/*
 * The stored model was learned over another layout: the configuration's
 * features, numeric maps, buckets or FTRL parameters changed. It can
 * never be merged into, and keeping it would leave every checkpoint
 * failing while the learning log grows with deltas nobody folds, so the
 * running configuration wins: the shared model starts afresh from a
 * fresh model plus the log entries of this layout (what every instance of
 * this configuration committed since the change; entries of the old
 * layout are skipped and dropped by the write), with a fresh evaluation
 * window (the stored one judged the other model). 0 or -1 with a reason.
 */
static int fold_afresh(ls_scorer *sc, model *m, const ls_store_model_state *st,
		       ls_ftrl **folded, ls_eval **ev, char *err, size_t errlen)
{
	ls_ftrl *fresh = fresh_model(m->spec, sc->set, err, errlen);
	if (fresh == NULL)
		return -1;
	ls_store_model_state s = *st;
	s.model.data = NULL;
	s.model.len = 0;
	s.eval.data = NULL;
	s.eval.len = 0;
	size_t skipped;
	int rc = ls_scorer_fold(&s, fresh, (size_t)m->spec->eval_window, folded, ev,
				&skipped, err, errlen);
	ls_ftrl_free(fresh);
	if (rc == 0)
		ls_warn(COMPONENT, "stored model has another layout (features, numeric "
			"maps, buckets or FTRL parameters changed): it starts afresh",
			"model=%s log_entries_dropped=%zu", m->spec->name, skipped);
	return rc;
}

static int checkpoint_model(ls_scorer *sc, model *m, char *err, size_t errlen)
{
	ls_store_model_keys k = { m->k_model, m->k_eval, m->k_log };
	ls_buf mb = { 0 };
	uint8_t *eb = NULL;
	int rc = -1;
	for (int attempt = 0; attempt < WATCH_ATTEMPTS; attempt++) {
		ls_store_model_state st;
		if (ls_store_model_read(sc->store, &k, true, &st, err, errlen) != 0)
			goto out;
		ls_ftrl *folded;
		ls_eval *ev;
		size_t skipped;
		char why[300];
		int frc = ls_scorer_fold(&st, m->committed, (size_t)m->spec->eval_window,
					 &folded, &ev, &skipped, why, sizeof why);
		if (frc == LS_SCORER_OTHER_LAYOUT)
			frc = fold_afresh(sc, m, &st, &folded, &ev, why, sizeof why);
		if (frc != 0) {
			/* a model we cannot read is not overwritten silently:
			 * keep learning locally and say so at every checkpoint */
			ls_store_unwatch(sc->store);
			ls_set_err(err, errlen, "model %s: %s", m->spec->name, why);
			goto out;
		}
		if (st.model.data != NULL && st.n_log == 0 &&
		    ls_ftrl_version(folded) == ls_ftrl_version(m->committed)) {
			/* nobody learned anything since we last adopted it: a
			 * rewrite would change nothing (an idle timer tick) */
			ls_ftrl_free(folded);
			ls_eval_free(ev);
			ls_store_unwatch(sc->store);
			rc = 0;
			goto out;
		}
		if (st.model.data == NULL && st.n_log == 0 && ls_ftrl_version(m->committed) > 0) {
			/* nothing stored but we have a model: keys were deleted
			 * or expired; write ours back rather than regress */
			ls_ftrl_free(folded);
			folded = ls_ftrl_clone(m->committed);
		}
		if (folded == NULL || ls_ftrl_encode(folded, &mb) != 0) {
			ls_ftrl_free(folded);
			ls_eval_free(ev);
			ls_store_unwatch(sc->store);
			ls_set_err(err, errlen, "out of memory");
			goto out;
		}
		size_t elen = ls_eval_encoded_size(ev);
		free(eb);
		eb = malloc(elen ? elen : 1);
		if (eb == NULL || ls_eval_encode(ev, eb, elen, &elen) != 0) {
			ls_ftrl_free(folded);
			ls_eval_free(ev);
			ls_store_unwatch(sc->store);
			ls_set_err(err, errlen, "out of memory");
			goto out;
		}
		int w = ls_store_model_write(sc->store, &k, mb.data, mb.len, eb, elen,
					     st.n_log, err, errlen);
		if (w == 1) {
			ls_ftrl *c = ls_ftrl_clone(folded);
			/*
			 * What was learned since the last commit stays local,
			 * on top of the shared model: local = folded + (local
			 * - committed), the same operations a commit of it and
			 * a fold would have done, so a checkpoint need not
			 * wait for a commit to land first.
			 */
			bool keep = m->learned;
			if (keep && m->delta == NULL)
				m->delta = ls_ftrl_clone(m->local);
			if (c == NULL || (keep && (m->delta == NULL ||
						   ls_ftrl_delta_into(m->delta, m->local,
								      m->committed) != 0 ||
						   ls_ftrl_apply_delta(folded, m->delta) != 0))) {
				ls_ftrl_free(c);
				ls_ftrl_free(folded);
				ls_eval_free(ev);
				ls_set_err(err, errlen, "out of memory");
				goto out;
			}
			ls_ftrl_free(m->local);
			ls_ftrl_free(m->committed);
			ls_eval_free(m->eval);
			m->local = folded;
			m->committed = c;
			m->eval = ev;
			sc->adoptions++;
			rc = 0;
			goto out;
		}
		ls_ftrl_free(folded);
		ls_eval_free(ev);
		if (w < 0)
			goto out;
		/* another instance checkpointed between our read and write */
	}
	ls_set_err(err, errlen, "model %s: checkpoint lost the race %d times",
		   m->spec->name, WATCH_ATTEMPTS);
out:
	ls_buf_free(&mb);
	free(eb);
	return rc;
}

int ls_scorer_checkpoint(ls_scorer *sc, char *err, size_t errlen)
{
	int rc = 0;
	for (size_t i = 0; i < sc->n_models; i++) {
		model *m = &sc->m[i];
		if (m->is_staged) {
			ls_set_err(err, errlen, "checkpoint with a commit on its way");
			return -1;
		}
		if (checkpoint_model(sc, m, err, errlen) != 0) {
			rc = -1;
			continue;
		}
		ls_scorer_model_stats s;
		ls_scorer_stats(sc, i, &s);
		ls_log(LS_LOG_DEBUG, COMPONENT, "model checkpointed",
		       "model=%s version=%" PRIu64 " positives=%" PRIu64
		       " negatives=%" PRIu64 " eval_labels=%" PRIu64
		       " auc=%.4f logloss=%.4f ece=%.4f",
		       s.name, s.version, s.positives, s.negatives, s.eval_labels,
		       s.auc, s.logloss, s.ece);
	}
	return rc;
}

double ls_scorer_bias(const ls_ftrl *fm)
{
	double z, n, w = 0;
	(void)ls_ftrl_coord(fm, 0, &z, &n, &w);
	return w;
}

double ls_scorer_published(const ls_ftrl *fm, const ls_model_spec *spec, double p)
{
	if (!spec->shrink_young)
		return p;
	return ls_score_shrink(p, ls_scorer_bias(fm), ls_ftrl_positives(fm),
			       ls_ftrl_negatives(fm), spec->maturity);
}

uint64_t ls_scorer_adoptions(const ls_scorer *sc)
{
	return sc->adoptions;
}

uint64_t ls_scorer_skipped(const ls_scorer *sc)
{
	return sc->skipped;
}

size_t ls_scorer_n_models(const ls_scorer *sc) { return sc->n_models; }

void ls_scorer_stats(const ls_scorer *sc, size_t i, ls_scorer_model_stats *out)
{
	const model *m = &sc->m[i];
	*out = (ls_scorer_model_stats){
		.name = m->spec->name,
		.version = ls_ftrl_version(m->local),
		.positives = ls_ftrl_positives(m->local),
		.negatives = ls_ftrl_negatives(m->local),
		.timeouts = m->timeouts,
		.scored = m->scored,
		.published = m->published,
		.eval_labels = ls_eval_count(m->eval),
		.auc = ls_eval_auc(m->eval),
		.logloss = ls_eval_logloss(m->eval),
		.ece = ls_eval_ece(m->eval),
	};
}
