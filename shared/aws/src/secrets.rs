//! Database credentials from AWS Secrets Manager: the user and password of the target
//! databases, kept in a secret of the format RDS uses (`{"username": …, "password": …}`).

use std::fmt;

use a2a_core::{PortError, Secret, SecretName, SecretStore};
use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use serde_json::Value;

use crate::error::{Call, classify};

const SERVICE: &str = "Secrets Manager";

/// A database user and its password. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct DbCredentials {
    username: String,
    password: String,
}

impl DbCredentials {
    /// A user and its password.
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
        }
    }

    /// The user name.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// The password. Never log it.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The credentials of a secret's text in the RDS format: a JSON object with the
    /// strings `username` (not empty) and `password`; other keys (`engine`, `host`, …) are
    /// ignored. Errors name the secret `id` and the field, never a value.
    pub fn from_secret_string(id: &str, text: &str) -> Result<Self, PortError> {
        // A syntax error's position only: serde's own messages may quote the text.
        let json: Value = serde_json::from_str(text).map_err(|e| {
            PortError::Invalid(format!(
                "secret {id:?} is not JSON (error at line {}, column {}); store \
                 {{\"username\": \"…\", \"password\": \"…\"}} in it",
                e.line(),
                e.column()
            ))
        })?;
        let Value::Object(map) = json else {
            return Err(PortError::Invalid(format!(
                "secret {id:?} is JSON but not an object; store \
                 {{\"username\": \"…\", \"password\": \"…\"}} in it"
            )));
        };
        let field = |name: &str| match map.get(name) {
            Some(Value::String(s)) => Ok(s.clone()),
            None | Some(Value::Null) => Err(PortError::Invalid(format!(
                "secret {id:?} has no {name:?}; it needs the string fields \"username\" and \
                 \"password\" (the format of an RDS-managed secret)"
            ))),
            // Named, not shown: the value may be the password itself.
            Some(_) => Err(PortError::Invalid(format!(
                "secret {id:?}: {name:?} is not a string; store it as one"
            ))),
        };
        let username = field("username")?;
        if username.trim().is_empty() {
            return Err(PortError::Invalid(format!(
                "secret {id:?}: \"username\" is empty"
            )));
        }
        let password = field("password")?;
        Ok(Self { username, password })
    }
}

impl fmt::Debug for DbCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbCredentials")
            .field("username", &self.username)
            .field("password", &"***")
            .finish()
    }
}

/// One Secrets Manager secret that holds database credentials.
#[derive(Debug, Clone)]
pub struct DbSecret {
    client: Client,
    id: String,
}

impl DbSecret {
    /// The secret `id`: its ARN or its name.
    pub fn new(client: Client, id: impl Into<String>) -> Self {
        Self {
            client,
            id: id.into(),
        }
    }

    /// Like [`DbSecret::new`], with a client made from `conf`.
    pub fn from_conf(conf: &SdkConfig, id: impl Into<String>) -> Self {
        Self::new(Client::new(conf), id)
    }

    /// The secret's ARN or name, as given.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Fetches the secret's current version and reads its credentials
    /// ([`DbCredentials::from_secret_string`]). A missing secret is
    /// [`PortError::NotFound`]; a secret with no text or a bad one is
    /// [`PortError::Invalid`]; the rest as [`classify`] says.
    pub async fn fetch(&self) -> Result<DbCredentials, PortError> {
        let id = &self.id;
        let resource = format!("secret {id:?}");
        let out = match self.client.get_secret_value().secret_id(id).send().await {
            Ok(out) => out,
            Err(e) if e.code() == Some("ResourceNotFoundException") => {
                return Err(PortError::NotFound(format!(
                    "{SERVICE} has no {resource} in this account and region; check \
                     A2A_DB_SECRET (the template's DatabaseSecretArn)"
                )));
            }
            // Not a missing permission of Secrets Manager: the role may not use the key.
            Err(e) if e.code() == Some("DecryptionFailure") => {
                return Err(PortError::Unavailable(format!(
                    "{SERVICE} GetSecretValue on {resource}: KMS could not decrypt it; give \
                     the role kms:Decrypt on the secret's customer-managed key"
                )));
            }
            Err(e) => {
                return Err(classify(
                    &e,
                    Call::new(SERVICE, "GetSecretValue", &resource),
                ));
            }
        };
        let text = out.secret_string().ok_or_else(|| {
            PortError::Invalid(format!(
                "{resource} holds no text (a binary secret?); store \
                 {{\"username\": \"…\", \"password\": \"…\"}} as its SecretString"
            ))
        })?;
        DbCredentials::from_secret_string(id, text)
    }
}

/// The [`SecretStore`] in Secrets Manager: the secret `a2a/<code>/<what>` is the Secrets
/// Manager secret of that name, behind an optional prefix (a stack's name, so that two
/// stacks in one account keep apart). The template scopes the functions' IAM to it.
#[derive(Debug, Clone)]
pub struct SmSecrets {
    client: Client,
    prefix: String,
}

impl SmSecrets {
    /// Secrets named `<prefix><name>` (the prefix may be empty).
    pub fn new(client: Client, prefix: impl Into<String>) -> Self {
        Self {
            client,
            prefix: prefix.into(),
        }
    }

    /// Like [`SmSecrets::new`], with a client made from `conf`.
    pub fn from_conf(conf: &SdkConfig, prefix: impl Into<String>) -> Self {
        Self::new(Client::new(conf), prefix)
    }

    fn id(&self, name: &SecretName) -> String {
        format!("{}{name}", self.prefix)
    }
}

#[async_trait]
impl SecretStore for SmSecrets {
    async fn get(&self, name: &SecretName) -> Result<Option<Secret>, PortError> {
        let id = self.id(name);
        let resource = format!("secret {id:?}");
        match self.client.get_secret_value().secret_id(&id).send().await {
            Ok(out) => out
                .secret_string()
                .map(|s| Some(Secret::new(s)))
                .ok_or_else(|| PortError::Invalid(format!("{resource} holds no text"))),
            Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(None),
            Err(e) => Err(classify(
                &e,
                Call::new(SERVICE, "GetSecretValue", &resource),
            )),
        }
    }

    async fn put_new(&self, name: &SecretName, value: &Secret) -> Result<Secret, PortError> {
        let id = self.id(name);
        let resource = format!("secret {id:?}");
        let made = self
            .client
            .create_secret()
            .name(&id)
            .secret_string(value.expose())
            .description("A2A: one site's own secret; the plain text is kept only here")
            .send()
            .await;
        match made {
            Ok(_) => Ok(value.clone()),
            // A rerun, or a racing one: the secret made first stands.
            Err(e) if e.code() == Some("ResourceExistsException") => {
                self.get(name).await?.ok_or_else(|| {
                    PortError::Backend(format!("{resource} exists but could not be read"))
                })
            }
            Err(e) => Err(classify(&e, Call::new(SERVICE, "CreateSecret", &resource))),
        }
    }

    async fn put(&self, name: &SecretName, value: &Secret) -> Result<(), PortError> {
        let id = self.id(name);
        let resource = format!("secret {id:?}");
        let replaced = self
            .client
            .put_secret_value()
            .secret_id(&id)
            .secret_string(value.expose())
            .send()
            .await;
        match replaced {
            Ok(_) => Ok(()),
            // The first time: made by put_new; if a racing writer made it first, this
            // writer's value still replaces it, as the last put should.
            Err(e) if e.code() == Some("ResourceNotFoundException") => {
                if self.put_new(name, value).await? != *value {
                    Box::pin(self.put(name, value)).await?;
                }
                Ok(())
            }
            Err(e) => Err(classify(
                &e,
                Call::new(SERVICE, "PutSecretValue", &resource),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_rds_format_and_ignores_other_keys() {
        let c = DbCredentials::from_secret_string(
            "s",
            r#"{"engine": "mysql", "host": "h", "port": 3306,
                "username": "a2a", "password": "p@ss:w/rd%"}"#,
        )
        .unwrap();
        assert_eq!(c.username(), "a2a");
        assert_eq!(c.password(), "p@ss:w/rd%");
        let shown = format!("{c:?}");
        assert!(!shown.contains("p@ss"), "{shown}");
        assert!(shown.contains("a2a"), "{shown}");
    }

    #[test]
    fn a_bad_secret_names_the_secret_and_field_never_a_value() {
        let id = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:db-AbCdEf";
        let cases = [
            (r#"{"username": "a2a"}"#, "has no \"password\""),
            (r#"{"password": "hunter2-secret"}"#, "has no \"username\""),
            (
                r#"{"username": "a2a", "password": 7654321}"#,
                "\"password\" is not a string",
            ),
            (
                r#"{"username": "", "password": "hunter2-secret"}"#,
                "is empty",
            ),
            (r#"["hunter2-secret"]"#, "not an object"),
            (
                r#"{"username": "a2a", "password": "hunter2-secret""#,
                "not JSON",
            ),
            ("hunter2-secret", "not JSON"),
        ];
        for (text, want) in cases {
            let err = DbCredentials::from_secret_string(id, text).unwrap_err();
            let m = err.to_string();
            assert!(matches!(err, PortError::Invalid(_)), "{m}");
            assert!(m.contains(id), "{m}");
            assert!(m.contains(want), "{text}: want {want:?} in {m}");
            assert!(!m.contains("hunter2") && !m.contains("7654321"), "{m}");
        }
    }
}
