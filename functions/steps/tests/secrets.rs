//! The step Lambdas' database login from Secrets Manager, end to end: a MariaDB user with a
//! password full of URL characters, that user and password in a secret on moto, a site
//! configuration with no credentials, and `context_from_env` reading `A2A_DB_SECRET`; the
//! shard's URL it gives must log in as that user, and a wrong password must fail without
//! showing itself.
//!
//! Environment variables are process-wide, so this file holds one test function only.

use a2a_aws::aws_sdk_secretsmanager;
use a2a_core::Locator;
use a2a_dbmove::engine::scratch;
use a2a_dbmove::{Db, DbError, Value};
use a2a_testkit::{service_url, unique_name};

const TEST: &str = "the_shard_logs_in_with_the_secret_and_a_wrong_password_never_shows";

#[tokio::test]
async fn the_shard_logs_in_with_the_secret_and_a_wrong_password_never_shows() {
    let mysql = service_url("A2A_TEST_MYSQL_URL", TEST);
    let aws = service_url("AWS_ENDPOINT_URL", TEST);
    let (Some(mysql), Some(_)) = (mysql, aws) else {
        return;
    };
    let root = Db::connect(&Locator::new(&mysql), false).await.unwrap();
    // A short, unique user (MariaDB caps the length), and a password that would break a
    // URL written by hand.
    let user = unique_name("a2a").replace('-', "_");
    let password = format!("P@ss:w/rd%25?#&'\\{}", unique_name("k"));
    let literal = password.replace('\\', "\\\\").replace('\'', "''");
    root.exec(&format!(
        "CREATE USER '{user}'@'%' IDENTIFIED BY '{literal}'"
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
        Ok(()) => check(&mysql, &user, &password).await,
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
/// dropped.
async fn check(mysql: &str, user: &str, password: &str) -> Result<(), String> {
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
    let wrong = secret(unique_name("a2a-db-wrong"), wrong_password.clone()).await?;

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
    set("A2A_DB_SECRET", &good);
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
    let site_db = scratch::create(&s1, &name)
        .await
        .map_err(|e| format!("CREATE DATABASE {name} as {user}: {e}"))?;
    let made = async {
        let site = Db::connect(&site_db, false).await?;
        site.exec("CREATE TABLE a2a_probe (id INT PRIMARY KEY)")
            .await
    }
    .await;
    scratch::drop(&s1, &name)
        .await
        .map_err(|e| format!("DROP DATABASE {name}: {e}"))?;
    made.map_err(|e| format!("using {site_db} as {user}: {e}"))?;

    // The wrong password: the start still works (it does not connect), the login fails,
    // and no message shows the password, plain or encoded.
    set("A2A_DB_SECRET", &wrong);
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

    for id in [&good, &wrong] {
        sm.delete_secret()
            .secret_id(id)
            .force_delete_without_recovery(true)
            .send()
            .await
            .map_err(|e| format!("DeleteSecret {id}: {e:?}"))?;
    }
    Ok(())
}
