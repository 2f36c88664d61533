//! The browser harness (issue 20, Tests): a real Chromium, headless, driven
//! over WebDriver (`chromedriver`, through `fantoccini`), that looks at the web
//! pages at 1280 px and 360 px wide, keeps a screenshot of each, and runs
//! axe-core on each against WCAG 2.1 A and AA.
//!
//! What it needs, and where it finds it:
//! - `chromium` and `chromedriver` on the `PATH` (Debian: `apt-get install
//!   chromium chromium-driver`); `BROWSER_TESTS_CHROMIUM` names another browser
//!   binary;
//! - `BROWSER_TESTS_AXE`: the path of axe-core's `axe.min.js` (`npm install
//!   axe-core@4.14.1`, the version `.ci/run` installs);
//! - `BROWSER_TESTS_SCREENSHOTS`: the folder screenshots go to (`.ci/run` names
//!   it and keeps it); by default a folder of the build's target directory.
//!
//! (Not `ALERTISSIMO_*`: the binary reads every such variable as a key of its
//! configuration, and refuses the ones it does not know.)
//!
//! When one is missing, the test fails in CI (`CI=true`), saying what to
//! install, and on any machine where `BROWSER_TESTS_REQUIRED=1` is set.
//! Elsewhere (a developer's fresh machine, the README's quick start) it says
//! loudly, past the test harness's capture, that it did not run and what to
//! install: the CI run is the one that must look.
//!
//! A test opens a [`Browser`], drives it with [`Browser::goto`],
//! [`Browser::fill`], [`Browser::click`], [`Browser::text`] and [`Browser::run`]
//! (any WebDriver command of `fantoccini`'s client), and calls [`Browser::check`] on each
//! page it wants looked at: both widths, a screenshot each, axe, and no
//! horizontal scrolling at 360 px (WCAG 1.4.10, reflow).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::wd::TimeoutConfiguration;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// The widths every page is looked at: a desktop and a small phone.
pub const WIDTHS: [u32; 2] = [1280, 360];

/// The axe-core version `.ci/run` installs, named in the messages below.
pub const AXE_VERSION: &str = "4.14.1";

/// Outside CI, makes a missing browser a failure rather than a notice.
const REQUIRED: &str = "BROWSER_TESTS_REQUIRED";

/// Chromium's flags: headless, and nothing that reaches for the network on its
/// own (the machines running the tests have none but the package registries).
const CHROMIUM_ARGS: [&str; 10] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
];

/// The longest any one WebDriver command may take before the test fails.
const COMMAND_LIMIT: Duration = Duration::from_secs(60);

/// The WCAG 2.1 A and AA rules of axe-core.
const AXE_TAGS: [&str; 4] = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"];

/// What the tools are, once found.
struct Tools {
    chromium: PathBuf,
    chromedriver: PathBuf,
    axe: String,
    screenshots: PathBuf,
}

/// A headless Chromium under its own `chromedriver`, for one test. Dropping it
/// ends the session, the browser and the driver.
pub struct Browser {
    test: String,
    runtime: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Child,
    axe: String,
    screenshots: PathBuf,
    /// The browser's profile and the driver's log.
    scratch: tempfile::TempDir,
}

impl Browser {
    /// Starts a browser for the test `test` (the screenshots' prefix), or
    /// `None` when the tools are missing outside CI and `BROWSER_TESTS_REQUIRED`
    /// is not set (said on standard error). Fails, naming what to install, when
    /// they are missing in CI or when required.
    pub fn open(test: &str) -> Option<Browser> {
        let tools = match find_tools() {
            Ok(tools) => tools,
            Err(missing) => {
                let ci = std::env::var("CI").is_ok_and(|v| v == "true");
                let required = std::env::var(REQUIRED).is_ok_and(|v| !v.is_empty() && v != "0");
                if !required && !ci {
                    // Straight to the process's standard error, past the test
                    // harness's capture: a test that did not look says so.
                    use std::io::Write;
                    let _ = writeln!(
                        std::io::stderr(),
                        "\n!!! BROWSER TEST {test} DID NOT RUN: {} (docs/CONTRIBUTING.md, \"Browser tests\"; CI runs it)\n",
                        missing.join("; ")
                    );
                    return None;
                }
                panic!(
                    "the browser test {test} cannot run:\n  - {}\n{}",
                    missing.join("\n  - "),
                    if ci {
                        "CI must run it: .ci/run installs these; see docs/CONTRIBUTING.md, \
                         \"Browser tests\"."
                    } else {
                        "Install them (docs/CONTRIBUTING.md, \"Browser tests\"), or unset \
                         BROWSER_TESTS_REQUIRED to let the browser tests say they did not run."
                    }
                );
            }
        };
        Some(Browser::start(test, tools))
    }

    fn start(test: &str, tools: Tools) -> Browser {
        let scratch = tempfile::tempdir().unwrap();
        let port = free_port();
        let log = scratch.path().join("chromedriver.log");
        let driver = Command::new(&tools.chromedriver)
            .arg(format!("--port={port}"))
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{} does not start: {e}", tools.chromedriver.display()));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let mut browser = Browser {
            test: test.to_owned(),
            runtime,
            client: None,
            driver,
            axe: tools.axe,
            screenshots: tools.screenshots,
            scratch,
        };
        browser.wait_for_driver(port);
        let profile = browser.scratch.path().join("profile");
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| (*a).to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        args.push(format!("--window-size={},900", WIDTHS[0]));
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": tools.chromium,
                "args": args,
            },
        });
        let capabilities = match capabilities {
            Value::Object(map) => map,
            _ => unreachable!(),
        };
        let webdriver = format!("http://127.0.0.1:{port}");
        let mut builder =
            ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
        builder.capabilities(capabilities);
        let connected = browser.runtime.block_on(async {
            tokio::time::timeout(COMMAND_LIMIT, builder.connect(&webdriver)).await
        });
        match connected {
            Ok(Ok(client)) => browser.client = Some(client),
            Ok(Err(e)) => panic!("no browser session: {e}\n{}", browser.driver_log()),
            Err(_) => panic!(
                "no browser session within a minute\n{}",
                browser.driver_log()
            ),
        }
        let timeouts = TimeoutConfiguration::new(
            Some(Duration::from_secs(30)),
            Some(Duration::from_secs(30)),
            Some(Duration::ZERO),
        );
        browser.run(|c| async move { c.update_timeouts(timeouts).await });
        browser
    }

    /// Waits (at most 20 s) for `chromedriver` to answer on `port`.
    fn wait_for_driver(&mut self, port: u16) {
        let start = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(exit) = self.driver.try_wait().unwrap() {
                panic!("chromedriver exited ({exit})\n{}", self.driver_log());
            }
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "chromedriver did not listen on port {port} within 20 s\n{}",
                self.driver_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The end of `chromedriver`'s log, for a failure's message.
    fn driver_log(&self) -> String {
        let log = std::fs::read_to_string(self.scratch.path().join("chromedriver.log"))
            .unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(30)..].join("\n");
        format!("chromedriver's log, last lines:\n{tail}")
    }

    /// The WebDriver session, for what the helpers below do not cover.
    pub fn client(&self) -> &Client {
        self.client.as_ref().expect("a session")
    }

    /// Runs one step of WebDriver commands (`step` gets a clone of the client)
    /// to its end, failing the test on an error or after a minute.
    pub fn run<T, E, F>(&self, step: impl FnOnce(Client) -> F) -> T
    where
        F: Future<Output = Result<T, E>>,
        E: std::fmt::Display,
    {
        let future = step(self.client().clone());
        match self
            .runtime
            .block_on(async { tokio::time::timeout(COMMAND_LIMIT, future).await })
        {
            Ok(Ok(value)) => value,
            Ok(Err(e)) => panic!("{}: a WebDriver command failed: {e}", self.test),
            Err(_) => panic!("{}: a WebDriver command took over a minute", self.test),
        }
    }

    /// Loads `url` and waits for it.
    pub fn goto(&self, url: &str) {
        let url = url.to_owned();
        self.run(|c| async move { c.goto(&url).await });
    }

    /// The page's address.
    pub fn url(&self) -> String {
        self.run(|c| async move { c.current_url().await })
            .to_string()
    }

    /// The page's visible text.
    pub fn text(&self) -> String {
        self.script("return document.body.innerText;")
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Clicks the first element that `css` selects, a link or a form's
    /// button, and waits for the next page to be loaded: a new document (its
    /// `performance.timeOrigin` differs), complete. A click returns before the
    /// next page is there, and on a loaded machine before it has even started
    /// to come: the page still shown then is the one the click left.
    pub fn click(&self, css: &str) {
        let before = self.script("return performance.timeOrigin;");
        let selector = css.to_owned();
        self.run(|c| async move {
            let element = c.find(Locator::Css(&selector)).await?;
            element.click().await
        });
        let start = std::time::Instant::now();
        while start.elapsed() < COMMAND_LIMIT {
            let now = self.script(
                "return document.readyState === 'complete' ? performance.timeOrigin : null;",
            );
            if !now.is_null() && now != before {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{}: a click on {css} loaded no new page", self.test);
    }

    /// Types `text` into the form field that `css` selects (after clearing
    /// it), as a person would.
    pub fn fill(&self, css: &str, text: &str) {
        let (css, text) = (css.to_owned(), text.to_owned());
        self.run(|c| async move {
            let field = c.find(Locator::Css(&css)).await?;
            field.clear().await?;
            field.send_keys(&text).await
        });
    }

    /// Runs `script` in the page; its return value.
    pub fn script(&self, script: &str) -> Value {
        let script = script.to_owned();
        self.run(|c| async move { c.execute(&script, Vec::new()).await })
    }

    /// Runs `script` in the page, whose last argument is the callback that
    /// gives its value.
    pub fn script_async(&self, script: &str) -> Value {
        let script = script.to_owned();
        self.run(|c| async move { c.execute_async(&script, Vec::new()).await })
    }

    /// Makes the page's viewport `width` CSS pixels wide, and at least 800 px
    /// tall or as tall as the page (at most 6000 px), so that a screenshot
    /// shows all of it. The window's size includes its frame, if any: it is
    /// found by measuring.
    fn set_width(&self, width: u32) {
        let width = i64::from(width);
        let (mut window_width, mut window_height) = (width, 800);
        for _ in 0..4 {
            let size = (
                u32::try_from(window_width).unwrap(),
                u32::try_from(window_height).unwrap(),
            );
            self.run(|c| async move { c.set_window_size(size.0, size.1).await });
            let measured = self.script(
                "return [window.innerWidth, window.innerHeight,
                         document.documentElement.scrollHeight];",
            );
            let [inner_width, inner_height, page_height] =
                [0, 1, 2].map(|i| measured[i].as_i64().unwrap_or(0));
            let wanted_height = page_height.clamp(800, 6000);
            if inner_width == width && inner_height >= wanted_height {
                return;
            }
            window_width = (window_width + width - inner_width).max(1);
            window_height = (window_height + wanted_height - inner_height).max(1);
        }
        let inner = self.script("return window.innerWidth;");
        assert_eq!(
            inner.as_i64(),
            Some(width),
            "the viewport cannot be made {width} px wide"
        );
    }

    /// Looks at the page at each of [`WIDTHS`]: a screenshot
    /// `<test>-<name>-<width>px.png` in the screenshots folder, axe-core's WCAG
    /// 2.1 A and AA rules, and no horizontal scrolling. Fails naming every
    /// violation found, at either width.
    pub fn check(&self, name: &str) {
        let mut problems = Vec::new();
        for width in WIDTHS {
            self.set_width(width);
            let png = self.run(|c| async move { c.screenshot().await });
            let file = self
                .screenshots
                .join(format!("{}-{name}-{width}px.png", self.test));
            std::fs::write(&file, png).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            problems.extend(
                self.axe()
                    .into_iter()
                    .map(|v| format!("at {width} px: {v}")),
            );
            let sizes =
                self.script("return [document.documentElement.scrollWidth, window.innerWidth];");
            if sizes[0].as_u64() > sizes[1].as_u64() {
                problems.push(format!(
                    "at {width} px: the page scrolls sideways ({} px of content in {} px; \
                     WCAG 1.4.10, reflow)",
                    sizes[0], sizes[1]
                ));
            }
        }
        assert!(
            problems.is_empty(),
            "{} — page {name:?} ({}): {} problem(s):\n{}\n(screenshots in {})",
            self.test,
            self.url(),
            problems.len(),
            problems.join("\n"),
            self.screenshots.display()
        );
    }

    /// Runs axe-core on the page: each WCAG 2.1 A or AA violation, described
    /// (its id, impact, help, and the nodes at fault).
    fn axe(&self) -> Vec<String> {
        let loaded = self.script("return typeof window.axe;");
        if loaded != "object" {
            self.script(&self.axe);
        }
        let tags = json!(AXE_TAGS).to_string();
        let found = self.script_async(&format!(
            "const done = arguments[arguments.length - 1];
             axe.run(document, {{ runOnly: {{ type: 'tag', values: {tags} }},
                                  resultTypes: ['violations'] }})
               .then(r => done({{ version: axe.version, passes: r.passes.length,
                                  violations: r.violations.map(v => ({{
                        id: v.id, impact: v.impact, help: v.help, url: v.helpUrl,
                        nodes: v.nodes.map(n => ({{ target: n.target, why: n.failureSummary }}))
                      }})) }}),
                     e => done({{ error: String(e) }}));"
        ));
        if let Some(error) = found.get("error") {
            panic!("axe-core failed on the page: {error}");
        }
        // Rules that ran and found nothing wrong: none would mean axe checked nothing.
        assert!(
            found["passes"].as_u64().is_some_and(|n| n > 0),
            "axe-core ran no rule: {found}"
        );
        let violations = found["violations"]
            .as_array()
            .unwrap_or_else(|| panic!("axe-core's answer: {found}"));
        violations
            .iter()
            .map(|v| {
                let nodes: Vec<String> = v["nodes"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|n| {
                        format!(
                            "    {}: {}",
                            n["target"],
                            n["why"].as_str().unwrap_or("").replace("\n  ", "; ")
                        )
                    })
                    .collect();
                format!(
                    "{} ({}): {} <{}>\n{}",
                    v["id"].as_str().unwrap_or("?"),
                    v["impact"].as_str().unwrap_or("?"),
                    v["help"].as_str().unwrap_or("?"),
                    v["url"].as_str().unwrap_or(""),
                    nodes.join("\n")
                )
            })
            .collect()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            // Ends the session, and with it the browser.
            let _ = self.runtime.block_on(async {
                tokio::time::timeout(Duration::from_secs(10), client.close()).await
            });
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// The tools, or what is missing, each with how to get it.
fn find_tools() -> Result<Tools, Vec<String>> {
    let mut missing = Vec::new();
    let chromium = std::env::var_os("BROWSER_TESTS_CHROMIUM")
        .map(PathBuf::from)
        .or_else(|| on_path("chromium"));
    if chromium.as_deref().is_none_or(|p| !p.is_file()) {
        missing.push(
            "Chromium: `apt-get install chromium` (or BROWSER_TESTS_CHROMIUM=/path/to/the/browser)"
                .to_owned(),
        );
    }
    let chromedriver = on_path("chromedriver");
    if chromedriver.is_none() {
        missing.push("chromedriver: `apt-get install chromium-driver`".to_owned());
    }
    let axe = match std::env::var_os("BROWSER_TESTS_AXE") {
        None => {
            missing.push(format!(
                "axe-core: `npm install --prefix DIR axe-core@{AXE_VERSION}` and \
                 BROWSER_TESTS_AXE=DIR/node_modules/axe-core/axe.min.js"
            ));
            None
        }
        Some(path) => match std::fs::read_to_string(&path) {
            Ok(text) => Some(text),
            Err(e) => {
                missing.push(format!(
                    "axe-core: BROWSER_TESTS_AXE={} cannot be read ({e}); \
                     `npm install --prefix DIR axe-core@{AXE_VERSION}` puts it in \
                     DIR/node_modules/axe-core/axe.min.js",
                    Path::new(&path).display()
                ));
                None
            }
        },
    };
    let screenshots = std::env::var_os("BROWSER_TESTS_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots"));
    if let Err(e) = std::fs::create_dir_all(&screenshots) {
        missing.push(format!(
            "the screenshots folder {}: {e}",
            screenshots.display()
        ));
    }
    match (chromium, chromedriver, axe) {
        (Some(chromium), Some(chromedriver), Some(axe)) if missing.is_empty() => Ok(Tools {
            chromium,
            chromedriver,
            axe,
            screenshots,
        }),
        _ => Err(missing),
    }
}

/// Where `name` is on the `PATH`.
fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|path| path.is_file())
}

/// A port of 127.0.0.1 free a moment ago.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The harness itself: on a page made wrong on purpose, [`Browser::check`]
/// fails and names each problem (axe-core's rules, and the sideways scrolling
/// at 360 px), so that a browser test that passes has really looked.
#[test]
fn issue_20_the_browser_harness_names_what_axe_finds() {
    let Some(browser) = Browser::open("harness") else {
        return;
    };
    // No `lang`, an image without its text, grey on white, a form field
    // without a label, and a block wider than a phone and taller than a screen.
    browser.goto(
        "data:text/html;charset=utf-8,<!DOCTYPE html><html><head><title>t</title></head>\
         <body><main><h1>Page</h1><img src=\"data:,\">\
         <p style=\"color:%23ccc\">pale</p><input type=\"text\">\
         <div style=\"width:900px;height:1500px\">wide</div></main></body></html>",
    );
    let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        browser.check("wrong-on-purpose");
    }))
    .expect_err("check passes a page made wrong on purpose");
    let message = failed.downcast_ref::<String>().cloned().unwrap_or_default();
    for expected in [
        "at 1280 px: html-has-lang (serious)",
        "at 360 px: image-alt (critical)",
        "color-contrast (serious)",
        "label (critical)",
        "at 360 px: the page scrolls sideways",
    ] {
        assert!(message.contains(expected), "{expected:?} in:\n{message}");
    }
    assert!(
        !message.contains("at 1280 px: the page scrolls sideways"),
        "{message}"
    );
    // A field takes what is typed into it.
    browser.fill("input", "lune@example.org");
    assert_eq!(
        browser.script("return document.querySelector('input').value;"),
        "lune@example.org"
    );
    // The screenshots show the whole page: its height is in the PNG's header.
    for width in WIDTHS {
        let file = browser
            .screenshots
            .join(format!("harness-wrong-on-purpose-{width}px.png"));
        let png = std::fs::read(&file).unwrap();
        let size = [16, 20].map(|at| u32::from_be_bytes(png[at..at + 4].try_into().unwrap()));
        assert!(
            size[0] == width && size[1] >= 1500,
            "{}: {size:?}",
            file.display()
        );
    }
}
