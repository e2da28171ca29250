//! Databases a service declares in app.toml, provisioned per service and environment on a
//! server of their engine: a principal of their own (a role owning a database, an ACL user
//! restricted to a key prefix, a vhost and its user), never the server's admin, with a
//! password generated here. What is provisioned is named by [`principal`], so doing it again
//! finds it: every operation converges, whatever a crash left half-done.

pub mod admin;
pub mod postgres;
pub mod provision;
pub mod rabbitmq;
pub mod redis;
pub mod servers;
pub mod tools;

use sha2::Digest;

/// The longest name a principal gets (PostgreSQL truncates identifiers at 63 bytes).
const MAX_PRINCIPAL: usize = 63;

/// The name of the principal (role, database, user, vhost) of database `name` of `service` in
/// `env`: readable (`f_<service>_<env>_<name>`, `-` made `_`) and, so that no two triples
/// share one however their parts split, ending in 12 hex digits of the SHA-256 of the exact
/// triple. At most 63 characters of `[a-z0-9_]`.
pub fn principal(service: &str, env: &str, name: &str) -> String {
    let digest = sha2::Sha256::digest(format!("{service}\n{env}\n{name}").as_bytes());
    let tag = hex::encode(&digest[..6]);
    let readable: String = format!("f_{service}_{env}_{name}")
        .chars()
        .map(|c| {
            if c.is_ascii_lowercase() || c.is_ascii_digit() {
                c
            } else {
                '_'
            }
        })
        .take(MAX_PRINCIPAL - tag.len() - 1)
        .collect();
    format!("{readable}_{tag}")
}

/// A server's URL without its password, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{}{user}{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// A new password: 32 characters of `[A-Za-z0-9]` from the thread's cryptographic generator
/// (seeded by the operating system; about 190 bits), safe in a URL without escaping.
pub fn password() -> String {
    use rand::Rng;
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..32)
        .map(|_| char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn principals_are_readable_bounded_and_distinct() {
        let p = principal("api", "prod", "main");
        assert!(p.starts_with("f_api_prod_main_"), "{p}");
        assert_eq!(p.len(), "f_api_prod_main_".len() + 12);
        // The same readable part, split differently: still two principals.
        assert_ne!(principal("a-b", "c", "d"), principal("a", "b-c", "d"));
        let long = principal(&"s".repeat(40), &"e".repeat(20), &"n".repeat(30));
        assert_eq!(long.len(), 63);
        assert!(
            long.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        );
    }

    #[test]
    fn a_url_is_shown_without_its_password() {
        assert_eq!(
            redact("postgres://admin:s3cret@db:5432/postgres"),
            "postgres://admin@db:5432/postgres"
        );
        assert_eq!(
            redact("postgres://postgres@127.0.0.1:55432"),
            "postgres://postgres@127.0.0.1:55432"
        );
    }

    #[test]
    fn passwords_are_long_and_url_safe() {
        let (a, b) = (password(), password());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric()));
    }
}
