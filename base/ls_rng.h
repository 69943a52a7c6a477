/*
 * ls_rng.h - the one pseudo-random generator: xoshiro256** (Blackman and
 * Vigna, 2018) seeded through splitmix64 from one 64-bit seed.
 *
 * Everything that draws at random uses it: the bandit's Thompson sampling
 * and Monte Carlo propensities (Gamma and Beta samplers on top of it live
 * in ls_bandit.h), offline evaluation, and the simulator. The same seed
 * and the same calls give the same numbers bit for bit on every platform,
 * which is what makes decisions, tests and generated streams replayable.
 * Not cryptographic, and not meant to be.
 *
 * Memory: ls_rng is 48 bytes of state owned by the caller; nothing here
 * allocates. Errors: none; the functions take an r that is not NULL
 * (ls_rng_seed alone ignores NULL). Thread-safety: no global state; each
 * thread keeps its own ls_rng.
 */
#ifndef LS_RNG_H
#define LS_RNG_H

#include <stdbool.h>
#include <stdint.h>

/* xoshiro256** state plus the spare normal of the polar method. */
typedef struct ls_rng {
	uint64_t s[4];
	double spare;
	bool has_spare;
} ls_rng;

/*
 * One step of splitmix64: advance the counter *x and return its next
 * output. ls_rng_seed fills the state with four of them; a caller that
 * derives seeds (one stream per decision, say) may use it too.
 */
uint64_t ls_splitmix64(uint64_t *x);

/* Seed r from seed (any value, 0 included) through splitmix64. The
   samplers below take an r that is not NULL (they have no error path). */
void ls_rng_seed(ls_rng *r, uint64_t seed);
/* The next 64 random bits. */
uint64_t ls_rng_next(ls_rng *r);
/* Uniform in the open interval (0,1): (k + 0.5) / 2^52, k uniform in
   [0, 2^52). Never 0 or 1, so its log and 1/x are always finite. */
double ls_rng_uniform(ls_rng *r);
/* Standard normal N(0,1) (Marsaglia's polar method, the second value of
   a pair kept in r). */
double ls_rng_normal(ls_rng *r);

#endif
