//! `sluice user`: people's accounts, offline against the store — `list`, and `reset-password`
//! for an administrator locked out of the service.

use std::io::{IsTerminal, Read};
use std::path::PathBuf;
use std::process::ExitCode;

use sluice_core::Secret;
use sluice_store::{NewAuditEntry, Store, StoreError, User};
use zeroize::Zeroizing;

use crate::exit::{self, Usage};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// List the accounts: login, role, created, disabled.
    List(StoreArgs),
    /// Set a new password for a user and sign them out everywhere. The password is read from
    /// standard input when it is piped, or from --password-file; otherwise (or with --generate)
    /// a new one is generated and printed on the last line of standard output.
    ResetPassword(ResetArgs),
}

#[derive(clap::Args, Debug)]
struct StoreArgs {
    /// The data directory of a SQLite store.
    #[arg(long, value_name = "DIR", conflicts_with = "store", required_unless_present = "store")]
    data_dir: Option<PathBuf>,
    /// A store URL (postgres://… or sqlite://PATH); its master key comes from SLUICE_MASTER_KEY.
    #[arg(long, value_name = "URL")]
    store: Option<String>,
}

#[derive(clap::Args, Debug)]
struct ResetArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// The user's login.
    #[arg(long)]
    login: String,
    /// Read the new password from this file (its first line).
    #[arg(long, value_name = "FILE", conflicts_with = "generate")]
    password_file: Option<PathBuf>,
    /// Generate a new password and print it, even when standard input is piped.
    #[arg(long)]
    generate: bool,
}

pub async fn run(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Command::List(args) => list(args).await,
        Command::ResetPassword(args) => reset_password(args).await,
    }
}

async fn open(args: &StoreArgs) -> anyhow::Result<Store> {
    let dir = args.data_dir.clone().unwrap_or_default();
    crate::serve::open_store(&dir, args.store.as_deref()).await
}

async fn list(args: StoreArgs) -> anyhow::Result<ExitCode> {
    let store = open(&args).await?;
    let users = store.users().await;
    store.close().await;
    let users = users.map_err(|e| exit::usage_from(&e))?;
    if users.is_empty() {
        eprintln!("no users yet: `sluice serve` prints a setup link that creates the first administrator");
    }
    println!("{:<24} {:<8} {:<10} CREATED (UTC)", "LOGIN", "ROLE", "STATUS");
    for u in users {
        let status = if u.disabled { "disabled" } else { "active" };
        println!("{:<24} {:<8} {:<10} {}", u.login, u.role.as_str(), status, utc(u.created_at));
    }
    Ok(ExitCode::SUCCESS)
}

/// Where the new password comes from.
enum NewPassword {
    Given(Secret),
    Generated(Secret),
}

/// Reads (or generates) the password before the store is opened, so a bad input changes nothing.
fn new_password(args: &ResetArgs) -> anyhow::Result<NewPassword> {
    if let Some(path) = &args.password_file {
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| Usage::new(format!("--password-file {}: cannot read it: {e}", path.display()), None))?,
        );
        return Ok(NewPassword::Given(first_line(&text, &format!("--password-file {}", path.display()))?));
    }
    let stdin = std::io::stdin();
    if !args.generate && !stdin.is_terminal() {
        let mut text = Zeroizing::new(String::new());
        stdin
            .lock()
            .read_to_string(&mut text)
            .map_err(|e| Usage::new(format!("cannot read the new password from standard input: {e}"), None))?;
        return Ok(NewPassword::Given(first_line(&text, "standard input")?));
    }
    let generated = sluice_doctor::generate_password().map_err(|e| exit::usage_from(&e))?;
    Ok(NewPassword::Generated(generated))
}

/// The password on the first line of `text` (without its line ending); nothing else may follow.
fn first_line(text: &str, from: &str) -> anyhow::Result<Secret> {
    let text = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(text);
    if text.is_empty() {
        return Err(Usage::new(
            format!("{from} holds no password"),
            Some("give the new password on one line, or pass --generate to have one made".into()),
        )
        .into());
    }
    if text.contains('\n') {
        return Err(Usage::new(
            format!("{from} holds more than one line"),
            Some("give the password alone on one line".into()),
        )
        .into());
    }
    Ok(Secret::new(text))
}

async fn reset_password(args: ResetArgs) -> anyhow::Result<ExitCode> {
    let password = new_password(&args)?;
    let secret = match &password {
        NewPassword::Given(s) | NewPassword::Generated(s) => s.clone(),
    };
    let store = open(&args.store).await?;
    let outcome = reset(&store, &args.login, &secret).await;
    store.close().await;
    let (user, sessions) = outcome?;
    eprintln!(
        "the password of `{}` ({}) is reset; {sessions} session{} signed out{}",
        user.login,
        user.role.as_str(),
        if sessions == 1 { "" } else { "s" },
        if user.disabled { " (the account is disabled: re-enable it to sign in)" } else { "" }
    );
    if let NewPassword::Generated(s) = password {
        eprintln!("the new password is shown only now:");
        println!("{}", s.expose());
    }
    Ok(ExitCode::SUCCESS)
}

async fn reset(store: &Store, login: &str, password: &Secret) -> anyhow::Result<(User, u64)> {
    let users = store.users().await.map_err(|e| exit::usage_from(&e))?;
    let Some(user) = users.into_iter().find(|u| u.login == login) else {
        return Err(Usage::new(
            format!("no user has the login `{login}`"),
            Some("`sluice user list` shows the logins".into()),
        )
        .into());
    };
    store.set_password(user.id, password).await.map_err(|e| match &e {
        StoreError::Invalid { field: "password", message } => Usage::new(format!("the new password: {message}"), None),
        _ => exit::usage_from(&e),
    })?;
    let sessions = store.revoke_sessions_of(user.id).await.map_err(|e| exit::usage_from(&e))?;
    let entry = NewAuditEntry {
        actor: "cli".into(),
        kind: "user.password_reset".into(),
        source: None,
        detail: serde_json::json!({"user": user.id, "login": user.login, "sessions_revoked": sessions}),
    };
    store.append_audit(&entry).await.map_err(|e| exit::usage_from(&e))?;
    Ok((user, sessions))
}

/// Milliseconds since the epoch as `YYYY-MM-DD HH:MM`, UTC.
fn utc(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02} {:02}:{:02}", rem / 3600, rem % 3600 / 60)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_in_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00");
        assert_eq!(utc(1_767_225_599_000), "2025-12-31 23:59");
    }

    #[test]
    fn a_password_is_the_first_line_alone() {
        assert_eq!(first_line("hunter2hunter2\n", "x").expect("one line").expose(), "hunter2hunter2");
        assert_eq!(first_line("pw with spaces\r\n", "x").expect("crlf").expose(), "pw with spaces");
        assert_eq!(first_line("no newline", "x").expect("bare").expose(), "no newline");
        assert!(first_line("", "x").is_err());
        assert!(first_line("\n", "x").is_err());
        assert!(first_line("a\nb\n", "x").is_err());
    }
}
