//! The PostgreSQL store's URL, read by regstudy itself rather than by the client library:
//! `postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?sslmode=MODE&sslrootcert=PATH]` (also
//! `postgresql://`), with the password also taken from `PGPASSWORD`, as libpq does.
//!
//! The `postgres` crate refuses `sslmode=verify-full` and `sslrootcert`, the two settings a
//! cluster's database needs most, and its own URL errors may quote the password. Reading the
//! URL here keeps both in regstudy's hands: the settings it understands are listed in
//! [`SslMode`], and [`PostgresUrl::redacted`] is the only form of the URL that messages show.

use std::fmt;
use std::path::PathBuf;

/// How a connection uses TLS, by libpq's names. `require` and `verify-full` both verify the
/// server's certificate chain (against `sslrootcert`, or the public web roots without it)
/// and its host name: unlike libpq, whose `require` encrypts but accepts any certificate,
/// regstudy's `require` never sends credentials to a server it has not verified. `prefer`
/// (the default, as in libpq) uses TLS when the server offers it, without verifying it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it, not verified; plain otherwise. libpq's default.
    Prefer,
    /// TLS, verified; a server without TLS is refused.
    Require,
    /// The same as `require`: libpq's name for a verified connection.
    VerifyFull,
}

impl SslMode {
    fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-full" => Self::VerifyFull,
            _ => return None,
        })
    }
}

/// A parsed `postgres://` URL.
#[derive(Clone, PartialEq, Eq)]
pub struct PostgresUrl {
    pub user: String,
    /// From the URL, else from `PGPASSWORD`; never shown.
    pub password: Option<String>,
    pub host: String,
    pub port: u16,
    pub dbname: String,
    pub sslmode: SslMode,
    /// A PEM file of the certificate authorities to trust (`sslrootcert`).
    pub sslrootcert: Option<PathBuf>,
}

/// Debug output never shows the password.
impl fmt::Debug for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// A URL that is not a PostgreSQL store's URL; the message never contains the password.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("store URL {url}: {problem}")]
pub struct UrlError {
    /// The URL as given, with any password replaced by `***`.
    pub url: String,
    pub problem: String,
}

/// Whether `location` names a PostgreSQL store.
pub fn is_postgres(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

impl PostgresUrl {
    /// Parses `url`; `pgpassword` is `$PGPASSWORD`, used when the URL has no password.
    pub fn parse(url: &str, pgpassword: Option<String>) -> Result<Self, UrlError> {
        let fail = |problem: String| UrlError {
            url: redact(url),
            problem,
        };
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
            .ok_or_else(|| fail("expected postgres://USER@HOST[:PORT]/DB".into()))?;
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, dbname) = rest
            .split_once('/')
            .ok_or_else(|| fail("no database: expected postgres://USER@HOST[:PORT]/DB".into()))?;
        let (userinfo, hostport) = authority
            .rsplit_once('@')
            .ok_or_else(|| fail("no user: expected postgres://USER@HOST[:PORT]/DB".into()))?;
        let (user, password) = match userinfo.split_once(':') {
            Some((user, password)) => (user, Some(decode(password).map_err(&fail)?)),
            None => (userinfo, None),
        };
        let user = decode(user).map_err(&fail)?;
        let (host, port) = host_and_port(hostport).map_err(&fail)?;
        let dbname = decode(dbname).map_err(&fail)?;
        if user.is_empty() || host.is_empty() || dbname.is_empty() {
            return Err(fail(
                "the user, the host and the database must not be empty".into(),
            ));
        }
        let mut parsed = PostgresUrl {
            user,
            password: password.or(pgpassword),
            host,
            port,
            dbname,
            sslmode: SslMode::Prefer,
            sslrootcert: None,
        };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            parsed.set(pair).map_err(&fail)?;
        }
        Ok(parsed)
    }

    /// Applies one `key=value` of the query.
    fn set(&mut self, pair: &str) -> Result<(), String> {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("`{pair}` in the query is not key=value"))?;
        let value = decode(value)?;
        match key {
            "sslmode" => {
                self.sslmode = SslMode::parse(&value).ok_or_else(|| {
                    format!("sslmode `{value}` is not one of disable, prefer, require, verify-full")
                })?
            }
            "sslrootcert" => self.sslrootcert = Some(PathBuf::from(value)),
            other => {
                return Err(format!(
                    "unknown setting `{other}`; a store URL takes sslmode and sslrootcert"
                ))
            }
        }
        Ok(())
    }

    /// The URL as messages show it: without the password.
    pub fn redacted(&self) -> String {
        let mut url = format!(
            "postgres://{}@{}:{}/{}",
            self.user,
            display_host(&self.host),
            self.port,
            self.dbname
        );
        let mut query = Vec::new();
        if self.sslmode != SslMode::Prefer {
            query.push(format!("sslmode={}", ssl_mode_name(self.sslmode)));
        }
        if let Some(root) = &self.sslrootcert {
            query.push(format!("sslrootcert={}", root.display()));
        }
        if !query.is_empty() {
            url.push('?');
            url.push_str(&query.join("&"));
        }
        url
    }
}

fn ssl_mode_name(mode: SslMode) -> &'static str {
    match mode {
        SslMode::Disable => "disable",
        SslMode::Prefer => "prefer",
        SslMode::Require => "require",
        SslMode::VerifyFull => "verify-full",
    }
}

fn display_host(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    }
}

/// `HOST[:PORT]` or `[IPV6][:PORT]`; the port defaults to 5432.
fn host_and_port(text: &str) -> Result<(String, u16), String> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| "an IPv6 host opened with `[` is not closed".to_string())?;
        (host, after.strip_prefix(':'))
    } else {
        match text.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        }
    };
    let port = match port {
        None => 5432,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p > 0)
            .ok_or_else(|| format!("port `{p}` is not a number from 1 to 65535"))?,
    };
    Ok((decode(host)?, port))
}

/// Percent-decoding (`%40` is `@`), as URLs carry user names and passwords.
fn decode(text: &str) -> Result<String, String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| "a `%` is not followed by two hexadecimal digits".to_string())?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "a percent-encoded part is not UTF-8".to_string())
}

/// `url` with the password of its user part, if any, replaced by `***`: for messages about a
/// URL that did not parse.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            let hidden = if userinfo.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{hidden}@{host}{tail}")
        }
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_url_parses_into_its_parts() {
        let url = PostgresUrl::parse(
            "postgresql://alice:s%40cret@db.example.org:6543/studies?sslmode=verify-full&sslrootcert=/etc/ca.pem",
            None,
        )
        .unwrap();
        assert_eq!(url.user, "alice");
        assert_eq!(url.password.as_deref(), Some("s@cret"));
        assert_eq!((url.host.as_str(), url.port), ("db.example.org", 6543));
        assert_eq!(url.dbname, "studies");
        assert_eq!(url.sslmode, SslMode::VerifyFull);
        assert_eq!(url.sslrootcert, Some(PathBuf::from("/etc/ca.pem")));
    }

    #[test]
    fn defaults_are_port_5432_and_sslmode_prefer_and_the_password_comes_from_pgpassword() {
        let url = PostgresUrl::parse("postgres://bob@localhost/db", Some("pw".into())).unwrap();
        assert_eq!((url.port, url.sslmode), (5432, SslMode::Prefer));
        assert_eq!(url.password.as_deref(), Some("pw"));
        let given = PostgresUrl::parse("postgres://bob:url@localhost/db", Some("env".into()));
        assert_eq!(given.unwrap().password.as_deref(), Some("url"));
    }

    #[test]
    fn an_ipv6_host_is_read_between_brackets() {
        let url = PostgresUrl::parse("postgres://u@[::1]:5433/db", None).unwrap();
        assert_eq!((url.host.as_str(), url.port), ("::1", 5433));
        assert_eq!(url.redacted(), "postgres://u@[::1]:5433/db");
    }

    #[test]
    fn errors_name_the_problem_and_never_the_password() {
        for (url, expected) in [
            ("postgres://u:hunter2@h/db?sslmode=allow", "sslmode `allow`"),
            (
                "postgres://u:hunter2@h/db?connect_timeout=3",
                "unknown setting",
            ),
            ("postgres://u:hunter2@h:99999/db", "port `99999`"),
            ("postgres://u:hunter2@h", "no database"),
            ("postgres://h/db", "no user"),
            ("postgres://u:hunter2@h/", "must not be empty"),
            ("postgres://u:hunt%zzer2@h/db", "hexadecimal"),
        ] {
            let e = PostgresUrl::parse(url, None).unwrap_err();
            let message = e.to_string();
            assert!(message.contains(expected), "{url}: {message}");
            assert!(!message.contains("hunt"), "{url}: {message}");
        }
    }

    #[test]
    fn the_redacted_url_keeps_everything_but_the_password() {
        let url = PostgresUrl::parse(
            "postgres://u:hunter2@h:5432/db?sslmode=require&sslrootcert=/ca.pem",
            None,
        )
        .unwrap();
        assert_eq!(
            url.redacted(),
            "postgres://u@h:5432/db?sslmode=require&sslrootcert=/ca.pem"
        );
        assert!(!format!("{url:?}").contains("hunter2"));
        assert_eq!(redact("postgres://u:p@h/db?x"), "postgres://u:***@h/db?x");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    }

    #[test]
    fn only_postgres_schemes_name_a_postgres_store() {
        assert!(is_postgres("postgres://u@h/db") && is_postgres("postgresql://u@h/db"));
        assert!(!is_postgres("sqlite://x.db") && !is_postgres("studies.db"));
    }
}
