//! The `insurebot` binary itself: configuration errors, `migrate`, and a graceful stop on SIGTERM.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_insurebot");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_wrong_setting_stops_the_server_with_one_line_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(BIN)
        .arg("serve")
        .current_dir(dir.path())
        .env("INSUREBOT_LISTEN", "not-an-address")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("INSUREBOT_LISTEN"), "{stderr}");
}

#[test]
fn migrate_creates_the_default_sqlite_database() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(BIN)
        .arg("migrate")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(dir.path().join("insurebot.db").exists());
}

#[test]
fn serve_answers_health_checks_and_stops_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut child = Command::new(BIN)
        .arg("serve")
        .current_dir(dir.path())
        .env("INSUREBOT_LISTEN", format!("127.0.0.1:{port}"))
        // Only the number's rate, below the campaigns' default maximum (60): the campaign
        // rates follow it down instead of stopping the server.
        .env("INSUREBOT_MESSAGING_RATE_PER_SECOND", "20")
        .env(
            "INSUREBOT_DIALOGUE_FLOWS_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/flows"),
        )
        .env(
            "INSUREBOT_DIALOGUE_LOCALES_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/locales"),
        )
        // Kept to check what a sandbox start says (files: a full pipe would block the server).
        .stdout(std::fs::File::create(dir.path().join("stdout.log")).unwrap())
        .stderr(std::fs::File::create(dir.path().join("stderr.log")).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let healthy = loop {
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            use std::io::{Read, Write};
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .unwrap();
            let mut response = String::new();
            let _ = stream.read_to_string(&mut response);
            break response.starts_with("HTTP/1.1 200");
        }
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(healthy);
    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "exit status {status:?}");
    // The sandbox signs payment links with its documented key, quietly: no warning about a
    // missing pay_link_secret (a production start without one does not get this far).
    let log = std::fs::read_to_string(dir.path().join("stdout.log")).unwrap()
        + &std::fs::read_to_string(dir.path().join("stderr.log")).unwrap();
    assert!(log.contains("INFO"), "the server logged its start: {log}");
    assert!(!log.contains("pay_link_secret"), "{log}");
}

/// Starts `serve` with `env` in an empty folder, expects a configuration error (exit 2, one
/// line on stderr) and returns that line.
fn serve_refused(env: &[(&str, &str)]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(BIN)
        .arg("serve")
        .current_dir(dir.path())
        .env("INSUREBOT_LISTEN", format!("127.0.0.1:{}", free_port()))
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    stderr
}

#[test]
fn contradictory_rates_stop_the_server_with_one_line_naming_both_keys() {
    let stderr = serve_refused(&[
        ("INSUREBOT_MESSAGING_RATE_PER_SECOND", "20"),
        ("INSUREBOT_CAMPAIGNS_MAX_RATE_PER_SECOND", "60"),
    ]);
    assert!(
        stderr.contains("INSUREBOT_CAMPAIGNS_MAX_RATE_PER_SECOND")
            && stderr.contains("INSUREBOT_MESSAGING_RATE_PER_SECOND"),
        "{stderr}"
    );
}

#[test]
fn a_production_start_without_a_pay_link_secret_stops_naming_the_key() {
    let stderr = serve_refused(&[
        ("INSUREBOT_WHATSAPP_ACCESS_TOKEN", "EAAG-test"),
        ("INSUREBOT_WHATSAPP_APP_SECRET", "app-secret"),
        ("INSUREBOT_WHATSAPP_VERIFY_TOKEN", "verify-token"),
        ("INSUREBOT_PRIVACY_HASH_KEY", "hash-key-0123456789"),
    ]);
    assert!(
        stderr.contains("INSUREBOT_INSURER_PAY_LINK_SECRET")
            && stderr.contains("insurer.pay_link_secret"),
        "{stderr}"
    );
}

#[test]
fn flows_check_passes_on_the_shipped_flows_and_fails_with_positions_on_a_broken_one() {
    let ok = Command::new(BIN)
        .args([
            "flows",
            "check",
            concat!(env!("CARGO_MANIFEST_DIR"), "/flows"),
        ])
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );

    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("flows")).unwrap();
    std::fs::write(
        dir.path().join("flows/broken.yaml"),
        "flow: broken\nstart: a\nstates:\n  a:\n    say: nope\n    next: b\n",
    )
    .unwrap();
    let bad = Command::new(BIN)
        .args(["flows", "check"])
        .arg(dir.path().join("flows"))
        .arg("--locales")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/locales"))
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(stderr.contains("broken.yaml:6:"), "{stderr}");
}

/// The shipped flows copied into a new folder as `flows/` (with `locales/` beside it when
/// `with_locales`), and `help.yaml` edited by `edit`: what an author does before changing them.
fn copied_flows(with_locales: bool, edit: impl Fn(&str) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut folders = vec!["flows"];
    if with_locales {
        folders.push("locales");
    }
    for folder in folders {
        let copied = Command::new("cp")
            .arg("-r")
            .arg(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(folder))
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(copied.success(), "cp -r {folder}");
    }
    let help = dir.path().join("flows/help.yaml");
    let text = std::fs::read_to_string(&help).unwrap();
    let edited = edit(&text);
    assert_ne!(edited, text, "the edit changed nothing");
    std::fs::write(&help, edited).unwrap();
    dir
}

/// `insurebot flows check` with `args`, which must fail with exactly one error (nothing that
/// follows from it): (that error's line, all of stderr).
fn flows_check_one_error(args: &[&std::ffi::OsStr]) -> (String, String) {
    let output = Command::new(BIN)
        .args(["flows", "check"])
        .args(args)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    let errors: Vec<&str> = stderr.lines().filter(|l| l.contains(": error: ")).collect();
    assert_eq!(errors.len(), 1, "one error, not a cascade:\n{stderr}");
    (errors[0].to_owned(), stderr)
}

#[test]
fn flows_check_without_locales_beside_says_so_alone_and_finds_a_message_typo_once_named() {
    let dir = copied_flows(false, |help| {
        help.replace("say: help-text", "say: help-txet")
    });
    let flows = dir.path().join("flows");

    let (error, stderr) = flows_check_one_error(&[flows.as_os_str()]);
    assert!(
        error.contains("locales") && error.contains("does not exist"),
        "{stderr}"
    );
    assert!(
        stderr.contains("--locales"),
        "the hint names the option: {stderr}"
    );

    let locales = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("locales");
    let (error, stderr) =
        flows_check_one_error(&[flows.as_os_str(), "--locales".as_ref(), locales.as_os_str()]);
    assert!(
        error.contains("help.yaml:14:") && error.contains("'help-txet'"),
        "{stderr}"
    );
    assert!(stderr.contains("did you mean 'help-text'?"), "{stderr}");
}

#[test]
fn flows_check_reports_a_yaml_syntax_error_once_with_its_position_and_what_was_expected() {
    // `show` lost its colon: its lines fold into one text where `states` needs a mapping. The
    // flow fills `role: help` and menu.yaml goes to it: neither is reported as missing.
    let dir = copied_flows(true, |help| help.replace("  show:\n", "  show\n"));
    let (error, stderr) = flows_check_one_error(&[dir.path().join("flows").as_os_str()]);
    assert!(
        error.contains("help.yaml:13:3: error: expected `key: value` lines"),
        "{stderr}"
    );
}

#[test]
fn flows_test_runs_the_shipped_conversation_tests() {
    let output = Command::new(BIN)
        .args([
            "flows",
            "test",
            concat!(env!("CARGO_MANIFEST_DIR"), "/flows"),
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}

#[test]
fn agent_add_reads_the_password_from_stdin_and_refuses_a_duplicate_or_a_bad_role() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let add = |email: &str, role: &str, password: &str| {
        let mut child = Command::new(BIN)
            .args([
                "agent", "add", "--email", email, "--name", "Asha Rao", "--role", role,
            ])
            .arg("--password-stdin")
            .current_dir(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
        child.wait_with_output().unwrap()
    };
    let ok = add("admin@example.com", "admin", "a long enough password");
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("(admin)"));
    let again = add("Admin@example.com", "agent", "a long enough password");
    let again_err = String::from_utf8_lossy(&again.stderr);
    assert!(
        !again.status.success(),
        "a duplicate was accepted: {again_err}"
    );
    assert!(again_err.contains("already exists"), "{again_err}");
    let role = add("ravi@example.com", "root", "a long enough password");
    assert!(String::from_utf8_lossy(&role.stderr).contains("unknown role"));
    let short = add("ravi@example.com", "agent", "short");
    assert!(String::from_utf8_lossy(&short.stderr).contains("at least 10"));
}

#[test]
fn contacts_erase_and_retention_run_report_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .current_dir(dir.path())
            .env("INSUREBOT_LOG_FILTER", "warn")
            .output()
            .unwrap()
    };
    let out = run(&["contacts", "erase", "--phone", "12ab"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--phone"));
    let out = run(&["contacts", "erase", "--phone", "+91 98000 00001"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no contact has this number"));
    let out = run(&["retention", "run"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("retention is off"));
    let out = run(&["retention", "run", "--days", "30"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 inbound messages, 0 outbox rows"));
}

/// Starts `serve` in sandbox mode on SQLite in `dir`, stdout and stderr piped.
fn spawn_sandbox(dir: &std::path::Path, port: u16) -> std::process::Child {
    Command::new(BIN)
        .arg("serve")
        .current_dir(dir)
        .env("INSUREBOT_LISTEN", format!("127.0.0.1:{port}"))
        .env(
            "INSUREBOT_DIALOGUE_FLOWS_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/flows"),
        )
        .env(
            "INSUREBOT_DIALOGUE_LOCALES_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/locales"),
        )
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// One HTTP/1.1 GET once the server answers; the raw response.
fn get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut stream) = std::net::TcpStream::connect(("127.0.0.1", port)) {
            write!(
                stream,
                "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            )
            .unwrap();
            let mut response = String::new();
            let _ = stream.read_to_string(&mut response);
            return response;
        }
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends `signal` and waits for a successful exit; returns (stdout, stderr).
fn stop(mut child: std::process::Child, signal: &str) -> (String, String) {
    let sent = Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "server did not stop on {signal}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    );
    assert!(
        output.status.success(),
        "exit status {:?} after {signal}:\n{stderr}",
        output.status
    );
    (stdout, stderr)
}

#[test]
fn sandbox_serve_says_what_to_open_and_the_root_leads_to_the_simulator() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let child = spawn_sandbox(dir.path(), port);
    let root = get(port, "/");
    let (stdout, stderr) = stop(child, "-TERM");
    assert!(root.starts_with("HTTP/1.1 303"), "{root}");
    assert!(
        root.to_ascii_lowercase().contains("location: /simulator"),
        "{root}"
    );
    for wanted in [
        format!("http://127.0.0.1:{port}/simulator"),
        format!("http://127.0.0.1:{port}/console"),
        "cargo run -- agent add --email".to_owned(),
        "--role admin".to_owned(),
        "cargo run -- chat".to_owned(),
    ] {
        assert!(stdout.contains(&wanted), "{wanted} missing from:\n{stdout}");
    }
    // The migration crate's per-migration lines are gone; serve says once that they ran.
    assert!(!stderr.contains("Applying migration"), "{stderr}");
    assert_eq!(
        stderr.matches("database migrations ran").count(),
        1,
        "{stderr}"
    );
}

#[test]
fn cli_commands_print_no_migration_lines() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        &["templates", "list"][..],
        &["retention", "run", "--days", "30"],
    ] {
        let output = Command::new(BIN)
            .args(args)
            .current_dir(dir.path())
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{args:?}: {stderr}");
        assert!(
            !stderr.to_lowercase().contains("migration"),
            "{args:?} logged migrations:\n{stderr}"
        );
    }
}

#[test]
fn serve_on_sqlite_leaves_no_wal_files_after_sigint_or_sigterm() {
    for signal in ["-INT", "-TERM"] {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = spawn_sandbox(dir.path(), port);
        assert!(get(port, "/healthz").starts_with("HTTP/1.1 200"));
        assert!(
            dir.path().join("insurebot.db-wal").exists(),
            "WAL mode is on"
        );
        stop(child, signal);
        assert!(dir.path().join("insurebot.db").exists());
        for leftover in ["insurebot.db-wal", "insurebot.db-shm"] {
            assert!(
                !dir.path().join(leftover).exists(),
                "{leftover} left behind after {signal}"
            );
        }
    }
}

#[path = "support/bench_flows.rs"]
mod bench_flows;

/// `insurebot flows graph ARGS…` from the checkout: (exit code, stdout, stderr).
fn flows_graph(args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN)
        .args(["flows", "graph"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const FLOWS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/flows");

#[test]
fn flows_graph_draws_the_shipped_flows_as_mermaid_dot_and_svg() {
    // Every flow: Markdown with one Mermaid block each.
    let (code, all, err) = flows_graph(&[FLOWS]);
    assert_eq!(code, Some(0), "{err}");
    let shipped = std::fs::read_dir(FLOWS)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "yaml")
        })
        .count();
    assert_eq!(all.matches("```mermaid\n").count(), shipped, "{all}");
    assert!(all.contains("## claim_status\n"), "{all}");

    let (code, mermaid, err) = flows_graph(&[FLOWS, "--flow", "claim_status", "--lang", "hi"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        mermaid.starts_with("---\ntitle: claim_status\n---\nflowchart TD\n"),
        "{mermaid}"
    );
    assert!(mermaid.contains("|\"found\"|"), "{mermaid}");
    assert!(
        mermaid
            .chars()
            .any(|c| ('\u{0900}'..='\u{097F}').contains(&c)),
        "Hindi texts: {mermaid}"
    );

    let (code, dot, err) = flows_graph(&[FLOWS, "--flow", "claim_status", "--format", "dot"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(dot.starts_with("digraph \"claim_status\" {"), "{dot}");
    assert!(dot.contains("[label=\"found\"]"), "{dot}");

    let (code, svg, err) = flows_graph(&[FLOWS, "--flow", "claim_status", "--format", "svg"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
        "{svg}"
    );
    assert!(svg.contains(">ask_number</tspan>"), "{svg}");
}

#[test]
fn flows_graph_says_what_is_wrong_with_its_arguments() {
    let (code, _, err) = flows_graph(&[FLOWS, "--flow", "claim_stat"]);
    assert_eq!(code, Some(2));
    assert!(
        err.contains("no flow 'claim_stat'") && err.contains("claim_status"),
        "{err}"
    );
    let (code, _, err) = flows_graph(&[FLOWS, "--format", "svg"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("choose it with --flow"), "{err}");
    let (code, _, err) = flows_graph(&[FLOWS, "--format", "png"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("mermaid, dot or svg"), "{err}");
    let (code, _, err) = flows_graph(&[FLOWS, "--lang", "fr"]);
    assert_eq!(code, Some(2));
    assert!(err.contains("--lang 'fr'") && err.contains("en"), "{err}");
}

#[test]
fn flows_graph_draws_a_broken_flow_with_its_problems_highlighted() {
    let dir = tempfile::tempdir().unwrap();
    let flows = dir.path().join("flows");
    bench_flows::write(std::path::Path::new(env!("CARGO_MANIFEST_DIR")), &flows);
    std::fs::write(
        flows.join("broken.yaml"),
        "flow: broken\nstart: a\nstates:\n  a:\n    say: help-text\n    next: end\n  orphan:\n    say: help-text\n    next: a\n",
    )
    .unwrap();
    let locales = concat!(env!("CARGO_MANIFEST_DIR"), "/locales");
    let (code, out, err) = flows_graph(&[
        flows.to_str().unwrap(),
        "--locales",
        locales,
        "--flow",
        "broken",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("problems found by `flows check`"), "{err}");
    assert!(out.contains("orphan<br/>“"), "{out}");
    assert!(out.contains("⚠ unreachable from the start"), "{out}");
    assert!(
        out.lines()
            .any(|l| l.starts_with("  class ") && l.ends_with(" problem")),
        "{out}"
    );
}

#[test]
fn flows_graph_draws_every_flow_of_the_200_flow_benchmark_set() {
    let dir = tempfile::tempdir().unwrap();
    let flows = dir.path().join("flows");
    let count = bench_flows::write(std::path::Path::new(env!("CARGO_MANIFEST_DIR")), &flows);
    assert_eq!(count, bench_flows::FLOWS);
    let locales = concat!(env!("CARGO_MANIFEST_DIR"), "/locales");
    for format in ["mermaid", "dot"] {
        let (code, out, err) = flows_graph(&[
            flows.to_str().unwrap(),
            "--locales",
            locales,
            "--format",
            format,
        ]);
        assert_eq!(code, Some(0), "{err}");
        let per_flow = if format == "mermaid" {
            "```mermaid\n"
        } else {
            "digraph \""
        };
        assert_eq!(out.matches(per_flow).count(), count, "{format}");
    }
    let (code, svg, err) = flows_graph(&[
        flows.to_str().unwrap(),
        "--locales",
        locales,
        "--flow",
        "generated_150",
        "--format",
        "svg",
    ]);
    assert_eq!(code, Some(0), "{err}");
    assert!(svg.contains(">flow handoff</tspan>"), "{svg}");
}

#[test]
fn templates_sync_reads_every_waba_the_numbers_belong_to_and_list_shows_the_waba() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let fake = insurebot::whatsapp::fake::FakeCloudApi::default();
    // Paused in the sales line's WABA only.
    let mut sales = insurebot::whatsapp::fake::default_templates();
    for t in &mut sales {
        if t["name"] == "policy_summary" {
            t["status"] = "PAUSED".into();
        }
    }
    fake.set_waba_templates("900000000000002", sales);
    let server = rt
        .block_on(fake.clone().spawn(([127, 0, 0, 1], 0).into()))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("insurebot.toml"),
        "[whatsapp]\nwaba_id = \"900000000000001\"\n\
         [[whatsapp.numbers]]\nphone_number_id = \"111\"\n\
         [[whatsapp.numbers]]\nphone_number_id = \"222\"\nwaba_id = \"900000000000002\"\n",
    )
    .unwrap();
    let templates_file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/flows/templates/templates.yaml"
    );
    let run = |args: &[&str]| {
        let output = Command::new(BIN)
            .args(args)
            .current_dir(dir.path())
            .env("INSUREBOT_WHATSAPP_ACCESS_TOKEN", "token")
            .env("INSUREBOT_WHATSAPP_API_BASE", &server.base_url)
            .env("INSUREBOT_WHATSAPP_APP_SECRET", "a-secret-of-this-test")
            .env("INSUREBOT_WHATSAPP_VERIFY_TOKEN", "a-verify-token")
            .env("INSUREBOT_PRIVACY_HASH_KEY", "a-hash-key-of-this-test")
            .env(
                "INSUREBOT_INSURER_PAY_LINK_SECRET",
                "a-pay-link-secret-of-this-test",
            )
            .env("INSUREBOT_MESSAGING_TEMPLATES_FILE", templates_file)
            .env_remove("RUST_LOG")
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{args:?}: {stdout}\n{stderr}");
        stdout
    };
    let synced = run(&["templates", "sync"]);
    for waba in ["900000000000001", "900000000000002"] {
        assert!(
            synced.contains(&format!("templates sync of WABA {waba}: 15 listed")),
            "{synced}"
        );
    }
    assert_eq!(
        fake.template_lists_read(),
        ["900000000000001", "900000000000002"]
    );
    let listed = run(&["templates", "list"]);
    let row = |waba: &str| {
        listed
            .lines()
            .find(|l| l.starts_with(waba) && l.contains("policy_summary") && l.contains(" ta "))
            .unwrap_or_else(|| panic!("no {waba} policy_summary ta in:\n{listed}"))
            .to_owned()
    };
    assert!(row("900000000000001").contains("APPROVED"), "{listed}");
    assert!(row("900000000000002").contains("PAUSED"), "{listed}");
}
