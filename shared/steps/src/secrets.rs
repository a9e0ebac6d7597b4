//! A site's own secrets: made at random for each site, kept in plain text only in the
//! secret store, and written to the site the way Moodle keeps them (its admin password as
//! PHP's `password_hash` makes it: bcrypt, `$2y$`, cost 10).

use a2a_core::{SchoolCode, Secret, SecretName};

use crate::{StepContext, StepError};

/// Letters and digits that cannot be misread, and a few signs Moodle's password policy
/// counts as "non-alphanumeric".
const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789-_.!*#";

/// Length of a generated password: above the 20 characters asked for.
pub const PASSWORD_LEN: usize = 24;

/// Moodle's own bcrypt cost (PHP's `PASSWORD_DEFAULT`).
const COST: u32 = 10;

/// `len` characters drawn uniformly from [`ALPHABET`] by the operating system's generator.
fn random_text(len: usize) -> Result<String, StepError> {
    // Rejection sampling: only bytes below the largest multiple of the alphabet's size.
    let limit = 256 - 256 % ALPHABET.len();
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        getrandom::fill(&mut buf)
            .map_err(|e| StepError::Transient(format!("no random numbers: {e}")))?;
        out.extend(
            buf.iter()
                .filter(|b| usize::from(**b) < limit)
                .map(|b| char::from(ALPHABET[usize::from(*b) % ALPHABET.len()]))
                .take(len - out.len()),
        );
    }
    Ok(out)
}

/// A new password that meets Moodle's default policy: an upper- and a lower-case letter,
/// a digit and a sign.
pub fn new_password() -> Result<Secret, StepError> {
    loop {
        let p = random_text(PASSWORD_LEN)?;
        let has = |f: fn(&u8) -> bool| p.as_bytes().iter().any(f);
        if has(u8::is_ascii_uppercase)
            && has(u8::is_ascii_lowercase)
            && has(u8::is_ascii_digit)
            && has(|b| !b.is_ascii_alphanumeric())
        {
            return Ok(Secret::new(p));
        }
    }
}

/// The hash Moodle stores for `password`: `$2y$10$…`, which PHP's `password_verify` reads.
pub fn moodle_hash(password: &Secret) -> Result<String, StepError> {
    bcrypt::hash_with_result(password.expose(), COST)
        .map(|h| h.format_for_version(bcrypt::Version::TwoY))
        .map_err(|e| StepError::Permanent(format!("bcrypt: {e}")))
}

/// Whether `hash` (as Moodle stores it) is the hash of `password`.
pub fn verifies(password: &str, hash: &str) -> bool {
    bcrypt::verify(password, hash).unwrap_or(false)
}

/// The secret `name` of the school, made by `make` and stored the first time, the stored
/// one afterwards: a rerun of a step uses what the first run stored, so the secret store
/// and the site never disagree.
pub async fn site_secret(
    ctx: &StepContext,
    code: &SchoolCode,
    name: &SecretName,
    make: impl FnOnce() -> Result<Secret, StepError>,
) -> Result<Secret, StepError> {
    if let Some(s) = ctx.secrets.get(name).await? {
        return Ok(s);
    }
    let made = make()?;
    ctx.secrets
        .put_new(name, &made)
        .await
        .map_err(|e| StepError::Transient(format!("school {code}: secret {name} not stored: {e}")))
}

/// A site identifier as Moodle makes one (`random_string(32)` and the site's host).
pub fn new_site_identifier(host: &str) -> Result<Secret, StepError> {
    let text: String = random_text(32)?
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .collect();
    Ok(Secret::new(format!("{text}{host}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_long_mixed_and_never_the_same() {
        let a = new_password().unwrap();
        let b = new_password().unwrap();
        assert_eq!(a.expose().len(), PASSWORD_LEN);
        assert!(a.expose().len() >= 20);
        assert_ne!(a, b);
        assert!(a.expose().bytes().all(|c| ALPHABET.contains(&c)));
    }

    #[test]
    fn the_hash_is_php_s_bcrypt_and_verifies() {
        let p = Secret::new("Zx8-correct-horse-battery");
        let h = moodle_hash(&p).unwrap();
        assert!(h.starts_with("$2y$10$"), "{h}");
        assert_eq!(h.len(), 60);
        assert!(verifies(p.expose(), &h));
        assert!(!verifies("Zx8-wrong-horse-battery", &h));
        assert!(!verifies(p.expose(), "not a hash"));
    }

    #[test]
    fn random_text_draws_from_the_whole_alphabet() {
        let t = random_text(4000).unwrap();
        for c in ALPHABET {
            assert!(t.as_bytes().contains(c), "{} never drawn", char::from(*c));
        }
    }
}
