//! A real headless Chromium, driven through WebDriver: each `Browser` starts its own
//! `chromedriver` on a free port (in its own process group, killed whole on drop) and a fresh
//! Chromium profile. One browser runs at a time: the machine is small, and Chromium competing
//! with argon2 in other tests made timings flaky.
//!
//! Waits poll a condition until a deadline. When one fails, the browser saves a screenshot and
//! the page source under `target/tmp/browser/` and the panic message names them.

use std::future::Future;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::error::CmdError;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::support::wait::free_port;
use crate::support::{NS, TestApp};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long a page may take to reach an expected state.
pub const WAIT: Duration = Duration::from_secs(20);
const POLL: Duration = Duration::from_millis(100);
/// How long one WebDriver command may take: a hung chromedriver or Chromium fails the test
/// that met it, instead of holding the whole run.
const COMMAND: Duration = Duration::from_secs(60);

/// One WebDriver command, `WaitTimeout` when it has not answered within `COMMAND`.
async fn within<T>(command: impl Future<Output = Result<T, CmdError>>) -> Result<T, CmdError> {
    tokio::time::timeout(COMMAND, command)
        .await
        .unwrap_or(Err(CmdError::WaitTimeout))
}

static ONE_AT_A_TIME: Semaphore = Semaphore::const_new(1);

/// chromedriver and everything it started; killed as a group when dropped, even on panic.
struct DriverProcess(Child);

impl Drop for DriverProcess {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.0.id()) {
            // SAFETY: kill(2) with a negative pid signals the process group we created for
            // chromedriver (`process_group(0)`), which holds only it and its Chromium.
            unsafe {
                libc::kill(-pid, libc::SIGKILL);
            }
        }
        let _ = self.0.wait();
    }
}

pub struct Browser {
    pub client: Client,
    name: String,
    _driver: DriverProcess,
    _profile: tempfile::TempDir,
    _turn: SemaphorePermit<'static>,
}

fn artifacts_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser");
    std::fs::create_dir_all(&dir).expect("artifacts folder");
    dir
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session; `name` names the failure files.
    pub async fn start(name: &str) -> Browser {
        let turn = ONE_AT_A_TIME.acquire().await.expect("semaphore open");
        for binary in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(binary).exists(),
                "{binary} is missing: apt-get install chromium chromium-driver (.ci/run does)"
            );
        }
        let port = free_port();
        let log = std::fs::File::create(artifacts_dir().join(format!("{name}.chromedriver.log")))
            .expect("chromedriver log");
        let driver = DriverProcess(
            Command::new(CHROMEDRIVER)
                .arg(format!("--port={port}"))
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("log handle"))
                .stderr(log)
                .process_group(0)
                .spawn()
                .expect("chromedriver starts"),
        );
        let webdriver = format!("http://127.0.0.1:{port}");
        let deadline = tokio::time::Instant::now() + WAIT;
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "chromedriver did not listen on port {port} within {WAIT:?}"
            );
            tokio::time::sleep(POLL).await;
        }
        let profile = tempfile::tempdir().expect("profile folder");
        let capabilities = json!({
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    format!("--user-data-dir={}", profile.path().display()),
                    "--window-size=1200,900",
                ],
            }
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!("an object literal")
        };
        let mut builder =
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
        let session = builder.capabilities(capabilities).connect(&webdriver);
        let client = tokio::time::timeout(COMMAND, session)
            .await
            .unwrap_or_else(|_| panic!("no Chromium session within {COMMAND:?}"))
            .expect("a Chromium session through chromedriver");
        Browser {
            client,
            name: name.to_owned(),
            _driver: driver,
            _profile: profile,
            _turn: turn,
        }
    }

    /// Ends the session cleanly (Chromium exits); the drop then stops chromedriver.
    pub async fn quit(self) {
        let _ = within(self.client.clone().close()).await;
    }

    /// Saves a screenshot and the page source, then panics with `message` and their paths.
    pub async fn fail(&self, message: &str) {
        let dir = artifacts_dir();
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or_default();
        let screenshot = dir.join(format!("{}-{stamp}.png", self.name));
        let source = dir.join(format!("{}-{stamp}.html", self.name));
        let url = within(self.client.current_url())
            .await
            .map(|u| u.to_string())
            .unwrap_or_else(|e| format!("(no URL: {e})"));
        let saved_screenshot = match within(self.client.screenshot()).await {
            Ok(png) => std::fs::write(&screenshot, png).is_ok(),
            Err(_) => false,
        };
        let saved_source = match within(self.client.source()).await {
            Ok(html) => std::fs::write(&source, html).is_ok(),
            Err(_) => false,
        };
        panic!(
            "{message}\n  at {url}\n  screenshot: {}\n  page source: {}",
            if saved_screenshot {
                screenshot.display().to_string()
            } else {
                "(could not be taken)".into()
            },
            if saved_source {
                source.display().to_string()
            } else {
                "(could not be read)".into()
            },
        );
    }

    pub async fn check(&self, condition: bool, message: &str) {
        if !condition {
            self.fail(message).await;
        }
    }

    pub async fn goto(&self, url: &str) {
        if let Err(error) = within(self.client.goto(url)).await {
            self.fail(&format!("could not open {url}: {error}")).await;
        }
    }

    pub async fn path(&self) -> String {
        match within(self.client.current_url()).await {
            Ok(url) => match url.query() {
                Some(query) => format!("{}?{query}", url.path()),
                None => url.path().to_owned(),
            },
            Err(error) => {
                self.fail(&format!("no current URL: {error}")).await;
                String::new()
            }
        }
    }

    /// Waits until the current path (with its query) satisfies `expected`.
    pub async fn wait_for_path(&self, what: &str, expected: impl Fn(&str) -> bool) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let path = self.path().await;
            if expected(&path) {
                return path;
            }
            if tokio::time::Instant::now() >= deadline {
                self.fail(&format!(
                    "the browser never reached {what} within {WAIT:?}; it is at {path}"
                ))
                .await;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The visible text of the first element matching `css` (`None`: no such element yet).
    async fn try_text(&self, css: &str) -> Option<String> {
        let element = within(self.client.find(Locator::Css(css))).await.ok()?;
        within(element.text()).await.ok()
    }

    /// Waits until the element matching `css` exists and its text contains `expected`.
    pub async fn wait_for_text(&self, css: &str, expected: &str) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let text = self.try_text(css).await;
            if let Some(text) = &text
                && text.contains(expected)
            {
                return text.clone();
            }
            if tokio::time::Instant::now() >= deadline {
                self.fail(&format!(
                    "'{css}' never showed '{expected}' within {WAIT:?}; it shows {text:?}"
                ))
                .await;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    pub async fn text(&self, css: &str) -> String {
        match self.try_text(css).await {
            Some(text) => text,
            None => {
                self.fail(&format!("no element matches '{css}'")).await;
                String::new()
            }
        }
    }

    async fn element(&self, css: &str) -> Option<fantoccini::elements::Element> {
        match within(self.client.find(Locator::Css(css))).await {
            Ok(element) => Some(element),
            Err(error) => {
                self.fail(&format!("no element matches '{css}': {error}"))
                    .await;
                None
            }
        }
    }

    /// Types `value` into the field matching `css`, replacing what it held.
    pub async fn fill(&self, css: &str, value: &str) {
        if let Some(element) = self.element(css).await {
            let typed = async {
                within(element.clear()).await?;
                within(element.send_keys(value)).await
            }
            .await;
            if let Err(error) = typed {
                self.fail(&format!("could not type into '{css}': {error}"))
                    .await;
            }
        }
    }

    pub async fn click(&self, css: &str) {
        if let Some(element) = self.element(css).await
            && let Err(error) = within(element.click()).await
        {
            self.fail(&format!("could not click '{css}': {error}"))
                .await;
        }
    }

    pub async fn script(&self, script: &str, args: Vec<Value>) -> Value {
        match within(self.client.execute(script, args)).await {
            Ok(value) => value,
            Err(error) => {
                self.fail(&format!("script failed: {error}")).await;
                Value::Null
            }
        }
    }

    /// Logs in through the login page and waits to leave it.
    pub async fn log_in(&self, app: &TestApp, email: &str, password: &str) {
        self.goto(&format!("{}/{NS}/login/", app.base)).await;
        self.submit_login(email, password).await;
        self.wait_for_path("a page after the login", |path| {
            !path.starts_with(&format!("/{NS}/login/"))
        })
        .await;
    }

    /// Fills and sends the login form of the current page.
    pub async fn submit_login(&self, email: &str, password: &str) {
        self.fill("#email", email).await;
        self.fill("#password", password).await;
        self.submit_and_wait("form button[type=submit]").await;
    }

    /// Clicks a submit button and waits until the browser has left the current page, so that
    /// what follows never acts on (or reads) the page the form was on.
    pub async fn submit_and_wait(&self, css: &str) {
        let old_page = self.element("html").await;
        self.click(css).await;
        let Some(old_page) = old_page else {
            return;
        };
        let deadline = tokio::time::Instant::now() + WAIT;
        // A page that was replaced leaves its elements stale: any call on them fails.
        while within(old_page.tag_name()).await.is_ok() {
            if tokio::time::Instant::now() >= deadline {
                self.fail(&format!("submitting '{css}' never left the page"))
                    .await;
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// The accessibility problems of the current page (see `ACCESSIBILITY_CHECK`).
    pub async fn accessibility_problems(&self) -> Vec<String> {
        let found = self.script(ACCESSIBILITY_CHECK, Vec::new()).await;
        match serde_json::from_value(found) {
            Ok(problems) => problems,
            Err(error) => {
                self.fail(&format!(
                    "the accessibility check returned no list: {error}"
                ))
                .await;
                Vec::new()
            }
        }
    }

    /// Asserts that every form field has a label and every text has a contrast of 4.5:1.
    pub async fn assert_accessible(&self, page: &str) {
        let problems = self.accessibility_problems().await;
        if !problems.is_empty() {
            self.fail(&format!(
                "the {page} page has accessibility problems:\n  {}",
                problems.join("\n  ")
            ))
            .await;
        }
    }

    /// Saves a screenshot of the page at `width` x `height` as `target/screenshots/{file}`, then
    /// restores the usual window size. With `UPDATE_SCREENSHOTS=1` it is also copied into
    /// `docs/screenshots/` for the README: a tracked file changes only when asked to.
    pub async fn save_screenshot_for_docs(&self, file: &str, width: u32, height: u32) {
        let taken = async {
            within(self.client.set_window_size(width, height)).await?;
            let png = within(self.client.screenshot()).await?;
            within(self.client.set_window_size(1200, 900)).await?;
            Ok::<_, CmdError>(png)
        }
        .await;
        let png = match taken {
            Ok(png) => png,
            Err(error) => {
                self.fail(&format!("screenshot failed: {error}")).await;
                return;
            }
        };
        let target = Path::new(env!("CARGO_TARGET_TMPDIR"));
        let dir = target.parent().unwrap_or(target).join("screenshots");
        std::fs::create_dir_all(&dir).expect("target/screenshots");
        std::fs::write(dir.join(file), &png).expect("screenshot written");
        if std::env::var_os("UPDATE_SCREENSHOTS").is_some_and(|v| v == "1") {
            let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
            std::fs::create_dir_all(&docs).expect("docs/screenshots");
            std::fs::write(docs.join(file), &png).expect("screenshot copied into docs");
        }
    }
}

/// Runs in the page and returns a list of problems (empty when all is well):
/// - every visible `input`, `select` and `textarea` has a `<label for>` or an `aria-label`;
/// - every element that shows text (and every field) has a contrast ratio of at least 4.5:1
///   (WCAG 2 AA) between its computed colour and the background it is drawn on (the
///   backgrounds of it and its ancestors, composited; white at the root).
const ACCESSIBILITY_CHECK: &str = r#"
const problems = [];
const describe = (el) => el.outerHTML.slice(0, 100).replace(/\s+/g, " ");
for (const field of document.querySelectorAll("input, select, textarea")) {
  if (field.type === "hidden") continue;
  const byFor = field.id && document.querySelector('label[for="' + CSS.escape(field.id) + '"]');
  const aria = field.getAttribute("aria-label") || field.getAttribute("aria-labelledby");
  if (!byFor && !(aria && aria.trim())) problems.push("no label: " + describe(field));
}
const parse = (css) => {
  const m = css.match(/rgba?\(([^)]*)\)/);
  if (!m) return null;
  const p = m[1].split(/[\s,\/]+/).filter(Boolean).map(Number);
  return { r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1 };
};
const over = (top, bottom) => ({
  r: top.r * top.a + bottom.r * (1 - top.a),
  g: top.g * top.a + bottom.g * (1 - top.a),
  b: top.b * top.a + bottom.b * (1 - top.a),
  a: 1,
});
const luminance = (c) => {
  const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
  return 0.2126 * f(c.r) + 0.7152 * f(c.g) + 0.0722 * f(c.b);
};
const backdrop = (el) => {
  const chain = [];
  for (let e = el; e; e = e.parentElement) chain.unshift(e);
  let bg = { r: 255, g: 255, b: 255, a: 1 };
  for (const e of chain) {
    const c = parse(getComputedStyle(e).backgroundColor);
    if (c && c.a > 0) bg = over(c, bg);
  }
  return bg;
};
for (const el of document.body.querySelectorAll("*")) {
  const showsText = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim())
    || el.matches("input:not([type=hidden]), select, textarea");
  if (!showsText) continue;
  const style = getComputedStyle(el);
  const box = el.getBoundingClientRect();
  if (style.visibility === "hidden" || box.width <= 1 || box.height <= 1) continue;
  const bg = backdrop(el);
  const fg = parse(style.color);
  if (!fg) continue;
  const a = luminance(over(fg, bg)), b = luminance(bg);
  const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
  if (ratio < 4.5) {
    problems.push("contrast " + ratio.toFixed(2) + ":1 (" + style.color + " on rgb(" +
      [bg.r, bg.g, bg.b].map(Math.round).join(", ") + ")): " + describe(el));
  }
}
return problems;
"#;
