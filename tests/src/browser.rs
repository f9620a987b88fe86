//! A headless Chromium for tests of the dashboard in a real browser: a chromedriver of its
//! own on a free loopback port, driven over WebDriver with `fantoccini`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`just test` installs them when it can);
//! `CHROMIUM` and `CHROMEDRIVER` name other binaries. chromedriver runs in a process group
//! of its own with every Chromium process it starts, and its temporary files (Chromium's
//! profile among them) go to a scratch directory: [`Browser::close`] or dropping the
//! [`Browser`], also when a test panics, kills the group and removes the directory.
//!
//! Every wait is bounded, and every error names what failed: the selector, the URL, the
//! screenshot, and for start-up chromedriver's own output.

use std::fs::File;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use fantoccini::elements::Element;
use fantoccini::wd::TimeoutConfiguration;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use rustix::process::{kill_process_group, Pid, Signal};
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::process::{Child, Command};

/// How long chromedriver has to answer, and then Chromium to open a session.
const START_LIMIT: Duration = Duration::from_secs(10);
/// How long the element helpers wait for their selector to match.
const WAIT_LIMIT: Duration = Duration::from_secs(10);
/// How long a page has to load, and a script to run.
const PAGE_LIMIT: Duration = Duration::from_secs(30);
/// How long [`Browser::close`] gives the session to end before killing everything.
const CLOSE_LIMIT: Duration = Duration::from_secs(10);

const DEFAULT_CHROMIUM: &str = "/usr/bin/chromium";
const DEFAULT_CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Chromium's flags: headless, quiet on the network, one fixed window size so screenshots
/// compare across runs. `--no-sandbox` because tests often run as root in a container.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-gpu",
    "--window-size=1280,900",
];

/// A headless Chromium with a WebDriver session open.
pub struct Browser {
    // Dropped before `driver`, which then kills chromedriver and Chromium.
    client: Client,
    driver: Driver,
    screenshots: PathBuf,
}

impl Browser {
    /// Starts chromedriver and opens a Chromium session; [`screenshot`](Self::screenshot)
    /// saves into `screenshots_dir`, created if missing.
    pub async fn start(screenshots_dir: PathBuf) -> anyhow::Result<Browser> {
        std::fs::create_dir_all(&screenshots_dir)
            .with_context(|| format!("creating {}", screenshots_dir.display()))?;
        let chromium = binary("CHROMIUM", DEFAULT_CHROMIUM);
        if !Path::new(&chromium).exists() {
            bail!("{chromium} not found: install chromium (Debian: apt-get install chromium) or set CHROMIUM");
        }
        let mut driver = Driver::start(&binary("CHROMEDRIVER", DEFAULT_CHROMEDRIVER))?;
        driver.wait_until_ready().await?;

        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_owned(),
            json!({ "binary": chromium, "args": CHROMIUM_ARGS }),
        );
        let mut builder = ClientBuilder::new(HttpConnector::new());
        builder.capabilities(capabilities);
        let client = match tokio::time::timeout(START_LIMIT, builder.connect(&driver.url())).await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => {
                return Err(driver.failure(format!("opening a session of {chromium}: {e}")))
            }
            Err(_) => {
                return Err(driver.failure(format!(
                    "opening a session of {chromium}: no answer within {START_LIMIT:?}"
                )))
            }
        };
        client
            .update_timeouts(TimeoutConfiguration::new(
                Some(PAGE_LIMIT),
                Some(PAGE_LIMIT),
                Some(Duration::ZERO),
            ))
            .await
            .context("setting the session's timeouts")?;
        Ok(Browser {
            client,
            driver,
            screenshots: screenshots_dir,
        })
    }

    /// The WebDriver client, for what the helpers here do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Opens `url` and waits for it to load; an error if Chromium could not reach it.
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.client
            .goto(url)
            .await
            .with_context(|| format!("opening {url}"))?;
        // An unreachable page still "loads", as Chromium's own error page.
        let error_page = self
            .execute(
                "return document.URL.startsWith('chrome-error:') ? document.body.innerText : null",
                vec![],
            )
            .await?;
        if let Some(text) = error_page.as_str() {
            let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
            bail!("opening {url}: Chromium shows its error page: {text}");
        }
        Ok(())
    }

    /// The current page's title.
    pub async fn title(&self) -> anyhow::Result<String> {
        self.client.title().await.context("reading the page title")
    }

    /// Waits until `css` matches an element, for at most 10 s; returns the first match.
    pub async fn wait_for(&self, css: &str) -> anyhow::Result<Element> {
        self.client
            .wait()
            .at_most(WAIT_LIMIT)
            .every(Duration::from_millis(50))
            .for_element(Locator::Css(css))
            .await
            .with_context(|| format!("waiting up to {WAIT_LIMIT:?} for `{css}`"))
    }

    /// Replaces the value of the field `css` matches (waiting for it) with `text`.
    pub async fn fill(&self, css: &str, text: &str) -> anyhow::Result<()> {
        let field = self.wait_for(css).await?;
        field
            .clear()
            .await
            .with_context(|| format!("clearing `{css}`"))?;
        field
            .send_keys(text)
            .await
            .with_context(|| format!("typing into `{css}`"))
    }

    /// Clicks the element `css` matches, waiting for it.
    pub async fn click(&self, css: &str) -> anyhow::Result<()> {
        self.wait_for(css)
            .await?
            .click()
            .await
            .with_context(|| format!("clicking `{css}`"))
    }

    /// The rendered text of the element `css` matches, waiting for it.
    pub async fn text_of(&self, css: &str) -> anyhow::Result<String> {
        self.wait_for(css)
            .await?
            .text()
            .await
            .with_context(|| format!("reading the text of `{css}`"))
    }

    /// Runs `script` as the body of a function with `args` as `arguments`; returns what it
    /// returns. WebDriver runs it even where the page's Content-Security-Policy forbids
    /// inline scripts.
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> anyhow::Result<Value> {
        self.client
            .execute(script, args)
            .await
            .with_context(|| format!("running script `{script}`"))
    }

    /// Saves the viewport as `<name>.png` in the screenshots folder; returns its path.
    pub async fn screenshot(&self, name: &str) -> anyhow::Result<PathBuf> {
        if name.is_empty() || name.starts_with('.') || name.contains(['/', '\\']) {
            bail!("screenshot name {name:?} is not a plain file name");
        }
        let png = self
            .client
            .screenshot()
            .await
            .with_context(|| format!("taking screenshot {name}"))?;
        let path = self.screenshots.join(format!("{name}.png"));
        tokio::fs::write(&path, png)
            .await
            .with_context(|| format!("saving screenshot {}", path.display()))?;
        Ok(path)
    }

    /// Ends the session (Chromium exits and chromedriver removes its profile), then stops
    /// chromedriver. Dropping the browser kills both without the first step.
    pub async fn close(self) -> anyhow::Result<()> {
        let Browser { client, driver, .. } = self;
        let ended = tokio::time::timeout(CLOSE_LIMIT, client.close()).await;
        driver.stop().await;
        match ended {
            Ok(result) => result.context("ending the WebDriver session"),
            Err(_) => Err(anyhow!(
                "ending the WebDriver session: no answer within {CLOSE_LIMIT:?}"
            )),
        }
    }
}

/// `$var`, or `default` when it is unset.
fn binary(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

/// chromedriver on a loopback port, in a process group of its own.
struct Driver {
    child: Child,
    port: u16,
    /// The process group to kill: chromedriver and the Chromium it started. `None` once
    /// killed, or once chromedriver is seen to have exited (its id may then be reused).
    group: Option<Pid>,
    log: PathBuf,
    // Its TMPDIR and its output. Dropped last, after the processes are killed.
    _scratch: TempDir,
}

impl Driver {
    fn start(program: &str) -> anyhow::Result<Driver> {
        let scratch = tempfile::Builder::new()
            .prefix("gatehouse-browser-")
            .tempdir()
            .context("creating a scratch directory for chromedriver")?;
        let log = scratch.path().join("chromedriver.log");
        let output = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|listener| listener.local_addr())
            .context("finding a free loopback port for chromedriver")?
            .port();
        let child = Command::new(program)
            .arg(format!("--port={port}"))
            // Chromium's own stderr into the log too: why it would not start.
            .arg("--enable-chrome-logs")
            .env("TMPDIR", scratch.path())
            .stdin(Stdio::null())
            .stdout(output.try_clone().context("sharing chromedriver's log")?)
            .stderr(output)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| {
                format!("starting {program}: install chromium-driver (Debian: apt-get install chromium chromium-driver) or set CHROMEDRIVER")
            })?;
        let group = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .and_then(Pid::from_raw);
        Ok(Driver {
            child,
            port,
            group,
            log,
            _scratch: scratch,
        })
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Polls `/status` until chromedriver says it is ready, for at most [`START_LIMIT`].
    async fn wait_until_ready(&mut self) -> anyhow::Result<()> {
        let status_url = format!("{}/status", self.url());
        let http = crate::client();
        let start = Instant::now();
        while start.elapsed() < START_LIMIT {
            if let Some(status) = self.exited() {
                return Err(self.failure(format!("chromedriver exited at start-up ({status})")));
            }
            let answer = http
                .get(&status_url)
                .timeout(Duration::from_secs(1))
                .send()
                .await;
            if let Ok(response) = answer {
                let body: Value = response.json().await.unwrap_or_default();
                if body["value"]["ready"] == json!(true) {
                    return Ok(());
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(self.failure(format!(
            "chromedriver did not answer on port {} within {START_LIMIT:?}",
            self.port
        )))
    }

    /// chromedriver's exit status if it has exited.
    fn exited(&mut self) -> Option<ExitStatus> {
        let status = self.child.try_wait().ok().flatten()?;
        self.group = None;
        Some(status)
    }

    /// An error saying `what`, with the end of chromedriver's output (Chromium's included).
    fn failure(&self, what: String) -> anyhow::Error {
        const TAIL: usize = 4000;
        let output = std::fs::read_to_string(&self.log).unwrap_or_default();
        let mut from = output.len().saturating_sub(TAIL);
        while !output.is_char_boundary(from) {
            from += 1;
        }
        anyhow!("{what}; chromedriver's output:\n{}", &output[from..])
    }

    /// Kills chromedriver and every process of its group, without waiting.
    fn kill(&mut self) {
        // The group goes first, while chromedriver is not yet reaped: its id, which names
        // the group, cannot have been given to another process.
        if let Some(group) = self.group.take() {
            let _ = kill_process_group(group, Signal::KILL);
        }
        let _ = self.child.start_kill();
    }

    /// Kills everything and waits (boundedly) for chromedriver to be gone.
    async fn stop(mut self) {
        self.kill();
        let _ = tokio::time::timeout(CLOSE_LIMIT, self.child.wait()).await;
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        self.kill();
    }
}
