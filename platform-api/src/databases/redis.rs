//! Redis: for each principal an ACL user restricted to the keys and channels under its
//! service's prefix `<service>:<env>:`, with the commands that act on the whole keyspace
//! whatever the key patterns (KEYS, SCAN, RANDOMKEY, FLUSHALL, FLUSHDB, SELECT, SWAPDB, MOVE,
//! MIGRATE, PUBSUB) and every admin and dangerous command denied. Passwords reach the server
//! only as their SHA-256 (`#<hex>`), and every change is saved to the server's ACL file
//! (`ACL SAVE`), so users survive a restart: a server without an ACL file is refused rather
//! than left to forget them.

use redis::aio::MultiplexedConnection;
use sha2::Digest;

#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("the Redis server at {server} does not answer its admin: {why}")]
    Unreachable { server: String, why: String },
    #[error(
        "the Redis server at {server} keeps ACL users in memory only, so they would be lost at its next restart; give it an ACL file (`aclfile` in redis.conf)"
    )]
    NoAclFile { server: String },
    #[error("Redis refused `{what}`: {why}")]
    Refused { what: String, why: String },
}

pub type Result<T> = std::result::Result<T, RedisError>;

/// The commands a service's user may run: reading and writing its own keys, transactions,
/// its own channels; nothing that reaches past its prefix or administers the server.
const RULES: &[&str] = &[
    "-@all",
    "+@read",
    "+@write",
    "+@keyspace",
    "+@string",
    "+@hash",
    "+@list",
    "+@set",
    "+@sortedset",
    "+@stream",
    "+@pubsub",
    "+@transaction",
    "+@connection",
    "-@admin",
    "-@dangerous",
    "-keys",
    "-scan",
    "-randomkey",
    "-flushdb",
    "-flushall",
    "-select",
    "-swapdb",
    "-move",
    "-migrate",
    "-pubsub",
];

/// The key prefix of a service's environment: `<service>:<env>:` (names are DNS labels, so
/// no prefix is another's).
pub fn prefix(service: &str, env: &str) -> String {
    format!("{service}:{env}:")
}

/// A password as ACL SETUSER takes it without seeing it: `#` and its SHA-256 in hex.
fn hashed(password: &str) -> String {
    format!(
        "#{}",
        hex::encode(sha2::Sha256::digest(password.as_bytes()))
    )
}

/// The URL a service connects with.
pub fn url(principal: &str, password: &str, host: &str, port: u16) -> String {
    format!("redis://{principal}:{password}@{host}:{port}/0")
}

/// An admin connection to one server.
pub struct RedisAdmin {
    con: MultiplexedConnection,
    server: String,
}

impl RedisAdmin {
    /// Connects as the server's admin (`redis://USER:PASSWORD@HOST:PORT`).
    pub async fn connect(admin_url: &str) -> Result<Self> {
        let server = super::redact(admin_url);
        let unreachable = |e: redis::RedisError| RedisError::Unreachable {
            server: server.clone(),
            why: e.to_string(),
        };
        let client = redis::Client::open(admin_url).map_err(unreachable)?;
        let con = client
            .get_multiplexed_async_connection()
            .await
            .map_err(unreachable)?;
        Ok(Self { con, server })
    }

    async fn run<T: redis::FromRedisValue>(&self, what: &str, cmd: &redis::Cmd) -> Result<T> {
        let mut con = self.con.clone();
        cmd.query_async(&mut con)
            .await
            .map_err(|e| RedisError::Refused {
                what: what.to_owned(),
                why: e.to_string(),
            })
    }

    async fn save(&self) -> Result<()> {
        let mut con = self.con.clone();
        match redis::cmd("ACL")
            .arg("SAVE")
            .query_async::<()>(&mut con)
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if e.to_string().contains("ACL file") => Err(RedisError::NoAclFile {
                server: self.server.clone(),
            }),
            Err(e) => Err(RedisError::Refused {
                what: "ACL SAVE".into(),
                why: e.to_string(),
            }),
        }
    }

    /// Whether `principal` exists, and whether it may log in.
    pub async fn present(&self, principal: &str) -> Result<Option<bool>> {
        let user: Option<redis::acl::AclInfo> = self
            .run(
                "ACL GETUSER",
                redis::cmd("ACL").arg("GETUSER").arg(principal),
            )
            .await?;
        Ok(user.map(|u| u.flags.contains(&redis::acl::Rule::On)))
    }

    /// Makes `principal` a user that logs in with `password` (only) and reaches only what lies
    /// under `prefix`. The whole definition is set each time, so it converges.
    pub async fn ensure(&self, principal: &str, prefix: &str, password: &str) -> Result<()> {
        self.ensure_all(principal, prefix, &[password]).await
    }

    /// [`RedisAdmin::ensure`] with every password that opens it (during a rotation, the new
    /// one and the old one), set in one command: no moment in between refuses either.
    pub async fn ensure_all(
        &self,
        principal: &str,
        prefix: &str,
        passwords: &[&str],
    ) -> Result<()> {
        let mut cmd = redis::cmd("ACL");
        cmd.arg("SETUSER").arg(principal).arg("reset").arg("on");
        for password in passwords {
            cmd.arg(hashed(password));
        }
        cmd.arg(format!("~{prefix}*"))
            .arg(format!("&{prefix}*"))
            .arg(RULES);
        self.run::<()>("ACL SETUSER", &cmd).await?;
        self.save().await
    }

    /// Rotation's first half: `password` also opens, beside the current one.
    pub async fn add_password(&self, principal: &str, password: &str) -> Result<()> {
        self.run::<()>(
            "ACL SETUSER",
            redis::cmd("ACL")
                .arg("SETUSER")
                .arg(principal)
                .arg(hashed(password)),
        )
        .await?;
        self.save().await
    }

    /// Rotation's second half: `password` no longer opens.
    pub async fn remove_password(&self, principal: &str, password: &str) -> Result<()> {
        let hash = hashed(password);
        self.run::<()>(
            "ACL SETUSER",
            redis::cmd("ACL")
                .arg("SETUSER")
                .arg(principal)
                .arg(format!("!{}", &hash[1..])),
        )
        .await?;
        self.save().await
    }

    /// Detaches: the user may no longer log in and its connections are closed; the keys stay.
    pub async fn detach(&self, principal: &str) -> Result<()> {
        if self.present(principal).await?.is_none() {
            return Ok(());
        }
        self.run::<()>(
            "ACL SETUSER",
            redis::cmd("ACL").arg("SETUSER").arg(principal).arg("off"),
        )
        .await?;
        self.save().await?;
        self.run::<i64>(
            "CLIENT KILL",
            redis::cmd("CLIENT").arg("KILL").arg("USER").arg(principal),
        )
        .await
        .map(|_| ())
    }

    /// Deletes every key under `prefix` (the data is gone) and the user.
    pub async fn destroy(&self, principal: &str, prefix: &str) -> Result<()> {
        self.detach(principal).await?;
        for keys in self.keys_under(prefix).await? {
            self.run::<i64>("UNLINK", redis::cmd("UNLINK").arg(&keys))
                .await?;
        }
        self.run::<i64>(
            "ACL DELUSER",
            redis::cmd("ACL").arg("DELUSER").arg(principal),
        )
        .await?;
        self.save().await
    }
}

impl RedisAdmin {
    /// Every key under `prefix`, in batches (SCAN, as the admin).
    async fn keys_under(&self, prefix: &str) -> Result<Vec<Vec<String>>> {
        let pattern = format!("{prefix}*");
        let mut cursor: u64 = 0;
        let mut batches = Vec::new();
        loop {
            let (next, keys): (u64, Vec<String>) = self
                .run(
                    "SCAN",
                    redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(1000),
                )
                .await?;
            if !keys.is_empty() {
                batches.push(keys);
            }
            if next == 0 {
                return Ok(batches);
            }
            cursor = next;
        }
    }

    /// A snapshot of the keys under `prefix`: for each, its name after the prefix, its time
    /// to live in milliseconds (0: none) and its value as DUMP serialises it, in the format
    /// [`RedisAdmin::restore`] reads (so it loads under another environment's prefix too).
    pub async fn dump(&self, prefix: &str) -> Result<Vec<u8>> {
        let mut out = DUMP_MAGIC.to_vec();
        for keys in self.keys_under(prefix).await? {
            for key in keys {
                let value: Option<Vec<u8>> = self.run("DUMP", redis::cmd("DUMP").arg(&key)).await?;
                let ttl: i64 = self.run("PTTL", redis::cmd("PTTL").arg(&key)).await?;
                let Some(value) = value else { continue };
                let name = key.strip_prefix(prefix).unwrap_or(&key).as_bytes();
                out.extend_from_slice(&(name.len() as u32).to_be_bytes());
                out.extend_from_slice(name);
                out.extend_from_slice(&ttl.max(0).to_be_bytes());
                out.extend_from_slice(&(value.len() as u32).to_be_bytes());
                out.extend_from_slice(&value);
            }
        }
        Ok(out)
    }

    /// Loads a [`RedisAdmin::dump`] under `prefix`, replacing keys of the same name; returns
    /// how many keys it loaded. A file that is not such a dump is refused before any key.
    pub async fn restore(&self, prefix: &str, dump: &[u8]) -> Result<usize> {
        let entries = parse_dump(dump).ok_or_else(|| RedisError::Refused {
            what: "restore".into(),
            why: "the file is not a faas Redis backup (made by `faas service db backup`)".into(),
        })?;
        for (name, ttl, value) in &entries {
            self.run::<()>(
                "RESTORE",
                redis::cmd("RESTORE")
                    .arg(format!("{prefix}{name}"))
                    .arg(*ttl)
                    .arg(value.as_slice())
                    .arg("REPLACE"),
            )
            .await?;
        }
        Ok(entries.len())
    }
}

const DUMP_MAGIC: &[u8] = b"FAAS-REDIS-BACKUP 1\n";

/// (name after the prefix, ttl ms, DUMP payload) of each key of a backup.
fn parse_dump(bytes: &[u8]) -> Option<Vec<(String, i64, Vec<u8>)>> {
    let mut rest = bytes.strip_prefix(DUMP_MAGIC)?;
    let mut take = |n: usize| -> Option<&[u8]> {
        let (head, tail) = rest.split_at_checked(n)?;
        rest = tail;
        Some(head)
    };
    let mut out = Vec::new();
    while let Some(len) = take(4) {
        let len = u32::from_be_bytes(len.try_into().ok()?) as usize;
        let name = String::from_utf8(take(len)?.to_vec()).ok()?;
        let ttl = i64::from_be_bytes(take(8)?.try_into().ok()?);
        let len = u32::from_be_bytes(take(4)?.try_into().ok()?) as usize;
        out.push((name, ttl, take(len)?.to_vec()));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_reads_back_and_anything_else_is_refused() {
        let mut bytes = DUMP_MAGIC.to_vec();
        for (name, ttl, value) in [("a", 0i64, &b"xy"[..]), ("b:c", 1500, &b""[..])] {
            bytes.extend_from_slice(&(name.len() as u32).to_be_bytes());
            bytes.extend_from_slice(name.as_bytes());
            bytes.extend_from_slice(&ttl.to_be_bytes());
            bytes.extend_from_slice(&(value.len() as u32).to_be_bytes());
            bytes.extend_from_slice(value);
        }
        let got = parse_dump(&bytes).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[1], ("b:c".to_owned(), 1500, Vec::new()));
        assert!(parse_dump(b"PGDMP").is_none());
        assert!(parse_dump(&bytes[..bytes.len() - 1]).is_none());
    }

    #[test]
    fn the_server_gets_a_hash_not_the_password() {
        let h = hashed("hunter2");
        assert_eq!(h.len(), 65);
        assert!(h.starts_with('#') && !h.contains("hunter2"));
        assert_eq!(prefix("api", "prod"), "api:prod:");
    }
}
