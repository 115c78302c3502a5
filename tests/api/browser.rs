//! End to end in a real browser: Debian's chromium driven over WebDriver by chromedriver,
//! which each test starts itself on a free port. Log in, take a waiting conversation, reply,
//! see the fake Cloud API receive the reply and a new message appear without reloading; then
//! let the window close and see only templates offered. And as a supervisor: open a campaign
//! from the nav, start it, watch its numbers move without a reload, pause it and see the
//! state change; open a flow from the nav and read its live funnel on the diagram
//! (`tests/screenshots/flow.png`) and what the bot did not understand on the dashboard
//! (`tests/screenshots/dashboard.png`). Files picked through real file inputs: a photo with
//! the simulator's attach button joins a claim being reported, and a PDF attached on the
//! conversation page reaches the fake Cloud API as a document. On failure a screenshot lands
//! in `.ci/artifacts/`. With `INSUREBOT_SCREENSHOT=1` the screenshots in `tests/screenshots/`
//! (shown in the README) are refreshed.
//!
//! WebDriver is spoken as plain JSON over reqwest (a dozen endpoints), which spares a client
//! crate and its dependency tree.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use insurebot::config::DialogueMode;
use insurebot::http::console::auth::Role;
use sea_orm::EntityTrait;
use serde_json::{Value, json};

use crate::console::{PASSWORD, add_agent, queued_handoff};
use crate::flow_diagrams::ask_for_claims;
use crate::helpers::*;
use crate::reminders::{campaign_app, create_campaign};

/// WebDriver's key for element references.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

struct Driver {
    process: Child,
    base: String,
    http: reqwest::Client,
    _profile: tempfile::TempDir,
    session: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

type Step<T = ()> = Result<T, String>;

impl Driver {
    /// Starts chromedriver and a headless Chromium session; `None` when chromedriver is not
    /// installed (`.ci/run` installs it; elsewhere `#[needs_chromedriver]` ignores the test).
    async fn start() -> Option<Driver> {
        let binary = ["chromedriver", "/usr/bin/chromedriver"]
            .into_iter()
            .find(|b| Command::new(b).arg("--version").output().is_ok())?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let process = Command::new(binary)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let profile = tempfile::tempdir().unwrap();
        let mut driver = Driver {
            process,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            _profile: profile,
            session: String::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = driver
                .http
                .get(format!("{}/status", driver.base))
                .send()
                .await
                && let Ok(v) = r.json::<Value>().await
                && v["value"]["ready"] == true
            {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or("chromium");
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--window-size=1366,900",
                    format!("--user-data-dir={}", driver._profile.path().display()),
                ]
            }
        }}});
        let created: Value = driver
            .http
            .post(format!("{}/session", driver.base))
            .json(&caps)
            .send()
            .await
            .expect("new session")
            .json()
            .await
            .unwrap();
        driver.session = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no WebDriver session: {created}"))
            .to_owned();
        Some(driver)
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Step<Value> {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let v: Value = req
            .send()
            .await
            .map_err(|e| e.to_string())?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        if v["value"]["error"].is_string() {
            return Err(format!("WebDriver {path}: {}", v["value"]["message"]));
        }
        Ok(v["value"].clone())
    }

    async fn goto(&self, url: &str) -> Step {
        self.call(reqwest::Method::POST, "/url", Some(json!({ "url": url })))
            .await
            .map(drop)
    }

    /// Logs in at `address`'s console as `email` (password [`PASSWORD`]) and lands on the queue.
    async fn log_in(&self, address: &str, email: &str) -> Step {
        self.goto(&format!("{address}/console/login")).await?;
        self.type_into("#email", email).await?;
        self.type_into("#password", PASSWORD).await?;
        self.click("#login").await?;
        self.wait_for_url("/console/queue").await?;
        Ok(())
    }

    async fn url(&self) -> Step<String> {
        Ok(self
            .call(reqwest::Method::GET, "/url", None)
            .await?
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    async fn find(&self, css: &str) -> Step<String> {
        self.find_by("css selector", css).await
    }

    /// The first element `value` finds with the WebDriver strategy `using`.
    async fn find_by(&self, using: &str, value: &str) -> Step<String> {
        let v = self
            .call(
                reqwest::Method::POST,
                "/element",
                Some(json!({ "using": using, "value": value })),
            )
            .await
            .map_err(|e| format!("{value}: {e}"))?;
        Ok(v[ELEMENT].as_str().unwrap_or_default().to_owned())
    }

    /// Taps the newest choice (reply button or list row) in the simulator's chat whose title
    /// holds `title`, once it is drawn.
    async fn tap_choice(&self, title: &str) -> Step {
        let xpath = format!(
            "(//div[@id='chat']//div[@class='choices']/button[contains(., '{title}')])[last()]"
        );
        let deadline = Instant::now() + Duration::from_secs(15);
        let element = loop {
            match self.find_by("xpath", &xpath).await {
                Ok(e) => break e,
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        let path = format!("/element/{element}/click");
        self.call(reqwest::Method::POST, &path, Some(json!({})))
            .await
            .map(drop)
    }

    async fn wait_for(&self, css: &str) -> Step<String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match self.find(css).await {
                Ok(e) => return Ok(e),
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Calls `action` (`/click`, `/text`, …) on the element `css`, once it is there. Live
    /// regions (the queue, the campaign page refresh themselves) may replace the element
    /// between finding it and the call; a stale element is looked up again, a few times.
    async fn on_element(
        &self,
        css: &str,
        method: reqwest::Method,
        action: &str,
        body: Option<Value>,
    ) -> Step<Value> {
        let mut attempt = 0;
        loop {
            let e = self.wait_for(css).await?;
            let path = format!("/element/{e}{action}");
            match self.call(method.clone(), &path, body.clone()).await {
                Err(error) if attempt < 5 && error.to_string().contains("stale element") => {
                    attempt += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
                other => return other,
            }
        }
    }

    async fn type_into(&self, css: &str, text: &str) -> Step {
        let body = Some(json!({ "text": text }));
        self.on_element(css, reqwest::Method::POST, "/value", body)
            .await
            .map(drop)
    }

    async fn click(&self, css: &str) -> Step {
        self.on_element(css, reqwest::Method::POST, "/click", Some(json!({})))
            .await
            .map(drop)
    }

    async fn text(&self, css: &str) -> Step<String> {
        Ok(self
            .on_element(css, reqwest::Method::GET, "/text", None)
            .await?
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    async fn property(&self, css: &str, name: &str) -> Step<Value> {
        let action = format!("/property/{name}");
        self.on_element(css, reqwest::Method::GET, &action, None)
            .await
    }

    async fn wait_for_text(&self, css: &str, needle: &str) -> Step {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let text = self.text(css).await.unwrap_or_default();
            if text.contains(needle) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(format!("{css} never showed {needle:?}; it shows {text:?}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn wait_for_url(&self, part: &str) -> Step<String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let url = self.url().await?;
            if url.contains(part) {
                return Ok(url);
            }
            if Instant::now() > deadline {
                return Err(format!("expected a URL with {part}, at {url}"));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Types `text` into the simulator's message box and sends it.
    async fn send_in_simulator(&self, text: &str) -> Step {
        self.type_into("#text", text).await?;
        self.click("#compose button[type=submit]").await
    }

    /// Ends a test: on failure, a screenshot in `.ci/artifacts/browser-{name}-failure.png`
    /// and a panic with `outcome`'s error; then the browser session is closed.
    async fn finish(self, outcome: Step, name: &str) {
        if let Err(e) = outcome {
            let shot = root(&format!(".ci/artifacts/browser-{name}-failure.png"));
            self.screenshot(&shot).await;
            panic!("{e} (screenshot: {})", shot.display());
        }
        let _ = self.call(reqwest::Method::DELETE, "", None).await;
    }

    /// Runs `js` (a function body; `arguments` are `args`) in the page and returns its value.
    async fn script(&self, js: &str, args: Value) -> Step<Value> {
        let body = json!({ "script": js, "args": args });
        self.call(reqwest::Method::POST, "/execute/sync", Some(body))
            .await
    }

    async fn screenshot(&self, path: &std::path::Path) {
        if let Ok(Value::String(b64)) = self.call(reqwest::Method::GET, "/screenshot", None).await
            && let Ok(png) = base64::engine::general_purpose::STANDARD.decode(b64)
        {
            let _ = std::fs::create_dir_all(path.parent().unwrap());
            let _ = std::fs::write(path, png);
        }
    }
}

fn root(rel: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// A started driver. The tests carry `#[needs_chromedriver]`, which reports them ignored
/// where chromedriver is missing (except in CI, which installs it), so a test that gets here
/// without one fails instead of passing without having run.
async fn driver() -> Driver {
    Driver::start().await.expect(
        "chromedriver is not installed (apt-get install chromium chromium-driver; CI: .ci/run \
         installs it)",
    )
}

#[needs_chromedriver]
#[tokio::test]
async fn an_agent_logs_in_takes_a_conversation_replies_and_sees_only_templates_after_the_window() {
    let driver = driver().await;
    let app = spawn_app_with(&Backend::Sqlite, |s| {
        s.dialogue.handler = DialogueMode::Flows
    })
    .await;
    add_agent(&app, "admin@example.com", Role::Admin).await;
    let phone = "919800000801";
    app.post_webhook(&envelope(vec![text_message(
        phone,
        &new_wamid(),
        now_secs() - 5,
        "hi",
    )]))
    .await;
    app.wait_for_sends(1).await;
    let queued = queued_handoff(&app, phone).await;
    app.wait_for_sends(2).await;

    let outcome: Step = async {
        driver.log_in(&app.address, "admin@example.com").await?;
        driver
            .wait_for_text("#queue-rows", "contact request")
            .await?;

        driver
            .click(&format!("button[data-handoff=\"{}\"]", queued.id))
            .await?;
        driver.wait_for_url("/console/conversations/").await?;
        driver
            .type_into("#reply-text", "Hello, I am Asha from the claims team.")
            .await?;
        driver.click("#send").await?;
        let sends = app.wait_for_sends(3).await;
        if text_of(&sends[2]) != "Hello, I am Asha from the claims team." {
            return Err(format!("the fake received {:?}", sends[2].body));
        }
        driver
            .wait_for_text("#transcript", "Hello, I am Asha from the claims team.")
            .await?;

        // A new message from the policyholder appears without a reload (server-sent events).
        app.post_webhook(&envelope(vec![text_message(
            phone,
            &new_wamid(),
            now_secs(),
            "Thank you, my claim number is CLM-123456",
        )]))
        .await;
        driver.wait_for_text("#transcript", "CLM-123456").await?;
        if std::env::var_os("INSUREBOT_SCREENSHOT").is_some() {
            driver
                .screenshot(&root("tests/screenshots/console.png"))
                .await;
        }

        // The window closes: free text is disabled, templates are offered.
        insurebot::http::console::pages::move_window_back(&app.db, queued.contact_id, 25)
            .await
            .map_err(|e| e.to_string())?;
        let here = driver.url().await?;
        driver.goto(&here).await?;
        driver
            .wait_for_text("#window-state", "window closed")
            .await?;
        if driver.property("#reply-text", "disabled").await? != Value::Bool(true) {
            return Err("the reply box is still enabled after the window closed".into());
        }
        driver
            .wait_for_text("#templates", "agent_unavailable")
            .await?;
        if driver.find("#send").await.is_ok() {
            return Err("a send button is offered outside the window".into());
        }
        // The agent sends an approved template instead, and it reaches the Cloud API as one.
        let before = app.sent_messages().len();
        driver
            .click(
                "form.template-form input[value=\"agent_unavailable|en\"] ~ button.send-template",
            )
            .await?;
        let sends = app.wait_for_sends(before + 1).await;
        let last = &sends[before].body;
        if last["type"] != "template" || last["template"]["name"] != "agent_unavailable" {
            return Err(format!(
                "expected the agent_unavailable template, the fake got {last}"
            ));
        }
        Ok(())
    }
    .await;
    driver.finish(outcome, "console").await;
}

#[needs_chromedriver]
#[tokio::test]
async fn a_supervisor_opens_a_campaign_starts_it_sees_progress_pauses_it_and_sees_the_state_change()
{
    let driver = driver().await;
    let app = campaign_app(&Backend::Sqlite).await;
    add_agent(&app, "sup@example.com", Role::Supervisor).await;
    // 2 messages a second for 200 recipients: still running when the supervisor pauses it.
    let id = create_campaign(&app, 200, "91981", 2).await;

    let outcome: Step = async {
        driver.log_in(&app.address, "sup@example.com").await?;
        driver.click("nav a[href=\"/console/campaigns\"]").await?;
        driver.wait_for_url("/console/campaigns").await?;
        driver
            .click(&format!(
                "#campaign-rows a[href=\"/console/campaigns/{id}\"]"
            ))
            .await?;
        driver
            .wait_for_url(&format!("/console/campaigns/{id}"))
            .await?;
        driver.wait_for_text("#campaign-state", "draft").await?;
        driver
            .wait_for_text("#progress-text", "0 of 200 recipients decided")
            .await?;

        driver.click("#start").await?;
        driver.wait_for_text("#campaign-state", "running").await?;
        // The page refreshes itself: the sent count moves without a reload.
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let sent: u64 = driver
                .text("#count-sent")
                .await?
                .trim()
                .parse()
                .unwrap_or(0);
            if sent >= 2 {
                break;
            }
            if Instant::now() > deadline {
                return Err(format!("#count-sent stayed at {sent}"));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let progress = driver.text("#progress-text").await?;
        if !progress.contains("of 200 recipients decided") || progress.starts_with("0 of") {
            return Err(format!("the progress line shows {progress:?}"));
        }
        if std::env::var_os("INSUREBOT_SCREENSHOT").is_some() {
            driver
                .screenshot(&root("tests/screenshots/campaign.png"))
                .await;
        }

        driver.click("#pause").await?;
        driver.wait_for_text("#campaign-state", "paused").await?;
        driver.wait_for("#resume").await?;
        if driver.find("#pause").await.is_ok() {
            return Err("a paused campaign still offers Pause".into());
        }
        let state = insurebot::reminders::campaign_report(&app.db, id)
            .await
            .map_err(|e| e.to_string())?
            .state;
        if state != "paused" {
            return Err(format!("the campaign is {state} in the database"));
        }
        Ok(())
    }
    .await;
    driver.finish(outcome, "campaign").await;
}

#[needs_chromedriver]
#[tokio::test]
async fn the_simulator_starts_as_the_sample_policyholder_and_shows_both_sides_after_switching_numbers()
 {
    let driver = driver().await;
    let app = spawn_sandbox_app(&Backend::Sqlite).await;
    let outcome: Step = async {
        driver.goto(&format!("{}/simulator", app.address)).await?;
        let phone = driver.property("#phone", "value").await?;
        if phone != "919812345678" {
            return Err(format!(
                "the simulator starts as {phone}, not the sample policyholder"
            ));
        }
        driver.send_in_simulator("hi").await?;
        driver.wait_for_text("#chat .line.contact", "hi").await?;
        driver.wait_for("#chat .line.bot").await?;
        // Another number, then back: the page draws both sides again from the server.
        for number in ["919800002102", "919812345678"] {
            driver
                .on_element("#phone", reqwest::Method::POST, "/clear", Some(json!({})))
                .await?;
            driver.type_into("#phone", number).await?;
            driver.click("#text").await?;
        }
        driver.wait_for_text("#chat .line.contact", "hi").await?;
        driver.wait_for("#chat .line.bot").await?;
        Ok(())
    }
    .await;
    driver.finish(outcome, "simulator").await;
}

#[needs_chromedriver]
#[tokio::test]
async fn a_photo_picked_with_the_simulators_attach_button_joins_the_claim_being_reported() {
    let driver = driver().await;
    let app = spawn_sandbox_app(&Backend::Sqlite).await;
    // A real file on disk, picked through the page's file input as a person would.
    let files = tempfile::tempdir().unwrap();
    let photo = crate::media::jpeg(30_000, 23);
    let path = files.path().join("door.jpg");
    std::fs::write(&path, &photo).unwrap();
    let outcome: Step = async {
        driver.goto(&format!("{}/simulator", app.address)).await?;
        driver.send_in_simulator("report a claim").await?;
        driver.wait_for_text("#chat", "Which policy").await?;
        driver.tap_choice("Private Car").await?;
        driver.tap_choice("Accident").await?;
        driver.wait_for_text("#chat", "When did it happen").await?;
        let yesterday = chrono::Utc::now().date_naive() - chrono::Duration::days(1);
        driver
            .send_in_simulator(&yesterday.format("%d/%m/%Y").to_string())
            .await?;
        driver
            .send_in_simulator("Scraped the left door on a pillar.")
            .await?;
        driver.wait_for_text("#chat", "send photos").await?;

        driver
            .type_into("#attach", &path.display().to_string())
            .await?;
        // The bot answers as for a photo sent from a phone, and the photo shows as sent.
        driver.wait_for_text("#chat", "1 file received").await?;
        driver.wait_for_text("#chat", "[image]").await?;
        let stored = insurebot::store::entities::media_file::Entity::find()
            .all(&app.db)
            .await
            .map_err(|e| e.to_string())?;
        let hashes: Vec<Option<&str>> = stored.iter().map(|m| m.sha256.as_deref()).collect();
        if hashes != [Some(crate::media::sha256_hex(&photo).as_str())] {
            return Err(format!(
                "the media store holds {hashes:?}, not the photo picked"
            ));
        }
        Ok(())
    }
    .await;
    driver.finish(outcome, "simulator-attach").await;
}

#[needs_chromedriver]
#[tokio::test]
async fn an_agent_attaches_a_pdf_through_the_conversation_pages_form_and_it_goes_as_a_document() {
    let driver = driver().await;
    let app = spawn_app_with(&Backend::Sqlite, |s| {
        s.dialogue.handler = DialogueMode::Flows
    })
    .await;
    add_agent(&app, "asha@example.com", Role::Agent).await;
    let phone = "919800000803";
    let queued = queued_handoff(&app, phone).await;
    let files = tempfile::tempdir().unwrap();
    let pdf = crate::console_attach::pdf();
    let path = files.path().join("claim-form.pdf");
    std::fs::write(&path, &pdf).unwrap();

    let outcome: Step = async {
        driver.log_in(&app.address, "asha@example.com").await?;
        driver
            .click(&format!("button[data-handoff=\"{}\"]", queued.id))
            .await?;
        driver.wait_for_url("/console/conversations/").await?;
        let before = app.sent_messages().len();
        driver
            .type_into("#attach-file", &path.display().to_string())
            .await?;
        driver
            .type_into("#attach-caption", "Please sign page 2")
            .await?;
        driver.click("#attach-send").await?;
        let sends = app.wait_for_sends(before + 1).await;
        let document = &sends[before].body;
        if document["type"] != "document"
            || document["document"]["filename"] != "claim-form.pdf"
            || document["document"]["caption"] != "Please sign page 2"
        {
            return Err(format!("the fake Cloud API received {document}"));
        }
        let id = document["document"]["id"].as_str().unwrap_or_default();
        if app.fake.media(id).map(|m| m.0.to_vec()) != Some(pdf.clone()) {
            return Err(format!("the upload {id} does not hold the file picked"));
        }
        // Back on the conversation page, the transcript shows what was sent.
        driver.wait_for_url("/console/conversations/").await?;
        driver
            .wait_for_text("#transcript", "[document: claim-form.pdf]")
            .await?;
        Ok(())
    }
    .await;
    driver.finish(outcome, "console-attach").await;
}

#[needs_chromedriver]
#[tokio::test]
async fn a_supervisor_reads_what_the_bot_did_not_understand_on_the_dashboard() {
    let driver = driver().await;
    let app = spawn_app_with(&Backend::Sqlite, |s| {
        s.dialogue.handler = DialogueMode::Flows
    })
    .await;
    add_agent(&app, "sup@example.com", Role::Supervisor).await;
    // Two people type the same thing the bot cannot place (one with a number, masked), a
    // third something else.
    let said = [
        ("919800002501", "kal baarish hogi kya, call 9812345678"),
        ("919800002502", "Kal baarish hogi kya, call 9812345678"),
        ("919800002503", "what time does the cricket match start"),
    ];
    for (n, (phone, text)) in said.iter().enumerate() {
        app.post_webhook(&envelope(vec![text_message(
            phone,
            &new_wamid(),
            now_secs(),
            text,
        )]))
        .await;
        app.wait_for_sends(n + 1).await;
    }

    let outcome: Step = async {
        driver.log_in(&app.address, "sup@example.com").await?;
        driver.click("nav a[href=\"/console/dashboard\"]").await?;
        driver.wait_for_url("/console/dashboard").await?;
        driver
            .wait_for_text("table.not-understood", "kal baarish hogi kya, call ***")
            .await?;
        let rows = driver
            .script(
                "return [...document.querySelectorAll('table.not-understood tbody tr')]\
                 .map(r => [...r.cells].map(c => c.textContent));",
                json!([]),
            )
            .await?;
        let expected = json!([
            ["kal baarish hogi kya, call ***", "en", "-", "2"],
            ["what time does the cricket match start", "en", "-", "1"]
        ]);
        if rows != expected {
            return Err(format!("the table shows {rows}"));
        }
        if std::env::var_os("INSUREBOT_SCREENSHOT").is_some() {
            driver
                .script(
                    "document.querySelector('table.not-understood').scrollIntoView({block: 'center'});",
                    json!([]),
                )
                .await?;
            driver
                .screenshot(&root("tests/screenshots/dashboard.png"))
                .await;
        }
        Ok(())
    }
    .await;
    driver.finish(outcome, "dashboard").await;
}

/// Measures `texts` (spaces left out: they have a glyph in any font) in the font of the first
/// `selector` element: for each, its width and the width of as many "no glyph" boxes as it has
/// characters (U+0378 is unassigned, so it always draws as the font's box). A text whose
/// script has no font draws each character as that box, and the two widths are equal; with a
/// font they differ. Also returns the element's `font-family`.
const MEASURE_GLYPHS: &str = r#"
const [selector, texts] = arguments;
const el = document.querySelector(selector);
const style = getComputedStyle(el);
const ctx = document.createElement('canvas').getContext('2d');
ctx.font = style.font;
const box = ctx.measureText('\u0378').width;
return {
  family: style.fontFamily,
  widths: texts.map(t => t.replace(/\s/g, ''))
    .map(t => [t, ctx.measureText(t).width, [...t].length * box]),
};
"#;

#[needs_chromedriver]
#[tokio::test]
async fn a_hindi_conversation_in_the_simulator_draws_devanagari_and_tamil_glyphs_not_boxes() {
    let driver = driver().await;
    let app = spawn_sandbox_app(&Backend::Sqlite).await;
    let outcome: Step = async {
        driver.goto(&format!("{}/simulator", app.address)).await?;
        // The Hindi keyword for the language chooser, whose buttons name each language in
        // its own script: English, हिन्दी, தமிழ்.
        driver.send_in_simulator("भाषा").await?;
        driver.wait_for_text("#chat .choices", "தமிழ்").await?;
        driver.click("#chat .choices button:nth-child(2)").await?;
        driver
            .wait_for_text("#chat", "अब मैं आपसे हिन्दी में बात करूँगा")
            .await?;
        // And a question in Hindi, answered in Hindi.
        driver.send_in_simulator("मदद").await?;
        driver
            .wait_for_text("#chat", "मैं आपकी पॉलिसी का विवरण")
            .await?;
        if std::env::var_os("INSUREBOT_SCREENSHOT").is_some() {
            driver
                .screenshot(&root("tests/screenshots/hindi.png"))
                .await;
        }
        let measured = driver
            .script(
                MEASURE_GLYPHS,
                json!([
                    "#chat .line.bot .bubble",
                    ["मैं आपकी पॉलिसी का विवरण", "தமிழ்"]
                ]),
            )
            .await?;
        let family = measured["family"].as_str().unwrap_or_default();
        for named in ["Noto Sans Devanagari", "Noto Sans Tamil"] {
            if !family.contains(named) {
                return Err(format!("the font stack does not name {named}: {family}"));
            }
        }
        for sample in measured["widths"].as_array().into_iter().flatten() {
            let (text, width, boxes) = (&sample[0], sample[1].as_f64(), sample[2].as_f64());
            let (Some(width), Some(boxes)) = (width, boxes) else {
                return Err(format!("no measurement: {measured}"));
            };
            if (width - boxes).abs() < 0.5 {
                return Err(format!(
                    "{text} draws as {width:.1}px, the width of its characters as boxes: no \
                     font for it (apt-get install fonts-noto-core)"
                ));
            }
        }
        Ok(())
    }
    .await;
    driver.finish(outcome, "hindi").await;
}

#[needs_chromedriver]
#[tokio::test]
async fn a_supervisor_opens_a_flow_from_the_nav_and_reads_its_funnel_on_the_diagram() {
    let driver = driver().await;
    let app = spawn_app_with(&Backend::Sqlite, |s| {
        s.dialogue.handler = DialogueMode::Flows;
    })
    .await;
    add_agent(&app, "sup@example.com", Role::Supervisor).await;
    ask_for_claims(&app, &["919800002401", "919800002402", "919800002403"]).await;

    let outcome: Step = async {
        driver.log_in(&app.address, "sup@example.com").await?;
        driver.click("nav a[href=\"/console/flows\"]").await?;
        driver.wait_for_url("/console/flows").await?;
        if std::env::var_os("INSUREBOT_SCREENSHOT").is_some() {
            driver
                .screenshot(&root("tests/screenshots/flows.png"))
                .await;
        }
        driver
            .click("a[href=\"/console/flows/claim_status\"]")
            .await?;
        driver.wait_for_url("/console/flows/claim_status").await?;
        driver.wait_for("svg.flow-graph").await?;
        driver
            .wait_for_text("p.langs", "3 conversations started it")
            .await?;
        let diagram = driver.property("svg.flow-graph", "textContent").await?;
        if !diagram.as_str().is_some_and(|t| t.contains("entered 3")) {
            return Err(format!("the diagram shows no numbers: {diagram}"));
        }
        if std::env::var_os("INSUREBOT_SCREENSHOT").is_some() {
            driver.screenshot(&root("tests/screenshots/flow.png")).await;
        }
        Ok(())
    }
    .await;
    driver.finish(outcome, "flow").await;
}
