//! The step Lambdas' database login from Secrets Manager, end to end: a MariaDB user with a
//! password full of URL characters, that user and password in a secret on moto, a site
//! configuration with no credentials, and `context_from_env` reading `A2A_DB_SECRET`; the
//! shard's URL it gives must log in as that user, and a wrong password must fail without
//! showing itself. Then a rotation while the function is warm: `Steps` must log in with the
//! new password after one reload, keep a failure whose secret did not change as it was,
//! and never log a password.
//!
//! Environment variables are process-wide, so this file holds one test function only.

use std::fmt::{Debug, Write as _};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use a2a_aws::aws_sdk_secretsmanager;
use a2a_core::Locator;
use a2a_dbmove::server;
use a2a_dbmove::{Db, DbError, Value};
use a2a_steps::{StepContext, StepError};
use a2a_testkit::{service_url, unique_name};
use tracing::field::{Field, Visit};
use tracing::instrument::WithSubscriber;
use tracing::span::{Attributes, Id, Record};

const TEST: &str = "the_shard_logs_in_with_the_secret_follows_its_rotation_and_no_password_shows";

#[tokio::test]
async fn the_shard_logs_in_with_the_secret_follows_its_rotation_and_no_password_shows() {
    let mysql = service_url("A2A_TEST_MYSQL_URL", TEST);
    let aws = service_url("AWS_ENDPOINT_URL", TEST);
    let (Some(mysql), Some(_)) = (mysql, aws) else {
        return;
    };
    let root = Db::connect(&Locator::new(&mysql), false).await.unwrap();
    // A short, unique user (MariaDB caps the length), and a password that would break a
    // URL written by hand.
    let user = unique_name("a2a").replace('-', "_");
    let password = nasty_password("k");
    root.exec(&format!(
        "CREATE USER '{user}'@'%' IDENTIFIED BY {}",
        sql_literal(&password)
    ))
    .await
    .unwrap();
    // What a shard admin needs: its sites' databases, `a2a_<code>`, and a look at the
    // `mysql` database its URL names.
    let mut granted = root
        .exec(&format!(
            "GRANT ALL PRIVILEGES ON `a2a\\_%`.* TO '{user}'@'%'"
        ))
        .await;
    if granted.is_ok() {
        granted = root
            .exec(&format!("GRANT SELECT ON `mysql`.* TO '{user}'@'%'"))
            .await;
    }

    let outcome = match granted {
        Ok(()) => check(&root, &mysql, &user, &password).await,
        Err(e) => Err(format!("GRANT: {e}")),
    };

    // Cleaned up whatever happened, then judged.
    let dropped = root.exec(&format!("DROP USER '{user}'@'%'")).await;
    for var in ["A2A_DB_SECRET", "A2A_SITE", "A2A_TABLE", "A2A_BUCKET"] {
        // SAFETY: the only test of this binary; nothing else reads the environment now.
        unsafe { std::env::remove_var(var) };
    }
    outcome.unwrap();
    dropped.unwrap();
}

/// A password with the characters a URL or an SQL literal would trip on, ending with a
/// unique tail after its last backslash.
fn nasty_password(prefix: &str) -> String {
    format!("P@ss:w/rd%25?#&'\\{}", unique_name(prefix))
}

/// `password` as a quoted MariaDB string.
fn sql_literal(password: &str) -> String {
    format!("'{}'", password.replace('\\', "\\\\").replace('\'', "''"))
}

/// Gives `user` password `password`.
async fn set_password(root: &Db, user: &str, password: &str) -> Result<(), String> {
    let literal = sql_literal(password);
    root.exec(&format!("ALTER USER '{user}'@'%' IDENTIFIED BY {literal}"))
        .await
        .map_err(|e| format!("ALTER USER: {e}"))
}

/// The secret rotated while a function is warm: `Steps` from the environment (secret
/// `good`, `user`'s password), then the user's password changed in MariaDB and in the
/// secret, then in MariaDB only. Returns the passwords it set.
async fn rotation(
    root: &Db,
    sm: &aws_sdk_secretsmanager::Client,
    user: &str,
    good: &str,
) -> Result<Vec<String>, String> {
    let steps = a2a_fn_steps::Steps::from_env().await?;
    let tries = AtomicUsize::new(0);
    let login = |ctx: Arc<StepContext>| {
        tries.fetch_add(1, Ordering::SeqCst);
        async move {
            Db::connect(&ctx.site.shards[0].db, false)
                .await
                .map(drop)
                .map_err(StepError::from)
        }
    };
    // How many times `login` ran for one call, and the call's result.
    let call = async || {
        let before = tries.load(Ordering::SeqCst);
        let result = steps.retry_after_reload(&login).await;
        (tries.load(Ordering::SeqCst) - before, result)
    };

    match call().await {
        (1, Ok(())) => {}
        other => return Err(format!("before the rotation: {other:?}")),
    }
    let before = steps.context().site.shards[0].db.clone();

    // Rotated: the next call fails, reads the new password and logs in with it.
    let second = nasty_password("r");
    set_password(root, user, &second).await?;
    let body = serde_json::json!({"engine": "mariadb", "username": user, "password": second});
    sm.put_secret_value()
        .secret_id(good)
        .secret_string(body.to_string())
        .send()
        .await
        .map_err(|e| format!("PutSecretValue: {e:?}"))?;
    match call().await {
        (2, Ok(())) => {}
        other => return Err(format!("after the rotation: {other:?}")),
    }
    let ctx = steps.context();
    if ctx.site.shards[0].db == before {
        return Err(format!(
            "the shard's URL did not change: {}",
            ctx.site.shards[0].db
        ));
    }
    if ctx.site.shards[1].db.expose() != "sqlite:///a2a-nowhere/shard" {
        return Err(format!("a SQLite shard changed: {}", ctx.site.shards[1].db));
    }
    // Later calls keep the new context without reading again.
    match call().await {
        (1, Ok(())) => {}
        other => return Err(format!("the call after: {other:?}")),
    }

    // The password changed but not the secret: the failure stands, after one read (the
    // last one found a change), then with none (held back for the interval).
    let third = nasty_password("x");
    set_password(root, user, &third).await?;
    for _ in 0..2 {
        match call().await {
            (1, Err(e @ StepError::Transient(_))) if e.name() == "A2A.Transient" => {
                let shown = format!("{e} {e:?}");
                if shown.contains(&third) || shown.contains(&second) {
                    return Err(format!("a password shows: {shown}"));
                }
            }
            other => return Err(format!("a stale secret: {other:?}")),
        }
    }
    Ok(vec![second, third])
}

/// What the function logs, a line per event or span, fields as given: INFO and above from
/// every crate (a Lambda's level), everything from the `a2a` crates.
#[derive(Clone, Default)]
struct Capture {
    lines: Arc<Mutex<Vec<String>>>,
    spans: Arc<AtomicU64>,
}

impl Capture {
    fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    fn push(&self, line: String) {
        self.lines.lock().unwrap().push(line);
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, m: &tracing::Metadata<'_>) -> bool {
        *m.level() <= tracing::Level::INFO || m.target().starts_with("a2a")
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        let mut line = format!("span {}", span.metadata().name());
        span.record(&mut Line(&mut line));
        self.push(line);
        Id::from_u64(self.spans.fetch_add(1, Ordering::SeqCst) + 1)
    }

    fn record(&self, _: &Id, values: &Record<'_>) {
        let mut line = String::from("record");
        values.record(&mut Line(&mut line));
        self.push(line);
    }

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let m = event.metadata();
        let mut line = format!("{} {}", m.level(), m.target());
        event.record(&mut Line(&mut line));
        self.push(line);
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// Writes fields as `name=value`, strings unescaped.
struct Line<'a>(&'a mut String);

impl Visit for Line<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        let _ = write!(self.0, " {}={value}", field.name());
    }

    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }
}

/// The server part of a test URL, without its user: `mysql://root@h:3306/test` → `h:3306`.
fn server(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or("");
    authority.rsplit('@').next().unwrap_or("").to_owned()
}

fn set(var: &str, value: &str) {
    // SAFETY: the only test of this binary; nothing else reads the environment now.
    unsafe { std::env::set_var(var, value) };
}

/// Everything that needs the user; an `Err` says what went wrong, so the user is always
/// dropped. The secrets it makes are deleted whatever happens.
async fn check(root: &Db, mysql: &str, user: &str, password: &str) -> Result<(), String> {
    let conf = a2a_aws::config::sdk_config().await;
    let sm = aws_sdk_secretsmanager::Client::new(&conf);
    let secret = |name: String, pw: String| {
        let sm = sm.clone();
        let body = serde_json::json!({"engine": "mariadb", "username": user, "password": pw});
        async move {
            sm.create_secret()
                .name(&name)
                .secret_string(body.to_string())
                .send()
                .await
                .map_err(|e| format!("CreateSecret {name}: {e:?}"))?
                .arn()
                .map(str::to_owned)
                .ok_or_else(|| format!("CreateSecret {name}: no ARN"))
        }
    };
    let good = secret(unique_name("a2a-db"), password.to_owned()).await?;
    let wrong_password = format!("Wr0ng@{}", unique_name("pw"));
    let wrong = secret(unique_name("a2a-db-wrong"), wrong_password.clone()).await;

    let outcome = match &wrong {
        Ok(wrong) => logins(root, &sm, mysql, user, password, &good, wrong).await,
        Err(e) => Err(e.clone()),
    };
    let mut deleted = Ok(());
    for id in std::iter::once(&good).chain(wrong.as_ref().ok()) {
        let gone = sm
            .delete_secret()
            .secret_id(id)
            .force_delete_without_recovery(true)
            .send()
            .await;
        if let Err(e) = gone {
            deleted = Err(format!("DeleteSecret {id}: {e:?}"));
        }
    }
    outcome.and(deleted)
}

/// The checks, with secret `good` holding `user` and `password` and secret `wrong` the
/// user and another password.
async fn logins(
    root: &Db,
    sm: &aws_sdk_secretsmanager::Client,
    mysql: &str,
    user: &str,
    password: &str,
    good: &str,
    wrong: &str,
) -> Result<(), String> {
    let host = server(mysql);
    let shard = format!("mysql://{host}/mysql");
    let site = serde_json::json!({
        "host": "eix.example.cat",
        "old_wwwroot": "https://agora.example.cat/{dns}/moodle",
        "prefix": "mdl_",
        "shards": [
            {"name": "s1", "db": shard, "capacity": 10},
            {"name": "s2", "db": "sqlite:///a2a-nowhere/shard", "capacity": 10}
        ],
        "templates": {
            "primary": {"db": format!("mysql://{host}/a2a_tpl_primary"), "files": "primary",
                        "wwwroot": "https://t.example.cat/primary/moodle"}
        }
    });
    set("A2A_TABLE", "a2a-unused");
    set("A2A_BUCKET", "a2a-unused");
    set("A2A_SITE", &site.to_string());

    // The right secret: the shard logs in as its user, and can make a site's database.
    set("A2A_DB_SECRET", good);
    let ctx = a2a_fn_steps::context_from_env().await?;
    let s1 = ctx.site.shards[0].db.clone();
    if s1.expose() == shard || s1.to_string().contains(password) {
        return Err(format!("the shard's URL did not get the secret: {s1}"));
    }
    if ctx.site.shards[1].db.expose() != "sqlite:///a2a-nowhere/shard" {
        return Err(format!("a SQLite shard changed: {}", ctx.site.shards[1].db));
    }
    if !ctx.site.templates["primary"].db.to_string().contains(user) {
        return Err("the template's URL did not get the secret's user".into());
    }
    let db = Db::connect(&s1, false)
        .await
        .map_err(|e| format!("connecting with the secret: {e}"))?;
    let me = db
        .query_i64(
            "SELECT CAST(SUBSTRING_INDEX(CURRENT_USER(), '@', 1) = {} AS SIGNED)",
            &[Value::Text(user.to_owned())],
        )
        .await
        .map_err(|e| e.to_string())?;
    if me != 1 {
        return Err(format!("{s1} did not log in as {user}"));
    }
    let name = format!("a2a_sec_{}", unique_name("d").replace(['-', 'd'], ""));
    let site_db = server::create(&s1, &name)
        .await
        .map_err(|e| format!("CREATE DATABASE {name} as {user}: {e}"))?;
    let made = async {
        let site = Db::connect(&site_db, false).await?;
        site.exec("CREATE TABLE a2a_probe (id INT PRIMARY KEY)")
            .await
    }
    .await;
    server::drop(&s1, &name)
        .await
        .map_err(|e| format!("DROP DATABASE {name}: {e}"))?;
    made.map_err(|e| format!("using {site_db} as {user}: {e}"))?;

    // The wrong password: the start still works (it does not connect), the login fails,
    // and no message shows the password, plain or encoded.
    set("A2A_DB_SECRET", wrong);
    let ctx = a2a_fn_steps::context_from_env().await?;
    let refused = Db::connect(&ctx.site.shards[0].db, false).await;
    let err = match refused {
        Ok(_) => return Err("a wrong password logged in".into()),
        Err(e) => e,
    };
    let shown = format!("{err} {err:?}");
    if !matches!(err, DbError::Unreachable(_)) || !shown.contains(user) {
        return Err(format!("not the refusal expected: {shown}"));
    }
    if shown.contains("Wr0ng") {
        return Err(format!("the password shows: {shown}"));
    }

    // No such secret: the cold start fails, naming the variable.
    set("A2A_DB_SECRET", &unique_name("a2a-db-missing"));
    match a2a_fn_steps::context_from_env().await {
        Ok(_) => return Err("a missing secret was not noticed".into()),
        Err(m) if m.starts_with("A2A_DB_SECRET") && m.contains("not found") => {}
        Err(m) => return Err(format!("a missing secret: {m}")),
    }

    // A rotation while warm, logged into a capture of what the function logs.
    set("A2A_DB_SECRET", good);
    let log = Capture::default();
    let rotated = rotation(root, sm, user, good)
        .with_subscriber(log.clone())
        .await?;
    let lines = log.lines();
    // One reload; of the two stale calls, one read (the last read found a change), one
    // held back.
    for (what, n) in [("credentials reloaded", 1), ("secret is unchanged", 1)] {
        let logged = lines.iter().filter(|l| l.contains(what)).count();
        if logged != n {
            return Err(format!("{logged} lines with {what:?}, not {n}: {lines:#?}"));
        }
    }
    for secret in std::iter::once(password).chain(rotated.iter().map(String::as_str)) {
        // The random tail: the same plain, escaped or percent-encoded.
        let tail = secret.rsplit('\\').next().unwrap_or(secret);
        if let Some(line) = lines.iter().find(|l| l.contains(tail)) {
            return Err(format!("a password shows in the log: {line}"));
        }
    }
    Ok(())
}
