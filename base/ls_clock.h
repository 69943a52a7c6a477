/*
 * ls_clock.h - the two clocks the daemon reads, in milliseconds.
 *
 * Monotonic time measures intervals (batch deadlines, backoff, metrics)
 * and never jumps; wall time is compared with event time (lag, read-time
 * decay, decision timestamps) and may. Both are thread-safe; a failing
 * clock_gettime() (it cannot fail for these clocks on Linux) reads as 0.
 * models/ never calls these: its functions take times as arguments.
 */
#ifndef LS_CLOCK_H
#define LS_CLOCK_H

#include <stdint.h>

int64_t ls_clock_mono_ms(void);
int64_t ls_clock_mono_ns(void);
int64_t ls_clock_wall_ms(void);

#endif
