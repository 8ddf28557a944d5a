"""Figures: the right kind for each output shape, the right data in it, and no surprises on odd values."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest

from lite_debug.figures import (
    HEIGHT,
    MAX_HEATMAP_SIDE,
    MAX_IMAGE_SIDE,
    MAX_LINE_POINTS,
    figures_for_output,
    heatmap,
    histogram,
    image,
    labels_from_text,
    line,
    mask_overlay,
    topk_bar,
)
from lite_debug.records import OutputTensor, Quantization

rng = np.random.default_rng(0)


def output(values, name="out", raw=None, quantization=Quantization()):
    values = np.asarray(values)
    raw = values if raw is None else raw
    return OutputTensor(name=name, index=0, raw=raw, values=values, quantization=quantization)


def names_and_types(figs):
    return [(name, [t.type for t in fig.data]) for name, fig in figs]


def assert_themable(fig):
    # Readable on light and dark pages: nothing paints a background, the height is fixed, a title is set.
    layout = fig.layout
    template = layout.template.layout
    assert layout.height == HEIGHT and layout.title.text
    for bg in (layout.paper_bgcolor, layout.plot_bgcolor, template.paper_bgcolor, template.plot_bgcolor):
        assert bg in (None, "rgba(0, 0, 0, 0)")
    fig.to_json()  # serialisable, NaN and all


# -- top-k ---------------------------------------------------------------------------------------


def test_topk_bar_puts_the_highest_score_on_top_with_its_label():
    scores = np.array([0.1, 0.05, 0.6, 0.2, 0.05], np.float32)
    fig = topk_bar(scores, ["cat", "dog", "bird", "fish", "frog"], k=3)
    (bar,) = fig.data
    assert bar.type == "bar" and bar.orientation == "h"
    assert list(bar.y) == ["2: bird", "3: fish", "0: cat"]
    assert np.allclose(bar.x, [0.6, 0.2, 0.1])
    assert fig.layout.yaxis.autorange == "reversed"  # the first category, the highest, is drawn on top
    assert_themable(fig)


def test_topk_bar_without_labels_or_with_too_few_says_class_n():
    (bar,) = topk_bar(np.array([[0.2, 0.7, 0.1]]), labels=["only"], k=5).data
    assert list(bar.y) == ["class 1", "0: only", "class 2"]
    (bar,) = topk_bar(np.arange(10.0)).data
    assert list(bar.y) == ["class 9", "class 8", "class 7", "class 6", "class 5"]


def test_topk_bar_leaves_nan_out_and_counts_it():
    fig = topk_bar(np.array([np.nan, 0.3, np.inf, 0.9, -np.inf]), k=5)
    (bar,) = fig.data
    assert list(bar.y) == ["class 3", "class 1"] and np.allclose(bar.x, [0.9, 0.3])
    assert "3 NaN/Inf" in fig.layout.title.text
    empty = topk_bar(np.full(4, np.nan))
    assert len(empty.data) == 0 and "no finite" in empty.layout.title.text
    assert len(topk_bar(np.zeros(0)).data) == 0


# -- heatmap, image, overlay ----------------------------------------------------------------------


def test_heatmap_keeps_rows_on_top_and_blanks_nan_and_inf():
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    a[0, 0], a[1, 1] = np.nan, np.inf
    fig = heatmap(a)
    (hm,) = fig.data
    z = np.asarray(hm.z)
    assert hm.type == "heatmap" and z.shape == (3, 4)
    assert np.isnan(z[0, 0]) and np.isnan(z[1, 1]) and z[2, 3] == 11
    assert fig.layout.yaxis.autorange == "reversed"
    assert "2 NaN/Inf" in fig.layout.title.text
    assert_themable(fig)


def test_heatmap_is_capped_for_display_and_keeps_original_indices():
    a = rng.random((3000, 700), dtype=np.float32)
    fig = heatmap(a)
    (hm,) = fig.data
    z = np.asarray(hm.z)
    assert z.shape[0] <= MAX_HEATMAP_SIDE and z.shape[1] <= MAX_HEATMAP_SIDE
    assert np.asarray(hm.y)[-1] <= 2999 and np.asarray(hm.y)[1] == 6  # every 6th row, labelled as such
    assert z[1, 1] == a[6, 2]
    assert "showing" in fig.layout.title.text
    # In a narrow column, the note goes on a second, smaller line, and a name from the model stays text.
    below = heatmap(a, title="Difference <b>", notes_below=True).layout.title.text
    assert below == "Difference &lt;b&gt;<br><sup>showing 500×350</sup>"


def test_heatmap_of_empty_or_wrong_rank():
    assert len(heatmap(np.zeros((0, 5))).data) == 0
    assert len(heatmap(np.zeros((1, 4, 5, 1))).data) == 1  # size-1 axes dropped
    with pytest.raises(ValueError, match="2-D"):
        heatmap(np.zeros((2, 3, 4)))


@pytest.mark.parametrize(
    ("array", "expected_corner"),
    [
        (np.full((4, 4, 3), 200, np.uint8), 200),  # uint8 as is
        (np.full((4, 4), 0.5, np.float32), 128),  # [0, 1] floats scaled by 255
        (np.full((4, 4, 3), -1.0, np.float32), 0),  # [-1, 1] floats from that range
        (np.full((4, 4, 4), 100.0), 100),  # 0..255 floats as is; alpha dropped
    ],
)
def test_image_scales_any_dtype_to_pixels(array, expected_corner):
    fig = image(array)
    (img,) = fig.data
    z = np.asarray(img.z)
    assert img.type == "image" and z.shape == (4, 4, 3) and z.dtype == np.uint8
    assert z[0, 0, 0] == expected_corner
    assert_themable(fig)


def test_image_stretches_other_ranges_and_zeroes_nan():
    a = np.array([[-500.0, 0.0], [np.nan, 1500.0]])
    z = np.asarray(image(a).data[0].z)
    assert z[0, 0, 0] == 0 and z[1, 1, 0] == 255 and z[1, 0, 0] == 0
    big = image(np.zeros((MAX_IMAGE_SIDE * 2 + 10, 300, 3), np.uint8))
    assert max(np.asarray(big.data[0].z).shape[:2]) <= MAX_IMAGE_SIDE


def test_mask_overlay_resizes_a_mask_with_the_same_aspect():
    img = rng.integers(0, 256, (64, 96, 3), dtype=np.uint8)
    mask = np.zeros((32, 48), np.int64)
    mask[:16, :] = 2
    fig = mask_overlay(img, mask, alpha=0.4)
    assert fig is not None
    assert [t.type for t in fig.data] == ["image", "heatmap"]
    z = np.asarray(fig.data[1].z)
    assert z.shape == (64, 96) and fig.data[1].opacity == 0.4
    assert np.all(z[:32] == 2) and np.all(np.isnan(z[32:]))  # nearest for class ids; class 0 left clear
    assert_themable(fig)


def test_mask_overlay_bilinear_for_scores_and_none_when_it_cannot():
    img = np.zeros((1, 40, 40, 3), np.float32)
    fig = mask_overlay(img, np.linspace(0, 1, 100, dtype=np.float32).reshape(1, 10, 10, 1))
    z = np.asarray(fig.data[1].z)
    assert z.shape == (40, 40) and len(np.unique(z)) > 100  # interpolated, not blocky
    assert mask_overlay(img, np.zeros((10, 20))) is None  # another aspect ratio
    assert mask_overlay(img, np.zeros((10, 10, 3))) is None  # not a mask
    assert mask_overlay(np.zeros((5, 5, 2)), np.zeros((5, 5))) is None  # not an image
    assert mask_overlay(img, np.zeros((0, 0))) is None


# -- histogram and line ---------------------------------------------------------------------------


def test_histogram_counts_every_finite_value_once():
    values = np.concatenate([rng.normal(size=1000), [np.nan, np.inf]])
    fig = histogram(values)
    (bar,) = fig.data
    assert bar.type == "bar" and int(np.sum(bar.y)) == 1000
    assert "2 NaN/Inf not counted" in fig.layout.title.text
    assert_themable(fig)


def test_histogram_of_small_integers_has_a_bar_per_value():
    (bar,) = histogram(np.array([0, 1, 1, 3, 3, 3], np.uint8)).data
    assert list(bar.x) == [0, 1, 2, 3] and list(bar.y) == [1, 2, 0, 3]


def test_histogram_survives_empty_constant_and_extreme_values():
    assert len(histogram(np.zeros(0)).data) == 0
    assert len(histogram(np.full(5, np.nan)).data) == 0
    assert len(histogram(np.array(["a"])).data) == 0
    assert int(np.sum(histogram(np.full(7, 3.5)).data[0].y)) == 7
    extreme = histogram(np.array([-1.7e308, 1.7e308, 0.0]))
    assert int(np.sum(extreme.data[0].y)) == 3 and np.all(np.isfinite(extreme.data[0].x))


def test_line_is_capped_and_keeps_the_peaks():
    v = np.zeros(1_000_003, np.float32)
    v[123_457], v[777_777] = 50.0, -40.0
    v[5] = np.nan
    fig = line(v)
    (sc,) = fig.data
    x, y = np.asarray(sc.x), np.asarray(sc.y)
    assert sc.type == "scatter" and len(x) <= MAX_LINE_POINTS
    assert np.all(np.diff(x) > 0) and x[-1] < v.size
    assert np.nanmax(y) == 50.0 and np.nanmin(y) == -40.0 and 123_457 in x
    assert "min and max" in fig.layout.title.text
    assert_themable(fig)


def test_short_line_is_exact():
    (sc,) = line(np.array([[3.0, 1.0, 2.0]])).data
    assert list(sc.x) == [0, 1, 2] and list(sc.y) == [3.0, 1.0, 2.0]
    assert len(line(np.zeros(0)).data) == 0


# -- choosing by shape -----------------------------------------------------------------------------


def test_class_scores_get_top_k_and_histogram():
    scores = np.zeros((1, 10), np.float32)
    scores[0, 7] = 0.9
    figs = figures_for_output(output(scores), labels=[f"l{i}" for i in range(10)])
    assert names_and_types(figs) == [("Top 5", ["bar"]), ("Histogram", ["bar"])]
    bar = figs[0][1].data[0]
    assert bar.y[0] == "7: l7" and bar.x[0] == pytest.approx(0.9)


def test_quantized_scores_use_the_dequantized_values():
    raw = np.array([[0, 255, 10]], np.uint8)
    q = Quantization(scale=(1 / 256,), zero_point=(0,))
    figs = figures_for_output(output(raw * (1 / 256), raw=raw, quantization=q))
    bar = figs[0][1].data[0]
    assert bar.y[0] == "class 1" and bar.x[0] == pytest.approx(255 / 256)


def test_long_vectors_and_integer_vectors_get_a_line():
    assert names_and_types(figures_for_output(output(rng.random((1, 16000))))) == [
        ("Line", ["scatter"]), ("Histogram", ["bar"])
    ]
    tokens = np.arange(128, dtype=np.int32).reshape(1, 128)
    assert [n for n, _ in figures_for_output(output(tokens))] == ["Line", "Histogram"]
    # ... unless the labels cover it: then it is a classifier with many classes.
    many = figures_for_output(output(rng.random((1, 2000))), labels=[str(i) for i in range(2000)])
    assert many[0][0] == "Top 5"


@pytest.mark.parametrize("shape", [(64, 48), (1, 64, 48), (1, 64, 48, 1)])
def test_maps_get_a_heatmap_and_an_overlay_when_the_input_image_fits(shape):
    values = rng.random(shape, dtype=np.float32)
    assert names_and_types(figures_for_output(output(values))) == [("Heatmap", ["heatmap"]), ("Histogram", ["bar"])]
    figs = figures_for_output(output(values), input_image=np.zeros((128, 96, 3), np.uint8))
    assert names_and_types(figs) == [
        ("Heatmap", ["heatmap"]), ("Overlay", ["image", "heatmap"]), ("Histogram", ["bar"])
    ]
    assert np.asarray(figs[0][1].data[0].z).shape == (64, 48)
    # An input of another aspect ratio gets no overlay, and no error.
    figs = figures_for_output(output(values), input_image=np.zeros((10, 90, 3), np.uint8))
    assert [n for n, _ in figs] == ["Heatmap", "Histogram"]


def test_rgb_outputs_are_images():
    figs = figures_for_output(output(rng.random((1, 32, 32, 3), dtype=np.float32)))
    assert names_and_types(figs) == [("Image", ["image"]), ("Histogram", ["bar"])]


@pytest.mark.parametrize("layout", ["nhwc", "nchw"])
def test_per_pixel_class_scores_become_a_class_map(layout):
    scores = np.zeros((1, 16, 16, 5), np.float32)
    scores[0, :8, :, 3] = 1.0
    scores[0, 8:, :, 1] = 1.0
    if layout == "nchw":
        scores = np.transpose(scores, (0, 3, 1, 2))
    figs = figures_for_output(output(scores), input_image=np.zeros((32, 32, 3), np.uint8))
    assert [n for n, _ in figs] == ["Class map", "Overlay", "Histogram"]
    z = np.asarray(figs[0][1].data[0].z)
    assert z.shape == (16, 16) and np.all(z[:8] == 3) and np.all(z[8:] == 1)


def test_scalars_empty_and_non_numeric_outputs_get_no_figure():
    assert figures_for_output(output(np.array([3.0], np.float32))) == []
    assert figures_for_output(output(np.ones((1, 1, 1)))) == []
    assert figures_for_output(output(np.zeros((0, 10), np.float32))) == []
    assert figures_for_output(output(np.array([b"a", b"b"]))) == []


def test_odd_values_never_raise():
    for values in (
        np.full((1, 10), np.nan, np.float32),
        np.full((1, 8, 8), np.inf),
        np.array([[np.nan, 1.0], [2.0, -np.inf]]),
        rng.random((2, 3, 4, 5)),
        np.array([[True, False, True]]),
        np.array([[1 + 2j, 3 - 1j]]),
        np.full((1, 4, 4, 300), np.nan, np.float32),
    ):
        for _, fig in figures_for_output(output(values), input_image=np.zeros((8, 8, 3), np.uint8)):
            assert_themable(fig)


def test_a_huge_map_is_capped():
    figs = figures_for_output(output(rng.random((1, 1500, 1200), dtype=np.float32)))
    z = np.asarray(figs[0][1].data[0].z)
    assert max(z.shape) <= MAX_HEATMAP_SIDE


# -- labels ------------------------------------------------------------------------------------------


def test_labels_one_per_non_empty_line():
    assert labels_from_text("\ufeffbackground\r\n cat \n\n3d glasses\n") == ["background", "cat", "3d glasses"]
    assert labels_from_text("") == []


def test_labels_with_index_prefixes_go_to_their_index():
    assert labels_from_text("0 cat\n1: dog\n3,bird\n") == ["cat", "dog", "", "bird"]
    assert labels_from_text("1  person\n2\tbicycle") == ["", "person", "bicycle"]


def test_prefixes_are_kept_unless_every_line_has_a_distinct_one():
    assert labels_from_text("0 cat\ndog") == ["0 cat", "dog"]
    assert labels_from_text("1 a\n1 b") == ["1 a", "1 b"]
    assert labels_from_text("1\n2\n3") == ["1", "2", "3"]


def test_figures_are_plotly_figures():
    ones = np.ones((2, 2))
    figs = (topk_bar(ones), heatmap(ones), image(ones), histogram(ones), line(ones), mask_overlay(ones, ones))
    assert all(isinstance(fig, go.Figure) for fig in figs)


# -- figures of views -----------------------------------------------------------------------------

from lite_debug.figures import HOVER_SIDE, MAX_SLICE_SIDE, PICTURE_SIDE, array_slice, figure_for, is_picture  # noqa: E402
from lite_debug.views import interpret  # noqa: E402


def view_of(values, name="out", **kwargs):
    (v,) = interpret([output(values, name)], **kwargs)
    return v


def test_a_mask_over_the_input_is_one_png_in_its_aspect_ratio_with_a_coarse_grid_for_hover():
    yy, xx = np.mgrid[0:256, 0:192]
    mask = (np.hypot(yy - 128, xx - 96) < 60).astype(np.float32)[None, :, :, None]  # a disc, as a person is
    image = np.stack([xx, yy, (xx + yy) // 2], axis=-1).astype(np.uint8)
    v = view_of(mask, "seg", input_image=image)
    assert v.kind == "mask"
    fig = figure_for(v)
    picture, hover = fig.data
    assert picture.type == "image" and picture.source.startswith("data:image/png;base64,")
    assert picture.z is None  # not a list of every pixel
    assert hover.type == "heatmap" and max(np.shape(hover.z)) <= HOVER_SIDE and hover.opacity == 0
    assert hover.colorbar.orientation == "h"  # under the picture, not stranded at the far right
    m = fig.layout.margin
    # Square pixels; a picture taller than wide gets more height (and narrows to keep its shape).
    assert fig.layout.yaxis.scaleanchor == "x"
    assert fig.layout.height - m.t - m.b == pytest.approx(PICTURE_SIDE * 256 / 192, abs=1)
    assert is_picture(fig)
    # What goes to the browser is the picture, not the 49k values (196 KB as float32 alone).
    assert len(fig.to_json()) < 100_000


def test_a_long_table_of_values_is_not_drawn_as_square_cells():
    v = view_of(rng.random((1, 896, 16), dtype=np.float32))
    assert v.kind == "array"
    fig = figure_for(v)
    (hm,) = fig.data
    assert np.shape(hm.z)[0] <= MAX_SLICE_SIDE
    assert fig.layout.yaxis.scaleanchor is None  # fills the width instead of a one-pixel strip
    assert not is_picture(fig)


def test_the_slice_explorer_picks_slices_of_leading_axes():
    a = np.arange(2 * 3 * 4 * 5, dtype=np.float32).reshape(1, 2, 3, 4, 5)
    assert np.array_equal(array_slice(a, (1, 2)), a[0, 1, 2])
    assert np.array_equal(array_slice(a, (9, -4)), a[0, 1, 0])  # clipped to the axes
    v = view_of(a)
    fig = figure_for(v, index=(1, 2))
    assert np.array_equal(np.asarray(fig.data[0].z), a[0, 1, 2])


def test_top_classes_are_probabilities_with_their_labels():
    v = view_of(np.array([[2.0, -1.0, 0.5]], np.float32), "logits", labels=["a", "b", "c"])
    fig = figure_for(v)
    (bar,) = fig.data
    assert list(bar.y) == ["0: a", "2: c", "1: b"] and fig.layout.xaxis.title.text == "probability"
    assert sum(bar.x) == pytest.approx(1.0)


def test_detections_are_boxes_with_labels_over_the_picture():
    from lite_debug.records import OutputTensor

    def o(values, name, i):
        a = np.asarray(values, np.float32)
        return OutputTensor(name, i, a, a)

    outs = [o([[[0.25, 0.5, 0.75, 1.0]]], "detection_boxes", 0), o([[0]], "detection_classes", 1),
            o([[0.8]], "detection_scores", 2), o([1], "num_detections", 3)]
    views = interpret(outs, labels=["cat"], input_image=np.zeros((40, 80, 3), np.uint8))
    fig = figure_for(views[0])
    (rect,) = fig.layout.shapes
    assert (rect.x0, rect.x1, rect.y0, rect.y1) == (40, 80, 10, 30)  # fractions × the 80×40 input
    assert fig.layout.annotations[0].text == "cat 0.80"
    assert all(figure_for(v) is None for v in views[1:])  # the others are tables, not the same picture again


def test_keypoints_over_the_input_and_on_their_own_axes():
    from lite_debug.records import ModelSpec, TensorSpec

    spec = ModelSpec(size=0, schema_version=3, description="", outputs=(),
                     inputs=(TensorSpec(0, "image", (1, 100, 100, 3), (1, 100, 100, 3), "float32"),))
    pts = np.array([[10, 20, 0, 50, 60, 0, 90, 80, 0]], np.float32)
    v = view_of(pts, "landmarks", spec=spec)
    fig = figure_for(v)
    assert v.kind == "keypoints" and is_picture(fig)
    assert list(fig.data[-1].x) == [10, 50, 90] and list(fig.data[-1].y) == [20, 60, 80]
    world = view_of(pts / 1000 - 0.05, "landmarks", spec=spec)
    assert world.data["where"] == "own" and figure_for(world).data[0].type == "scatter"


def test_every_kind_draws_or_says_it_has_no_figure_on_odd_values():
    odd = [np.zeros((4, 0), np.float32), np.array([1 + 1j, 2j], np.complex64), np.array(["x"]),
           np.full((1, 10), np.nan, np.float32), np.array([np.inf], np.float32), np.zeros((1, 8, 8, 3), np.uint8)]
    for values in odd:
        (v,) = interpret([output(values)])
        for kind in v.alternatives:
            (w,) = interpret([output(values)], choose={0: kind})
            fig = figure_for(w)
            if fig is not None:
                fig.to_json()


def test_warm_builds_every_trace_type_without_a_page():
    from lite_debug.figures import warm

    warm()  # plotly's validators for images, heatmaps, bars, scatters, shapes: no error, nothing kept


def test_names_and_labels_from_the_file_are_text_in_plotly():
    # plotly reads <b>, <a href> and entities in titles, tick labels and annotations.
    v = view_of(np.array([[0.2, 0.8]], np.float32), "<a href='x'>out</a> & co", labels=["<b>cat</b>", "dog"])
    fig = figure_for(v)
    assert fig.layout.title.text.startswith("&lt;a href='x'&gt;out&lt;/a&gt; &amp; co")
    assert "0: &lt;b&gt;cat&lt;/b&gt;" in list(fig.data[0].y)


def test_the_input_is_drawn_as_a_picture_before_a_run():
    from lite_debug.figures import input_figure

    fig = input_figure(np.zeros((1, 32, 48, 3), np.float32), title="The input x")
    assert is_picture(fig) and fig.data[0].source.startswith("data:image/png")
    assert input_figure(np.zeros((1, 10), np.float32)) is None
