//! `insurebot agent add`: creates a console user. The password comes from a prompt (not
//! echoed) or, for scripts, from standard input with `--password-stdin`; never from an
//! argument, where it would end up in the shell history and the process list.

use std::io::{BufRead, IsTerminal, Write};

use anyhow::Context;

use crate::config::Settings;
use crate::http::console::auth::{Role, create_agent};

/// Creates an agent and prints its id.
///
/// # Errors
/// A bad role, email, name or password, an email in use, or a database problem.
pub async fn add_agent(
    settings: &Settings,
    email: &str,
    name: &str,
    role: &str,
    password_stdin: bool,
) -> anyhow::Result<()> {
    let role = Role::parse(role)
        .with_context(|| format!("unknown role '{role}': use agent, supervisor or admin"))?;
    let password = if password_stdin {
        read_line(&mut std::io::stdin().lock())?
    } else if std::io::stdin().is_terminal() {
        let first = prompt("Password: ")?;
        let again = prompt("Password again: ")?;
        if first != again {
            anyhow::bail!("the passwords differ");
        }
        first
    } else {
        anyhow::bail!(
            "no terminal to ask for the password: pass it on stdin with --password-stdin"
        );
    };
    let db = crate::store::connect(&settings.database_url)
        .await
        .context("cannot connect to the database")?;
    crate::store::migrate(&db)
        .await
        .context("database migration failed")?;
    let created = create_agent(&db, email, name, role, &password).await;
    // Close the pool before the process exits so SQLite's connections end cleanly.
    let _ = db.close().await;
    let id = created?;
    println!(
        "agent {id} created ({}): log in at /console/login",
        role.as_str()
    );
    Ok(())
}

fn read_line(input: &mut impl BufRead) -> anyhow::Result<String> {
    let mut line = String::new();
    input
        .read_line(&mut line)
        .context("cannot read the password")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

/// Asks on the terminal with echo off (through `stty`, which every Unix terminal has; this
/// spares a dependency for one prompt).
fn prompt(label: &str) -> anyhow::Result<String> {
    eprint!("{label}");
    std::io::stderr().flush().ok();
    let stty = |arg: &str| {
        std::process::Command::new("stty")
            .arg(arg)
            .stdin(std::process::Stdio::inherit())
            .status()
    };
    let hidden = stty("-echo").is_ok_and(|s| s.success());
    let line = read_line(&mut std::io::stdin().lock());
    if hidden {
        let _ = stty("echo");
        eprintln!();
    }
    line
}
