/* ls_clock: see ls_clock.h. */
#include "ls_clock.h"

#include <time.h>

static int64_t read_ms(clockid_t id)
{
	struct timespec ts;
	if (clock_gettime(id, &ts) != 0)
		return 0;
	return (int64_t)ts.tv_sec * 1000 + (int64_t)(ts.tv_nsec / 1000000);
}

int64_t ls_clock_mono_ms(void) { return read_ms(CLOCK_MONOTONIC); }

int64_t ls_clock_mono_ns(void)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
		return 0;
	return (int64_t)ts.tv_sec * 1000000000 + (int64_t)ts.tv_nsec;
}
int64_t ls_clock_wall_ms(void) { return read_ms(CLOCK_REALTIME); }
