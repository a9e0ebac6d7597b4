use std::fmt;

use serde::{Deserialize, Serialize};

/// Where a database or a file tree lives: a URL or a path, which may carry a password.
///
/// `Display` and `Debug` hide the password, so a locator can be logged; only
/// [`Locator::expose`] gives the whole string, for the driver that connects with it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Locator(String);

impl Locator {
    /// Wraps a URL or path.
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }

    /// The full string, password included. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The string with any `user:password@` password replaced by `***`.
    pub fn redacted(&self) -> String {
        let s = &self.0;
        let Some(scheme_end) = s.find("://") else {
            return s.clone();
        };
        let rest = &s[scheme_end + 3..];
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        // The last '@' ends the user info: a password may itself hold '@'.
        let Some(at) = authority.rfind('@') else {
            return s.clone();
        };
        let userinfo = &authority[..at];
        let Some(colon) = userinfo.find(':') else {
            return s.clone();
        };
        format!(
            "{}{}:***{}",
            &s[..scheme_end + 3],
            &userinfo[..colon],
            &s[scheme_end + 3 + at..]
        )
    }
}

impl fmt::Display for Locator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl fmt::Debug for Locator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Locator({})", self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hides_passwords_everywhere_it_is_shown() {
        let l = Locator::new("postgres://moodle:s3cr@t@db.internal:5432/m08012345?sslmode=require");
        assert_eq!(
            l.to_string(),
            "postgres://moodle:***@db.internal:5432/m08012345?sslmode=require"
        );
        assert!(!format!("{l:?}").contains("s3cr"));
        assert!(l.expose().contains("s3cr@t"));
    }

    #[test]
    fn leaves_what_has_no_password() {
        for s in [
            "mysql://root@127.0.0.1/test",
            "sqlite:///var/a2a/x.db",
            "/srv/moodledata/08012345",
            "s3://bucket/a@b:c",
        ] {
            assert_eq!(Locator::new(s).to_string(), s);
        }
    }
}
