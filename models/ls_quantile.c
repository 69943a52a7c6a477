/*
 * ls_quantile.c - SKELETON: the contract is in ls_quantile.h; the sketch
 * itself is being written (issue 15). Every call fails until then.
 */
#include "ls_quantile.h"

ls_quantile *ls_quantile_new(void) { return NULL; }
void ls_quantile_free(ls_quantile *q) { (void)q; }
ls_quantile *ls_quantile_clone(const ls_quantile *q) { (void)q; return NULL; }
int ls_quantile_copy(ls_quantile *dst, const ls_quantile *src) { (void)dst; (void)src; return LS_QUANTILE_ERR_INVALID; }
void ls_quantile_reset(ls_quantile *q) { (void)q; }
int ls_quantile_add(ls_quantile *q, double v) { (void)q; (void)v; return LS_QUANTILE_ERR_INVALID; }
uint64_t ls_quantile_count(const ls_quantile *q) { (void)q; return 0; }
int ls_quantile_value(const ls_quantile *q, double p, double *out) { (void)q; (void)p; (void)out; return LS_QUANTILE_ERR_INVALID; }
int ls_quantile_edges(const ls_quantile *q, uint32_t n, double *edges, size_t *n_edges) { (void)q; (void)n; (void)edges; *n_edges = 0; return LS_QUANTILE_ERR_INVALID; }
int ls_quantile_delta_into(ls_quantile *d, const ls_quantile *local, const ls_quantile *base) { (void)d; (void)local; (void)base; return LS_QUANTILE_ERR_INVALID; }
int ls_quantile_add_sketch(ls_quantile *q, const ls_quantile *d) { (void)q; (void)d; return LS_QUANTILE_ERR_INVALID; }
int ls_quantile_equal(const ls_quantile *a, const ls_quantile *b) { (void)a; (void)b; return 0; }
int ls_quantile_encode(const ls_quantile *q, ls_buf *out) { (void)q; (void)out; return LS_QUANTILE_ERR_INVALID; }
int ls_quantile_decode(ls_quantile *q, ls_reader *r) { (void)q; ls_reader_fail_at(r, r->pos, "sketch not implemented"); return LS_QUANTILE_ERR_INVALID; }
