"""The main path in a real browser: a Streamlit server, Chromium driven by Playwright.

AppTest checks what each page lays out; only a browser shows that the widgets, the uploads
and the charts work once rendered. Every step leaves a screenshot in
``test-artifacts/browser/`` for a human to look at (light and dark theme).

Without Chromium these tests skip, unless ``LITE_DEBUG_REQUIRE_BROWSER=1`` (CI) makes them fail.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from lite_debug.gallery import EXAMPLES_DIR, examples
from ui_helpers import ROOT

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 800}
# Long enough for a worker to start and run on a loaded machine; every wait ends on what appears.
WAIT_MS = 30_000


def _unavailable(reason: str):
    if os.environ.get("LITE_DEBUG_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (LITE_DEBUG_REQUIRE_BROWSER=1 makes the browser tests mandatory)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    path = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.access(path, os.X_OK):
        _unavailable("No Chromium to drive: apt-get install chromium to run the browser tests.")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("Playwright for Python is not installed: pip install playwright to run the browser tests.")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(browser, tmp_path_factory):
    """``streamlit run app.py`` on a free port, up until /_stcore/health says ok; stopped with its workers."""
    yield from _serve(tmp_path_factory)


def _serve(tmp_path_factory):
    port = _free_port()
    log_path = tmp_path_factory.mktemp("streamlit") / "server.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", "app.py", "--server.port", str(port),
         "--server.headless", "true", "--browser.gatherUsageStats", "false"],
        cwd=ROOT,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the worker processes go down with it
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"streamlit exited with {proc.returncode}:\n{log_path.read_text(errors='replace')}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                    if r.read().strip() == b"ok":
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"streamlit did not answer on {url} within 60 s:\n{log_path.read_text(errors='replace')}")
            time.sleep(0.2)
        yield url
    finally:
        _stop(proc)
        log.close()


def _stop(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            # The server is gone; its workers may take a moment more: end the group for good.
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture
def open_app(browser, server):
    """A new browser session (a new Streamlit session) on the app's front page."""
    contexts = []

    def make(color_scheme: str = "light"):
        # Reduced motion: an expander caught mid-collapse makes a confusing screenshot.
        context = browser.new_context(viewport=VIEWPORT, color_scheme=color_scheme, reduced_motion="reduce")
        context.set_default_timeout(WAIT_MS)
        contexts.append(context)
        page = context.new_page()
        page.goto(server)
        page.get_by_role("heading", name="lite-debug").wait_for()
        settle(page)
        return page

    yield make
    for context in contexts:
        context.close()


def settle(page) -> None:
    """Wait until the script has finished and nothing on screen is stale or still loading.

    Call it after waiting for what a click should show: right after the click the app may not
    have started its rerun yet, and would look settled.
    """
    page.wait_for_function(
        """() => {
            const app = document.querySelector('[data-testid="stApp"]');
            return app && app.getAttribute('data-test-script-state') === 'notRunning'
                && !document.querySelector('[data-testid="stSkeleton"]')
                && !document.querySelector('[data-stale="true"]');
        }""",
        timeout=WAIT_MS,
    )
    assert page.get_by_test_id("stException").count() == 0, page.get_by_test_id("stException").first.inner_text()


def shot(page, name: str, show=None) -> None:
    """Screenshot the window to test-artifacts/browser/<name>.png, scrolled to ``show`` if given."""
    settle(page)
    if show is not None:
        show.scroll_into_view_if_needed()
    page.mouse.move(0, 0)  # no hover highlight left on whatever now sits under the last click
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def cut_labels(page) -> list[str]:
    """Labels of buttons in the main area that the browser shortened with an ellipsis."""
    return page.evaluate(
        """() => Array.from(document.querySelectorAll('[data-testid="stMain"] button'))
            .flatMap(b => Array.from(b.querySelectorAll('p')))
            .filter(p => p.scrollWidth > p.clientWidth + 1)
            .map(p => p.textContent)"""
    )


def error_alert(page, text: str):
    return page.get_by_test_id("stAlertContentError").filter(has_text=text)


def gallery_path(page, prefix: str) -> None:
    """Open the first gallery example, apply all fixes, run it, and see its class scores."""
    first = examples()[0]
    assert first.id == "image-size"
    shot(page, f"{prefix}1-gallery")
    card = page.get_by_test_id("stVerticalBlock").filter(has_text=first.title).last
    card.get_by_role("button", name="Open").click()

    page.get_by_role("heading", name="Diagnose and fix").wait_for()
    mismatch = error_alert(page, "expects 224×224 images, but the data is 256×256")
    mismatch.wait_for()
    assert error_alert(page, "batch dimension is missing").count() == 1
    assert error_alert(page, "expects float32, but the data is uint8").count() == 1
    shot(page, f"{prefix}2-diagnosis", show=mismatch)
    # Three resize fixes differ only at the end of their labels: none may be cut short.
    assert page.get_by_role("button", name="Resize to 224×224").count() == 3
    assert cut_labels(page) == []

    page.get_by_role("button", name="Apply all fixes").click()
    page.get_by_text("The data fits the model's inputs: the interpreter will accept it as it is.").wait_for()
    code = page.get_by_test_id("stCode").filter(has_text="np.expand_dims")
    code.wait_for()
    assert "resize_image" in code.inner_text()
    shot(page, f"{prefix}3-fixed")

    page.get_by_role("button", name="Run it").click()
    page.get_by_role("heading", name="Run and outputs").wait_for()
    chart = page.locator(".js-plotly-plot:visible").first
    chart.wait_for()
    chart.locator(".ytick text").filter(has_text="city skyline").wait_for()
    assert chart.locator(".bars path").count() >= 5
    assert page.get_by_test_id("stMetricLabel").filter(has_text="Invoke").count() == 1
    shot(page, f"{prefix}4-run", show=chart)


def favicon(page) -> str:
    """The page's icon URL, once Streamlit has set it (app.py sets it after the page's content)."""
    page.wait_for_function(
        """() => { const l = document.querySelector('link[rel~="icon"]');
                   return l && l.href.includes('/media/'); }""",
        timeout=WAIT_MS,
    )
    return page.evaluate("""() => document.querySelector('link[rel~="icon"]').href""")


def test_gallery_path(open_app, server):
    page = open_app()
    # The favicon is the app's own, served by this server: nothing is fetched from elsewhere.
    icon = favicon(page)
    assert icon.startswith(server)
    got = page.request.get(icon)
    assert got.ok and got.headers["content-type"].startswith("image/")
    gallery_path(page, "0")
    # The sidebar, drawn before the page, still tells of the run just made.
    assert "Last run: ok" in page.get_by_test_id("stSidebar").inner_text()
    assert favicon(page).startswith(server)


def test_upload_path(open_app):
    page = open_app()
    model_uploader = page.get_by_test_id("stFileUploader").filter(has_text="Model (.tflite), or a bug-report archive")
    model_uploader.locator("input[type=file]").set_input_files(str(EXAMPLES_DIR / "segmenter.tflite"))
    page.get_by_test_id("stSidebar").get_by_text("segmenter.tflite").wait_for()
    # Opening a model reruns the page (and empties the model uploader): let that finish before
    # the next upload, or the data uploader may be redrawn under the file being set.
    settle(page)

    data_uploader = page.get_by_test_id("stFileUploader").filter(has_text="Sample data:")
    # Disabled until a model is loaded: the wait for :enabled is the wait for that rerun.
    data_input = data_uploader.locator("input[type=file]:enabled")
    data_input.set_input_files(str(EXAMPLES_DIR / "segmentation-nchw.broken.npy"))
    page.get_by_text("Loaded segmenter.tflite with data from segmentation-nchw.broken.npy.").wait_for()
    shot(page, "11-uploaded", show=data_uploader)

    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Diagnose and fix").click()
    layout = error_alert(page, "channels-first (NCHW)")
    layout.wait_for()
    assert "layout — " in layout.inner_text()
    shot(page, "12-diagnosis", show=layout)

    page.get_by_role("button", name="Apply all fixes").click()
    page.get_by_role("button", name="Run it").click()
    page.get_by_role("heading", name="Run and outputs").wait_for()
    heatmap = page.locator(".js-plotly-plot:visible").filter(has=page.locator(".heatmaplayer image")).first
    heatmap.wait_for()
    shot(page, "13-run", show=heatmap)


def test_gallery_path_in_the_dark_theme(open_app):
    page = open_app(color_scheme="dark")
    background = page.evaluate(
        "getComputedStyle(document.querySelector('[data-testid=\"stApp\"]')).backgroundColor"
    )
    red, green, blue = (int(v) for v in background[background.index("(") + 1 : -1].split(",")[:3])
    assert red + green + blue < 3 * 80, f"the app did not follow the dark color scheme: {background}"
    gallery_path(page, "2")


def test_a_deep_link_as_the_first_request_still_gets_the_frame(browser, tmp_path_factory):
    # A fresh server in its own process: the first request it ever sees is /explain. With a
    # pages/ folder, Streamlit would run that page alone (no sidebar, raw file names in the
    # navigation) until app.py first calls st.navigation; the page must route through app.py.
    serve = _serve(tmp_path_factory)
    url = next(serve)
    try:
        context = browser.new_context(viewport=VIEWPORT, reduced_motion="reduce")
        context.set_default_timeout(WAIT_MS)
        page = context.new_page()
        page.goto(f"{url}/explain")
        page.get_by_role("heading", name="Explain an error").wait_for()
        settle(page)
        nav = page.get_by_test_id("stSidebarNav")
        assert nav.get_by_text("Diagnose and fix").is_visible()
        assert nav.get_by_text("_ui").count() == 0 and nav.get_by_text("app").count() == 0
        assert page.get_by_text("No model loaded").is_visible()
        shot(page, "31-deep-link")
        context.close()
    finally:
        serve.close()


REAL = ROOT / "tests" / "real_models"


def _upload_model(page, path, shows: str | None = None) -> None:
    uploader = page.get_by_test_id("stFileUploader").filter(has_text="Model (.tflite), or a bug-report archive")
    uploader.locator("input[type=file]").set_input_files(str(path))
    page.get_by_test_id("stSidebar").get_by_text(shows or path.name).first.wait_for()
    settle(page)


def _upload_data(page, *paths) -> None:
    data = page.get_by_test_id("stFileUploader").filter(has_text="Sample data:")
    data.locator("input[type=file]:enabled").set_input_files([str(p) for p in paths])
    page.get_by_text("Upload other files to replace it.").wait_for()
    settle(page)


def test_a_real_photo_into_a_real_detector(open_app):
    """A user's own photo (a real JPEG) into a real face detector: one sample, not 600; the
    guesses shown as choices; a sweep to pick with; a run."""
    if not (REAL / "grace_hopper.jpg").exists():
        pytest.skip("the real files are not fetched (scripts/fetch_real_models.py)")
    page = open_app()
    _upload_model(page, REAL / "face_detection_short_range.tflite")
    _upload_data(page, REAL / "grace_hopper.jpg")
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Diagnose and fix").click()
    page.get_by_text("Choices the fixes make.").wait_for()
    settle(page)
    main = page.get_by_test_id("stMain")
    assert "samples" not in main.inner_text()  # the 600 rows of the photo are no batch
    assert "a guess" in main.inner_text()
    shot(page, "41-photo-diagnosis")
    page.get_by_role("button", name="Apply all fixes").click()
    page.get_by_test_id("stMain").get_by_text("The data fits the model's inputs").wait_for()
    shot(page, "42-photo-fixed")
    page.get_by_role("button", name="Try each candidate on the model").click()
    page.get_by_text("Each candidate fixed as").wait_for()
    settle(page)
    shot(page, "43-photo-sweep", show=page.get_by_text("Each candidate fixed as"))
    page.get_by_role("button", name="Run it").click()
    page.get_by_role("heading", name="Run and outputs").wait_for()
    page.get_by_test_id("stMetricLabel").filter(has_text="Invoke").wait_for()
    shot(page, "44-photo-run")


def test_names_from_a_file_are_text_not_links_or_images(open_app, tmp_path):
    """A model whose file and tensor names are Markdown: nothing of them becomes a link, an image
    or a request to another host."""
    from fuzzing import pack_model, unpack_model

    m = unpack_model((ROOT / "tests" / "fixtures" / "add_float.tflite").read_bytes())
    bait = "![p](http://127.0.0.1:9/pixel.png) [Click here](http://127.0.0.1:9/fixed) www.evil.example `x"
    m.subgraphs[0].tensors[m.subgraphs[0].inputs[0]].name = bait.encode()
    path = tmp_path / "[Download](http:127.0.0.1:9).tflite"
    path.write_bytes(pack_model(m))
    page = open_app()
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    _upload_model(page, path, shows="[Download](")
    page.get_by_role("button", name="Generate").click()
    page.get_by_test_id("stSidebar").get_by_text("Data: generated (zeros)").wait_for()
    settle(page)
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Diagnose and fix").click()
    page.get_by_role("heading", name="Diagnose and fix").wait_for()
    settle(page)
    for where in ("stMain", "stSidebar"):
        region = page.get_by_test_id(where)
        # (Streamlit's own heading anchors, href="#…", carry the heading's words: not links out.)
        bad = region.locator("img[src*='127.0.0.1:9/'], a[href*='127.0.0.1:9']:not([href^='#']), a[href*='evil']:not([href^='#'])")
        assert bad.count() == 0, bad.evaluate_all("e => e.map(x => x.outerHTML)")
    assert bait in page.get_by_test_id("stMain").inner_text().replace("\u2060", "")
    assert not [u for u in requests if "127.0.0.1:9" in u or "evil" in u]
    shot(page, "45-hostile-names")


def test_a_reload_keeps_the_case_and_its_address_opens_it_elsewhere(open_app, browser):
    page = open_app()
    card = page.get_by_test_id("stVerticalBlock").filter(has_text=examples()[0].title).last
    card.get_by_role("button", name="Open").click()
    page.get_by_role("heading", name="Diagnose and fix").wait_for()
    page.get_by_role("button", name="Apply all fixes").click()
    page.get_by_test_id("stMain").get_by_text("The data fits the model's inputs").wait_for()
    settle(page)
    page.wait_for_function("() => new URL(location.href).searchParams.get('case')", timeout=WAIT_MS)
    address = page.url
    case = address.split("case=")[1].split("&")[0]
    assert len(case) == 24
    page.reload()
    page.get_by_role("heading", name="Diagnose and fix").wait_for()
    page.get_by_test_id("stMain").get_by_text("The data fits the model's inputs").wait_for()
    settle(page)
    assert "np.expand_dims" in page.get_by_test_id("stCode").first.inner_text()
    shot(page, "51-case-after-reload")
    # The same address in another browser (a teammate on the same server): the same case.
    other = browser.new_context(viewport=VIEWPORT, reduced_motion="reduce")
    other.set_default_timeout(WAIT_MS)
    try:
        teammate = other.new_page()
        teammate.goto(address)
        teammate.get_by_role("heading", name="Diagnose and fix").wait_for()
        teammate.get_by_test_id("stMain").get_by_text("The data fits the model's inputs").wait_for()
        settle(teammate)
        assert "image_classifier.tflite" in teammate.get_by_test_id("stSidebar").inner_text()
        shot(teammate, "52-case-in-another-browser")
        # A change made there becomes a case of its own; the shared address is left as it was.
        teammate.get_by_role("button", name="Undo").click()
        teammate.wait_for_function(f"() => !location.href.includes('{case}')", timeout=WAIT_MS)
    finally:
        other.close()
    page.reload()
    page.get_by_test_id("stMain").get_by_text("The data fits the model's inputs").wait_for()
# -- the run page's views, drawn, on a phone and a wide screen ----------------------------------------

PHONE = {"width": 390, "height": 844}
WIDE = {"width": 1920, "height": 1080}


def _sample_for(model_path, tmp_path):
    """An .npy the model takes as it is: a smooth picture at its input size, or zeros."""
    import numpy as np

    from lite_debug.inspection import inspect_model

    t = inspect_model(model_path.read_bytes()).inputs[0]
    if len(t.shape) == 4 and t.shape[3] == 3:
        h, w = t.shape[1:3]
        yy, xx = np.mgrid[0:h, 0:w]
        x = np.stack([xx / w, yy / h, ((xx + yy) % 64) / 64], -1).astype(np.float32)[None]
        if "ssd" in model_path.name:
            x = np.zeros_like(x)
            x[0, h // 2 :, w // 2 :, 2] = 1.0  # blue in the lower right quarter
    else:
        x = np.zeros(t.shape, np.dtype(t.dtype))
    path = tmp_path / f"{model_path.stem}.npy"
    np.save(path, x)
    return path


def _open_and_run(page, model_path, data_path) -> None:
    """Upload a model and its data on the Start page, go to the Run page and run it."""
    model_uploader = page.get_by_test_id("stFileUploader").filter(has_text="Model (.tflite), or a bug-report archive")
    model_uploader.locator("input[type=file]").set_input_files(str(model_path))
    page.get_by_test_id("stSidebar").get_by_text(model_path.name).wait_for()
    settle(page)
    data_input = page.get_by_test_id("stFileUploader").filter(has_text="Sample data:").locator("input[type=file]:enabled")
    data_input.set_input_files(str(data_path))
    page.get_by_text(f"with data from {data_path.name}").wait_for()
    link = page.get_by_test_id("stSidebarNav").get_by_role("link", name="Run and outputs")
    expand = page.get_by_test_id("stExpandSidebarButton")
    phone = bool(expand.count() and expand.is_visible())
    if phone:  # the sidebar starts collapsed
        expand.click()
    link.click()
    page.get_by_role("heading", name="Run and outputs").wait_for()
    settle(page)
    if phone:  # close the sidebar again: on a phone it covers the page
        collapse = page.get_by_test_id("stSidebarCollapseButton")
        if page.get_by_test_id("stSidebar").get_attribute("data-collapsed") == "false":
            page.get_by_test_id("stSidebar").hover()  # the button shows on hover
            inner = collapse.locator("button")
            (inner if inner.count() else collapse).first.click(force=True)
            page.wait_for_function("""() => document.querySelector('[data-testid="stSidebar"]').getAttribute('data-collapsed') === 'true'""")
    page.get_by_role("button", name="Run the model").click()
    page.get_by_test_id("stMetricLabel").filter(has_text="Invoke").wait_for()


REAL_VIEWS = [
    # model file, what the first view must say, what must be drawn in a chart
    ("real_models/selfie_segmentation.tflite", "read as a 256×256 mask", ".imagelayer image"),
    ("real_models/face_detection_short_range.tflite", "read as 896 anchor scores, sigmoid applied; not classes", ".bars path"),
    ("real_models/hand_landmark_lite.tflite", "read as 21 3-D points, drawn over the input", ".scatterlayer .point"),
    ("fixtures/ssd_detector.tflite", "uses TFLite_Detection_PostProcess", ".shapelayer path"),
]


@pytest.mark.parametrize("model, says, drawn", REAL_VIEWS, ids=[Path(m).stem for m, _, _ in REAL_VIEWS])
def test_real_models_are_drawn_with_their_reading_on_a_phone_and_a_wide_screen(browser, server, tmp_path, model, says, drawn):
    path = ROOT / "tests" / model
    if not path.exists():
        _unavailable(f"{path.name} is missing: run scripts/fetch_real_models.py")
    data = _sample_for(path, tmp_path)
    for name, viewport in (("wide", WIDE), ("phone", PHONE)):
        context = browser.new_context(viewport=viewport, reduced_motion="reduce")
        context.set_default_timeout(WAIT_MS)
        try:
            page = context.new_page()
            page.goto(server)
            page.get_by_role("heading", name="lite-debug").wait_for()
            settle(page)
            _open_and_run(page, path, data)
            page.get_by_text(says).first.wait_for()
            chart = page.locator(".js-plotly-plot").filter(has=page.locator(drawn)).first
            chart.wait_for()
            settle(page)
            # Drawn inside its column, in its own aspect ratio where it is a picture.
            box = chart.bounding_box()
            main = page.get_by_test_id("stMain").bounding_box()
            assert box["x"] >= main["x"] - 1 and box["x"] + box["width"] <= main["x"] + main["width"] + 1
            assert page.get_by_text("Drawing…").count() == 0
            shot(page, f"41-{path.stem}-{name}", show=chart)
        finally:
            context.close()


def test_a_recording_for_a_sound_classifier(open_app):
    """The gallery's WAV (44.1 kHz stereo, 1.5 s) uploaded for its 16 kHz mono classifier: the
    recording's facts, the guessed rate, the waveform, spectrogram and player; fixed into two
    windows, run as a batch, scores per window as a heatmap."""
    page = open_app()
    _upload_model(page, EXAMPLES_DIR / "sound_classifier.tflite")
    _upload_data(page, EXAMPLES_DIR / "audio-rate.broken.wav")
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Diagnose and fix").click()
    stereo = error_alert(page, "takes mono audio, but the recording is stereo")
    stereo.wait_for()
    settle(page)
    main = page.get_by_test_id("stMain")
    text = main.inner_text()
    assert "44,100 Hz" in text and "a guess" in text and "Sample rate of" in text
    assert page.get_by_test_id("stAudio").count() == 1
    wave = page.locator(".js-plotly-plot:visible").first
    wave.wait_for()
    shot(page, "61-audio-diagnosis", show=stereo)
    shot(page, "62-audio-recording", show=page.get_by_test_id("stAudio"))
    page.get_by_role("tab", name="Spectrogram").click()
    page.locator(".js-plotly-plot:visible").filter(has=page.locator(".heatmaplayer image")).first.wait_for()
    shot(page, "63-audio-spectrogram", show=page.get_by_test_id("stAudio"))

    page.get_by_role("button", name="Apply all fixes").click()
    page.get_by_text("The data holds 2 samples").wait_for()
    settle(page)
    assert "16,000 Hz, mono" in page.get_by_test_id("stMain").inner_text()
    page.get_by_text("Window (of 2)").wait_for()
    code = page.get_by_test_id("stCode").filter(has_text="resample(x, 44100, 16000)")
    code.wait_for()
    assert "windows(x, 16000, 16000)" in code.inner_text()
    shot(page, "64-audio-fixed", show=page.get_by_test_id("stAudio"))

    page.get_by_role("button", name="Run it").click()
    page.get_by_role("heading", name="Run and outputs").wait_for()
    # "Run it" on data that is only a batch of windows runs every window.
    scores = page.locator(".js-plotly-plot:visible").filter(has_text="class scores per window").first
    scores.wait_for()
    scores.locator(".ytick text").filter(has_text="dog bark").wait_for()
    settle(page)
    assert "Last run" not in page.get_by_test_id("stSidebar").inner_text()  # no single run of 2 windows failed
    shot(page, "65-audio-windows-run", show=scores)


def _open_layers(page) -> None:
    """Go to the Layers page; a click that lands while the last page still reruns is tried again."""
    settle(page)
    link = page.get_by_test_id("stSidebarNav").get_by_role("link", name="Layers")
    heading = page.get_by_role("heading", name="Layers")
    for _ in range(3):
        link.click()
        try:
            heading.wait_for(timeout=10_000)
            return
        except Exception:  # noqa: BLE001 - Playwright's timeout: click again
            settle(page)
    heading.wait_for()


def test_the_layers_of_a_real_detector_and_of_a_model_that_makes_nan(open_app, tmp_path):
    """The Layers page in a browser: the real face detector on a real photo (every layer clean, a
    row picked shows its values and its place in the graph), then a model that makes NaN at a
    known op (its row coloured, its values drawn)."""
    if not (REAL / "grace_hopper.jpg").exists():
        pytest.skip("the real files are not fetched (scripts/fetch_real_models.py)")
    from test_trace import RECIPES  # the model that makes NaN, built as test_trace builds it

    page = open_app()
    _upload_model(page, REAL / "face_detection_short_range.tflite")
    _upload_data(page, REAL / "grace_hopper.jpg")
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Diagnose and fix").click()
    page.get_by_role("button", name="Apply all fixes").click()
    page.get_by_test_id("stMain").get_by_text("The data fits the model's inputs").wait_for()
    settle(page)
    _open_layers(page)
    page.get_by_text("No NaN, no Inf, no saturated or dead tensor in this run.").wait_for()
    settle(page)
    charts = page.locator(".js-plotly-plot:visible")
    charts.first.wait_for()
    assert "165 of 165" in page.get_by_test_id("stMetricValue").first.inner_text()
    shot(page, "61-layers-clean", show=charts.first)
    table = page.get_by_test_id("stDataFrame").first
    table.scroll_into_view_if_needed()
    shot(page, "62-layers-table", show=table)
    # Pick the fifth row (the first ReLU's output): the row marker sits left of the first column.
    box = table.bounding_box()
    page.mouse.click(box["x"] + 12, box["y"] + 35 * 5 + 17)
    page.get_by_role("heading", name="Tensor 4: activation").wait_for()
    settle(page)
    values = page.locator(".js-plotly-plot:visible").nth(1)
    values.wait_for()
    shot(page, "63-layers-tensor-values", show=values)
    page.get_by_role("tab", name="Place in the graph").click()
    graph = page.get_by_test_id("stGraphVizChart").first
    graph.wait_for()
    assert "activation" in graph.inner_text()
    shot(page, "64-layers-tensor-graph", show=graph)

    # A model made to give NaN at its SQRT and -Inf at its LOG.
    import subprocess

    import numpy as np

    subprocess.run([sys.executable, "-c", RECIPES, str(tmp_path)], check=True, capture_output=True, timeout=600,
                   env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""})
    data = tmp_path / "x.npy"
    np.save(data, np.array([[0.0, 0.0, 0.25, 0.25, 1.0, 1.0, 2.0, 2.0]], np.float32))
    page.get_by_test_id("stSidebarNav").get_by_role("link", name="Start").click()
    _upload_model(page, tmp_path / "nan_inf.tflite")
    _upload_data(page, data)
    page.get_by_test_id("stSidebar").get_by_text("Data: x.npy").wait_for()  # not the photo of the last model
    _open_layers(page)
    first_nan = error_alert(page, "the first, in execution order, that holds NaN")
    # A new model: a fresh worker starts, checks it, and builds its marked copy before the trace;
    # on a loaded CI machine that alone can pass the usual 30 s.
    first_nan.wait_for(timeout=3 * WAIT_MS)
    assert "SQRT" in first_nan.inner_text()
    assert "LOG" in error_alert(page, "infinite value").inner_text()
    settle(page)
    shot(page, "65-layers-nan")
    page.get_by_role("heading", name="Tensor 5: Sqrt").wait_for()
    page.get_by_test_id("stDataFrame").first.scroll_into_view_if_needed()
    shot(page, "66-layers-nan-table", show=page.get_by_test_id("stDataFrame").first)
    nan_values = page.locator(".js-plotly-plot:visible").nth(1)
    nan_values.wait_for()
    shot(page, "67-layers-nan-values", show=nan_values)
