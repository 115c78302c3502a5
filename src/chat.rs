//! `insurebot chat`: talk to the bot in a terminal, through the very path WhatsApp uses. It
//! starts the server in sandbox mode on a throw-away SQLite database, posts signed webhooks
//! for what you type, and prints what the bot sent to the built-in fake Cloud API. Buttons and
//! list rows are numbered; type the number to tap one. Once the conversation is handed to the
//! agents it says where they answer (this chat's own console) and prints their replies as
//! they come, rather than waiting for a bot reply that will not come.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Context;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, BufReader};

use crate::app::Application;
use crate::config::{DatabaseUrl, DialogueMode, SANDBOX_APP_SECRET, Settings};
use crate::engine::Mode;
use crate::store::entities::inbound_message;
use crate::whatsapp::signature;

/// How long to wait for the bot's first reply, and for more after the last one.
const FIRST_REPLY: Duration = Duration::from_secs(10);
const SETTLE: Duration = Duration::from_millis(400);
/// How often, while an agent has the conversation, the chat looks for their replies.
const AGENT_POLL: Duration = Duration::from_secs(1);

/// A tappable choice from the bot's last message.
#[derive(Debug, Clone, PartialEq)]
struct Choice {
    kind: &'static str,
    id: String,
    title: String,
}

/// Runs the chat on the terminal until end of input, writing to the business number
/// `number` (`None`: the deployment's first).
///
/// # Errors
/// When the sandbox server cannot start, or `number` is not configured.
pub async fn run(settings: Settings, phone: &str, number: Option<&str>) -> anyhow::Result<()> {
    let stdin = BufReader::new(tokio::io::stdin());
    run_with(settings, phone, number, stdin, &mut std::io::stdout()).await
}

/// Runs the chat reading what the contact types from `input` and printing to `out` (the
/// terminal in [`run`]; tests give a script and a buffer). The messages go to the business
/// number `number`, one of `[[whatsapp.numbers]]` (`None`: the first), so its language and
/// flows answer as they would on WhatsApp.
///
/// # Errors
/// When `number` is not configured, the sandbox server cannot start, or `out` cannot be
/// written.
pub async fn run_with(
    mut settings: Settings,
    phone: &str,
    number: Option<&str>,
    input: impl AsyncBufRead + Unpin,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<()> {
    let number = match number {
        Some(n) if settings.serves_number(n) => n.to_owned(),
        Some(n) => {
            let configured: Vec<String> = settings
                .numbers()
                .into_iter()
                .map(|n| n.phone_number_id)
                .collect();
            anyhow::bail!(
                "--number {n} is not one of the configured numbers ({})",
                configured.join(", ")
            );
        }
        None => settings.first_number_id().to_owned(),
    };
    let business = Line {
        display: settings.number_label(&number),
        id: number,
    };
    let dir = tempfile_dir()?;
    let db_file = dir.join("chat.db");
    settings.whatsapp.access_token = None;
    settings.whatsapp.app_secret = None;
    settings.listen = ([127, 0, 0, 1], 0).into();
    settings.dialogue.handler = DialogueMode::Flows;
    settings.database_url = DatabaseUrl::new(format!("sqlite://{}?mode=rwc", db_file.display()));
    let app = Application::build(settings).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let db = app.db();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();

    writeln!(
        out,
        "insurebot chat — you are {}, writing to {}. Type a message; a number taps a button. Ctrl-D ends.",
        crate::privacy::mask(phone),
        business.display
    )?;
    let mut seen = 0usize;
    let mut choices: Vec<Choice> = Vec::new();
    let mut lines = input.lines();
    let mut sequence = 0u64;
    let mut mode = Mode::Bot;
    loop {
        write!(out, "> ")?;
        out.flush().ok();
        let line = if with_people(mode) {
            // An agent answers whenever they do: show their replies as they come.
            loop {
                tokio::select! {
                    line = lines.next_line() => break line?,
                    () = tokio::time::sleep(AGENT_POLL) => {
                        let replies = sends_after(&http, &base, seen).await?;
                        if !replies.is_empty() {
                            writeln!(out)?;
                            seen += replies.len();
                            print_batch(out, &replies, &mut choices)?;
                            write!(out, "> ")?;
                            out.flush().ok();
                        }
                    }
                }
            }
        } else {
            lines.next_line().await?
        };
        let Some(line) = line else {
            break;
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        sequence += 1;
        let message = message_for(line, &choices, phone, sequence);
        let wamid = message["id"].as_str().unwrap_or_default().to_owned();
        post(&http, &base, &business, phone, message).await?;
        let waited = wait_for_replies(&http, &base, seen, &db, &wamid).await?;
        seen += waited.replies.len();
        print_batch(out, &waited.replies, &mut choices)?;
        let before = mode;
        mode = waited.mode;
        if with_people(mode) && !with_people(before) {
            writeln!(out, "{}", agent_notice(&base, &db_file))?;
        } else if waited.replies.is_empty() {
            writeln!(
                out,
                "{}",
                match mode {
                    Mode::WaitingForAgent => "  (for the agent: you are still in the queue)",
                    Mode::WithAgent => "  (sent to the agent)",
                    Mode::Bot | Mode::OptedOutQuiet => "  (no reply)",
                }
            )?;
        }
    }
    let _ = stop.send(());
    server.await.context("server task")??;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

/// Whether people, not the bot, answer the conversation now.
fn with_people(mode: Mode) -> bool {
    matches!(mode, Mode::WaitingForAgent | Mode::WithAgent)
}

/// What the chat says once the conversation is handed to the agents: where they answer (this
/// chat's own server and database, so the console of a separate `serve` never sees it), how
/// to get a console login for it, and the way back to the bot.
fn agent_notice(base: &str, db_file: &std::path::Path) -> String {
    format!(
        "  (You are in the queue for an agent. Agents answer from the console of this chat's own\n\
         \x20  server: {base}/console. To answer yourself, create a console login for this chat's\n\
         \x20  database in another terminal, then log in there:\n\
         \x20    INSUREBOT_DATABASE_URL='sqlite://{db}?mode=rwc' cargo run -- agent add --email you@example.com --name \"Your Name\" --role agent\n\
         \x20  Their replies show here as they come. \"menu\" or \"cancel\" takes you back to the bot.)",
        db = db_file.display()
    )
}
fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir =
        std::env::temp_dir().join(format!("insurebot-chat-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).context("cannot create a temporary directory")?;
    Ok(dir)
}

/// The inbound message object for what was typed: a tap when it is the number of a choice.
fn message_for(line: &str, choices: &[Choice], phone: &str, sequence: u64) -> Value {
    let id = format!("wamid.CHAT{}{sequence}", std::process::id());
    let timestamp = chrono::Utc::now().timestamp().to_string();
    let picked = line
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_sub(1))
        .and_then(|i| choices.get(i));
    match picked {
        Some(choice) => json!({
            "from": phone, "id": id, "timestamp": timestamp, "type": "interactive",
            "interactive": { "type": choice.kind, choice.kind: { "id": choice.id, "title": choice.title } }
        }),
        None => {
            json!({ "from": phone, "id": id, "timestamp": timestamp, "type": "text", "text": { "body": line } })
        }
    }
}

/// The business number the chat writes to.
struct Line {
    /// Its phone number id (the webhook's `metadata.phone_number_id`).
    id: String,
    /// How it is shown: its display number, else the id.
    display: String,
}

async fn post(
    http: &reqwest::Client,
    base: &str,
    line: &Line,
    phone: &str,
    message: Value,
) -> anyhow::Result<()> {
    let digits: String = line.display.chars().filter(char::is_ascii_digit).collect();
    let body = json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": "chat", "changes": [{ "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": { "display_phone_number": digits, "phone_number_id": line.id },
            "contacts": [{ "profile": { "name": "Chat" }, "wa_id": phone }],
            "messages": [message]
        }}]}]
    })
    .to_string();
    let signature = signature::sign(SANDBOX_APP_SECRET.as_bytes(), body.as_bytes());
    let response = http
        .post(format!("{base}/webhook"))
        .header("x-hub-signature-256", signature)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    anyhow::ensure!(
        response.status().is_success(),
        "webhook answered {}",
        response.status()
    );
    Ok(())
}

/// What came of one message: the replies, and who has the conversation afterwards.
struct Waited {
    replies: Vec<Value>,
    mode: Mode,
}

/// The bodies the fake received after the first `seen`.
async fn sends_after(
    http: &reqwest::Client,
    base: &str,
    seen: usize,
) -> anyhow::Result<Vec<Value>> {
    let all: Vec<Value> = http
        .get(format!("{base}/sandbox/messages"))
        .send()
        .await?
        .json()
        .await?;
    Ok(all
        .into_iter()
        .filter(|r| r["kind"] == "send")
        .skip(seen)
        .map(|r| r["body"].clone())
        .collect())
}

/// The replies to message `wamid` once the bot has gone quiet. A message the bot stays quiet
/// on by design (the conversation is with the agents) returns as soon as it has been handled,
/// instead of after [`FIRST_REPLY`].
async fn wait_for_replies(
    http: &reqwest::Client,
    base: &str,
    seen: usize,
    db: &DatabaseConnection,
    wamid: &str,
) -> anyhow::Result<Waited> {
    let started = Instant::now();
    let mut last_change = Instant::now();
    let mut count = 0;
    let mut handled: Option<(Instant, Mode)> = None;
    loop {
        let sends = sends_after(http, base, seen).await?;
        if sends.len() != count {
            count = sends.len();
            last_change = Instant::now();
        }
        if handled.is_none() && is_handled(db, wamid).await? {
            handled = Some((Instant::now(), mode_of(db, wamid).await?));
        }
        let quiet = count > 0 && last_change.elapsed() >= SETTLE;
        let for_people = count == 0
            && handled.is_some_and(|(at, mode)| with_people(mode) && at.elapsed() >= SETTLE);
        if quiet || for_people || started.elapsed() >= FIRST_REPLY {
            let mode = match handled {
                Some(_) => mode_of(db, wamid).await?,
                None => Mode::Bot,
            };
            return Ok(Waited {
                replies: sends,
                mode,
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether the pipeline has finished with inbound message `wamid`.
async fn is_handled(db: &DatabaseConnection, wamid: &str) -> anyhow::Result<bool> {
    Ok(inbound_message::Entity::find()
        .filter(inbound_message::Column::Wamid.eq(wamid))
        .one(db)
        .await?
        .is_some_and(|m| m.processed_at.is_some()))
}

/// The mode of the conversation of the sender of message `wamid`.
async fn mode_of(db: &DatabaseConnection, wamid: &str) -> anyhow::Result<Mode> {
    let Some(message) = inbound_message::Entity::find()
        .filter(inbound_message::Column::Wamid.eq(wamid))
        .one(db)
        .await?
    else {
        return Ok(Mode::Bot);
    };
    Ok(crate::dialogue::load(db, message.contact_id)
        .await?
        .map_or(Mode::Bot, |c| c.mode))
}

/// Prints replies that came together; their numbered choices are those of the last one that
/// had any (the hand-off message's button stays tappable under the after-hours notice).
fn print_batch(
    out: &mut (dyn Write + Send),
    replies: &[Value],
    choices: &mut Vec<Choice>,
) -> std::io::Result<()> {
    let mut latest = Vec::new();
    for reply in replies {
        let offered = print_reply(out, reply)?;
        if !offered.is_empty() {
            latest = offered;
        }
    }
    if !replies.is_empty() {
        *choices = latest;
    }
    Ok(())
}

/// Prints one reply and returns its numbered choices.
fn print_reply(out: &mut (dyn Write + Send), body: &Value) -> std::io::Result<Vec<Choice>> {
    let (lines, choices) = render_reply(body);
    for line in lines {
        writeln!(out, "{line}")?;
    }
    Ok(choices)
}

/// The terminal lines for one reply, and its numbered choices. A list's section heading is
/// printed right above its own rows, so rows read under the section they belong to.
fn render_reply(body: &Value) -> (Vec<String>, Vec<Choice>) {
    let mut lines = Vec::new();
    let mut choices = Vec::new();
    match body["type"].as_str() {
        Some("text") => lines.push(format!(
            "bot: {}",
            body["text"]["body"].as_str().unwrap_or_default()
        )),
        Some("interactive") => {
            let interactive = &body["interactive"];
            if let Some(header) = interactive["header"]["text"].as_str() {
                lines.push(format!("bot: *{header}*"));
            }
            lines.push(format!(
                "bot: {}",
                interactive["body"]["text"].as_str().unwrap_or_default()
            ));
            let mut numbered = |choice: Choice, lines: &mut Vec<String>| {
                lines.push(format!("  [{}] {}", choices.len() + 1, choice.title));
                choices.push(choice);
            };
            if interactive["type"] == "button" {
                for button in interactive["action"]["buttons"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    let reply = &button["reply"];
                    numbered(
                        Choice {
                            kind: "button_reply",
                            id: reply["id"].as_str().unwrap_or_default().to_owned(),
                            title: reply["title"].as_str().unwrap_or_default().to_owned(),
                        },
                        &mut lines,
                    );
                }
            } else {
                for section in interactive["action"]["sections"]
                    .as_array()
                    .into_iter()
                    .flatten()
                {
                    if let Some(title) = section["title"].as_str() {
                        lines.push(format!("     — {title}"));
                    }
                    for row in section["rows"].as_array().into_iter().flatten() {
                        numbered(
                            Choice {
                                kind: "list_reply",
                                id: row["id"].as_str().unwrap_or_default().to_owned(),
                                title: row["title"].as_str().unwrap_or_default().to_owned(),
                            },
                            &mut lines,
                        );
                    }
                }
            }
            if let Some(footer) = interactive["footer"]["text"].as_str() {
                lines.push(format!("     {footer}"));
            }
        }
        Some("template") => lines.push(format!(
            "bot (template): {}",
            body["template"]["name"].as_str().unwrap_or_default()
        )),
        other => lines.push(format!("bot ({}): {body}", other.unwrap_or("?"))),
    }
    (lines, choices)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_number_taps_the_matching_choice_and_anything_else_is_text() {
        let choices = vec![
            Choice {
                kind: "list_reply",
                id: "claim".into(),
                title: "Claim status".into(),
            },
            Choice {
                kind: "button_reply",
                id: "menu".into(),
                title: "Menu".into(),
            },
        ];
        let tap = message_for("1", &choices, "919800000000", 1);
        assert_eq!(tap["interactive"]["list_reply"]["id"], "claim");
        let button = message_for("2", &choices, "919800000000", 2);
        assert_eq!(button["interactive"]["button_reply"]["title"], "Menu");
        let text = message_for("3", &choices, "919800000000", 3);
        assert_eq!(text["text"]["body"], "3");
        let words = message_for("hello", &choices, "919800000000", 4);
        assert_eq!(words["type"], "text");
    }

    #[test]
    fn buttons_and_rows_are_numbered_in_order() {
        let list = json!({"type":"interactive","interactive":{"type":"list","body":{"text":"Pick"},
            "action":{"button":"Choose","sections":[{"title":"A","rows":[{"id":"x","title":"X"}]},
                                                     {"title":"B","rows":[{"id":"y","title":"Y"}]}]}}});
        let choices = print_reply(&mut std::io::sink(), &list).unwrap();
        assert_eq!(
            choices.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(),
            ["x", "y"]
        );
    }

    #[test]
    fn each_list_section_heading_prints_above_its_own_rows() {
        let list = json!({"type":"interactive","interactive":{"type":"list","body":{"text":"Pick"},
            "action":{"button":"Choose","sections":[
                {"title":"Policies","rows":[{"id":"p1","title":"Health"},{"id":"p2","title":"Motor"}]},
                {"title":"Claims","rows":[{"id":"c1","title":"CLM-1"}]}]}}});
        let (lines, choices) = render_reply(&list);
        assert_eq!(
            lines,
            [
                "bot: Pick",
                "     — Policies",
                "  [1] Health",
                "  [2] Motor",
                "     — Claims",
                "  [3] CLM-1",
            ]
        );
        assert_eq!(choices.len(), 3);
    }
}
