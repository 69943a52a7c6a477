/*
 * fuzz_checkpoint - the decoders of the model state kept in Redis: the
 * FTRL checkpoint (models/ls_ftrl.c), a learning-log entry
 * (models/ls_mlog.c), the evaluation window (models/ls_eval.c) and the
 * per-lead scoring state (models/ls_scorestate.c).
 *
 * Input: byte 0 says what the rest is. Bits 0-1: 0 FTRL, 1 mlog, 2 eval,
 * 3 leadscore. Bit 2: replace the trailing 8 bytes by the XXH3 checksum
 * of the bytes before them (FTRL, mlog and eval end with one), so that
 * mutations reach the field checks behind the checksum instead of all
 * stopping at it. Bits 3-4: the eval window's capacity (0: the blob's, 1,
 * 100, 10,000), as a reconfigured window decodes an older blob.
 *
 * Properties: a blob that decodes re-encodes to exactly the same bytes
 * (every one of these encodings is documented canonical; for eval only
 * when the capacity is kept), and a decoded model can predict, explain,
 * learn and merge without error.
 */
#include <string.h>

#include <xxhash.h>

#include "fuzz_common.h"
#include "ls_eval.h"
#include "ls_ftrl.h"
#include "ls_scorestate.h"
#include "ls_mlog.h"

static void same(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen,
		 const char *what)
{
	FUZZ_CHECK(alen == blen && (alen == 0 || memcmp(a, b, alen) == 0),
		   "%s: decode then encode changed %zu bytes into %zu", what, alen, blen);
}

static void use_model(ls_ftrl *m)
{
	if (ls_ftrl_is_delta(m)) {
		/* fold it into a fresh model of its layout, as a checkpoint
		 * folds the learning log into the shared model */
		size_t nd = ls_ftrl_n_dense(m);
		const char **names = malloc((nd + 1) * sizeof *names);
		FUZZ_CHECK(names != NULL, "out of memory");
		for (size_t j = 0; j < nd; j++)
			names[j] = ls_ftrl_dense_name(m, j);
		char err[256];
		ls_ftrl *shared = ls_ftrl_new(ls_ftrl_get_params(m), names, nd, err, sizeof err);
		FUZZ_CHECK(shared != NULL, "a decoded delta's layout is refused: %s", err);
		(void)ls_ftrl_apply_delta(shared, m);
		ls_ftrl_free(shared);
		free(names);
		return;
	}
	ls_ftrl_example x;
	ls_ftrl_example_init(&x);
	if (ls_ftrl_example_add(&x, m, "industry=saas", 1.0) == 0 &&
	    ls_ftrl_example_add(&x, m, "employees", 3.5) == 0) {
		double p;
		FUZZ_CHECK(ls_ftrl_predict(m, &x, &p) == 0, "predict");
		FUZZ_CHECK(p >= 0.0 && p <= 1.0, "p = %g", p);
		ls_ftrl_factor pos[LS_FTRL_TOP], neg[LS_FTRL_TOP];
		size_t np, nn;
		FUZZ_CHECK(ls_ftrl_explain(m, &x, pos, &np, neg, &nn) == 0, "explain");
		ls_ftrl *base = ls_ftrl_clone(m);
		FUZZ_CHECK(base != NULL, "clone");
		(void)ls_ftrl_learn(m, &x, 1, NULL);
		ls_ftrl *d = NULL;
		if (ls_ftrl_delta(m, base, &d) == 0) {
			(void)ls_ftrl_apply_delta(base, d);
			ls_ftrl_free(d);
		}
		ls_ftrl_free(base);
	}
	ls_ftrl_example_free(&x);
}

static void ftrl(const uint8_t *p, size_t len)
{
	ls_ftrl *m = NULL;
	char err[256];
	if (ls_ftrl_decode(p, len, &m, err, sizeof err) != 0) {
		FUZZ_CHECK(m == NULL, "a failed decode left a model");
		return;
	}
	ls_buf b = { 0 };
	FUZZ_CHECK(ls_ftrl_encode(m, &b) == 0, "a decoded model does not encode");
	same(p, len, b.data, b.len, "ftrl");
	ls_buf_free(&b);
	use_model(m);
	ls_ftrl_free(m);
}

static void mlog(const uint8_t *p, size_t len)
{
	ls_mlog_entry e;
	char err[256];
	if (ls_mlog_decode(p, len, &e, err, sizeof err) != 0)
		return;
	ls_buf b = { 0 };
	FUZZ_CHECK(ls_mlog_encode(e.pairs, e.n_pairs, e.delta, e.delta_len, &b) == 0,
		   "a decoded entry does not encode");
	same(p, len, b.data, b.len, "mlog");
	ls_buf_free(&b);
	if (e.delta_len > 0) /* as the checkpoint folds it */
		ftrl(e.delta, e.delta_len);
	ls_mlog_entry_free(&e);
}

static void eval(const uint8_t *p, size_t len, size_t capacity)
{
	ls_eval *ev = NULL;
	char err[256];
	if (ls_eval_decode(p, len, capacity, &ev, err, sizeof err) != 0) {
		FUZZ_CHECK(ev == NULL, "a failed decode left a window");
		return;
	}
	(void)ls_eval_auc(ev);
	(void)ls_eval_logloss(ev);
	(void)ls_eval_ece(ev);
	size_t need = ls_eval_encoded_size(ev), n = 0;
	uint8_t *b = malloc(need + 1);
	FUZZ_CHECK(b != NULL, "out of memory");
	FUZZ_CHECK(ls_eval_encode(ev, b, need, &n) == 0 && n == need,
		   "a decoded window does not encode in its size");
	if (capacity == 0)
		same(p, len, b, n, "eval");
	free(b);
	FUZZ_CHECK(ls_eval_add(ev, 0.5, true) == 0, "add");
	ls_eval_free(ev);
}

static void leadscore(const uint8_t *p, size_t len)
{
	ls_scorestate s;
	char err[256];
	if (ls_scorestate_decode(p, len, &s, err, sizeof err) != 0)
		return;
	uint8_t b[LS_SCORESTATE_ENCODED_MAX];
	size_t n = 0;
	FUZZ_CHECK(ls_scorestate_encode(&s, b, sizeof b, &n) == 0,
		   "a decoded state does not encode");
	same(p, len, b, n, "leadscore");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0)
		return 0;
	unsigned sel = data[0];
	size_t len = size - 1;
	/* an exact-size copy: a read past the end is an ASan report */
	uint8_t *p = malloc(len + (len == 0));
	FUZZ_CHECK(p != NULL, "out of memory");
	memcpy(p, data + 1, len);
	if ((sel & 4) && len >= 8) {
		uint64_t h = XXH3_64bits(p, len - 8);
		for (int i = 0; i < 8; i++)
			p[len - 8 + (size_t)i] = (uint8_t)(h >> (8 * i));
	}
	static const size_t caps[4] = { 0, 1, 100, 10000 };
	switch (sel & 3) {
	case 0: ftrl(p, len); break;
	case 1: mlog(p, len); break;
	case 2: eval(p, len, caps[(sel >> 3) & 3]); break;
	default: leadscore(p, len); break;
	}
	free(p);
	return 0;
}
