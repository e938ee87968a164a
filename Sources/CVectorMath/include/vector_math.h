#ifndef SWITCHYARD_VECTOR_MATH_H
#define SWITCHYARD_VECTOR_MATH_H

/// The dot product of two float vectors of `count` elements: with AVX2 and FMA where the CPU has
/// them (chosen once, when the program loads), otherwise a loop the compiler vectorizes for the baseline.
float switchyard_dot(const float *a, const float *b, long count);

#include <stdint.h>

/// Half-precision (IEEE binary16) copies of `count` floats, for vectors at rest: half the memory a
/// search has to read.
void switchyard_to_half(const float *source, uint16_t *destination, long count);

/// The dot product of a float vector and a half-precision one.
float switchyard_dot_half(const float *a, const uint16_t *b, long count);

/// The dot product of two half-precision vectors.
float switchyard_dot_halves(const uint16_t *a, const uint16_t *b, long count);

#endif
