/* One pass over a tensor's values for a trace's statistics (lite_debug/_worker.py), and over a
   pair of tensors for a comparison's metrics (lite_debug/compare.py).

   numpy computes each statistic in its own pass over the values (min, max, a comparison for the
   zeros, two dot products): five or more reads of every tensor, plus a few microseconds of
   call overhead each, 91 times per trace of the face detector. These loops read each value
   once. They take any C-contiguous buffer of the one type they name and check nothing else:
   lite_debug/_worker.py falls back to numpy for anything they refuse, and when this module is
   not built at all (it is optional: no compiler, another platform).

   The float loop adds in four lanes with SSE2 where the compiler offers it (every x86-64
   compiler does); the integer loops are left to the compiler's vectorizer. A NaN or an
   infinity shows in the returned float sum, which the caller checks. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <math.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* Elements per block: the block's counts fit in 32 bits, and its float sums stay short before
   they are added in double. */
#define BLOCK 4096

/* Whether a buffer's struct format names the one native little-endian type ``code``. */
static int format_is(const Py_buffer *view, char code) {
    const char *f = view->format;
    if (f == NULL) return 0;
    if (f[0] == '@' || f[0] == '=') f++;
#if PY_LITTLE_ENDIAN
    else if (f[0] == '<') f++;
#endif
    return f[0] == code && f[1] == '\0';
}

static int get(PyObject *obj, Py_buffer *view, char code, Py_ssize_t itemsize) {
    if (PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return -1;
    if (view->itemsize != itemsize || !format_is(view, code)) {
        PyBuffer_Release(view);
        PyErr_Format(PyExc_TypeError, "expected a C-contiguous buffer of format '%c'", code);
        return -1;
    }
    return 0;
}

PyDoc_STRVAR(f32_doc,
"f32(values) -> (min, max, sum, sum of squares, zeros)\n\n"
"One pass over a C-contiguous float32 buffer; the sums in double. With a NaN or an infinity\n"
"among the values the sum is not finite, and min and max are not to be trusted.");

/* min, max, sum, sum of squares and zeros of x[0..n), added to what the pointers hold; the
   sums in float (n is at most a block), added to the totals in double. */
static void f32_block(const float *x, Py_ssize_t n, float *lo, float *hi, double *sum, double *squares,
                      long long *zeros) {
    Py_ssize_t i = 0;
    float l = *lo, h = *hi, s = 0.0f, q = 0.0f;
    int32_t z = 0;
#if defined(__SSE2__)
    /* Four lanes, twice over for the adders' latency. _mm_min_ps(a, b) is b when either is NaN:
       a NaN may go missing from min and max, never from the sum. */
    __m128 l0 = _mm_set1_ps(l), l1 = l0, h0 = _mm_set1_ps(h), h1 = h0;
    __m128 s0 = _mm_setzero_ps(), s1 = s0, q0 = s0, q1 = s0, zero = s0;
    __m128i z0 = _mm_setzero_si128(), z1 = z0;
    for (; i + 8 <= n; i += 8) {
        __m128 a = _mm_loadu_ps(x + i), b = _mm_loadu_ps(x + i + 4);
        l0 = _mm_min_ps(l0, a);
        l1 = _mm_min_ps(l1, b);
        h0 = _mm_max_ps(h0, a);
        h1 = _mm_max_ps(h1, b);
        s0 = _mm_add_ps(s0, a);
        s1 = _mm_add_ps(s1, b);
        q0 = _mm_add_ps(q0, _mm_mul_ps(a, a));
        q1 = _mm_add_ps(q1, _mm_mul_ps(b, b));
        z0 = _mm_sub_epi32(z0, _mm_castps_si128(_mm_cmpeq_ps(a, zero)));  /* a true lane is -1 */
        z1 = _mm_sub_epi32(z1, _mm_castps_si128(_mm_cmpeq_ps(b, zero)));
    }
    float lv[4], hv[4], sv[4], qv[4];
    int32_t zv[4];
    _mm_storeu_ps(lv, _mm_min_ps(l0, l1));
    _mm_storeu_ps(hv, _mm_max_ps(h0, h1));
    _mm_storeu_ps(sv, _mm_add_ps(s0, s1));
    _mm_storeu_ps(qv, _mm_add_ps(q0, q1));
    _mm_storeu_si128((__m128i *)zv, _mm_add_epi32(z0, z1));
    for (int k = 0; k < 4; k++) {
        l = lv[k] < l ? lv[k] : l;
        h = hv[k] > h ? hv[k] : h;
        s += sv[k];
        q += qv[k];
        z += zv[k];
    }
#endif
    for (; i < n; i++) {
        float v = x[i];
        l = v < l ? v : l;
        h = v > h ? v : h;
        s += v;
        q += v * v;
        z += v == 0.0f;
    }
    *lo = l;
    *hi = h;
    *sum += s;
    *squares += q;
    *zeros += z;
}

/* f32_block over a whole float32 buffer, a block at a time; the caller has let go of the GIL. */
static void f32_pass(const Py_buffer *view, float *lo, float *hi, double *sum, double *squares, long long *zeros) {
    const float *x = (const float *)view->buf;
    Py_ssize_t n = view->len / 4;
    *lo = INFINITY;
    *hi = -INFINITY;
    *sum = *squares = 0.0;
    *zeros = 0;
    for (Py_ssize_t start = 0; start < n; start += BLOCK)
        f32_block(x + start, n - start < BLOCK ? n - start : BLOCK, lo, hi, sum, squares, zeros);
}

static PyObject *f32(PyObject *Py_UNUSED(self), PyObject *arg) {
    Py_buffer view;
    if (get(arg, &view, 'f', 4) < 0) return NULL;
    float lo, hi;
    double sum, squares;
    long long zeros;
    Py_BEGIN_ALLOW_THREADS
    f32_pass(&view, &lo, &hi, &sum, &squares, &zeros);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    return Py_BuildValue("(ddddL)", (double)lo, (double)hi, sum, squares, zeros);
}

PyDoc_STRVAR(f32_rows_doc,
"f32_rows(arrays) -> list of [count, min, max, mean, std, 0, 0, zeros, 0, 0] or None\n\n"
"f32 over each array, with the mean and standard deviation worked out as\n"
"lite_debug._worker._float32_row does (the same double arithmetic): one call for a trace's\n"
"tensors instead of one each, every pass without the GIL. None for an array it cannot take (not a C-contiguous float32\n"
"buffer), one with NaN or an infinity, and one whose mean dwarfs its spread (where the\n"
"sum of squares loses the variance): the caller computes those another way.");

typedef struct {
    Py_buffer view;
    int ok;
    float lo, hi;
    double sum, squares;
    long long zeros;
} f32_job;

static PyObject *f32_rows(PyObject *Py_UNUSED(self), PyObject *arg) {
    PyObject *seq = PySequence_Fast(arg, "f32_rows takes a sequence of arrays");
    if (seq == NULL) return NULL;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
    PyObject *out = PyList_New(count);
    f32_job *jobs = count ? PyMem_Calloc((size_t)count, sizeof(f32_job)) : NULL;
    if (out == NULL || (count && jobs == NULL)) {
        Py_XDECREF(out);
        Py_DECREF(seq);
        PyMem_Free(jobs);
        return out == NULL ? NULL : PyErr_NoMemory();
    }
    for (Py_ssize_t k = 0; k < count; k++) {
        jobs[k].ok = get(PySequence_Fast_GET_ITEM(seq, k), &jobs[k].view, 'f', 4) == 0;
        if (!jobs[k].ok) PyErr_Clear();
    }
    /* Every pass without the GIL, once: a thread beside this one (another part of the same
       trace) runs its own passes meanwhile instead of waiting to take the GIL back. */
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t k = 0; k < count; k++) {
        f32_job *j = &jobs[k];
        if (j->ok) f32_pass(&j->view, &j->lo, &j->hi, &j->sum, &j->squares, &j->zeros);
    }
    Py_END_ALLOW_THREADS
    int failed = 0;
    for (Py_ssize_t k = 0; k < count; k++) {
        f32_job *j = &jobs[k];
        PyObject *row = Py_None;
        if (j->ok) {
            Py_ssize_t n = j->view.len / 4;
            PyBuffer_Release(&j->view);
            if (!failed && n && isfinite(j->sum) && isfinite(j->squares)) {
                double mean = j->sum / (double)n, var = j->squares / (double)n - mean * mean;
                if (var >= 0.1 * j->squares / (double)n)
                    row = Py_BuildValue("[dddddddddd]", (double)n, (double)j->lo, (double)j->hi, mean, sqrt(var), 0.0,
                                        0.0, (double)j->zeros, 0.0, 0.0);
                if (row == NULL) failed = 1;
            }
        }
        if (failed) continue; /* (the buffers are still released) */
        if (row == Py_None) Py_INCREF(row);
        PyList_SET_ITEM(out, k, row);
    }
    PyMem_Free(jobs);
    Py_DECREF(seq);
    if (failed) {
        Py_DECREF(out);
        return NULL;
    }
    return out;
}

PyDoc_STRVAR(i8_doc,
"i8(values, zero_point) -> (min, max, sum, sum of squares, at the type's min, at its max, at zero_point)\n\n"
"One pass over a C-contiguous int8 ('b') or uint8 ('B') buffer; exact integer sums.");

/* i8's pass over the n values of view.buf, of type T whose range is [TMIN, TMAX]: one
   definition for int8 and uint8, which the compiler vectorizes each with its own instructions. */
#define BYTES_PASS(T, TMIN, TMAX)                                                   \
    do {                                                                            \
        const T *x = (const T *)view.buf;                                           \
        T zp = (T)zero_point;                                                       \
        int outside = zero_point < (TMIN) || zero_point > (TMAX);                   \
        for (Py_ssize_t start = 0; start < n; start += BLOCK) {                     \
            Py_ssize_t end = n - start < BLOCK ? n : start + BLOCK;                 \
            int32_t s = 0, q = 0, a = 0, b = 0, z = 0;                              \
            T l = (TMAX), h = (TMIN);                                               \
            for (Py_ssize_t i = start; i < end; i++) {                              \
                T v = x[i];                                                         \
                l = v < l ? v : l;                                                  \
                h = v > h ? v : h;                                                  \
                s += v;                                                             \
                q += (int32_t)v * v;                                                \
                a += v == (TMIN);                                                   \
                b += v == (TMAX);                                                   \
                z += v == zp;                                                       \
            }                                                                       \
            lo = l < lo ? l : lo;                                                   \
            hi = h > hi ? h : hi;                                                   \
            sum += s;                                                               \
            squares += q;                                                           \
            at_min += a;                                                            \
            at_max += b;                                                            \
            at_zero += outside ? 0 : z;                                             \
        }                                                                           \
    } while (0)

static PyObject *i8(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *obj;
    int zero_point;
    if (!PyArg_ParseTuple(args, "Oi:i8", &obj, &zero_point)) return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(obj, &view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return NULL;
    int is_signed = format_is(&view, 'b');
    if (view.itemsize != 1 || !(is_signed || format_is(&view, 'B'))) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_TypeError, "expected a C-contiguous buffer of format 'b' or 'B'");
        return NULL;
    }
    Py_ssize_t n = view.len;
    int lo = 255, hi = -128;
    long long sum = 0, squares = 0, at_min = 0, at_max = 0, at_zero = 0;
    Py_BEGIN_ALLOW_THREADS
    if (is_signed)
        BYTES_PASS(int8_t, -128, 127);
    else
        BYTES_PASS(uint8_t, 0, 255);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    return Py_BuildValue("(iiLLLLL)", lo, hi, sum, squares, at_min, at_max, at_zero);
}

PyDoc_STRVAR(pair_f32_doc,
"pair_f32(reference, candidate, atol, rtol[, scale, zero_point]) -> (outside, max_abs, sum_abs,\n"
"max_rel, atol_needed, rtol_needed, sum r*r, sum d*d, sum c*c, sum r*c)\n\n"
"One pass over two C-contiguous float32 buffers of one length, d = c - r, in float32 as numpy\n"
"computes lite_debug.compare._chunk_sums (atol and rtol rounded to float32 as numpy 2 rounds a\n"
"Python float beside a float32 array); the sums in float per block, then double. With a NaN or\n"
"an infinity on either side, sum r*r or sum c*c is not finite and nothing else is to be trusted.\n"
"With a scale, the candidate is int8 or uint8, taken as (q - zero_point) * scale in float32 (as\n"
"lite_debug.quantization.dequantize computes it), a block at a time.");

typedef struct {
    float max_abs, max_rel, atol_needed, rtol_needed;
    double sum_abs, sig, noise, cand, cross;
    long long outside;
} pair_sums;

static void pair_block(const float *r, const float *c, Py_ssize_t n, float atol, float rtol, pair_sums *t) {
    Py_ssize_t i = 0;
    float max_abs = t->max_abs, max_rel = t->max_rel, atol_needed = t->atol_needed, rtol_needed = t->rtol_needed;
    float sum_abs = 0.0f, sig = 0.0f, noise = 0.0f, cand = 0.0f, cross = 0.0f;
    int32_t outside = 0;
#if defined(__SSE2__)
    const __m128 sign = _mm_set1_ps(-0.0f), zero = _mm_setzero_ps(), inf = _mm_set1_ps(INFINITY);
    const __m128 vatol = _mm_set1_ps(atol), vrtol = _mm_set1_ps(rtol);
    __m128 mabs = _mm_set1_ps(max_abs), mrel = _mm_set1_ps(max_rel);
    __m128 matol = _mm_set1_ps(atol_needed), mrtol = _mm_set1_ps(rtol_needed);
    __m128 sabs = zero, ssig = zero, snoise = zero, scand = zero, scross = zero;
    __m128i out = _mm_setzero_si128();
    for (; i + 4 <= n; i += 4) {
        __m128 vr = _mm_loadu_ps(r + i), vc = _mm_loadu_ps(c + i);
        __m128 d = _mm_sub_ps(vc, vr);
        __m128 ad = _mm_andnot_ps(sign, d), ar = _mm_andnot_ps(sign, vr);
        ssig = _mm_add_ps(ssig, _mm_mul_ps(vr, vr));
        scand = _mm_add_ps(scand, _mm_mul_ps(vc, vc));
        snoise = _mm_add_ps(snoise, _mm_mul_ps(d, d));
        scross = _mm_add_ps(scross, _mm_mul_ps(vr, vc));
        sabs = _mm_add_ps(sabs, ad);
        mabs = _mm_max_ps(mabs, ad);
        /* |d| / |r|; where r is 0, inf for a difference and nothing (0) for none. */
        __m128 nonzero = _mm_cmpgt_ps(ar, zero);
        __m128 rel = _mm_or_ps(_mm_and_ps(nonzero, _mm_div_ps(ad, ar)),
                               _mm_and_ps(_mm_andnot_ps(nonzero, _mm_cmpgt_ps(ad, zero)), inf));
        mrel = _mm_max_ps(mrel, rel);
        __m128 scaled = _mm_mul_ps(ar, vrtol);
        matol = _mm_max_ps(matol, _mm_sub_ps(ad, scaled));
        /* (|d| - atol) / |r| where |d| > atol (inf where r is 0), 0 elsewhere */
        __m128 excess = _mm_sub_ps(ad, vatol);
        __m128 over = _mm_cmpgt_ps(excess, zero);
        mrtol = _mm_max_ps(mrtol, _mm_and_ps(over, _mm_div_ps(excess, ar)));
        out = _mm_sub_epi32(out, _mm_castps_si128(_mm_cmpgt_ps(ad, _mm_add_ps(scaled, vatol))));
    }
    float v[5][4];
    int32_t o[4];
    _mm_storeu_ps(v[0], sabs);
    _mm_storeu_ps(v[1], ssig);
    _mm_storeu_ps(v[2], snoise);
    _mm_storeu_ps(v[3], scand);
    _mm_storeu_ps(v[4], scross);
    _mm_storeu_si128((__m128i *)o, out);
    float m[4][4];
    _mm_storeu_ps(m[0], mabs);
    _mm_storeu_ps(m[1], mrel);
    _mm_storeu_ps(m[2], matol);
    _mm_storeu_ps(m[3], mrtol);
    for (int k = 0; k < 4; k++) {
        sum_abs += v[0][k];
        sig += v[1][k];
        noise += v[2][k];
        cand += v[3][k];
        cross += v[4][k];
        outside += o[k];
        max_abs = m[0][k] > max_abs ? m[0][k] : max_abs;
        max_rel = m[1][k] > max_rel ? m[1][k] : max_rel;
        atol_needed = m[2][k] > atol_needed ? m[2][k] : atol_needed;
        rtol_needed = m[3][k] > rtol_needed ? m[3][k] : rtol_needed;
    }
#endif
    for (; i < n; i++) {
        float vr = r[i], vc = c[i], d = vc - vr;
        float ad = fabsf(d), ar = fabsf(vr);
        sig += vr * vr;
        cand += vc * vc;
        noise += d * d;
        cross += vr * vc;
        sum_abs += ad;
        max_abs = ad > max_abs ? ad : max_abs;
        float rel = ar > 0.0f ? ad / ar : (ad > 0.0f ? INFINITY : 0.0f);
        max_rel = rel > max_rel ? rel : max_rel;
        float scaled = ar * rtol;
        atol_needed = ad - scaled > atol_needed ? ad - scaled : atol_needed;
        float excess = ad - atol;
        if (excess > 0.0f) {
            float need = excess / ar;
            rtol_needed = need > rtol_needed ? need : rtol_needed;
        }
        outside += ad > scaled + atol;
    }
    t->max_abs = max_abs;
    t->max_rel = max_rel;
    t->atol_needed = atol_needed;
    t->rtol_needed = rtol_needed;
    t->sum_abs += sum_abs;
    t->sig += sig;
    t->noise += noise;
    t->cand += cand;
    t->cross += cross;
    t->outside += outside;
}

/* c[0..n) of an int8 or uint8 buffer in real units, (q - zero point) * scale in float32 as
   lite_debug.quantization.dequantize computes it. */
static void dequantize_block(const void *c, int is_signed, Py_ssize_t n, float zero_point, float scale, float *out) {
    if (is_signed) {
        const int8_t *q = (const int8_t *)c;
        for (Py_ssize_t i = 0; i < n; i++) out[i] = ((float)q[i] - zero_point) * scale;
    } else {
        const uint8_t *q = (const uint8_t *)c;
        for (Py_ssize_t i = 0; i < n; i++) out[i] = ((float)q[i] - zero_point) * scale;
    }
}

static PyObject *pair_f32(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *a, *b, *scale_obj = Py_None;
    double atol, rtol;
    int zero_point = 0;
    if (!PyArg_ParseTuple(args, "OOdd|Oi:pair_f32", &a, &b, &atol, &rtol, &scale_obj, &zero_point)) return NULL;
    Py_buffer rv, cv;
    if (get(a, &rv, 'f', 4) < 0) return NULL;
    int quantized = scale_obj != Py_None, is_signed = 0;
    float scale = 0.0f;
    if (quantized) {
        scale = (float)PyFloat_AsDouble(scale_obj);
        if (scale == -1.0f && PyErr_Occurred()) {
            PyBuffer_Release(&rv);
            return NULL;
        }
        if (PyObject_GetBuffer(b, &cv, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
            PyBuffer_Release(&rv);
            return NULL;
        }
        is_signed = format_is(&cv, 'b');
        if (cv.itemsize != 1 || !(is_signed || format_is(&cv, 'B'))) {
            PyBuffer_Release(&rv);
            PyBuffer_Release(&cv);
            PyErr_SetString(PyExc_TypeError, "a quantized candidate must be a C-contiguous int8 or uint8 buffer");
            return NULL;
        }
    } else if (get(b, &cv, 'f', 4) < 0) {
        PyBuffer_Release(&rv);
        return NULL;
    }
    Py_ssize_t n = rv.len / 4;
    if (cv.len / cv.itemsize != n) {
        PyBuffer_Release(&rv);
        PyBuffer_Release(&cv);
        PyErr_SetString(PyExc_ValueError, "the two buffers differ in length");
        return NULL;
    }
    const float *r = (const float *)rv.buf;
    pair_sums t = {0.0f, 0.0f, 0.0f, 0.0f, 0.0, 0.0, 0.0, 0.0, 0.0, 0};
    Py_BEGIN_ALLOW_THREADS
    float real[BLOCK];
    for (Py_ssize_t start = 0; start < n; start += BLOCK) {
        Py_ssize_t m = n - start < BLOCK ? n - start : BLOCK;
        const float *c;
        if (quantized) {
            dequantize_block((const char *)cv.buf + start, is_signed, m, (float)zero_point, scale, real);
            c = real;
        } else {
            c = (const float *)cv.buf + start;
        }
        pair_block(r + start, c, m, (float)atol, (float)rtol, &t);
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&rv);
    PyBuffer_Release(&cv);
    return Py_BuildValue("(Lddddddddd)", t.outside, (double)t.max_abs, t.sum_abs, (double)t.max_rel,
                         (double)t.atol_needed, (double)t.rtol_needed, t.sig, t.noise, t.cand, t.cross);
}

PyDoc_STRVAR(channels_f32_doc,
"channels_f32(values, channels) -> list of the sums of squares of each channel\n\n"
"Over a C-contiguous float32 buffer whose last axis has ``channels`` values, in double.");

static PyObject *channels_f32(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *obj;
    Py_ssize_t channels;
    if (!PyArg_ParseTuple(args, "On:channels_f32", &obj, &channels)) return NULL;
    Py_buffer view;
    if (get(obj, &view, 'f', 4) < 0) return NULL;
    Py_ssize_t n = view.len / 4;
    if (channels <= 0 || n % channels) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "the values are not a whole number of rows of that many channels");
        return NULL;
    }
    double *energy = PyMem_Calloc((size_t)channels, sizeof(double));
    if (energy == NULL) {
        PyBuffer_Release(&view);
        return PyErr_NoMemory();
    }
    const float *x = (const float *)view.buf;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t row = 0; row < n; row += channels)
        for (Py_ssize_t k = 0; k < channels; k++) {
            double v = x[row + k];
            energy[k] += v * v;
        }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    PyObject *list = PyList_New(channels);
    for (Py_ssize_t k = 0; list != NULL && k < channels; k++) {
        PyObject *f = PyFloat_FromDouble(energy[k]);
        if (f == NULL) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, k, f);
    }
    PyMem_Free(energy);
    return list;
}

static PyMethodDef methods[] = {
    {"f32", f32, METH_O, f32_doc},
    {"f32_rows", f32_rows, METH_O, f32_rows_doc},
    {"i8", i8, METH_VARARGS, i8_doc},
    {"pair_f32", pair_f32, METH_VARARGS, pair_f32_doc},
    {"channels_f32", channels_f32, METH_VARARGS, channels_f32_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "lite_debug._fast",
    "One-pass statistics of a tensor's values, and metrics of a pair (see _fast.c).", -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fast(void) { return PyModule_Create(&module); }
