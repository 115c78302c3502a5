//! Test attributes that mark a test *ignored, with the reason*, when what it needs is not on
//! this machine, so `cargo test` never counts a test that did not run as passed.
//!
//! - `#[needs_postgres]`: PostgreSQL, named by `INSUREBOT_TEST_DATABASE_URL`;
//!   `#[needs_postgres(tcp)]` also wants it reached over TCP, not a Unix socket.
//! - `#[needs_chromedriver]`: `chromedriver` on the `PATH` (Debian: `chromium-driver`).
//! - `#[needs_s3]`: an S3-compatible server: moto's, installed where `.ci/run` puts it, or the
//!   one `INSUREBOT_TEST_S3_ENDPOINT` names.
//!
//! Put them above `#[tokio::test]`. libtest decides "ignored" when the test binary is built,
//! so these look at the environment then (a macro runs inside the compiler). Each expansion
//! also reads the variables it looked at with `option_env!`: rustc records them in the test
//! crate's dependency info, and cargo rebuilds that one test crate (not the library) when
//! they change — setting `INSUREBOT_TEST_DATABASE_URL` brings the PostgreSQL tests in at the
//! next `cargo test`. What cargo cannot see is a program installed into a folder already on
//! the `PATH`; the reason printed says how to rebuild after installing chromedriver.
//!
//! The alternative, a `build.rs` emitting a `cfg`, rebuilds the whole library and every
//! target each time the variable is set or unset.

#![forbid(unsafe_code)]

use proc_macro::TokenStream;

const DATABASE_URL: &str = "INSUREBOT_TEST_DATABASE_URL";

/// Ignores the test unless `INSUREBOT_TEST_DATABASE_URL` names a PostgreSQL server;
/// `#[needs_postgres(tcp)]` also ignores it when that URL reaches the server over a Unix
/// socket (`?host=/run/postgresql`).
#[proc_macro_attribute]
pub fn needs_postgres(attr: TokenStream, item: TokenStream) -> TokenStream {
    let tcp = match attr.to_string().trim() {
        "" => false,
        "tcp" => true,
        other => {
            return compile_error(&format!(
                "needs_postgres takes nothing or `tcp`, not `{other}`"
            ));
        }
    };
    let url = std::env::var(DATABASE_URL).unwrap_or_default();
    let reason = if url.is_empty() {
        Some(format!("needs PostgreSQL: set {DATABASE_URL}"))
    } else if tcp && over_unix_socket(&url) {
        Some(format!(
            "needs PostgreSQL over TCP: {DATABASE_URL} names a Unix socket"
        ))
    } else {
        None
    };
    expand(reason, &[DATABASE_URL], item)
}

/// Ignores the test unless `chromedriver` is on the `PATH`. Where `CI` is set the test is never
/// ignored: CI installs chromedriver, and a test that cannot start it fails there.
#[proc_macro_attribute]
pub fn needs_chromedriver(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        return compile_error("needs_chromedriver takes no arguments");
    }
    let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty());
    let reason = (!ci && !on_path("chromedriver")).then(|| {
        "needs chromedriver on the PATH (apt-get install chromium chromium-driver; \
         after installing, `touch tests/api/browser.rs` to rebuild)"
            .to_owned()
    });
    expand(reason, &["PATH", "CI"], item)
}

/// Where `.ci/run` installs moto's S3 server, under `$HOME`.
const MOTO_SERVER: &str = ".cache/insurebot-moto/bin/moto_server";
const S3_ENDPOINT: &str = "INSUREBOT_TEST_S3_ENDPOINT";

/// Ignores the test unless an S3-compatible server is at hand: `INSUREBOT_TEST_S3_ENDPOINT`
/// set, or moto's server installed at `~/.cache/insurebot-moto`. Where `CI` is set the test is
/// never ignored: CI installs moto, and a test that cannot start it fails there.
#[proc_macro_attribute]
pub fn needs_s3(attr: TokenStream, item: TokenStream) -> TokenStream {
    if !attr.is_empty() {
        return compile_error("needs_s3 takes no arguments");
    }
    let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty());
    let endpoint = std::env::var_os(S3_ENDPOINT).is_some_and(|v| !v.is_empty());
    let moto = std::env::var_os("HOME")
        .is_some_and(|home| std::path::Path::new(&home).join(MOTO_SERVER).is_file());
    let reason = (!ci && !endpoint && !moto).then(|| {
        format!(
            "needs an S3-compatible server: python3 -m venv ~/.cache/insurebot-moto && \
             ~/.cache/insurebot-moto/bin/pip install 'moto[server]' (then `touch \
             tests/api/media.rs`), or set {S3_ENDPOINT}"
        )
    });
    expand(reason, &["HOME", "CI", S3_ENDPOINT], item)
}

/// The item, `#[ignore = reason]` first when there is a reason, and one `option_env!` per
/// variable looked at, so that a change of any of them rebuilds the test crate.
fn expand(reason: Option<String>, looked_at: &[&str], item: TokenStream) -> TokenStream {
    let mut out = TokenStream::new();
    if let Some(reason) = reason {
        out.extend(parse(&format!("#[ignore = {reason:?}]")));
    }
    out.extend(item);
    for var in looked_at {
        out.extend(parse(&format!(
            "const _: ::core::option::Option<&str> = ::core::option_env!({var:?});"
        )));
    }
    out
}

fn parse(code: &str) -> TokenStream {
    code.parse().expect("generated code parses")
}

fn compile_error(message: &str) -> TokenStream {
    parse(&format!("::core::compile_error!({message:?});"))
}

/// Whether a `postgres://` URL connects through a Unix socket: a `host` query parameter that
/// is a path (`/run/postgresql`, or `%2F…` encoded), as libpq and sqlx read it.
fn over_unix_socket(url: &str) -> bool {
    let Some((_, query)) = url.split_once('?') else {
        return false;
    };
    query.split('&').any(|pair| {
        pair.split_once('=').is_some_and(|(key, value)| {
            key == "host"
                && (value.starts_with('/') || value.to_ascii_lowercase().starts_with("%2f"))
        })
    })
}

/// Whether an executable file `name` is in one of the `PATH`'s folders.
fn on_path(name: &str) -> bool {
    let Some(path) = std::env::var_os("PATH") else {
        return false;
    };
    std::env::split_paths(&path)
        .any(|dir| std::fs::metadata(dir.join(name)).is_ok_and(|m| m.is_file() && executable(&m)))
}

#[cfg(unix)]
fn executable(m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    m.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn executable(_: &std::fs::Metadata) -> bool {
    true
}
