"""The baseline of the ``first-plot`` figure: the one-page app a person would write by hand.

    LITE_DEBUG_BENCH_MODEL=model.tflite LITE_DEBUG_BENCH_DATA=x.npy streamlit run bench/baseline_run_app.py

The interpreter runs in the server's own process (no worker, no checks), is cached for the
server's life, and the output is drawn with one ``st.plotly_chart`` of ``px.imshow``: what the
lite-debug Run page is measured against, on the same model and data.
"""

import os
import time

import numpy as np
import plotly.express as px
import streamlit as st
from ai_edge_litert.interpreter import Interpreter


@st.cache_resource
def interpreter(path: str) -> Interpreter:
    it = Interpreter(model_path=path)
    it.allocate_tensors()
    return it


@st.cache_data
def data(path: str) -> np.ndarray:
    return np.load(path)


st.title("Run a model")
it = interpreter(os.environ["LITE_DEBUG_BENCH_MODEL"])
x = data(os.environ["LITE_DEBUG_BENCH_DATA"])

if st.button("Run it"):
    t0 = time.perf_counter()
    it.set_tensor(it.get_input_details()[0]["index"], x)
    it.invoke()
    y = it.get_tensor(it.get_output_details()[0]["index"])
    st.metric("Invoke", f"{(time.perf_counter() - t0) * 1000:.3g} ms")
    st.plotly_chart(px.imshow(np.squeeze(y)), width="stretch")
