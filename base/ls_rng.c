/*
 * ls_rng.c - xoshiro256** and splitmix64, see ls_rng.h. A layer of its own
 * below models/ because the bandit and the simulator must draw the same
 * streams from the same code, and the simulator is not a model.
 */
#include "ls_rng.h"

#include <math.h>
#include <stddef.h>

uint64_t ls_splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

void ls_rng_seed(ls_rng *r, uint64_t seed)
{
	if (r == NULL)
		return;
	/* splitmix64 is a bijection of its counter, so four consecutive
	   outputs are never all zero (the one state xoshiro cannot leave). */
	for (int i = 0; i < 4; i++)
		r->s[i] = ls_splitmix64(&seed);
	r->spare = 0.0;
	r->has_spare = false;
}

uint64_t ls_rng_next(ls_rng *r)
{
	uint64_t *s = r->s;
	const uint64_t result = rotl(s[1] * 5, 7) * 9;
	const uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

double ls_rng_uniform(ls_rng *r)
{
	/* 52 bits rather than 53: (k + 0.5) / 2^53 with k = 2^53 - 1 rounds
	   to 1.0, while every (k + 0.5) / 2^52 is exact and inside (0,1). */
	return ((double)(ls_rng_next(r) >> 12) + 0.5) * 0x1p-52;
}

double ls_rng_normal(ls_rng *r)
{
	if (r->has_spare) {
		r->has_spare = false;
		return r->spare;
	}
	double u, v, s;
	do {
		u = 2.0 * ls_rng_uniform(r) - 1.0;
		v = 2.0 * ls_rng_uniform(r) - 1.0;
		s = u * u + v * v;
	} while (s >= 1.0 || s == 0.0);
	double f = sqrt(-2.0 * log(s) / s);
	r->spare = v * f;
	r->has_spare = true;
	return u * f;
}
