/*
 * fuzz_common.h - what the libFuzzer harnesses in tests/fuzz share.
 *
 * FUZZ_CHECK is the harnesses' oracle: a property the code under test
 * promises (a decoded value re-encodes, an encoding is canonical) that
 * does not hold is reported like a crash, so libFuzzer saves the input.
 * It is for the harnesses only; the code under test never asserts on
 * input.
 */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(cond, ...)                                                  \
	do {                                                                   \
		if (!(cond)) {                                                 \
			fprintf(stderr, "%s:%d: property failed: %s: ",        \
				__FILE__, __LINE__, #cond);                    \
			fprintf(stderr, __VA_ARGS__);                          \
			fputc('\n', stderr);                                   \
			abort();                                               \
		}                                                              \
	} while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
