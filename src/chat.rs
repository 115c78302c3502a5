//! `insurebot chat`: talk to the bot in a terminal, through the very path WhatsApp uses. It
//! starts the server in sandbox mode on a throw-away SQLite database, posts signed webhooks
//! for what you type, and prints what the bot sent to the built-in fake Cloud API. Buttons and
//! list rows are numbered; type the number to tap one.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::app::Application;
use crate::config::{DatabaseUrl, DialogueMode, SANDBOX_APP_SECRET, Settings};
use crate::whatsapp::signature;

/// How long to wait for the bot's first reply, and for more after the last one.
const FIRST_REPLY: Duration = Duration::from_secs(10);
const SETTLE: Duration = Duration::from_millis(400);

/// A tappable choice from the bot's last message.
#[derive(Debug, Clone, PartialEq)]
struct Choice {
    kind: &'static str,
    id: String,
    title: String,
}

/// Runs the chat until end of input.
///
/// # Errors
/// When the sandbox server cannot start.
pub async fn run(mut settings: Settings, phone: &str) -> anyhow::Result<()> {
    let dir = tempfile_dir()?;
    settings.whatsapp.access_token = None;
    settings.whatsapp.app_secret = None;
    settings.listen = ([127, 0, 0, 1], 0).into();
    settings.dialogue.handler = DialogueMode::Flows;
    settings.database_url = DatabaseUrl::new(format!(
        "sqlite://{}?mode=rwc",
        dir.join("chat.db").display()
    ));
    let app = Application::build(settings).await?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();

    println!(
        "insurebot chat — you are {}. Type a message; a number taps a button. Ctrl-D ends.",
        crate::privacy::mask(phone)
    );
    let mut seen = 0usize;
    let mut choices: Vec<Choice> = Vec::new();
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    let mut sequence = 0u64;
    loop {
        print!("> ");
        std::io::stdout().flush().ok();
        let Some(line) = lines.next_line().await? else {
            break;
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        sequence += 1;
        let message = message_for(line, &choices, phone, sequence);
        post(&http, &base, phone, message).await?;
        let replies = wait_for_replies(&http, &base, seen).await?;
        seen += replies.len();
        for reply in &replies {
            choices = print_reply(reply);
        }
    }
    let _ = stop.send(());
    server.await.context("server task")??;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
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

async fn post(
    http: &reqwest::Client,
    base: &str,
    phone: &str,
    message: Value,
) -> anyhow::Result<()> {
    let body = json!({
        "object": "whatsapp_business_account",
        "entry": [{ "id": "chat", "changes": [{ "field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": { "display_phone_number": "15550000000", "phone_number_id": "100000000000001" },
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

/// Sends the fake received after the first `seen`, once the bot has gone quiet.
async fn wait_for_replies(
    http: &reqwest::Client,
    base: &str,
    seen: usize,
) -> anyhow::Result<Vec<Value>> {
    let started = Instant::now();
    let mut last_change = Instant::now();
    let mut count = 0;
    loop {
        let all: Vec<Value> = http
            .get(format!("{base}/sandbox/messages"))
            .send()
            .await?
            .json()
            .await?;
        let sends: Vec<Value> = all
            .into_iter()
            .filter(|r| r["kind"] == "send")
            .skip(seen)
            .collect();
        if sends.len() != count {
            count = sends.len();
            last_change = Instant::now();
        }
        let quiet = count > 0 && last_change.elapsed() >= SETTLE;
        let gave_up = count == 0 && started.elapsed() >= FIRST_REPLY;
        if quiet || gave_up {
            if gave_up {
                println!("  (no reply)");
            }
            return Ok(sends.into_iter().map(|r| r["body"].clone()).collect());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Prints one reply and returns its numbered choices.
fn print_reply(body: &Value) -> Vec<Choice> {
    let (lines, choices) = render_reply(body);
    for line in lines {
        println!("{line}");
    }
    choices
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
        let choices = print_reply(&list);
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
