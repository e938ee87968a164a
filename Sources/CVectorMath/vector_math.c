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


/// binary16 bits → float (normals, subnormals, zeros, infinities, NaNs).
static float half_to_float(uint16_t half) {
    uint32_t sign = (uint32_t)(half & 0x8000) << 16;
    uint32_t exponent = (half >> 10) & 0x1F;
    uint32_t mantissa = half & 0x3FF;
    uint32_t bits;
    if (exponent == 0x1F) {
        bits = sign | 0x7F800000 | (mantissa << 13);
    } else if (exponent != 0) {
        bits = sign | ((exponent + 112) << 23) | (mantissa << 13);
    } else if (mantissa == 0) {
        bits = sign;
    } else {
        // Subnormal: shift the mantissa up until its leading one is the implicit bit.
        exponent = 113;
        while ((mantissa & 0x400) == 0) {
            mantissa <<= 1;
            exponent--;
        }
        bits = sign | (exponent << 23) | ((mantissa & 0x3FF) << 13);
    }
    float value;
    __builtin_memcpy(&value, &bits, sizeof value);
    return value;
}

/// float → binary16 bits, rounding to nearest even; out of range saturates to infinity.
static uint16_t float_to_half(float value) {
    uint32_t bits;
    __builtin_memcpy(&bits, &value, sizeof bits);
    uint16_t sign = (uint16_t)((bits >> 16) & 0x8000);
    uint32_t exponent = (bits >> 23) & 0xFF;
    uint32_t mantissa = bits & 0x7FFFFF;
    if (exponent == 0xFF) return sign | 0x7C00 | (mantissa ? 0x200 : 0);
    int32_t unbiased = (int32_t)exponent - 127 + 15;
    if (unbiased >= 0x1F) return sign | 0x7C00;
    if (unbiased <= 0) {
        if (unbiased < -10) return sign;
        mantissa |= 0x800000;
        uint32_t shift = (uint32_t)(14 - unbiased);
        uint32_t half = mantissa >> shift;
        uint32_t rest = mantissa & ((1u << shift) - 1);
        uint32_t midpoint = 1u << (shift - 1);
        if (rest > midpoint || (rest == midpoint && (half & 1))) half++;
        return sign | (uint16_t)half;
    }
    uint32_t half = ((uint32_t)unbiased << 10) | (mantissa >> 13);
    uint32_t rest = mantissa & 0x1FFF;
    if (rest > 0x1000 || (rest == 0x1000 && (half & 1))) half++;
    return sign | (uint16_t)half;
}

static void to_half_portable(const float *source, uint16_t *destination, long count) {
    for (long index = 0; index < count; index++) destination[index] = float_to_half(source[index]);
}

static float dot_half_portable(const float *a, const uint16_t *b, long count) {
    float total = 0;
    for (long index = 0; index < count; index++) total += a[index] * half_to_float(b[index]);
    return total;
}

static float dot_halves_portable(const uint16_t *a, const uint16_t *b, long count) {
    float total = 0;
    for (long index = 0; index < count; index++) total += half_to_float(a[index]) * half_to_float(b[index]);
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


__attribute__((target("avx2,fma,f16c")))
static void to_half_avx2(const float *source, uint16_t *destination, long count) {
    long index = 0;
    for (; index + 8 <= count; index += 8) {
        _mm_storeu_si128((__m128i *)(destination + index), _mm256_cvtps_ph(_mm256_loadu_ps(source + index), _MM_FROUND_TO_NEAREST_INT));
    }
    for (; index < count; index++) destination[index] = float_to_half(source[index]);
}

/// Sums the eight lanes of `sum`.
__attribute__((target("avx2,fma")))
static float lanes(__m256 sum) {
    __m128 half = _mm_add_ps(_mm256_castps256_ps128(sum), _mm256_extractf128_ps(sum, 1));
    half = _mm_add_ps(half, _mm_movehl_ps(half, half));
    half = _mm_add_ss(half, _mm_shuffle_ps(half, half, 1));
    return _mm_cvtss_f32(half);
}

__attribute__((target("avx2,fma,f16c")))
static float dot_half_avx2(const float *a, const uint16_t *b, long count) {
    __m256 sum0 = _mm256_setzero_ps(), sum1 = _mm256_setzero_ps();
    long index = 0;
    for (; index + 16 <= count; index += 16) {
        sum0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + index), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b + index))), sum0);
        sum1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + index + 8), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b + index + 8))), sum1);
    }
    float total = lanes(_mm256_add_ps(sum0, sum1));
    for (; index < count; index++) total += a[index] * half_to_float(b[index]);
    return total;
}

__attribute__((target("avx2,fma,f16c")))
static float dot_halves_avx2(const uint16_t *a, const uint16_t *b, long count) {
    __m256 sum0 = _mm256_setzero_ps(), sum1 = _mm256_setzero_ps();
    long index = 0;
    for (; index + 16 <= count; index += 16) {
        sum0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + index))), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b + index))), sum0);
        sum1 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(a + index + 8))), _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(b + index + 8))), sum1);
    }
    float total = lanes(_mm256_add_ps(sum0, sum1));
    for (; index < count; index++) total += half_to_float(a[index]) * half_to_float(b[index]);
    return total;
}

static float (*dot_chosen)(const float *, const float *, long) = dot_portable;
static void (*to_half_chosen)(const float *, uint16_t *, long) = to_half_portable;
static float (*dot_half_chosen)(const float *, const uint16_t *, long) = dot_half_portable;
static float (*dot_halves_chosen)(const uint16_t *, const uint16_t *, long) = dot_halves_portable;

/// Chosen once at load time, before any thread can call in.
__attribute__((constructor))
static void choose_dot(void) {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return;
    dot_chosen = dot_avx2;
    if (!__builtin_cpu_supports("f16c")) return;
    to_half_chosen = to_half_avx2;
    dot_half_chosen = dot_half_avx2;
    dot_halves_chosen = dot_halves_avx2;
}

float switchyard_dot(const float *a, const float *b, long count) { return dot_chosen(a, b, count); }
void switchyard_to_half(const float *source, uint16_t *destination, long count) { to_half_chosen(source, destination, count); }
float switchyard_dot_half(const float *a, const uint16_t *b, long count) { return dot_half_chosen(a, b, count); }
float switchyard_dot_halves(const uint16_t *a, const uint16_t *b, long count) { return dot_halves_chosen(a, b, count); }
#else
float switchyard_dot(const float *a, const float *b, long count) { return dot_portable(a, b, count); }
void switchyard_to_half(const float *source, uint16_t *destination, long count) { to_half_portable(source, destination, count); }
float switchyard_dot_half(const float *a, const uint16_t *b, long count) { return dot_half_portable(a, b, count); }
float switchyard_dot_halves(const uint16_t *a, const uint16_t *b, long count) { return dot_halves_portable(a, b, count); }
#endif
