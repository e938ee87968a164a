#include "vector_math.h"

/// The baseline: four independent sums, which the compiler turns into SSE (x86-64) or NEON (arm64).
static float dot_portable(const float *a, const float *b, long count) {
    float sums[4] = {0, 0, 0, 0};
    long index = 0;
    for (; index + 4 <= count; index += 4) {
        sums[0] += a[index] * b[index];
        sums[1] += a[index + 1] * b[index + 1];
        sums[2] += a[index + 2] * b[index + 2];
        sums[3] += a[index + 3] * b[index + 3];
    }
    float total = (sums[0] + sums[1]) + (sums[2] + sums[3]);
    for (; index < count; index++) total += a[index] * b[index];
    return total;
}

#if defined(__x86_64__)
#include <immintrin.h>

/// Eight lanes a register, four registers in flight (a 384-dimension vector is 12 rounds).
__attribute__((target("avx2,fma")))
static float dot_avx2(const float *a, const float *b, long count) {
    __m256 sum0 = _mm256_setzero_ps(), sum1 = _mm256_setzero_ps(), sum2 = _mm256_setzero_ps(), sum3 = _mm256_setzero_ps();
    long index = 0;
    for (; index + 32 <= count; index += 32) {
        sum0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + index), _mm256_loadu_ps(b + index), sum0);
        sum1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + index + 8), _mm256_loadu_ps(b + index + 8), sum1);
        sum2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + index + 16), _mm256_loadu_ps(b + index + 16), sum2);
        sum3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + index + 24), _mm256_loadu_ps(b + index + 24), sum3);
    }
    for (; index + 8 <= count; index += 8) {
        sum0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + index), _mm256_loadu_ps(b + index), sum0);
    }
    __m256 sum = _mm256_add_ps(_mm256_add_ps(sum0, sum1), _mm256_add_ps(sum2, sum3));
    __m128 half = _mm_add_ps(_mm256_castps256_ps128(sum), _mm256_extractf128_ps(sum, 1));
    half = _mm_add_ps(half, _mm_movehl_ps(half, half));
    half = _mm_add_ss(half, _mm_shuffle_ps(half, half, 1));
    float total = _mm_cvtss_f32(half);
    for (; index < count; index++) total += a[index] * b[index];
    return total;
}

static float (*dot_chosen)(const float *, const float *, long) = dot_portable;

/// Chosen once at load time, before any thread can call in.
__attribute__((constructor))
static void choose_dot(void) {
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) dot_chosen = dot_avx2;
}

float switchyard_dot(const float *a, const float *b, long count) {
    return dot_chosen(a, b, count);
}
#else
float switchyard_dot(const float *a, const float *b, long count) {
    return dot_portable(a, b, count);
}
#endif
