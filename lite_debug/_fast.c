/* One pass over a tensor's values for a trace's statistics (lite_debug/_worker.py).

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

static PyObject *f32(PyObject *Py_UNUSED(self), PyObject *arg) {
    Py_buffer view;
    if (get(arg, &view, 'f', 4) < 0) return NULL;
    const float *x = (const float *)view.buf;
    Py_ssize_t n = view.len / 4;
    float lo = INFINITY, hi = -INFINITY;
    double sum = 0.0, squares = 0.0;
    long long zeros = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t start = 0; start < n; start += BLOCK)
        f32_block(x + start, n - start < BLOCK ? n - start : BLOCK, &lo, &hi, &sum, &squares, &zeros);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    return Py_BuildValue("(ddddL)", (double)lo, (double)hi, sum, squares, zeros);
}

PyDoc_STRVAR(i8_doc,
"i8(values, zero_point) -> (min, max, sum, sum of squares, at the type's min, at its max, at zero_point)\n\n"
"One pass over a C-contiguous int8 ('b') or uint8 ('B') buffer; exact integer sums.");

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
    if (is_signed) {
        const int8_t *x = (const int8_t *)view.buf;
        int8_t zp = (int8_t)zero_point;
        int outside = zero_point < -128 || zero_point > 127;
        for (Py_ssize_t start = 0; start < n; start += BLOCK) {
            Py_ssize_t end = n - start < BLOCK ? n : start + BLOCK;
            int32_t s = 0, q = 0, a = 0, b = 0, z = 0;
            int8_t l = 127, h = -128;
            for (Py_ssize_t i = start; i < end; i++) {
                int8_t v = x[i];
                l = v < l ? v : l;
                h = v > h ? v : h;
                s += v;
                q += (int32_t)v * v;
                a += v == -128;
                b += v == 127;
                z += v == zp;
            }
            lo = l < lo ? l : lo;
            hi = h > hi ? h : hi;
            sum += s;
            squares += q;
            at_min += a;
            at_max += b;
            at_zero += outside ? 0 : z;
        }
    } else {
        const uint8_t *x = (const uint8_t *)view.buf;
        uint8_t zp = (uint8_t)zero_point;
        int outside = zero_point < 0 || zero_point > 255;
        for (Py_ssize_t start = 0; start < n; start += BLOCK) {
            Py_ssize_t end = n - start < BLOCK ? n : start + BLOCK;
            int32_t s = 0, q = 0, a = 0, b = 0, z = 0;
            uint8_t l = 255, h = 0;
            for (Py_ssize_t i = start; i < end; i++) {
                uint8_t v = x[i];
                l = v < l ? v : l;
                h = v > h ? v : h;
                s += v;
                q += (int32_t)v * v;
                a += v == 0;
                b += v == 255;
                z += v == zp;
            }
            lo = l < lo ? l : lo;
            hi = h > hi ? h : hi;
            sum += s;
            squares += q;
            at_min += a;
            at_max += b;
            at_zero += outside ? 0 : z;
        }
    }
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    return Py_BuildValue("(iiLLLLL)", lo, hi, sum, squares, at_min, at_max, at_zero);
}

static PyMethodDef methods[] = {
    {"f32", f32, METH_O, f32_doc},
    {"i8", i8, METH_VARARGS, i8_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "lite_debug._fast",
    "One-pass statistics of a tensor's values, for a trace (see _fast.c).", -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__fast(void) { return PyModule_Create(&module); }
