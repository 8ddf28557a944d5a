"""Compare: the model against a reference, output by output and layer by layer.

The session's model, on its data as fixed, is the candidate. The reference is picked here: the
same model with the reference kernels (does the delegate change the outputs?), another .tflite
model (float against quantized, an old conversion against a new one), expected outputs from a
file, or the Keras/SavedModel model it came from (run with TensorFlow in a worker of its own).
Both run; the page shows each output side by side with the difference, each layer's error by
depth with the first divergent layer marked, the table, and Model Explorer files.

Every name from a model or a file is shown as text: in data frames, escaped Markdown (``md``),
or the figures' escaped titles and hover text.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict

import pandas as pd
import streamlit as st

from lite_debug.errors import LiteDebugError
from pages._ui import PAGES, errors_left, frame, md, owner, pool, require_data, require_workspace

frame("compare")

KEPT = 2  # comparisons kept per session (statistics and small outputs, not tensors)
MAX_SAMPLES = 64  # samples of a batch compared by their outputs
KINDS = {
    "kernels": "The reference kernels (same model, no delegate)",
    "tflite": "Another .tflite model",
    "expected": "Expected outputs (.npy, .npz)",
    "keras": "The Keras or SavedModel model",
}
NAN = float("nan")

ws = require_workspace()
st.title("Compare")
st.caption(
    "Run this model (the candidate) and a reference on the same data, and see where their values part: each output "
    "side by side with the difference and, for two .tflite models, every layer matched by name or by its place in the "
    "graph, with the first layer that leaves the tolerance."
)

require_data(ws)
if ws.errors and not ws.only_the_batch_left:
    st.warning(
        errors_left(ws, "fix them first to compare."), icon=":material/warning:",
    )
    st.page_link(PAGES["diagnose"], label="Diagnose and fix", icon=":material/healing:")

kind = st.radio("Reference", list(KINDS), format_func=KINDS.get, horizontal=True, key="compare-kind")
upload = None
signature_key = None
if kind == "tflite":
    upload = st.file_uploader("The reference model (.tflite)", key="compare-ref-tflite",
                              help="Told apart by its content: any file whose bytes say TFLite.")
    st.caption("The data is given to the reference in the order of its inputs, and fixed for it as it was for this "
               "model when fixes were applied.")
elif kind == "expected":
    upload = st.file_uploader("Expected outputs (.npy for one output, .npz for several: by output name, or in order)",
                              type=["npy", "npz"], key="compare-expected")
elif kind == "keras":
    upload = st.file_uploader("A Keras model (.keras, .h5) or a SavedModel folder as a .zip", type=["keras", "h5", "zip"],
                              key="compare-keras")
    signature_key = st.text_input("SavedModel signature", value="", placeholder="serving_default",
                                  key="compare-keras-signature").strip() or None
    st.caption("Run with TensorFlow in a worker process of its own, under the limits of every worker. A SavedModel whose "
               "graph could touch files or the network, or a Keras file whose configuration names code, is refused before "
               "it loads; the first run imports TensorFlow there, which takes a few seconds.")
else:
    st.caption("The reference kernels (the runtime's BUILTIN_REF op resolver) are naive and slow, and take no delegate: "
               "they are the runtime's own definition of each op.")

c1, c2, c3, c4, c5 = st.columns(5)
min_snr = c1.number_input("Min SNR (dB)", value=20.0, step=5.0, key="compare-min-snr")
min_cosine = c2.number_input("Min cosine", value=0.99, min_value=-1.0, max_value=1.0, step=0.01, format="%.4f",
                             key="compare-min-cosine")
atol = c3.number_input("atol (optional)", value=None, min_value=0.0, format="%.3g", key="compare-atol")
rtol = c4.number_input("rtol (optional)", value=None, min_value=0.0, format="%.3g", key="compare-rtol")
layers = c5.toggle("Layer by layer", value=True, key="compare-layers", disabled=kind in ("expected", "keras"),
                   help="Two .tflite models only: every matched tensor, not just the outputs.")

from lite_debug.compare import Comparison, Expected, Model, Tolerance, compare, compare_samples, feed_for  # noqa: E402
from lite_debug.trace import feed_key  # noqa: E402

tolerance = Tolerance(atol=atol, rtol=rtol, min_snr=float(min_snr), min_cosine=float(min_cosine))
file_sha = hashlib.sha256(upload.getvalue()).hexdigest() if upload is not None else ""
key = (ws.spec.sha256, ws.signature, feed_key(ws.feed), kind, file_sha, signature_key, tolerance, layers)
results: OrderedDict = st.session_state.setdefault("compare-results", OrderedDict())
result: Comparison | None = results.get(key)
ready = kind == "kernels" or upload is not None
go = st.button("Compare" if result is None else "Compare again", type="primary", key="compare-run",
               icon=":material/compare_arrows:", disabled=not ready)
if not ready:
    st.info("Upload the reference above, then compare.", icon=":material/upload:")


def _reference():
    """The reference the user picked, from the upload; a sentence shown (and None) when it cannot be used."""
    candidate = Model(ws.model_name, ws.model_bytes, ws.spec, ws.feed, ws.signature)
    if kind == "kernels":
        return Model(ws.model_name, ws.model_bytes, ws.spec, ws.feed, ws.signature, kernels="reference"), candidate
    data = upload.getvalue()
    if kind == "tflite":
        from lite_debug.inspection import inspect_model

        spec = inspect_model(data, name=f"the reference {upload.name!r}")
        signature = ws.signature if ws.signature in {s.key for s in spec.signatures} else None
        feed = feed_for(spec, ws.original, ws.spec, ws.signature, signature, fix=bool(ws.steps),
                        preferences=ws.preferences, model_bytes=data)
        return Model(upload.name, data, spec, feed, signature), candidate
    if kind == "expected":
        from lite_debug.loading import load_data

        return Expected(upload.name, load_data(upload.name, data)), candidate
    from lite_debug.reference import open_reference

    return open_reference(upload.name, data, signature_key), candidate


def _run() -> Comparison | None:
    with st.status("Running both sides in worker processes…", expanded=False) as box:
        def waiting(q) -> None:
            box.update(label=f"Waiting for a worker: place {q.place} of {q.waiting}…")

        try:
            reference, candidate = _reference()
            if ws.only_the_batch_left:
                from lite_debug.batch import sample

                n, chunk = ws.batch
                feeds = [sample(ws.feed, i, chunk) for i in range(0, min(n, MAX_SAMPLES * chunk), chunk)]
                bar = st.progress(0.0, text="Comparing the samples…")
                got = compare_samples(reference, candidate, feeds, tolerance=tolerance, pool=pool(), owner=owner(),
                                      layers=layers, on_wait=waiting,
                                      progress=lambda d, t: bar.progress(d / t, text=f"Compared {d} of {t} samples"))
            else:
                got = compare(reference, candidate, tolerance=tolerance, pool=pool(), owner=owner(),
                              layers=layers and kind in ("kernels", "tflite"), on_wait=waiting)
        except (LiteDebugError, ValueError, KeyError) as exc:
            box.update(label="Could not compare", state="error")
            st.error(md(str(exc)))
            return None
        box.update(label="Compared" if got.ran else "A side did not run", state="complete" if got.ran else "error")
    return got


if go:
    result = _run()
    if result is None:
        st.stop()
    results[key] = result
    results.move_to_end(key)
    while len(results) > KEPT:
        results.popitem(last=False)
if result is None:
    st.stop()

# -- the outcome -------------------------------------------------------------------------------------

st.markdown(f"**Reference:** {md(result.reference.description)}  \n**Candidate:** {md(result.candidate.description)}")
# When the reference kernels cannot run the model at all, what to do instead comes first, and the
# interpreter's generic fix (use the default resolver) is left out: here it is not the user's choice.
instead = next((n for n in result.notes if n.startswith("The reference kernels cannot run")), None)
if instead is not None:
    st.warning(md(instead), icon=":material/alt_route:")
for label, side in (("reference", result.reference), ("candidate", result.candidate)):
    r = side.run
    if r is not None and not r.ok:
        e = r.explanation
        st.error(f"**The {label} did not run ({r.status}).** " + md(e.title if e else (r.error_message or r.detail or "")),
                 icon=":material/error:")
        if e is not None:
            skip_fix = instead is not None and label == "reference"
            st.markdown(f"**Cause.** {md(e.cause)}" + ("" if skip_fix else f"\n\n**Fix.** {md(e.fix)}"))
        elif r.detail:
            st.caption(md(r.detail))
if not result.ran:
    st.stop()

within = sum(1 for o in result.outputs if o.within)
m1, m2, m3, m4 = st.columns(4)
m1.metric("Outputs within tolerance", f"{within} of {len(result.outputs)}")
worst = min((o.metrics.snr_db for o in result.outputs if o.metrics is not None), default=NAN)
m2.metric("Worst output SNR", "∞ dB" if worst == float("inf") else f"{worst:.1f} dB")
if result.layers:
    by = {"name": 0, "structure": 0}
    for t in result.tensors:
        by[t.matched_by] += 1
    m3.metric("Layers matched", f"{len(result.tensors):,}", help=f"{by['name']} by name, {by['structure']} by structure; "
              f"{len(result.unmatched)} tensor(s) of either model unmatched.")
    m4.metric("First divergent layer", "none" if result.first_divergent is None else f"#{result.first_divergent.position}")
if result.ok:
    st.success(f"Every output is within the tolerance ({md(tolerance.describe())}).", icon=":material/check_circle:")
else:
    st.error(f"The candidate's outputs leave the tolerance ({md(tolerance.describe())}).", icon=":material/error:")
if result.first_divergent is not None:
    st.warning(md(result.first_divergent.message), icon=":material/call_split:")
for note in result.notes:
    st.caption(md(note))


def _table(items, depth: bool) -> pd.DataFrame:
    rows = []
    for t in items:
        m = t.metrics
        rows.append({
            **({"#": t.position, "op": t.op} if depth else {}),
            "reference": t.reference, "candidate": t.candidate, "matched by": t.matched_by,
            "within": "yes" if t.within else ("no" if t.within is False else "—"),
            "SNR dB": m.snr_db if m else NAN, "cosine": m.cosine if m else NAN, "max abs": m.max_abs if m else NAN,
            "mean abs": m.mean_abs if m else NAN, "max rel": m.max_rel if m else NAN,
            "atol needed": m.atol_needed if m else NAN, "rtol needed": m.rtol_needed if m else NAN,
            "note": t.note,
        })
    return pd.DataFrame(rows)


NUMBERS = {c: st.column_config.NumberColumn(format="%.4g") for c in
           ("SNR dB", "cosine", "max abs", "mean abs", "max rel", "atol needed", "rtol needed")}
# A converter's fused names run to a hundred characters: capped, so the figures stay in view
# (the whole name shows on hover, and in the exported JSON).
NAMES = {c: st.column_config.TextColumn(width="medium") for c in ("reference", "candidate")}

from lite_debug.compare_figures import METRIC_LABELS, error_by_depth, output_figures, sample_spread  # noqa: E402

st.subheader("Outputs")
st.dataframe(_table(result.outputs, False), hide_index=True, width="stretch", column_config=NUMBERS, key="compare-outputs")
shown = {name: (r, c) for name, r, c in result.output_values}
if shown:
    name = st.selectbox("Output", list(shown), key="compare-output", format_func=lambda n: n)
    r, c = shown[name]
    from lite_debug.layer_figures import channels

    count = channels(r.shape)
    channel = st.slider("Channel", 0, count - 1, 0, key="compare-channel") if count > 1 else 0
    figs = output_figures(name, r, c, channel=channel)
    if not figs:
        st.text(f"One value: reference {r.reshape(-1)[0]!r}, candidate {c.reshape(-1)[0]!r}")
    cols = st.columns(len(figs)) if figs else []
    for col, (tab, fig) in zip(cols, figs):
        col.plotly_chart(fig, width="stretch", key=f"compare-out-{tab}")

if result.samples is not None:
    st.subheader("Samples")
    s = result.samples
    st.caption(f"{sum(s.within)} of {len(s.within)} samples have every output within the tolerance; the first sample is "
               "compared layer by layer, every one by its outputs.")
    st.plotly_chart(sample_spread(s), width="stretch", key="compare-samples")

if result.layers:
    st.subheader("Layers")
    metric = st.selectbox("Plot", list(METRIC_LABELS), format_func=METRIC_LABELS.get, key="compare-metric")
    st.plotly_chart(error_by_depth(result, metric), width="stretch", key="compare-depth")
    only_out = st.checkbox("Only tensors past the tolerance", key="compare-only-bad")
    items = [t for t in result.tensors if not only_out or t.within is False]
    st.dataframe(_table(items, True), hide_index=True, width="stretch", height=360, column_config={**NUMBERS, **NAMES},
                 key="compare-layers-table")
    if result.unmatched:
        with st.expander(f"Not matched ({len(result.unmatched)})"):
            st.dataframe(pd.DataFrame([u.to_dict() for u in result.unmatched]), hide_index=True, width="stretch")
    with st.expander("Open the comparison in Google's Model Explorer"):
        from lite_debug.model_explorer import COMPARE_METRICS, comparison_node_data, dumps

        colour = st.selectbox("Colour each node by", list(COMPARE_METRICS), format_func=METRIC_LABELS.get,
                              key="compare-me-metric")
        reference_spec = ws.spec if kind == "kernels" else None
        if kind == "tflite" and upload is not None:
            from lite_debug.inspection import inspect_model

            reference_spec = inspect_model(upload.getvalue())
        if reference_spec is not None:
            b1, b2 = st.columns(2)
            b1.download_button("For the reference model (.json)",
                               dumps(comparison_node_data(result, reference_spec, "reference", colour)).encode("utf-8"),
                               file_name="compare_reference.json", mime="application/json", key="compare-me-ref",
                               icon=":material/download:")
            b2.download_button("For this model (.json)",
                               dumps(comparison_node_data(result, ws.spec, "candidate", colour)).encode("utf-8"),
                               file_name="compare_candidate.json", mime="application/json", key="compare-me-cand",
                               icon=":material/download:")
        st.caption("In Model Explorer, open a model, then add its file as node data: each layer is coloured from red (far "
                   "from the reference) to green.")
