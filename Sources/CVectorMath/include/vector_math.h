#ifndef SWITCHYARD_VECTOR_MATH_H
#define SWITCHYARD_VECTOR_MATH_H

/// The dot product of two float vectors of `count` elements: with AVX2 and FMA where the CPU has
/// them (chosen once, when the program loads), otherwise a loop the compiler vectorizes for the baseline.
float switchyard_dot(const float *a, const float *b, long count);

#endif
