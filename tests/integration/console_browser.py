"""The web console in a real browser, for the tests: Debian's chromium driven by selenium
through Debian's chromium-driver, and the page as a user sees it."""

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
# With EVB_CONSOLE_SCREENSHOTS=DIR the tests save the main views as DIR/console-*.png.
SHOTS = os.environ.get("EVB_CONSOLE_SCREENSHOTS")


def _why_no_browser():
    for path in (CHROMIUM, CHROMEDRIVER):
        if not shutil.which(path):
            return f"{path} is missing (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (the test extra of setup.py)"
    return None


_NO_BROWSER = _why_no_browser()
NEEDS_BROWSER = pytest.mark.skipif(_NO_BROWSER is not None, reason=str(_NO_BROWSER))


@contextmanager
def chromium():
    """Debian's chromium, headless, through Debian's chromium-driver: given both paths,
    selenium looks nothing up and downloads nothing."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1300"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


_TEXT_OF = "const e = document.querySelector(arguments[0]); return e ? e.innerText : null"


class Console:
    """The page as a user sees it: log in, wait for what the polling shows."""

    def __init__(self, driver, base_url):
        self.driver, self.url = driver, f"{base_url}/console/"

    def login(self, token):
        from selenium.webdriver.common.by import By

        self.driver.get(self.url)
        self.driver.execute_script("sessionStorage.clear()")
        self.driver.get(self.url)
        self.wait(lambda d: d.find_element(By.ID, "token").is_displayed())
        self.driver.find_element(By.ID, "token").send_keys(token)
        self.driver.find_element(By.ID, "login-button").click()
        self.row("vms", None)

    def wait(self, condition, timeout=10, message=""):
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, timeout, poll_frequency=0.05).until(condition, message)

    def row(self, table, key, attribute="data-vsi", timeout=10):
        """The text of the row of ``table`` with that key (None: any row, once the table is
        filled). Read in one script: the page redraws its rows as the polls bring news."""
        selector = f"#{table} tbody tr" + (f'[{attribute}="{key}"]' if key else "")
        return self.wait(
            lambda d: d.execute_script(_TEXT_OF, selector),
            timeout,
            f"no row {key} in #{table}: {self.text()[:2000]}",
        )

    def type(self, element_id, text):
        from selenium.webdriver.common.by import By

        self.driver.find_element(By.ID, element_id).send_keys(text)

    def click(self, selector):
        self.driver.execute_script("document.querySelector(arguments[0]).click()", selector)

    def text(self, element_id="console"):
        return self.driver.execute_script(_TEXT_OF, f"#{element_id}") or ""

    def shot(self, name, element_id=None):
        """$EVB_CONSOLE_SCREENSHOTS/console-NAME.png: the element, or the whole window."""
        if not SHOTS:
            return
        from selenium.webdriver.common.by import By

        path = Path(SHOTS) / f"console-{name}.png"
        if element_id:
            self.driver.find_element(By.ID, element_id).screenshot(str(path))
        else:
            self.driver.save_screenshot(str(path))
