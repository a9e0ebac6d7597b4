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
        match self.userinfo() {
            Some(UserInfo {
                colon: Some(colon),
                at,
                ..
            }) => format!("{}:***{}", &s[..colon], &s[at..]),
            _ => s.clone(),
        }
    }

    /// The locator with any password taken out of its user info (`user:pw@` → `user@`):
    /// what may be stored, since the password is filled in again from the configuration
    /// when it is used.
    pub fn without_password(&self) -> Locator {
        let s = &self.0;
        match self.userinfo() {
            Some(UserInfo {
                colon: Some(colon),
                at,
                ..
            }) => Locator(format!("{}{}", &s[..colon], &s[at..])),
            _ => self.clone(),
        }
    }

    /// This network URL with `user` and `password` as its user info, both percent-encoded,
    /// when it has no password of its own; otherwise the locator unchanged.
    ///
    /// * A URL with a password (`user:pw@`, even an empty `user:@`) is kept as it is: it was
    ///   written on purpose, and stays the operator's to change.
    /// * A URL with a user but no password (`mysql://admin@host/mysql`) gets the given user
    ///   *and* password: a password belongs to the user it was made for (an RDS secret holds
    ///   the pair), so pairing it with another name would only fail to log in.
    /// * Anything that is not `scheme://host…` (a path, `sqlite:`, `file:`, a URL without a
    ///   host) is left alone: it has nothing to log in to.
    ///
    /// Every byte outside RFC 3986's unreserved set is percent-encoded, so `@`, `:`, `/`,
    /// `?`, `#` and `%` in a password can neither end the user info early nor change the
    /// host or the path; the PostgreSQL and MySQL drivers decode it back.
    pub fn with_credentials(&self, user: &str, password: &str) -> Locator {
        let s = &self.0;
        let Some(scheme_end) = s.find("://") else {
            return self.clone();
        };
        let scheme = s[..scheme_end].to_ascii_lowercase();
        if scheme == "sqlite" || scheme == "file" {
            return self.clone();
        }
        let start = scheme_end + 3;
        let host = match self.userinfo() {
            Some(UserInfo { colon: Some(_), .. }) => return self.clone(),
            Some(UserInfo { at, .. }) => &s[at + 1..],
            None => &s[start..],
        };
        if host.is_empty() || host.starts_with(['/', '?', '#']) {
            return self.clone();
        }
        Locator(format!(
            "{}{}:{}@{host}",
            &s[..start],
            encode_userinfo(user),
            encode_userinfo(password)
        ))
    }

    /// The user and the password of a `scheme://user:password@host…` URL, percent-decoded;
    /// `None` when it has no password.
    pub fn credentials(&self) -> Option<(String, String)> {
        let s = &self.0;
        let UserInfo {
            colon: Some(colon),
            at,
        } = self.userinfo()?
        else {
            return None;
        };
        let start = s.find("://")? + 3;
        Some((
            percent_decode(&s[start..colon]),
            percent_decode(&s[colon + 1..at]),
        ))
    }

    /// The name of the secret that holds this URL's password, when its password is
    /// `secret:NAME` (percent-encoded like any password: `/` as `%2F`).
    pub fn secret_ref(&self) -> Option<String> {
        let (_, password) = self.credentials()?;
        password.strip_prefix(SECRET_REF).map(str::to_owned)
    }

    /// This URL with its password replaced by a reference to the secret `name` that holds
    /// it (`user:secret:NAME@`), which may be stored and shown: [`Locator::secret_ref`]
    /// reads it back. A URL without a password is returned as it is.
    pub fn with_secret_ref(&self, name: &str) -> Locator {
        match self.credentials() {
            Some((user, _)) => self
                .without_password()
                .with_credentials(&user, &format!("{SECRET_REF}{name}")),
            None => self.clone(),
        }
    }

    /// Where the user info of a `scheme://user[:password]@host…` URL splits, if it has one.
    /// The last '@' of the authority ends it: a password may itself hold '@'.
    fn userinfo(&self) -> Option<UserInfo> {
        let s = &self.0;
        let start = s.find("://")? + 3;
        let rest = &s[start..];
        let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
        let at = authority.rfind('@')?;
        Some(UserInfo {
            colon: authority[..at].find(':').map(|c| start + c),
            at: start + at,
        })
    }
}

/// Byte positions in a locator: the ':' before the password, if any, and the '@' after the
/// user info.
struct UserInfo {
    colon: Option<usize>,
    at: usize,
}

/// What a password that names a secret instead begins with.
const SECRET_REF: &str = "secret:";

/// `%XX` escapes decoded (user info and paths in a URL may carry them); a `%` not followed
/// by two hex digits stays as it is.
pub fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Percent-encodes every byte that is not unreserved (RFC 3986: letters, digits, `-._~`).
fn encode_userinfo(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
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
    fn a_password_moves_out_and_a_secret_reference_comes_back() {
        let l = Locator::new("mysql://moodle:p%40ss:w@db.internal:3306/m08012345");
        assert_eq!(l.credentials(), Some(("moodle".into(), "p@ss:w".into())));
        assert_eq!(l.secret_ref(), None);
        let r = l.with_secret_ref("a2a/08012345/source-db-password");
        assert_eq!(
            r.expose(),
            "mysql://moodle:secret%3Aa2a%2F08012345%2Fsource-db-password@db.internal:3306/m08012345"
        );
        assert_eq!(
            r.secret_ref().as_deref(),
            Some("a2a/08012345/source-db-password")
        );
        // Filled in again at use: the same login as the list gave.
        let back = r.without_password().with_credentials("moodle", "p@ss:w");
        assert_eq!(back.credentials(), l.credentials());
        // No password, nothing to move; a broken escape stays as it is.
        let plain = Locator::new("postgres://moodle@db/m");
        assert_eq!(plain.with_secret_ref("x"), plain);
        assert_eq!(
            Locator::new("postgres://u:100%@db/m").credentials(),
            Some(("u".into(), "100%".into()))
        );
    }

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

    /// Percent-decodes, as the drivers do, to check the round trip.
    fn decode(s: &str) -> String {
        let b = s.as_bytes();
        let mut out = Vec::new();
        let mut i = 0;
        while i < b.len() {
            if b[i] == b'%' {
                out.push(u8::from_str_radix(&s[i + 1..i + 3], 16).unwrap());
                i += 3;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn fills_in_credentials_with_special_characters_encoded() {
        let pw = "p@ss:w/rd%41?x#y&z=1 ñ'\\";
        let l = Locator::new("postgres://db.internal:5432/postgres?sslmode=require")
            .with_credentials("a2a admin", pw);
        let s = l.expose();
        assert!(
            s.starts_with("postgres://a2a%20admin:"),
            "user encoded: {}",
            l.redacted()
        );
        assert!(s.ends_with("@db.internal:5432/postgres?sslmode=require"));
        // One '@' and no raw '/', '?' or '#' before the host: the host and path stand.
        let userinfo = &s["postgres://".len()..s.rfind('@').unwrap()];
        assert!(!userinfo.contains(['@', '/', '?', '#']), "{userinfo}");
        let (user, encoded) = userinfo.split_once(':').unwrap();
        assert_eq!(decode(user), "a2a admin");
        assert_eq!(decode(encoded), pw);
        // The database of the URL is still found where the data plane looks for it.
        assert_eq!(
            &s[s.rfind('@').unwrap()..],
            "@db.internal:5432/postgres?sslmode=require"
        );
    }

    #[test]
    fn the_password_never_shows() {
        let pw = "s3cr@t:/%25";
        for url in ["mysql://127.0.0.1:3306/mysql", "postgres://h/postgres"] {
            let l = Locator::new(url).with_credentials("a2a", pw);
            for shown in [l.to_string(), format!("{l:?}"), l.redacted()] {
                assert!(!shown.contains("s3cr"), "{shown}");
                assert!(shown.contains("a2a:***@"), "{shown}");
            }
        }
    }

    #[test]
    fn without_password_keeps_the_user_and_the_rest() {
        for (with, without) in [
            (
                "postgres://moodle:own@db/postgres",
                "postgres://moodle@db/postgres",
            ),
            (
                "mysql://root:@127.0.0.1:3306/mysql",
                "mysql://root@127.0.0.1:3306/mysql",
            ),
            ("postgres://u:p@w@h:5432/d?x=1", "postgres://u@h:5432/d?x=1"),
            ("mysql://root@h/mysql", "mysql://root@h/mysql"),
            ("postgres://h/d", "postgres://h/d"),
            (
                "sqlite:///var/a2a/s1/a2a_08000013.db",
                "sqlite:///var/a2a/s1/a2a_08000013.db",
            ),
        ] {
            assert_eq!(Locator::new(with).without_password().expose(), without);
        }
        let filled = Locator::new("mysql://h:3306/mysql").with_credentials("a2a", "s:e@c");
        assert_eq!(
            filled.without_password().expose(),
            "mysql://a2a@h:3306/mysql"
        );
    }

    #[test]
    fn a_password_of_its_own_is_kept() {
        for s in [
            "postgres://moodle:own@db.internal/postgres",
            "mysql://root:@127.0.0.1:3306/mysql",
            "postgres://moodle:own@pw@db.internal/postgres",
        ] {
            assert_eq!(Locator::new(s).with_credentials("a2a", "new").expose(), s);
        }
    }

    #[test]
    fn a_user_without_a_password_gives_way_to_the_secret_s_user() {
        let l = Locator::new("mysql://root@127.0.0.1:3306/mysql").with_credentials("a2a", "pw");
        assert_eq!(l.expose(), "mysql://a2a:pw@127.0.0.1:3306/mysql");
    }

    #[test]
    fn what_has_no_host_is_untouched() {
        for s in [
            "sqlite:///var/a2a/shard1",
            "SQLITE:///var/a2a/shard1",
            "sqlite://rel.db",
            "file:///srv/x",
            "/srv/moodledata/08012345",
            "postgres:///postgres",
            "postgres://",
        ] {
            assert_eq!(Locator::new(s).with_credentials("a2a", "pw").expose(), s);
        }
        let bare = Locator::new("postgres://h").with_credentials("a", "b");
        assert_eq!(bare.expose(), "postgres://a:b@h");
    }
}
