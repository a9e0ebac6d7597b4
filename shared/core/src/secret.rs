//! The `SecretStore` port: where a site's own secrets (its admin password, say) go, and the
//! only place their plain text is kept. Secrets Manager in AWS; a private folder locally.

use std::fmt;

use async_trait::async_trait;

use crate::{PortError, SchoolCode};

/// A secret's name: `a2a/<code>/<what>`, made only from a checked school code and a fixed
/// word, so it can name a file or a Secrets Manager secret without escaping anything.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SecretName(String);

impl SecretName {
    /// The secret `what` (lowercase letters, digits and `-`) of the school `code`.
    pub fn of(code: &SchoolCode, what: &str) -> Result<Self, PortError> {
        let ok = !what.is_empty()
            && what
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            return Err(PortError::Invalid(format!(
                "{what:?} is not a secret's name (lowercase letters, digits and -)"
            )));
        }
        Ok(Self(format!("a2a/{code}/{what}")))
    }

    /// A secret named by an operator (a school list's `secret:NAME`): 1 to 256 of
    /// `A-Z a-z 0-9 / _ + = . @ -` (what Secrets Manager allows), in `/`-separated parts
    /// none of which is empty, `.` or `..`, so that it names no file outside the store.
    pub fn parse(name: &str) -> Result<Self, PortError> {
        let chars = name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/_+=.@-".contains(&b));
        let parts = name.split('/').all(|p| !matches!(p, "" | "." | ".."));
        if !(1..=256).contains(&name.len()) || !chars || !parts {
            return Err(PortError::Invalid(format!(
                "{name:?} is not a secret's name: use 1 to 256 of A-Z a-z 0-9 / _ + = . @ -, \
                 in parts separated by / (none empty, . or ..)"
            )));
        }
        Ok(Self(name.to_owned()))
    }

    /// The admin password of the site of `code`.
    pub fn admin_password(code: &SchoolCode) -> Self {
        Self(format!("a2a/{code}/admin-password"))
    }

    /// The name as text: `a2a/<code>/<what>`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for SecretName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A secret's value. It never prints: `Debug` and `Display` show `***`, so a log line or
/// an error that carries one by mistake still leaks nothing.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The plain text, for the one place that needs it (a hash, a login, `a2a secret show`).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Keeps secrets by name.
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// The secret `name`, or `None` when there is none.
    async fn get(&self, name: &SecretName) -> Result<Option<Secret>, PortError>;

    /// Stores `value` under `name` unless a secret of that name exists, and returns the one
    /// that stands: the stored one when there was one. A step that makes a secret calls
    /// this before it uses the value, so a rerun uses the same secret and none is lost.
    async fn put_new(&self, name: &SecretName, value: &Secret) -> Result<Secret, PortError>;

    /// Stores `value` under `name`, replacing a secret of that name: for a secret that its
    /// owner changes (a source database's password given again in a new school list).
    async fn put(&self, name: &SecretName, value: &Secret) -> Result<(), PortError>;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_made_only_of_a_code_and_a_plain_word() {
        let code = SchoolCode::parse("08012345").unwrap();
        assert_eq!(
            SecretName::admin_password(&code).as_str(),
            "a2a/08012345/admin-password"
        );
        assert_eq!(
            SecretName::of(&code, "cron").unwrap().as_str(),
            "a2a/08012345/cron"
        );
        for bad in ["", "../x", "A", "a/b", "a b"] {
            assert!(SecretName::of(&code, bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_operator_s_name_cannot_leave_the_store() {
        for good in [
            "agora/source-db",
            "a2a/08012345/admin-password",
            "x",
            "a.b@c+d=e_f",
        ] {
            assert_eq!(SecretName::parse(good).unwrap().as_str(), good);
        }
        let long = "a".repeat(257);
        for bad in [
            "", "/abs", "a//b", "a/../b", "..", "a/.", "sp ace", "q?", &long,
        ] {
            assert!(SecretName::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_secret_never_prints() {
        let s = Secret::new("hunter2-hunter2");
        assert_eq!(format!("{s:?} {s}"), "Secret(***) ***");
        assert_eq!(s.expose(), "hunter2-hunter2");
    }
}
