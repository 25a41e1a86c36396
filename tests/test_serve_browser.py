"""``ffseg serve`` used as a person would: headless Chromium loads the page and uploads.

One page load, two uploads (the astronaut photo, then a real H.264 clip of a
moving face); after each, the test waits for the result and checks what is
on the page: the sample-model warning, the score cards, the overlay (an
image, then a video that Chromium can play) and the per-frame chart. The
screenshot is saved to ``docs/serve.png`` when ``FFSEG_SCREENSHOT`` is set
(how the README's picture was made), else into the test's folder.

Needs Debian's ``chromium`` and ``chromium-driver`` (``.ci/run`` installs
them); where they are missing the test is skipped, except under CI.
"""

import os
import shutil
import tempfile

import pytest

from ffseg.serve.app import ServeOptions, create_app
from tests import media
from tests.test_serve import export_sample_model, make_model, running, write_rgb

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CLIP_FRAMES = 12

if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)) and not os.environ.get("CI"):
    pytest.skip("needs Debian's chromium and chromium-driver", allow_module_level=True)


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="ffseg-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1200,1700",
                 f"--user-data-dir={profile}"):
        options.add_argument(flag)
    # The driver is given explicitly: selenium-manager must not download one.
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_page_photo_then_clip(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    model = tmp_path / "export"
    export_sample_model(make_model(), model)
    photo = write_rgb(tmp_path / "astronaut.png", media.astronaut())
    clip = media.write_clip(tmp_path / "interview.mp4",
                            media.face_clip("astronaut", CLIP_FRAMES).frames)
    app = create_app(ServeOptions(model=str(model), temp_dir=str(tmp_path / "requests")))
    wait = WebDriverWait(browser, 120)
    with running(app) as url:
        browser.get(url + "/")
        warning = browser.find_element(By.ID, "sample-warning")
        wait.until(lambda _: warning.is_displayed())
        assert "mean nothing on real media" in warning.text
        assert "ffpp/sample" in browser.find_element(By.ID, "model-card").text

        # The photo.
        browser.find_element(By.ID, "file").send_keys(photo)
        browser.find_element(By.ID, "analyse").click()
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "article.result.image"))
        article = browser.find_element(By.CSS_SELECTOR, "article.result.image")
        assert "astronaut.png" in article.find_element(By.TAG_NAME, "h2").text
        cards = article.find_elements(By.CLASS_NAME, "card")
        assert len(cards) == 1
        score = float(cards[0].find_element(By.CLASS_NAME, "score").text)
        assert 0 <= score <= 1
        assert cards[0].find_element(By.CLASS_NAME, "label").text.lower() == (
            "fake" if score >= 0.5 else "real")
        image = article.find_element(By.CSS_SELECTOR, "img.overlay")
        wait.until(lambda b: b.execute_script(
            "return arguments[0].complete && arguments[0].naturalWidth", image))
        assert browser.execute_script("return arguments[0].naturalWidth", image) == 512

        # The clip, on the same page.
        browser.find_element(By.ID, "file").send_keys(clip)
        browser.find_element(By.ID, "analyse").click()
        wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "article.result.video"))
        article = browser.find_element(By.CSS_SELECTOR, "article.result.video")
        assert not browser.find_element(By.ID, "error").is_displayed()
        player = article.find_element(By.CSS_SELECTOR, "video.overlay")
        assert browser.execute_script(
            "return arguments[0].canPlayType('video/mp4; codecs=\"avc1.64001f\"')", player
        ) in ("probably", "maybe")
        wait.until(lambda b: b.execute_script("return arguments[0].readyState >= 1", player))
        duration = browser.execute_script("return arguments[0].duration", player)
        assert duration == pytest.approx(CLIP_FRAMES / 25, abs=0.1)
        assert browser.execute_script("return arguments[0].videoWidth", player) == 640
        cards = article.find_elements(By.CLASS_NAME, "card")
        assert len(cards) == 1  # one face, followed over the frames
        assert f"mean of {CLIP_FRAMES} frame(s)" in cards[0].text
        chart = article.find_element(By.CSS_SELECTOR, "canvas.frame-chart")
        assert chart.get_attribute("data-points") == str(CLIP_FRAMES)
        # The chart has ink: count non-white pixels of the drawn canvas.
        inked = browser.execute_script(
            "const c = arguments[0], d = c.getContext('2d').getImageData(0, 0, c.width, "
            "c.height).data; let n = 0; for (let i = 0; i < d.length; i += 4) "
            "if (d[i] < 200 || d[i + 1] < 200) n++; return n;", chart)
        assert inked > 1000
        # Both results stay on the page, newest first.
        kinds = [a.get_attribute("class") for a in
                 browser.find_elements(By.CSS_SELECTOR, "article.result")]
        assert kinds == ["result video", "result image"]
        # Seek to the middle so the screenshot shows an overlay frame.
        assert not browser.find_element(By.ID, "status").is_displayed()
        browser.execute_script("arguments[0].pause(); arguments[0].currentTime = "
                               "arguments[0].duration / 2", player)
        wait.until(lambda b: b.execute_script(
            "return !arguments[0].seeking && arguments[0].readyState >= 2", player))
        target = os.environ.get("FFSEG_SCREENSHOT") or str(tmp_path / "serve.png")
        assert browser.save_screenshot(target)
        assert os.path.getsize(target) > 10_000
