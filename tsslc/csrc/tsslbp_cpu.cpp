// The fused TSSL-BP neuron on the CPU (TSSLBP_SPEC.md §1 forward, §5 backward).
//
// Plain C++ with a C interface, loaded by tsslc/fused_cpu.py through ctypes: no torch
// headers, so it builds in about a second with any g++/clang++ and does not depend on
// torch's C++ ABI. Tensors are time-first and contiguous, (T, N) with N neurons.
//
// One pass over time per neuron, neurons in blocks that the compiler vectorises (one clone
// per instruction set, chosen at load time), blocks spread over OpenMP threads (the same
// libgomp as torch's, already loaded by `import torch`, so one thread pool).
//
// Forward: bit for bit the arithmetic of tsslc.functional.lif_forward (each operation
// rounded on its own: the build uses -ffp-contract=off, so no fused multiply-add).
// Backward: recomputes the forward of a block into a small buffer from the saved input
// current x (nothing but x is kept between forward and backward), then one reverse sweep.
#include <cstdint>
#include <cstring>
#include <memory>
#include <new>
#include <vector>
#include <omp.h>

#ifndef TSSLC_SRC_HASH
#define TSSLC_SRC_HASH "unknown"
#endif

#if defined(__x86_64__) && defined(__GNUC__) && !defined(TSSLC_NO_CLONES)
#define TSSLC_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define TSSLC_CLONES
#endif
#define TSSLC_INLINE static inline __attribute__((always_inline))

namespace {

constexpr int64_t BLOCK = 256;       // neurons per block (a multiple of every vector width)
constexpr double FALLBACK_BETA = 0.2;  // β of the inactive-neuron fallback
constexpr double CLIP = 8.0;          // ∂t/∂u clipped to [-CLIP, 0]

template <typename F>
struct Params {
    F neg_thm, thm, one_m_thm, ths, one_m_ths, V, inactive, inv_beta;
    Params(double tau_m, double tau_s, double V_) {
        // The same constants as the reference: Python floats (doubles) cast to F by torch.
        const double theta_m = 1.0 / tau_m, theta_s = 1.0 / tau_s;
        neg_thm = static_cast<F>(-theta_m);
        thm = static_cast<F>(theta_m);
        one_m_thm = static_cast<F>(1.0 - theta_m);
        ths = static_cast<F>(theta_s);
        one_m_ths = static_cast<F>(1.0 - theta_s);
        V = static_cast<F>(V_);
        inactive = static_cast<F>(1.0 / (4.0 * tau_s));
        inv_beta = static_cast<F>(1.0 / FALLBACK_BETA);  // backward only: a product, not a quotient
    }
};

// exp(z) for |z| <= 8 without a library call, so that the loop vectorises: a Taylor series
// of exp(z/16) (|z/16| <= 1/2) squared four times. Relative error ~1e-15 (double), a few
// float ulps (float).
template <typename F>
TSSLC_INLINE F exp_bounded(F z) {
    const F r = z * F(0.0625);
    F p;
    if constexpr (sizeof(F) == 8) {
        p = F(1.0 / 87178291200.0);  // 1/14!
        p = p * r + F(1.0 / 6227020800.0);
        p = p * r + F(1.0 / 479001600.0);
        p = p * r + F(1.0 / 39916800.0);
        p = p * r + F(1.0 / 3628800.0);
        p = p * r + F(1.0 / 362880.0);
        p = p * r + F(1.0 / 40320.0);
        p = p * r + F(1.0 / 5040.0);
        p = p * r + F(1.0 / 720.0);
        p = p * r + F(1.0 / 120.0);
        p = p * r + F(1.0 / 24.0);
        p = p * r + F(1.0 / 6.0);
        p = p * r + F(0.5);
        p = p * r + F(1.0);
        p = p * r + F(1.0);
    } else {
        p = F(1.0 / 40320.0);
        p = p * r + F(1.0 / 5040.0);
        p = p * r + F(1.0 / 720.0);
        p = p * r + F(1.0 / 120.0);
        p = p * r + F(1.0 / 24.0);
        p = p * r + F(1.0 / 6.0);
        p = p * r + F(0.5);
        p = p * r + F(1.0);
        p = p * r + F(1.0);
    }
    p = p * p;
    p = p * p;
    p = p * p;
    return p * p;
}

// One step of §1 for one neuron, in the reference's order of operations: updates the
// neuron's state (mem = u', syn = a) and gives u, Δu, s and a.
template <typename F>
struct Step {
    F u, du, s, a;
};

template <typename F>
TSSLC_INLINE Step<F> lif_step(F& mem, F& syn, F x, const Params<F>& p) {
    F du = mem * p.neg_thm;                   // Δu = -θm·u' + x
    du = du + x;
    const F u = mem + du;                     // u = u' + Δu
    const bool fire = u > p.V;                // s = u > V
    const F sp = fire ? F(1) : F(0);
    mem = fire ? F(0) : u;                    // u' = u·(1 - s)
    F step = sp - syn;                        // a = a + (s - a)·θs
    step = step * p.ths;
    const F an = syn + step;
    syn = an;
    return {u, du, sp, an};
}

// §1 for neurons [n0, n0 + len) of a (T, N) current; u and du optional (may be null).
template <typename F>
TSSLC_INLINE void forward_block(const F* __restrict x, F* __restrict a, F* __restrict s, F* __restrict uo,
                                F* __restrict duo, int64_t T, int64_t N, int64_t n0, int64_t len,
                                const Params<F>& p) {
    alignas(64) F mem[BLOCK];
    alignas(64) F syn[BLOCK];
    for (int64_t j = 0; j < len; ++j) mem[j] = F(0), syn[j] = F(0);
    for (int64_t t = 0; t < T; ++t) {
        const int64_t o = t * N + n0;
        const F* __restrict xt = x + o;
        F* __restrict at = a + o;
        F* __restrict st = s + o;
        if (uo) {
            F* __restrict ut = uo + o;
            F* __restrict dut = duo + o;
#pragma omp simd
            for (int64_t j = 0; j < len; ++j) {
                const Step<F> r = lif_step(mem[j], syn[j], xt[j], p);
                at[j] = r.a;
                st[j] = r.s;
                ut[j] = r.u;
                dut[j] = r.du;
            }
        } else {
#pragma omp simd
            for (int64_t j = 0; j < len; ++j) {
                const Step<F> r = lif_step(mem[j], syn[j], xt[j], p);
                at[j] = r.a;
                st[j] = r.s;
            }
        }
    }
}

// §5 for neurons [n0, n0 + len): the forward again into buf (u, Δu, s, inactive), then the
// reverse sweep. buf holds 4·T·BLOCK values.
template <typename F>
TSSLC_INLINE void backward_block(const F* __restrict x, const F* __restrict g, F* __restrict delta, F* __restrict buf,
                                 int64_t T, int64_t N, int64_t n0, int64_t len, const Params<F>& p) {
    F* __restrict U = buf;
    F* __restrict DU = buf + T * BLOCK;
    F* __restrict S = buf + 2 * T * BLOCK;
    F* __restrict I = buf + 3 * T * BLOCK;
    alignas(64) F mem[BLOCK];
    alignas(64) F syn[BLOCK];
    for (int64_t j = 0; j < len; ++j) mem[j] = F(0), syn[j] = F(0);
    for (int64_t t = 0; t < T; ++t) {
        const F* __restrict xt = x + t * N + n0;
        F* __restrict Ut = U + t * BLOCK;
        F* __restrict DUt = DU + t * BLOCK;
        F* __restrict St = S + t * BLOCK;
        F* __restrict It = I + t * BLOCK;
#pragma omp simd
        for (int64_t j = 0; j < len; ++j) {
            const Step<F> r = lif_step(mem[j], syn[j], xt[j], p);
            Ut[j] = r.u;
            DUt[j] = r.du;
            St[j] = r.s;
            It[j] = r.a < p.inactive ? F(1) : F(0);
        }
    }
    alignas(64) F G[BLOCK];
    alignas(64) F rho[BLOCK];
    for (int64_t j = 0; j < len; ++j) G[j] = F(0), rho[j] = F(0);
    const F clip = F(CLIP);
    for (int64_t t = T - 1; t >= 0; --t) {
        const F* __restrict gt = g + t * N + n0;
        F* __restrict dt = delta + t * N + n0;
        const F* __restrict Ut = U + t * BLOCK;
        const F* __restrict DUt = DU + t * BLOCK;
        const F* __restrict St = S + t * BLOCK;
        const F* __restrict It = I + t * BLOCK;
#pragma omp simd
        for (int64_t j = 0; j < len; ++j) {
            const F Gt = gt[j] * p.ths + p.one_m_ths * G[j];  // G[t] = θs·g[t] + (1-θs)·G[t+1]
            G[j] = Gt;
            const F sp = St[j];
            F r = F(-1) / DUt[j];                              // -clip(-1/Δu, -8, 0)·s
            r = r < -clip ? -clip : r;
            r = r > F(0) ? F(0) : r;
            const F q = -(r * sp);
            const F u = Ut[j];
            const F A = u * p.thm * q + (F(1) - sp) * p.one_m_thm;
            const F d = q * Gt + rho[j] * A;                   // ρ = 0 after the last step
            rho[j] = sp != F(0) ? d : rho[j] * p.one_m_thm;
            F z = (p.V - u) * p.inv_beta;                      // fallback σ'((V-u)/β)/β
            z = z < F(-8) ? F(-8) : z;
            z = z > F(8) ? F(8) : z;
            const F sig = F(1) / (F(1) + exp_bounded(-z));
            const F sur = (F(1) - sig) * sig * p.inv_beta;
            dt[j] = It[j] != F(0) ? Gt * sur : d;
        }
    }
}

TSSLC_CLONES void forward_f32(const float* x, float* a, float* s, float* u, float* du, int64_t T, int64_t N,
                              int64_t n0, int64_t len, const Params<float>& p) {
    forward_block<float>(x, a, s, u, du, T, N, n0, len, p);
}
TSSLC_CLONES void forward_f64(const double* x, double* a, double* s, double* u, double* du, int64_t T, int64_t N,
                              int64_t n0, int64_t len, const Params<double>& p) {
    forward_block<double>(x, a, s, u, du, T, N, n0, len, p);
}
TSSLC_CLONES void backward_f32(const float* x, const float* g, float* d, float* buf, int64_t T, int64_t N,
                               int64_t n0, int64_t len, const Params<float>& p) {
    backward_block<float>(x, g, d, buf, T, N, n0, len, p);
}
TSSLC_CLONES void backward_f64(const double* x, const double* g, double* d, double* buf, int64_t T, int64_t N,
                               int64_t n0, int64_t len, const Params<double>& p) {
    backward_block<double>(x, g, d, buf, T, N, n0, len, p);
}

inline void block_of(int64_t b, int64_t N, int64_t& n0, int64_t& len) {
    n0 = b * BLOCK;
    len = N - n0 < BLOCK ? N - n0 : BLOCK;
}

// Threads for a (T, N) problem: at most one per grain values and one per block, so that a
// small layer does not pay for waking threads it cannot keep busy.
constexpr int64_t GRAIN = 65536;
inline int threads_for(int nthreads, int64_t T, int64_t N, int64_t grain = GRAIN) {
    const int64_t by_work = (T * N) / grain, by_blocks = (N + BLOCK - 1) / BLOCK;
    int64_t n = nthreads < by_work ? nthreads : by_work;
    n = n < by_blocks ? n : by_blocks;
    return n < 1 ? 1 : static_cast<int>(n);
}

// body(n0, len) for every block of a (T, N) problem's neurons, spread over threads_for's
// threads. The body calls a block function built per instruction set (TSSLC_CLONES), so this
// loop itself needs no clones.
template <typename Body>
void for_blocks(int64_t T, int64_t N, int nthreads, Body body) {
    const int64_t nb = (N + BLOCK - 1) / BLOCK;
    const int nt = threads_for(nthreads, T, N);
#pragma omp parallel for schedule(static) num_threads(nt) if (nt > 1)
    for (int64_t b = 0; b < nb; ++b) {
        int64_t n0, len;
        block_of(b, N, n0, len);
        body(n0, len);
    }
}

template <typename F, typename Fn>
void run_forward(Fn fn, const F* x, F* a, F* s, F* u, F* du, int64_t T, int64_t N, double tau_m, double tau_s,
                 double V, int nthreads) {
    const Params<F> p(tau_m, tau_s, V);
    for_blocks(T, N, nthreads, [&](int64_t n0, int64_t len) { fn(x, a, s, u, du, T, N, n0, len, p); });
}

template <typename F, typename Fn>
void run_backward(Fn fn, const F* x, const F* g, F* d, int64_t T, int64_t N, double tau_m, double tau_s, double V,
                  int nthreads) {
    const Params<F> p(tau_m, tau_s, V);
    const int64_t nb = (N + BLOCK - 1) / BLOCK;
    const int nt = threads_for(nthreads, T, N);
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        std::vector<F> buf(static_cast<size_t>(4 * T * BLOCK));
#pragma omp for schedule(static)
        for (int64_t b = 0; b < nb; ++b) {
            int64_t n0, len;
            block_of(b, N, n0, len);
            fn(x, g, d, buf.data(), T, N, n0, len, p);
        }
    }
}

}  // namespace


// --- the Loihi 2 integer LIF over all steps (targets/loihi2.md §1; intsim's hot loop) ---------
//
// Bit for bit tsslc.targets.loihi2.Loihi2.neuron_step applied T times, with every int32 wrap
// of Lava's storage always applied (the Python step skips them only where they provably
// change nothing). After the wraps u and v fit int32, so the loop runs on 32-bit lanes:
// a wrap is unsigned 32-bit arithmetic, and the decay rz12(x·k) = trunc(x·k / 4096) is
// made in double, where x·k (< 2^44) and the division by a power of two are exact.
namespace {

constexpr int32_t L2_UV_MAX = int32_t(1) << 23;
constexpr int32_t L2_V_LIMIT = L2_UV_MAX - 1;

// The low 32 bits of a << 6 (Lava's int32 message of the activation): from int64, or from a
// float32 holding an integer below 2^31 in magnitude.
TSSLC_INLINE uint32_t act32(int64_t a) { return static_cast<uint32_t>(static_cast<uint64_t>(a)) << 6; }
TSSLC_INLINE uint32_t act32(float a) { return static_cast<uint32_t>(static_cast<int32_t>(a)) << 6; }

// cur: element (t, n) at cur[t * stride_t + n] (stride_t = 0: the same current every step);
// u, v: the state, read and written in place (fresh: start from zero without reading them;
// null with fresh: the final state is not kept);
// s8 (T, N) spikes 0/1, sf (T, N) the same as float (may be null). One block of neurons
// at a time, its state kept in local arrays over all T steps.
// One Loihi 2 step of one neuron (loihi2.md §1): u, v its int32 state, a32 the input's
// activation message (act32), ku/kv the decay factors, th the threshold << 6, b32 the bias;
// returns whether it spikes.
TSSLC_INLINE bool loihi2_step(int32_t& uu, int32_t& vv, uint32_t a32, double ku, double kv, int32_t th,
                              uint32_t b32) {
    // x·k then ·2^-12, both exact in double; the cast truncates toward zero (rz12)
    const int32_t ud = static_cast<int32_t>(static_cast<double>(uu) * ku * (1.0 / 4096.0));
    const int32_t uc = static_cast<int32_t>(static_cast<uint32_t>(ud) + a32);
    int32_t un = uc > L2_UV_MAX ? uc - 2 * L2_UV_MAX : uc;
    un = un <= -L2_UV_MAX ? uc + 2 * L2_UV_MAX : un;
    const int32_t vd = static_cast<int32_t>(static_cast<double>(vv) * kv * (1.0 / 4096.0));
    int32_t vn = static_cast<int32_t>(static_cast<uint32_t>(vd) + static_cast<uint32_t>(un) + b32);
    vn = vn > L2_V_LIMIT ? L2_V_LIMIT : (vn < -L2_V_LIMIT ? -L2_V_LIMIT : vn);
    const bool sp = vn > th;
    uu = un;
    vv = sp ? 0 : vn;
    return sp;
}

// cur: element (t, n) at cur[t * stride_t + n] (stride_t = 0: the same current every step);
// u, v: the state, read and written in place (fresh: start from zero without reading them;
// null with fresh: the final state is not kept);
// s8 (T, N) spikes 0/1, sf (T, N) the same as float (may be null). One block of neurons
// at a time, its state kept in local arrays over all T steps.
template <typename C>
TSSLC_INLINE void loihi2_block(const C* cur, int64_t stride_t, int64_t* u, int64_t* v, uint8_t* s8, float* sf,
                               int64_t T, int64_t N, int64_t n0, int64_t len, int64_t du, int64_t dv, int64_t vth,
                               int64_t bias, bool fresh) {
    const double ku = static_cast<double>(4096 - (du + 1)), kv = static_cast<double>(4096 - dv);
    const int32_t th = static_cast<int32_t>(vth * 64);
    const uint32_t b32 = static_cast<uint32_t>(static_cast<uint64_t>(bias));
    int32_t uu[BLOCK], vv[BLOCK];
    for (int64_t i = 0; i < len; ++i) {
        uu[i] = fresh ? 0 : static_cast<int32_t>(u[n0 + i]);
        vv[i] = fresh ? 0 : static_cast<int32_t>(v[n0 + i]);
    }
    for (int64_t t = 0; t < T; ++t) {
        const C* __restrict c = cur + t * stride_t + n0;
        uint8_t* __restrict so = s8 + t * N + n0;
        for (int64_t i = 0; i < len; ++i) so[i] = loihi2_step(uu[i], vv[i], act32(c[i]), ku, kv, th, b32);
        if (sf) {
            float* fo = sf + t * N + n0;
            for (int64_t i = 0; i < len; ++i) fo[i] = static_cast<float>(so[i]);
        }
    }
    if (u && v) {
        for (int64_t i = 0; i < len; ++i) {
            u[n0 + i] = uu[i];
            v[n0 + i] = vv[i];
        }
    }
}

TSSLC_CLONES void loihi2_block_i64(const int64_t* cur, int64_t stride_t, int64_t* u, int64_t* v, uint8_t* s8,
                                   float* sf, int64_t T, int64_t N, int64_t n0, int64_t len, int64_t du, int64_t dv,
                                   int64_t vth, int64_t bias, bool fresh) {
    loihi2_block<int64_t>(cur, stride_t, u, v, s8, sf, T, N, n0, len, du, dv, vth, bias, fresh);
}
TSSLC_CLONES void loihi2_block_f32(const float* cur, int64_t stride_t, int64_t* u, int64_t* v, uint8_t* s8,
                                   float* sf, int64_t T, int64_t N, int64_t n0, int64_t len, int64_t du, int64_t dv,
                                   int64_t vth, int64_t bias, bool fresh) {
    loihi2_block<float>(cur, stride_t, u, v, s8, sf, T, N, n0, len, du, dv, vth, bias, fresh);
}

template <typename C, typename Fn>
void loihi2_lif(Fn fn, const C* cur, int64_t stride_t, int64_t* u, int64_t* v, uint8_t* s8, float* sf, int64_t T,
                int64_t N, int64_t du, int64_t dv, int64_t vth, int64_t bias, int fresh, int nthreads) {
    for_blocks(T, N, nthreads, [&](int64_t n0, int64_t len) {
        fn(cur, stride_t, u, v, s8, sf, T, N, n0, len, du, dv, vth, bias, fresh != 0);
    });
}

// Eight float lanes (GCC/Clang vector extension: one AVX register, two SSE ones in the
// baseline clone); loads through memcpy, so any alignment. Only inside inlined functions, so
// the ABI note GCC makes about passing them does not apply.
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float f32x8 __attribute__((vector_size(32)));
TSSLC_INLINE f32x8 load8(const float* p) {
    f32x8 r;
    __builtin_memcpy(&r, p, sizeof r);
    return r;
}

// cur[j] = Σ_k at[ia[k]] · w[ia[k] · Nout + j] for j < len: the sums of 32 (then 8) neurons
// held in registers while the active inputs ia[0..na) stream by (the compiler keeps a plain
// array of sums in memory, several times slower). Exact integer sums in any order (the
// caller's proof), so the lanes' order changes nothing.
TSSLC_INLINE void dense_sums(const float* at, const int64_t* ia, int64_t na, const float* w, int64_t Nout,
                             int64_t len, float* cur) {
    int64_t j0 = 0;
    for (; j0 + 32 <= len; j0 += 32) {
        f32x8 c0 = {}, c1 = {}, c2 = {}, c3 = {};
        for (int64_t k = 0; k < na; ++k) {
            const float* r = w + ia[k] * Nout + j0;
            const float ai = at[ia[k]];
            c0 += ai * load8(r);
            c1 += ai * load8(r + 8);
            c2 += ai * load8(r + 16);
            c3 += ai * load8(r + 24);
        }
        __builtin_memcpy(cur + j0, &c0, sizeof c0);
        __builtin_memcpy(cur + j0 + 8, &c1, sizeof c1);
        __builtin_memcpy(cur + j0 + 16, &c2, sizeof c2);
        __builtin_memcpy(cur + j0 + 24, &c3, sizeof c3);
    }
    for (; j0 + 8 <= len; j0 += 8) {
        f32x8 c0 = {};
        for (int64_t k = 0; k < na; ++k) c0 += at[ia[k]] * load8(w + ia[k] * Nout + j0);
        __builtin_memcpy(cur + j0, &c0, sizeof c0);
    }
    if (j0 < len) {
        float c[8] = {};
        const int64_t m = len - j0;
        for (int64_t k = 0; k < na; ++k) {
            const float* r = w + ia[k] * Nout + j0;
            const float ai = at[ia[k]];
            for (int64_t j = 0; j < m; ++j) c[j] += ai * r[j];
        }
        for (int64_t j = 0; j < m; ++j) cur[j0 + j] = c[j];
    }
}

// cur[j] = Σ_i at[i] · wr[j · Nin + i] for j < len: a step whose inputs are mostly active
// (a graded image), read as dot products over the rows of the row-major weights, four rows
// at a time (each input loaded once for four neurons; contiguous rows, which the memory
// system streams faster than dense_sums' strided reads). Exact in any order, as above.
TSSLC_INLINE void dense_dots(const float* at, int64_t Nin, const float* wr, int64_t len, float* cur) {
    int64_t j = 0;
    for (; j + 4 <= len; j += 4) {
        const float* r0 = wr + j * Nin;
        const float* r1 = r0 + Nin;
        const float* r2 = r1 + Nin;
        const float* r3 = r2 + Nin;
        f32x8 c0 = {}, c1 = {}, c2 = {}, c3 = {};
        int64_t i = 0;
        for (; i + 8 <= Nin; i += 8) {
            const f32x8 x = load8(at + i);
            c0 += x * load8(r0 + i);
            c1 += x * load8(r1 + i);
            c2 += x * load8(r2 + i);
            c3 += x * load8(r3 + i);
        }
        float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
        for (int k = 0; k < 8; ++k) {
            s0 += c0[k];
            s1 += c1[k];
            s2 += c2[k];
            s3 += c3[k];
        }
        for (; i < Nin; ++i) {
            s0 += at[i] * r0[i];
            s1 += at[i] * r1[i];
            s2 += at[i] * r2[i];
            s3 += at[i] * r3[i];
        }
        cur[j] = s0;
        cur[j + 1] = s1;
        cur[j + 2] = s2;
        cur[j + 3] = s3;
    }
    for (; j < len; ++j) {
        const float* r = wr + j * Nin;
        float sum = 0.0f;
        for (int64_t i = 0; i < Nin; ++i) sum += at[i] * r[i];
        cur[j] = sum;
    }
}

// One dense Loihi 2 layer of one sample, synapse and population in one pass (streaming):
// a (Tin, Nin) the synapse's input (Tin = 1: the same input every step, else Tin = T),
// float32 exact integers; wt (Nin, Nout) the weights Lava's Dense uses as float32 (row i:
// input i's weights to every neuron), wr the same row-major (Nout, Nin) or null (read for the
// steps with most inputs active: dense_dots) and scale = 2^weight_exp, with the proof made by
// the caller that every partial sum is an integer below 2^24 in magnitude, so that float32
// sums are exact in any order, and the current below 2^31 (the float32 matmul of
// Loihi2.prepare_synapse); floor_: the exponent is negative, the scaled sum is floored. Then
// the LIF (loihi2_step) from the zero state over the T steps: s8 (T, Nout) spikes, sf
// (T, Nout) the same as float (may be null). The synapse only visits active inputs (a spike
// is an event, as on the chip).
//
// Counting (ns not null): ns[j] the spikes of neuron j, and the return value the active
// neuron updates: steps on which a neuron received at least one synaptic event (an active
// input i with mask[i, j], the non-zero weights of the graph) or spiked
// (tsslc/backends/counters.py). zmax is the most zero weights any neuron has: more active
// inputs than that reach every neuron, and a non-zero sum proves one; the mask (Nin, Nout) of
// 0/1 bytes is read only for the neurons those leave open. With fan (the input's fan-out per
// input), in_stats gets per input step the active inputs, Σ fan over them and the MACs among
// them (all of them when one active input is not ±1, else none).
// A dense layer's constants and one call's input, as the blocks of neurons read them.
struct DenseLayer {
    const float* wt;      // (Nin, Nout)
    const float* wr;      // (Nout, Nin) or null
    float scale;          // 2^weight_exp
    bool floor_;          // floor the scaled sum (a negative exponent)
    const uint8_t* mask;  // (Nin, Nout) 0/1, counting only
    int64_t zmax, Nin, Nout;
    double ku, kv;  // the LIF's decay factors, threshold and bias as loihi2_step takes them
    int32_t th;
    uint32_t b32;
};
struct DenseInput {
    const float* a;       // (Tin, Nin)
    int64_t Tin, T;
    const int64_t* nact;  // active inputs per input step
    const int64_t* idx;   // their indices, Nin per step
};

// Neurons [n0, n0 + len) of the layer over all T steps; returns their active updates.
template <bool COUNT>
TSSLC_INLINE int64_t loihi2_dense_block(const DenseLayer& L, const DenseInput& in, int64_t n0, int64_t len,
                                        uint8_t* s8, float* sf, int64_t* ns) {
    const int64_t Nin = L.Nin, Nout = L.Nout;
    int32_t uu[BLOCK], vv[BLOCK];
    float cur[BLOCK];
    uint8_t ev[BLOCK];
    int64_t cnt[BLOCK];
    int64_t active = 0;
    for (int64_t j = 0; j < len; ++j) uu[j] = vv[j] = 0, cnt[j] = 0, ev[j] = 0;
    for (int64_t t = 0; t < in.T; ++t) {
        if (t < in.Tin) {  // a new input step (a static input: only the first)
            const float* __restrict at = in.a + t * Nin;
            const int64_t* __restrict ia = in.idx + t * Nin;
            const int64_t na = in.nact[t];
            if (L.wr && 2 * na > Nin)
                dense_dots(at, Nin, L.wr + n0 * Nin, len, cur);
            else
                dense_sums(at, ia, na, L.wt + n0, Nout, len, cur);
            if (COUNT) {  // before the scaling, which may floor a small sum to zero
                // a non-zero sum proves an event (its terms vanish where the weight or the
                // input does); a neuron whose sum is zero is looked up in the mask
                const uint8_t all = na > L.zmax;
                int64_t open = 0;
                for (int64_t j = 0; j < len; ++j) {
                    ev[j] = all | (cur[j] != 0.0f);
                    open += !ev[j];
                }
                if (na > 0 && open)
                    for (int64_t j = 0; j < len; ++j)
                        for (int64_t k = 0; k < na && !ev[j]; ++k) ev[j] = L.mask[ia[k] * Nout + n0 + j];
            }
            // times 2^weight_exp: exact (a power of two), floored when negative
            if (L.floor_)
                for (int64_t j = 0; j < len; ++j) cur[j] = __builtin_floorf(cur[j] * L.scale);
            else if (L.scale != 1.0f)
                for (int64_t j = 0; j < len; ++j) cur[j] *= L.scale;
        }
        uint8_t* __restrict so = s8 + t * Nout + n0;
        for (int64_t j = 0; j < len; ++j) so[j] = loihi2_step(uu[j], vv[j], act32(cur[j]), L.ku, L.kv, L.th, L.b32);
        if (sf) {
            float* __restrict fo = sf + t * Nout + n0;
            for (int64_t j = 0; j < len; ++j) fo[j] = static_cast<float>(so[j]);
        }
        if (COUNT) {
            int64_t n = 0;
            for (int64_t j = 0; j < len; ++j) {
                cnt[j] += so[j];
                n += ev[j] | so[j];
            }
            active += n;
        }
    }
    if (COUNT)
        for (int64_t j = 0; j < len; ++j) ns[n0 + j] = cnt[j];
    return active;
}

// Block b of the layer's neurons, counting (ns not null) or not.
TSSLC_INLINE int64_t loihi2_dense_range(const DenseLayer& L, const DenseInput& in, int64_t b, uint8_t* s8, float* sf,
                                        int64_t* ns) {
    int64_t n0, len;
    block_of(b, L.Nout, n0, len);
    return ns ? loihi2_dense_block<true>(L, in, n0, len, s8, sf, ns)
              : loihi2_dense_block<false>(L, in, n0, len, s8, sf, ns);
}

TSSLC_INLINE int64_t loihi2_dense_impl(const float* a, int64_t Tin, int64_t T, int64_t Nin, const float* wt,
                                       const float* wr, float scale, const uint8_t* mask, int64_t zmax, int64_t Nout,
                                       int floor_, int64_t du, int64_t dv, int64_t vth, int64_t bias, uint8_t* s8,
                                       float* sf, int64_t* ns, const int64_t* fan, int64_t* in_stats, int nthreads) {
    const DenseLayer L{wt, wr, scale, floor_ != 0, mask, zmax, Nin, Nout,
                       static_cast<double>(4096 - (du + 1)), static_cast<double>(4096 - dv),
                       static_cast<int32_t>(vth * 64), static_cast<uint32_t>(static_cast<uint64_t>(bias))};
    // the active inputs of each input step: their count and indices (the synapse visits only
    // them), and with fan the input's own counts
    std::unique_ptr<int64_t[]> nact(new int64_t[Tin]), idx(new int64_t[Tin * Nin]);
    for (int64_t t = 0; t < Tin; ++t) {
        int64_t n = 0, ops = 0, graded = 0;
        const float* at = a + t * Nin;
        int64_t* it = idx.get() + t * Nin;
        for (int64_t i = 0; i < Nin; ++i) {
            it[n] = i;
            n += at[i] != 0.0f;
        }
        if (fan) {
            for (int64_t k = 0; k < n; ++k) {
                ops += fan[it[k]];
                graded |= __builtin_fabsf(at[it[k]]) != 1.0f;
            }
            in_stats[3 * t] = n;
            in_stats[3 * t + 1] = ops;
            in_stats[3 * t + 2] = graded ? ops : 0;  // MACs: every operation of a graded step
        }
        nact[t] = n;
    }
    const DenseInput in{a, Tin, T, nact.get(), idx.get()};
    const int64_t nb = (Nout + BLOCK - 1) / BLOCK;
    // work ~ Tin·Nin·Nout multiply-adds, spread by neurons; waking a second thread costs more
    // than a streaming layer's ~25 µs (a 784 x 400 layer is slower on two threads), so one
    // thread per 2^21 of them
    const int nt = threads_for(nthreads, Tin * Nin, Nout, int64_t(1) << 21);
    int64_t active = 0;
    if (nt == 1) {  // no parallel region at all: a streaming call takes a few microseconds
        for (int64_t b = 0; b < nb; ++b) active += loihi2_dense_range(L, in, b, s8, sf, ns);
        return active;
    }
#pragma omp parallel for schedule(static) num_threads(nt) reduction(+ : active)
    for (int64_t b = 0; b < nb; ++b) active += loihi2_dense_range(L, in, b, s8, sf, ns);
    return active;
}

TSSLC_CLONES int64_t loihi2_dense(const float* a, int64_t Tin, int64_t T, int64_t Nin, const float* wt,
                                  const float* wr, float scale, const uint8_t* mask, int64_t zmax, int64_t Nout,
                                  int floor_, int64_t du, int64_t dv, int64_t vth, int64_t bias, uint8_t* s8, float* sf,
                                  int64_t* ns, const int64_t* fan, int64_t* in_stats, int nthreads) {
    return loihi2_dense_impl(a, Tin, T, Nin, wt, wr, scale, mask, zmax, Nout, floor_, du, dv, vth, bias, s8, sf, ns,
                             fan, in_stats, nthreads);
}

// The graded input payload of tsslc.targets.base.Target.input_spikes, bit for bit:
// round half away from zero of x·scale in double (as trunc(xs + copysign(0.5, xs))), clipped
// to ±lim, written as float (exact: lim < 2^24; -0 written as +0). Returns the number of NaN
// values met (their payload is left to the caller's reference path).
template <typename X>
int64_t graded(const X* x, float* out, int64_t n, double scale, double lim) {
    int64_t nan = 0;
    for (int64_t i = 0; i < n; ++i) {
        const double xs = static_cast<double>(x[i]) * scale;
        double y = __builtin_trunc(xs + __builtin_copysign(0.5, xs));
        nan += y != y;
        y = y > lim ? lim : (y < -lim ? -lim : y);
        out[i] = static_cast<float>(y + 0.0);
    }
    return nan;
}

// Columns [c0, c0 + m) of w · M, m <= 8, summed over rows row(0..n) of M with weights
// wt(0..n), four interleaved rows at a time: four sets of running sums in registers (one set
// would wait on its own last addition at every row), added at the end (exact: integers below
// 2^53, whatever the order).
template <int64_t MW, typename Wt, typename Row>
TSSLC_INLINE void weighted_cols(Wt wt, Row row, const double* __restrict M, int64_t n, int64_t k, int64_t c0,
                                int64_t m, double* __restrict out) {
    double a0[8] = {}, a1[8] = {}, a2[8] = {}, a3[8] = {};
    const int64_t mw = MW ? MW : m;
    int64_t j = 0;
    for (; j + 4 <= n; j += 4) {
        const double w0 = wt(j), w1 = wt(j + 1), w2 = wt(j + 2), w3 = wt(j + 3);
        const double* __restrict r0 = M + row(j) * k + c0;
        const double* __restrict r1 = M + row(j + 1) * k + c0;
        const double* __restrict r2 = M + row(j + 2) * k + c0;
        const double* __restrict r3 = M + row(j + 3) * k + c0;
        for (int64_t c = 0; c < mw; ++c) {
            a0[c] += w0 * r0[c];
            a1[c] += w1 * r1[c];
            a2[c] += w2 * r2[c];
            a3[c] += w3 * r3[c];
        }
    }
    for (; j < n; ++j) {
        const double wj = wt(j);
        const double* __restrict r = M + row(j) * k + c0;
        for (int64_t c = 0; c < mw; ++c) a0[c] += wj * r[c];
    }
    for (int64_t c = 0; c < mw; ++c) out[c0 + c] = (a0[c] + a1[c]) + (a2[c] + a3[c]);
}

// out = w · M over rows row(0..n) with weights wt(0..n), eight columns at a time.
template <typename Wt, typename Row>
TSSLC_INLINE void weighted_rows(Wt wt, Row row, const double* __restrict M, int64_t n, int64_t k,
                                double* __restrict out) {
    int64_t c0 = 0;
    for (; c0 + 8 <= k; c0 += 8) weighted_cols<8>(wt, row, M, n, k, c0, 8, out);
    switch (k - c0) {  // the last columns, their count known to the compiler (sums kept in registers)
        case 1: weighted_cols<1>(wt, row, M, n, k, c0, 1, out); break;
        case 2: weighted_cols<2>(wt, row, M, n, k, c0, 2, out); break;
        case 3: weighted_cols<3>(wt, row, M, n, k, c0, 3, out); break;
        case 4: weighted_cols<4>(wt, row, M, n, k, c0, 4, out); break;
        case 5: weighted_cols<5>(wt, row, M, n, k, c0, 5, out); break;
        case 6: weighted_cols<6>(wt, row, M, n, k, c0, 6, out); break;
        case 7: weighted_cols<7>(wt, row, M, n, k, c0, 7, out); break;
        default: break;
    }
}

// out[c] = Σ_j w[j] · M[j, c] for a (n, k) row-major M: the counters' per-neuron sums
// (CountPlan.tally_matrix), exact in double (integers below 2^53, whatever the order). Plain
// loops on one thread: numpy's product goes to a threaded BLAS, whose threads cost far more
// than these small products (0.6 ms instead of 20 µs on the MNIST CNN's conv_1).
TSSLC_CLONES void weighted_sums(const int64_t* w, const double* M, int64_t n, int64_t k, double* out) {
    // (a running sum in memory waits on its own store at every row: ~5x slower on the MNIST
    // CNN's conv_1, 8,640 x 8). Spikes are sparse (an eighth of conv_1's neurons fire on an
    // MNIST digit): the rows of the neurons that fired are listed first (branch-free: a test
    // per neuron would mispredict at random) and only they are read, a fraction of M, which
    // a streamed sample's weights have pushed out of the cache; most of them firing, all rows.
    std::unique_ptr<int64_t[]> idx(new int64_t[n > 0 ? n : 1]);
    int64_t m = 0;
    for (int64_t j = 0; j < n; ++j) {
        idx[m] = j;
        m += w[j] != 0;
    }
    if (2 * m > n) {
        weighted_rows([w](int64_t j) { return static_cast<double>(w[j]); }, [](int64_t j) { return j; }, M, n, k,
                      out);
        return;
    }
    const int64_t* ix = idx.get();
    weighted_rows([w, ix](int64_t j) { return static_cast<double>(w[ix[j]]); }, [ix](int64_t j) { return ix[j]; }, M,
                  m, k, out);
}

// A population's counts from its spikes per neuron ns (n of them, each 0..T): hist[c] the
// neurons firing c times, and where M (n, k) is given vals = ns · M (weighted_sums above).
void population_counts(const int64_t* ns, int64_t n, int64_t T, int64_t* hist, const double* M, int64_t k,
                       double* vals) {
    // eight partial histograms: one running total would wait on its own last increment at
    // every neuron of a sparse layer (nearly all in bin 0)
    constexpr int64_t LANES = 8;
    std::vector<int64_t> part(LANES * (T + 1), 0);
    int64_t j = 0;
    for (; j + LANES <= n; j += LANES)
        for (int64_t l = 0; l < LANES; ++l) ++part[l * (T + 1) + ns[j + l]];
    for (; j < n; ++j) ++part[ns[j]];
    for (int64_t c = 0; c <= T; ++c) {
        int64_t h = 0;
        for (int64_t l = 0; l < LANES; ++l) h += part[l * (T + 1) + c];
        hist[c] = h;
    }
    if (M) weighted_sums(ns, M, n, k, vals);
}

// One sample's population (Tally.population): fired (T, n) its 0/1 spikes; ev (Tev, n) 0/1
// the neurons receiving a synaptic event (Tev = 1: the same at every step, or T), or null
// (none). Writes ns (n) its spikes per neuron, then population_counts; returns the active
// updates (a step with an event or a spike).
TSSLC_CLONES int64_t spike_tally(const uint8_t* __restrict fired, int64_t T, int64_t n,
                                 const uint8_t* __restrict ev, int64_t Tev, const double* M, int64_t k,
                                 int64_t* __restrict ns, int64_t* hist, double* vals) {
    // in blocks of neurons whose counts stay in registers / L1 over the T steps (bytes: T < 256
    // steps is all a block counts at once; longer runs add block counts into ns)
    constexpr int64_t BLK = 1024;
    uint8_t cnt[BLK], act[BLK];
    int64_t active = 0;
    for (int64_t j = 0; j < n; ++j) ns[j] = 0;
    for (int64_t j0 = 0; j0 < n; j0 += BLK) {
        const int64_t m = n - j0 < BLK ? n - j0 : BLK;
        for (int64_t t0 = 0; t0 < T; t0 += 255) {
            const int64_t t1 = T - t0 < 255 ? T : t0 + 255;
            for (int64_t j = 0; j < m; ++j) cnt[j] = 0, act[j] = 0;
            // per neuron its spikes and active steps over these steps, as bytes (elementwise:
            // vectorised; a sum over the neurons at every step is not)
            for (int64_t t = t0; t < t1; ++t) {
                const uint8_t* __restrict f = fired + t * n + j0;
                if (ev) {
                    const uint8_t* __restrict e = ev + (Tev == 1 ? 0 : t) * n + j0;
                    for (int64_t j = 0; j < m; ++j) {
                        const uint8_t s = f[j] != 0;
                        cnt[j] += s;
                        act[j] += s | (e[j] != 0);
                    }
                } else {
                    for (int64_t j = 0; j < m; ++j) cnt[j] += f[j] != 0;
                }
            }
            int64_t a = 0;
            if (ev)
                for (int64_t j = 0; j < m; ++j) a += act[j];
            else
                for (int64_t j = 0; j < m; ++j) a += cnt[j];
            active += a;
            for (int64_t j = 0; j < m; ++j) ns[j0 + j] += cnt[j];
        }
    }
    population_counts(ns, n, T, hist, M, k, vals);
    return active;
}

// Rows of input values x (rows × n; Tally.input: a step of a sample each): out[2r] the
// active (non-zero) values of row r, out[2r+1] 1 when one of them is not ±1 (a graded step:
// MACs), and vals[r·k + c] = Σ over its active values of MT's row c (k × n, a projection's
// fan-out per input): each projection's synaptic operations. Eight running sums per row of
// MT (vectorised: no branch per value), added at the end (exact: integers below 2^53,
// whatever the order).
template <typename X>
TSSLC_INLINE void input_tally(const X* __restrict x, int64_t rows, int64_t n, const double* __restrict MT, int64_t k,
                              int64_t* __restrict out, double* __restrict vals) {
    for (int64_t r = 0; r < rows; ++r) {
        const X* __restrict xr = x + r * n;
        int64_t nnz = 0, graded = 0;
        for (int64_t j = 0; j < n; ++j) {
            const bool a = xr[j] != 0;  // NaN: active and graded
            nnz += a;
            graded |= a & (xr[j] != 1) & (xr[j] != -1);
        }
        out[2 * r] = nnz;
        out[2 * r + 1] = graded;
        for (int64_t c = 0; c < k; ++c) {
            const double* __restrict m = MT + c * n;
            double acc[8] = {};
            int64_t j = 0;
            // times the 0/1 indicator (exact), not a select: GCC 12 vectorises the select form of
            // this loop wrongly (lanes 4-7 of each eight lost, at -O3 with AVX2)
            for (; j + 8 <= n; j += 8)
                for (int l = 0; l < 8; ++l) acc[l] += m[j + l] * static_cast<double>(xr[j + l] != 0);
            for (; j < n; ++j) acc[0] += m[j] * static_cast<double>(xr[j] != 0);
            vals[r * k + c] = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
        }
    }
}

TSSLC_CLONES void input_tally_f32(const float* x, int64_t rows, int64_t n, const double* MT, int64_t k, int64_t* out,
                                  double* vals) {
    input_tally(x, rows, n, MT, k, out, vals);
}
TSSLC_CLONES void input_tally_f64(const double* x, int64_t rows, int64_t n, const double* MT, int64_t k, int64_t* out,
                                  double* vals) {
    input_tally(x, rows, n, MT, k, out, vals);
}
TSSLC_CLONES void input_tally_i64(const int64_t* x, int64_t rows, int64_t n, const double* MT, int64_t k,
                                  int64_t* out, double* vals) {
    input_tally(x, rows, n, MT, k, out, vals);
}

// A whole network of dense Loihi 2 layers for one sample, in one call (streaming): the
// graded payloads of a static image x (n_x values, graded() above), then layer after layer
// loihi2_dense from the payloads (one input step) or the previous layer's spikes (T steps).
// Layer l: ip[8l..8l+8) = Nin, Nout, zmax, floor, du, dv, vth, bias; scales[l] = 2^weight_exp;
// ptrs[3l..3l+3) its float32 weights (Nin, Nout), the same row-major (Nout, Nin) or null,
// and its 0/1 mask; its spikes (T, Nout)
// uint8 written at out + offs[4l] and, counting, its spikes per neuron (int64) at
// out + offs[4l+1], its neurons by spike count 0..T (int64) at out + offs[4l+2], its active
// updates in active[l] and, where mats[l] (row-major Nout × mk[l] float64) is given, the
// product of its spikes per neuron with it (float64) at out + offs[4l+3] (the counters'
// per-neuron weights: CountPlan.tally_matrix); fan: the input's fan-out (counting: its counts
// per step in in_stats). Filing (nf > 0, counting): the counters' totals made from those
// counts (CountPlan.filing): each row of file (nf × 4 int64: source byte offset in out, its
// kind: 0 an int64, 1 a float64 (an exact integer), 2 none (the constant 1); the total's index
// in packed, weight) adds source × weight to packed[index] (packed zeroed first, np_ of them). Returns 0,
// or -1 when x holds a NaN (nothing written: the caller's reference path decides its payload).
template <typename X>
TSSLC_CLONES int64_t loihi2_chain(const X* x, int64_t n_x, double gscale, double glim, int64_t T, int64_t L,
                                  const int64_t* ip, const double* scales, const void* const* ptrs, const int64_t* fan,
                                  int64_t* in_stats, uint8_t* out, const int64_t* offs, int64_t* active,
                                  const double* const* mats, const int64_t* mk, int count, const int64_t* file,
                                  int64_t nf, int64_t* packed, int64_t np_, int nthreads) {
    std::unique_ptr<float[]> payload(new float[n_x]);
    if (graded<X>(x, payload.get(), n_x, gscale, glim)) return -1;
    const float* a = payload.get();
    int64_t Tin = 1;
    std::unique_ptr<float[]> prev, next;
    for (int64_t l = 0; l < L; ++l) {
        const int64_t* q = ip + 8 * l;  // Nin, Nout, zmax, floor, du, dv, vth, bias
        next.reset(l + 1 < L ? new float[T * q[1]] : nullptr);  // this layer's spikes: the next one's input
        int64_t* ns = count ? reinterpret_cast<int64_t*>(out + offs[4 * l + 1]) : nullptr;
        active[l] = loihi2_dense_impl(
            a, Tin, T, q[0], static_cast<const float*>(ptrs[3 * l]), static_cast<const float*>(ptrs[3 * l + 1]),
            static_cast<float>(scales[l]), static_cast<const uint8_t*>(ptrs[3 * l + 2]), q[2], q[1],
            static_cast<int>(q[3]), q[4], q[5], q[6], q[7], out + offs[4 * l], next.get(), ns,
            l == 0 && count ? fan : nullptr, in_stats, nthreads);
        if (count)  // the population's neurons by spike count, and ns · M (exact: integers below 2^53)
            population_counts(ns, q[1], T, reinterpret_cast<int64_t*>(out + offs[4 * l + 2]),
                              mats ? mats[l] : nullptr, mats ? mk[l] : 0,
                              reinterpret_cast<double*>(out + offs[4 * l + 3]));
        prev = std::move(next);
        a = prev.get();
        Tin = T;
    }
    if (count && nf > 0) {
        for (int64_t i = 0; i < np_; ++i) packed[i] = 0;
        for (int64_t r = 0; r < nf; ++r) {
            const int64_t* f = file + 4 * r;
            const uint8_t* src = out + f[0];
            const int64_t v = f[1] == 2 ? 1
                              : f[1] ? static_cast<int64_t>(*reinterpret_cast<const double*>(src))
                                     : *reinterpret_cast<const int64_t*>(src);
            packed[f[2]] += v * f[3];
        }
    }
    return 0;
}

// The events of a conv projection (tsslc/backends/counters.py, Tally.events): hit[f, o, p]
// = 1 when output channel o at output position p of frame f receives at least one synaptic
// event: an active input (act != 0) in its window on a non-zero weight (the graph's non-zero
// weights; zero padding is no synapse). Settled as the torch path does: a non-zero current
// proves an event (cur, may be null; one vectorised pass); a window with no active input has
// none; one with more active inputs than the channel has zero weights has one (some active
// input meets a non-zero weight); for the rest, the active inputs that sit on the channel's
// zero weights are counted (zidx[zoff[o]..zoff[o+1]): the flat (c, ky, kx) index of each) and the window has an event when it holds more active inputs
// than that. A window's active inputs come from the integral image of the frame and group's
// count of active inputs per position. act (F, C, H, W), cur and hit (F, O, Ho, Wo); frames
// spread over threads.
template <typename Act, typename Cur>
TSSLC_CLONES void conv_events(const Act* act, int64_t F, int64_t C, int64_t H, int64_t W, const int64_t* zoff,
                              const int32_t* zidx, int64_t O, int64_t kh, int64_t kw, int64_t stride, int64_t pad,
                              int64_t G, const Cur* cur, int64_t Ho, int64_t Wo, uint8_t* hit, int nthreads) {
    const int64_t Cg = C / G, Og = O / G, L = Ho * Wo, W1 = W + 1, HW = H * W, K = kh * kw;
    const int nt = threads_for(nthreads, F, C * H * W + O * L);
#pragma omp parallel num_threads(nt) if (nt > 1)
    {
        std::vector<int32_t> S((H + 1) * W1), cnt(HW);
#pragma omp for schedule(static)
        for (int64_t f = 0; f < F; ++f) {
            for (int64_t g = 0; g < G; ++g) {
                const Act* a0 = act + (f * C + g * Cg) * HW;
                bool counted = false;  // S made for this frame and group
                for (int64_t o = g * Og; o < (g + 1) * Og; ++o) {
                    uint8_t* h = hit + (f * O + o) * L;
                    int64_t open = L;
                    if (cur) {
                        const Cur* cz = cur + (f * O + o) * L;
                        open = 0;
                        for (int64_t p = 0; p < L; ++p) {
                            h[p] = cz[p] != 0;
                            open += cz[p] == 0;
                        }
                        if (!open) continue;
                    }
                    if (!counted) {  // active inputs per position, then their integral image
                        for (int64_t i = 0; i < HW; ++i) cnt[i] = 0;
                        for (int64_t c = 0; c < Cg; ++c) {
                            const Act* ac = a0 + c * HW;
                            for (int64_t i = 0; i < HW; ++i) cnt[i] += ac[i] != 0;
                        }
                        for (int64_t x = 0; x <= W; ++x) S[x] = 0;
                        for (int64_t y = 0; y < H; ++y) {
                            int32_t row = 0;
                            S[(y + 1) * W1] = 0;
                            for (int64_t x = 0; x < W; ++x) {
                                row += cnt[y * W + x];
                                S[(y + 1) * W1 + x + 1] = S[y * W1 + x + 1] + row;
                            }
                        }
                        counted = true;
                    }
                    for (int64_t oy = 0; oy < Ho; ++oy) {
                        const int64_t y0 = oy * stride - pad;
                        const int64_t ya = y0 < 0 ? 0 : y0, yb = y0 + kh > H ? H : y0 + kh;
                        for (int64_t ox = 0; ox < Wo; ++ox) {
                            const int64_t p = oy * Wo + ox;
                            if (cur && h[p]) continue;
                            const int64_t x0 = ox * stride - pad;
                            const int64_t xa = x0 < 0 ? 0 : x0, xb = x0 + kw > W ? W : x0 + kw;
                            const int64_t n = ya < yb && xa < xb
                                                  ? S[yb * W1 + xb] - S[ya * W1 + xb] - S[yb * W1 + xa] + S[ya * W1 + xa]
                                                  : 0;
                            if (n == 0 || n > zoff[o + 1] - zoff[o]) {
                                h[p] = n > 0;
                                continue;
                            }
                            int64_t z = 0;  // the window's active inputs on zero weights
                            for (int64_t e = zoff[o]; e < zoff[o + 1]; ++e) {
                                const int64_t c = zidx[e] / K, r = zidx[e] % K;
                                const int64_t y = y0 + r / kw, x = x0 + r % kw;
                                z += y >= 0 && y < H && x >= 0 && x < W && a0[c * HW + y * W + x] != 0;
                            }
                            h[p] = n > z;
                        }
                    }
                }
            }
        }
    }
}

}  // namespace

extern "C" {

int64_t tsslc_graded_f32(const float* x, float* out, int64_t n, double scale, double lim) {
    return graded<float>(x, out, n, scale, lim);
}
int64_t tsslc_graded_f64(const double* x, float* out, int64_t n, double scale, double lim) {
    return graded<double>(x, out, n, scale, lim);
}

// The hash of the source this library was built from (tsslc/fused_cpu.py rebuilds a stale one).
const char* tsslc_src_hash() { return TSSLC_SRC_HASH; }

void tsslc_forward_f32(const float* x, float* a, float* s, float* u, float* du, int64_t T, int64_t N, double tau_m,
                       double tau_s, double V, int nthreads) {
    run_forward<float>(forward_f32, x, a, s, u, du, T, N, tau_m, tau_s, V, nthreads);
}
void tsslc_forward_f64(const double* x, double* a, double* s, double* u, double* du, int64_t T, int64_t N,
                       double tau_m, double tau_s, double V, int nthreads) {
    run_forward<double>(forward_f64, x, a, s, u, du, T, N, tau_m, tau_s, V, nthreads);
}
void tsslc_backward_f32(const float* x, const float* g, float* d, int64_t T, int64_t N, double tau_m, double tau_s,
                        double V, int nthreads) {
    run_backward<float>(backward_f32, x, g, d, T, N, tau_m, tau_s, V, nthreads);
}
void tsslc_backward_f64(const double* x, const double* g, double* d, int64_t T, int64_t N, double tau_m,
                        double tau_s, double V, int nthreads) {
    run_backward<double>(backward_f64, x, g, d, T, N, tau_m, tau_s, V, nthreads);
}

// The Loihi 2 LIF over T steps on int64 or float32 (exact integer) currents; fresh != 0:
// from the zero state (u and v are then only written).
void tsslc_loihi2_lif_i64(const int64_t* cur, int64_t stride_t, int64_t* u, int64_t* v, uint8_t* s8, float* sf,
                          int64_t T, int64_t N, int64_t du, int64_t dv, int64_t vth, int64_t bias, int fresh,
                          int nthreads) {
    loihi2_lif<int64_t>(loihi2_block_i64, cur, stride_t, u, v, s8, sf, T, N, du, dv, vth, bias, fresh, nthreads);
}
void tsslc_loihi2_lif_f32(const float* cur, int64_t stride_t, int64_t* u, int64_t* v, uint8_t* s8, float* sf,
                          int64_t T, int64_t N, int64_t du, int64_t dv, int64_t vth, int64_t bias, int fresh,
                          int nthreads) {
    loihi2_lif<float>(loihi2_block_f32, cur, stride_t, u, v, s8, sf, T, N, du, dv, vth, bias, fresh, nthreads);
}

// One dense Loihi 2 layer of one sample (loihi2_dense above); returns the active neuron
// updates when ns is given (else 0), or -2 when its buffers cannot be allocated (no C++
// exception may cross into ctypes).
// Counting (ns not null), hist (T + 1) gets the neurons by spike count and, where M (Nout, k)
// is given, vals = ns · M (population_counts above).
int64_t tsslc_loihi2_dense(const float* a, int64_t Tin, int64_t T, int64_t Nin, const float* wt, const float* wr,
                           double scale, const uint8_t* mask, int64_t zmax, int64_t Nout, int floor_, int64_t du,
                           int64_t dv, int64_t vth, int64_t bias, uint8_t* s8, float* sf, int64_t* ns,
                           const int64_t* fan, int64_t* in_stats, int64_t* hist, const double* M, int64_t k,
                           double* vals, int nthreads) {
    try {
        const int64_t active = loihi2_dense(a, Tin, T, Nin, wt, wr, static_cast<float>(scale), mask, zmax, Nout,
                                            floor_, du, dv, vth, bias, s8, sf, ns, fan, in_stats, nthreads);
        if (ns && hist && active >= 0) population_counts(ns, Nout, T, hist, M, k, vals);
        return active;
    } catch (const std::bad_alloc&) {
        return -2;
    }
}

// A network of dense Loihi 2 layers for one static graded sample (loihi2_chain above); -2
// when its buffers cannot be allocated.
int64_t tsslc_loihi2_chain(const void* x, int x_f64, int64_t n_x, double gscale, double glim, int64_t T, int64_t L,
                           const int64_t* ip, const double* scales, const void* const* ptrs, const int64_t* fan,
                           int64_t* in_stats, uint8_t* out, const int64_t* offs, int64_t* active,
                           const double* const* mats, const int64_t* mk, int count, const int64_t* file,
                           int64_t nf, int64_t* packed, int64_t np_, int nthreads) {
    try {
        if (x_f64)
            return loihi2_chain<double>(static_cast<const double*>(x), n_x, gscale, glim, T, L, ip, scales, ptrs, fan,
                                        in_stats, out, offs, active, mats, mk, count, file, nf, packed, np_, nthreads);
        return loihi2_chain<float>(static_cast<const float*>(x), n_x, gscale, glim, T, L, ip, scales, ptrs, fan,
                                   in_stats, out, offs, active, mats, mk, count, file, nf, packed, np_, nthreads);
    } catch (const std::bad_alloc&) {
        return -2;
    }
}

// The events of a conv projection (conv_events above): the inputs float32 (act_u8 0) or bytes
// (1: spikes, 0/1 or bool); the current float32 (cur_kind 1), int64 (2) or none (0).
void tsslc_conv_events(const void* act, int act_u8, int64_t F, int64_t C, int64_t H, int64_t W, const int64_t* zoff,
                       const int32_t* zidx, int64_t O, int64_t kh, int64_t kw, int64_t stride, int64_t pad, int64_t G,
                       const void* cur, int cur_kind, int64_t Ho, int64_t Wo, uint8_t* hit, int nthreads) {
    const auto run = [&](auto* a) {
        if (cur_kind == 2)
            conv_events(a, F, C, H, W, zoff, zidx, O, kh, kw, stride, pad, G, static_cast<const int64_t*>(cur), Ho,
                        Wo, hit, nthreads);
        else
            conv_events(a, F, C, H, W, zoff, zidx, O, kh, kw, stride, pad, G,
                        cur_kind == 1 ? static_cast<const float*>(cur) : nullptr, Ho, Wo, hit, nthreads);
    };
    if (act_u8)
        run(static_cast<const uint8_t*>(act));
    else
        run(static_cast<const float*>(act));
}

// The counters' per-neuron sums (weighted_sums above).
void tsslc_weighted_sums(const int64_t* w, const double* M, int64_t n, int64_t k, double* out) {
    weighted_sums(w, M, n, k, out);
}

// Rows of input values counted (input_tally above): x float32 (kind 0), float64 (1) or int64
// (2).
void tsslc_input_tally(const void* x, int kind, int64_t rows, int64_t n, const double* MT, int64_t k, int64_t* out,
                       double* vals) {
    if (kind == 0)
        input_tally_f32(static_cast<const float*>(x), rows, n, MT, k, out, vals);
    else if (kind == 1)
        input_tally_f64(static_cast<const double*>(x), rows, n, MT, k, out, vals);
    else
        input_tally_i64(static_cast<const int64_t*>(x), rows, n, MT, k, out, vals);
}

// One sample's population counts (spike_tally above).
int64_t tsslc_spike_tally(const uint8_t* fired, int64_t T, int64_t n, const uint8_t* ev, int64_t Tev,
                          const double* M, int64_t k, int64_t* ns, int64_t* hist, double* vals) {
    return spike_tally(fired, T, n, ev, Tev, M, k, ns, hist, vals);
}

}  // extern "C"
